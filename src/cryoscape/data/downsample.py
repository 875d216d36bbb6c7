"""Fourier-crop (downsample) particle stacks and 3-D maps, and re-point a RELION star at a resampled stack.

Stacks are streamed in chunks into :class:`~cryoscape.io.mrc_stream.MrcStackWriter` (memory about one chunk,
header statistics computed while streaming). A map (one cubic volume) is resampled in 3-D by Fourier cropping
(or zero-padding) its centred 3-D transform, one axis at a time, exactly as the 2-D images are on two axes; the
voxel size is scaled by ``old_box / new_box``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryoscape.data.particles import ParticleSet
from cryoscape.errors import InputError
from cryoscape.geometry.fourier import fourier_crop, fourier_pad
from cryoscape.io.mrc import read_mrc, write_mrc
from cryoscape.io.mrc_stream import MrcStackWriter
from cryoscape.io.star import read_star, write_star
from cryoscape.progress import progress

#: Largest box accepted by ``downsample`` (pixels): beyond it a single image or map is unreasonably large.
MAX_BOX_SIZE = 1024
#: Input bytes Fourier-transformed at once by :func:`resample_stack` (its temporaries are a few times this).
FFT_BATCH_BYTES = 16 * 2**20
#: Bytes of working memory per pixel while resampling (float32 in, complex128 transform, float32 out).
_BYTES_PER_PIXEL = 4 + 16 + 16 + 4


def available_memory_bytes() -> int | None:
    """Memory available to new allocations (bytes): ``MemAvailable`` of /proc/meminfo, else free physical
    pages; None when the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_new_box(old_box: int, box_size: int, *, upsample: bool = False, volume: bool = False,
                  chunk_size: int = 1, path: str | os.PathLike | None = None) -> None:
    """Refuse a resampling target that is odd, larger than the input without ``upsample``, or too large.

    Parameters
    ----------
    old_box, box_size
        Current and requested box (pixels).
    upsample
        Allow ``box_size > old_box`` (Fourier padding).
    volume
        The data are one ``old_box``³ map (else 2-D images, ``chunk_size`` at a time).
    chunk_size
        Images read and written together (memory: ``chunk_size × max(old_box, box_size)² × 8 bytes`` plus the
        Fourier transforms' working memory).
    path
        Input file named in the error messages.

    Raises
    ------
    InputError
        With the limit that was exceeded and how to proceed.
    """
    if box_size <= 0 or box_size % 2:
        raise InputError(f"new box size must be a positive even number of pixels, got {box_size}", path=path,
                         fix="choose e.g. -D 64 or -D 128")
    if box_size > MAX_BOX_SIZE:
        raise InputError(f"new box size {box_size} px is larger than the limit of {MAX_BOX_SIZE} px", path=path,
                         fix=f"-D is the new box in pixels (at most {MAX_BOX_SIZE}), e.g. -D {min(old_box, 128)}")
    if box_size > old_box and not upsample:
        raise InputError(f"-D {box_size} is larger than the current box of {old_box} px: that would upsample "
                         "(interpolate), not downsample", path=path,
                         fix=f"give -D below {old_box}, or add --upsample to Fourier-pad on purpose")
    side = max(old_box, box_size)
    # a map: the whole volume and its transform; a stack: the chunk read and written, plus the FFT sub-batches
    need = _BYTES_PER_PIXEL * side ** 3 if volume else 8 * chunk_size * side ** 2 + 10 * FFT_BATCH_BYTES
    free = available_memory_bytes()
    if free is not None and need > free:
        what = f"a {side}³ map" if volume else f"{chunk_size} images of {side}² px at a time"
        fix = "use a machine with more memory" if volume else "give a smaller --chunk"
        raise InputError(f"resampling {what} needs ~{need / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB "
                         "of memory is available", path=path, fix=fix)


def _resample_axis(data: np.ndarray, axis: int, new_box: int) -> np.ndarray:
    """Fourier-crop or zero-pad ``data`` (real, even length along ``axis``) to ``new_box`` samples on that axis.

    The 1-D analogue of :func:`~cryoscape.geometry.fourier.fourier_crop` / ``fourier_pad``: crop keeps
    frequencies ``-n/2 .. n/2`` and adds ``+n/2`` onto ``-n/2``; pad splits the input's Nyquist coefficient
    evenly between ``±D/2``. Values are scaled by ``new_box / old_box`` (a constant stays the same constant).
    """
    box = data.shape[axis]
    if new_box == box:
        return data
    f = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(data, axes=axis), axis=axis), axes=axis)
    f = np.moveaxis(f, axis, 0)
    if new_box < box:
        start = box // 2 - new_box // 2
        kept = f[start:start + new_box + 1]
        out = np.concatenate([kept[:1] + kept[-1:], kept[1:new_box]], axis=0)
    else:
        start = new_box // 2 - box // 2
        out = np.zeros((new_box, *f.shape[1:]), dtype=f.dtype)
        out[start:start + box] = f
        out[start] = 0.5 * f[0]
        out[start + box] = 0.5 * f[0]
    out = np.moveaxis(out, 0, axis)
    real = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(out, axes=axis), axis=axis), axes=axis).real
    return (real * (new_box / box)).astype(data.dtype, copy=False)


