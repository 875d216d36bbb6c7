"""Streaming writer for large MRC image stacks (bounded memory, atomic).

A stack of N images is written chunk by chunk into a temporary file next to the destination and renamed into
place only when complete, so an interrupted run never leaves a truncated ``.mrcs`` under the final name and
never overwrites a previous good file with a partial one.

Memory stays at about one chunk up to and including :meth:`MrcStackWriter.close`: chunks are written with plain
file writes (no memory map whose dirty pages grow with the stack), and the header statistics (min, max, mean,
rms) are accumulated chunk by chunk while streaming (Chan et al.'s pairwise update of mean and sum of squared
deviations, in float64) instead of being recomputed from the whole file at the end. The 1024-byte header is
written by this module (MRC2014, mode 2, ``ispg = 0``: a stack of 2-D images).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from types import TracebackType

import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from cryoscape.io.atomic import temporary_sibling

_HEADER_BYTES = 1024
_MODE_FLOAT32 = 2
_IMAGE_STACK_SPACEGROUP = 0


class RunningStats:
    """Min, max, mean and rms (standard deviation about the mean) of values seen in chunks.

    ``rms`` follows the MRC convention (as mrcfile's ``update_header_stats``): the standard deviation of the
    values from their mean, not the root mean square.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean
        self.min = np.inf
        self.max = -np.inf

    def add(self, values: np.ndarray) -> None:
        """Include ``values`` (any shape) in the statistics."""
        values = np.asarray(values)
        n = values.size
        if n == 0:
            return
        chunk_mean = float(values.mean(dtype=np.float64))
        chunk_m2 = float(np.square(values - np.float32(chunk_mean), dtype=np.float64).sum())
        total = self.count + n
        delta = chunk_mean - self.mean
        self.mean += delta * n / total
        self.m2 += chunk_m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


def stack_header(n: int, box_size: int, voxel_size_angstrom: float, stats: RunningStats | None = None
                 ) -> np.ndarray:
    """The 1024-byte MRC2014 header (numpy record, little-endian) of a float32 stack of ``n`` images.

    Parameters
    ----------
    n, box_size
        Number of images and image side (pixels): data shape (n, box_size, box_size).
    voxel_size_angstrom
        Pixel size (Å); the section spacing of a stack is set to the same value.
    stats
        Header statistics; None writes MRC's "not computed" values (dmin > dmax, dmean < min, rms < 0).
    """
    header = np.zeros((), dtype=HEADER_DTYPE).view(np.recarray)
    header.nx = header.ny = int(box_size)
    header.nz = int(n)
    header.mode = _MODE_FLOAT32
    header.mx = header.my = int(box_size)
    header.mz = 1  # image stack: one section per image
    voxel = float(voxel_size_angstrom)
    header.cella.x = header.cella.y = voxel * box_size
    header.cella.z = voxel
    header.cellb.alpha = header.cellb.beta = header.cellb.gamma = 90.0
    header.mapc, header.mapr, header.maps = 1, 2, 3
    header.ispg = _IMAGE_STACK_SPACEGROUP
    header.map = b"MAP "
    header.machst = np.frombuffer(b"\x44\x44\x00\x00", dtype=np.uint8)  # little-endian
    header.nversion = 20141
    if stats is None or stats.count == 0:
        header.dmin, header.dmax, header.dmean, header.rms = 0.0, -1.0, -2.0, -1.0
    else:
        header.dmin, header.dmax = stats.min, stats.max
        header.dmean, header.rms = stats.mean, stats.rms
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    header.label[0] = f"{'Created by cryoscape':40s}{stamp:>39s} ".encode()
    header.nlabl = 1
    return header


class MrcStackWriter:
    """Write ``n`` images of ``box_size``² float32 pixels into ``path``, chunk by chunk.

    Parameters
    ----------
    path
        Destination ``.mrcs`` file (written atomically on :meth:`close`).
    n
        Number of images.
    box_size
        Image side (pixels).
    voxel_size_angstrom
        Pixel size written to the header (Å).

    Examples
    --------
    >>> with MrcStackWriter("out.mrcs", n=1000, box_size=64, voxel_size_angstrom=2.0) as w:  # doctest: +SKIP
    ...     w.write(0, images[:500]); w.write(500, images[500:])
    """

    def __init__(self, path: str | os.PathLike, n: int, box_size: int, voxel_size_angstrom: float):
        self.path = Path(path)
        self.n = int(n)
        self.box_size = int(box_size)
        self.voxel_size_angstrom = float(voxel_size_angstrom)
        self.stats = RunningStats()
        self._written = np.zeros(self.n, dtype=bool)
        self._tmp = temporary_sibling(self.path)
        self._file = open(self._tmp, "r+b")  # closed by close/abort
        self._image_bytes = 4 * self.box_size * self.box_size
        try:
            self._file.write(stack_header(self.n, self.box_size, self.voxel_size_angstrom).tobytes())
            self._file.truncate(_HEADER_BYTES + self.n * self._image_bytes)  # sparse until written
        except BaseException:
            self.abort()
            raise

    def write(self, start: int, images: np.ndarray) -> None:
        """Store ``images`` (k, D, D) at positions ``start .. start+k-1`` (each position once)."""
        images = np.ascontiguousarray(images, dtype="<f4")
        k = images.shape[0]
        if images.shape[1:] != (self.box_size, self.box_size) or start < 0 or start + k > self.n:
            raise ValueError(f"cannot write {images.shape} at {start} into a stack of {self.n}×{self.box_size}²")
        if self._written[start:start + k].any():
            raise ValueError(f"images {start}..{start + k - 1} of {self.path} were already written")
        self._file.seek(_HEADER_BYTES + start * self._image_bytes)
        self._file.write(images.tobytes())
        self.stats.add(images)
        self._written[start:start + k] = True

    def close(self) -> Path:
        """Write the header with the statistics and move the file into place; every image must be written."""
        if not self._written.all():
            missing = int((~self._written).sum())
            self.abort()
            raise RuntimeError(f"{self.path}: {missing} of {self.n} images were never written")
        try:
            self._file.seek(0)
            self._file.write(stack_header(self.n, self.box_size, self.voxel_size_angstrom, self.stats).tobytes())
            self._file.flush()
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> MrcStackWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
