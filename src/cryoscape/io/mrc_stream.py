"""Streaming writer for large MRC image stacks (bounded memory, atomic).

A stack of N images is preallocated as a memory-mapped file next to the destination, filled chunk by chunk and
renamed into place only when complete, so an interrupted run never leaves a truncated ``.mrcs`` under the final
name and never overwrites a previous good file with a partial one.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import mrcfile
import numpy as np

from cryoscape.io.atomic import temporary_sibling


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
        self._written = np.zeros(self.n, dtype=bool)
        self._tmp = temporary_sibling(self.path)
        self._mrc = mrcfile.new_mmap(self._tmp, shape=(self.n, self.box_size, self.box_size), mrc_mode=2,
                                     overwrite=True)
        self._mrc.set_image_stack()
        self._mrc.voxel_size = float(voxel_size_angstrom)

    def write(self, start: int, images: np.ndarray) -> None:
        """Store ``images`` (k, D, D) at positions ``start .. start+k-1``."""
        images = np.asarray(images, dtype=np.float32)
        k = images.shape[0]
        if images.shape[1:] != (self.box_size, self.box_size) or start < 0 or start + k > self.n:
            raise ValueError(f"cannot write {images.shape} at {start} into a stack of {self.n}×{self.box_size}²")
        self._mrc.data[start:start + k] = images
        self._written[start:start + k] = True

    def close(self) -> Path:
        """Finish the header and move the file into place; every image must have been written."""
        if not self._written.all():
            missing = int((~self._written).sum())
            self.abort()
            raise RuntimeError(f"{self.path}: {missing} of {self.n} images were never written")
        self._mrc.update_header_from_data()
        self._mrc.update_header_stats()
        self._mrc.flush()
        self._mrc.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard the partial file."""
        try:
            self._mrc.close()
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