def resample_volume(volume: np.ndarray, box_size: int) -> np.ndarray:
    """Fourier-crop (or pad) a cubic map to ``box_size``³, keeping its field of view.

    Parameters
    ----------
    volume : ndarray, shape (D, D, D)
        Real map indexed [z, y, x], D even.
    box_size
        New even box.

    Returns
    -------
    ndarray, shape (box_size, box_size, box_size), float32
        A map band-limited to the new Nyquist frequency becomes exactly its samples on the coarser grid (the
        centre voxel D/2 stays the origin); the voxel size grows by ``D / box_size``.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or len(set(volume.shape)) != 1 or volume.shape[0] % 2:
        raise ValueError(f"resample_volume needs a cubic map with an even box, got shape {volume.shape}")
    out = volume
    for axis in range(3):
        out = _resample_axis(out, axis, int(box_size))
    return np.ascontiguousarray(out, dtype=np.float32)


def resample_map_file(in_path: str | os.PathLike, out_path: str | os.PathLike, box_size: int, *,
                      upsample: bool = False) -> tuple[int, float | None, float]:
    """Read the map ``in_path``, resample it to ``box_size``³ and write it to ``out_path`` (atomic).

    Returns
    -------
    old_box, old_voxel_size_angstrom, new_voxel_size_angstrom
        The voxel size of the output is ``old × old_box / box_size`` (1 Å assumed when the header has none).
    """
    volume, header = read_mrc(in_path)
    old_box = volume.shape[0]
    if len(set(volume.shape)) != 1:
        raise InputError(f"the map is not a cube ({volume.shape})", path=in_path, fix="give a cubic map")
    check_new_box(old_box, box_size, upsample=upsample, volume=True, path=in_path)
    old_voxel = header.voxel_size_angstrom
    new_voxel = (old_voxel or 1.0) * old_box / box_size
    write_mrc(out_path, resample_volume(volume, box_size), voxel_size_angstrom=new_voxel)
    return old_box, old_voxel, new_voxel


def resample_stack(particles: ParticleSet, box_size: int, out_path: str | os.PathLike,
                   chunk_size: int = 1000) -> Path:
    """Write the particles Fourier-cropped (or padded) to ``box_size`` into the stack ``out_path``.

    Parameters
    ----------
    particles
        The particles to resample, in their order.
    box_size
        New box (even, pixels). Smaller than the input crops (downsamples), larger pads.
    out_path
        Output ``.mrcs`` (written atomically).
    chunk_size
        Images held in memory at a time.

    The caller decides whether upsampling is allowed (``check_new_box(..., upsample=...)``); this function
    resamples in either direction.

    Returns
    -------
    Path
        The stack written; its header's pixel size is ``old × old_box / box_size``.
    """
    old_box = particles.box_size
    check_new_box(old_box, box_size, upsample=True, chunk_size=min(chunk_size, max(len(particles), 1)))
    resample = fourier_crop if box_size <= old_box else fourier_pad
    pixel = particles.pixel_size_angstrom or 1.0
    # the Fourier transforms run on sub-batches of at most ~FFT_BATCH_BYTES of input, so the transform's
    # complex temporaries do not scale with --chunk (which sets the size of the sequential reads)
    batch = max(1, FFT_BATCH_BYTES // (4 * max(old_box, box_size) ** 2))
    with MrcStackWriter(out_path, len(particles), box_size, pixel * old_box / box_size) as writer:
        bar = progress(total=len(particles), desc=f"resample {old_box}→{box_size} px", unit="img")
        for positions, images in particles.iter_chunks(chunk_size):
            for start in range(0, len(positions), batch):
                writer.write(int(positions[start]), resample(images[start:start + batch], box_size))
            del images
            particles.images.close()  # unmap the input: its pages would otherwise add up in the resident set
            bar.update(len(positions))
        bar.close()
    return Path(out_path)


def write_resampled_star(star_in: str | os.PathLike, star_out: str | os.PathLike, stack: str | os.PathLike,
                         indices: np.ndarray, old_box: int, box_size: int) -> Path:
    """Write a copy of ``star_in`` (rows ``indices``) whose images are the resampled ``stack``.

    Image names become ``k@stack`` (1-based, relative to the star's folder); the pixel size (optics
    ``rlnImagePixelSize`` scaled from the box the group describes, ``rlnImageSize``; RELION 3.0: magnification)
    follow the new box; origins in pixels (RELION 3.0) are rescaled, origins in Å (3.1+) are unchanged.
    """
    star = read_star(star_in)
    table = star.particles.iloc[np.asarray(indices)].reset_index(drop=True).copy()
    rel = os.path.relpath(Path(stack).resolve(), Path(star_out).resolve().parent)
    table["rlnImageName"] = [f"{i + 1:06d}@{rel}" for i in range(len(table))]
    optics = None
    if star.optics is not None:
        optics = star.optics.copy()
        if "rlnOpticsGroup" not in table:
            if len(optics) != 1 or "rlnOpticsGroup" not in optics:
                raise InputError("particles have no rlnOpticsGroup column but there are several optics groups",
                                 path=star_in, fix="add rlnOpticsGroup to the particle table")
            table["rlnOpticsGroup"] = optics["rlnOpticsGroup"].iloc[0]
        # the box each optics group describes (rlnImageSize), which may differ from the stack's (old_box)
        described = (optics["rlnImageSize"].astype(float) if "rlnImageSize" in optics
                     else pd.Series(float(old_box), index=optics.index))
        if "rlnImagePixelSize" in optics:
            optics["rlnImagePixelSize"] = optics["rlnImagePixelSize"].astype(float) * described / box_size
        optics["rlnImageSize"] = box_size
    else:
        factor = box_size / old_box
        for col in ("rlnOriginX", "rlnOriginY"):  # RELION 3.0: origins in pixels
            if col in table:
                table[col] = table[col].astype(float) * factor
        if "rlnMagnification" in table:
            table["rlnMagnification"] = table["rlnMagnification"].astype(float) * factor
        if "rlnImagePixelSize" in table:
            table["rlnImagePixelSize"] = table["rlnImagePixelSize"].astype(float) / factor
    write_star(star_out, table, optics)
    return Path(star_out)


def check_output_name(out: str | os.PathLike, suffixes: set[str], example: str) -> Path:
    """``out`` as a Path, refused when it is a folder or lacks one of ``suffixes`` (``example`` shows a good name)."""
    out_path = Path(out)
    if out_path.is_dir() or str(out).endswith(("/", "\\")):
        raise InputError("downsample writes one file: -o names the file, not a folder", path=out_path,
                         fix=f"give e.g. -o {out_path / example}")
    if out_path.suffix.lower() not in suffixes:
        raise InputError(f"output must be {' or '.join(sorted(suffixes))}, got '{out_path.suffix}'", path=out_path,
                         fix=f"name it e.g. {example}")
    return out_path


def is_map_input(path: str | os.PathLike, is_vol: bool | None) -> bool:
    """Whether ``path`` is downsampled as a map: ``is_vol`` when given (or when ``path`` is not an MRC file),
    else decided from the file's name and header (:func:`cryoscape.io.mrc_kind.is_volume`)."""
    from cryoscape.io.mrc_kind import is_volume

    p = Path(path)
    if p.suffix.lower() not in {".mrc", ".map", ".mrcs"} or not p.is_file():
        return bool(is_vol)
    return bool(is_vol) if is_vol is not None else is_volume(p)


def resample_particles(particles: ParticleSet, source: str | os.PathLike, box_size: int, out: str | os.PathLike,
                       star_out: str | os.PathLike | None, chunk_size: int = 1000) -> list[Path]:
    """Write ``particles`` resampled to ``box_size`` into the stack ``out`` and, when ``star_out`` is given (the
    source is a .star), a star of the same rows pointing to it; no stack is left without its star on failure.
    Returns the paths written."""
    out = Path(out)
    existed = out.exists()
    resample_stack(particles, box_size, out, chunk_size=chunk_size)
    try:
        if star_out is not None:
            write_resampled_star(source, star_out, out, particles.indices, particles.box_size, box_size)
    except BaseException:
        if not existed:
            out.unlink(missing_ok=True)  # no stack without its star
        raise
    return [out] if star_out is None else [out, Path(star_out)]
