"""The 2-D Fourier lattice of a box: frequencies, central-slice coordinates, masks and the Hermitian half.

Numpy only. Conventions (the centred FFT of :mod:`cryoscape.geometry.fourier`): for an even box ``D``,
array index ``i`` along an axis holds the frequency ``(i - D//2) / D`` cycles per pixel (``i - D//2`` cycles
per box), so DC is at index ``D//2`` and index 0 holds ``-1/2`` (Nyquist), whose mirror ``+1/2`` is not on the
lattice. Images are indexed ``[y, x]`` (row = y); a flat index is ``y * D + x`` (row-major).
"""

from __future__ import annotations

import numpy as np

__all__ = ["circular_mask", "frequencies_2d", "hermitian_half", "radius_px_grid", "slice_coords"]


def _check_box(box: int) -> int:
    box = int(box)
    if box < 2 or box % 2:
        raise ValueError(f"box must be an even integer >= 2, got {box}")
    return box


def _frequencies_1d(box: int) -> np.ndarray:
    """``(D,)`` float64 centred frequencies in cycles per pixel."""
    return (np.arange(box) - box // 2) / box


def frequencies_2d(box: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Centred 2-D frequency grid.

    Parameters
    ----------
    box
        Even box size ``D`` in pixels.
    dtype
        Floating dtype of the result.

    Returns
    -------
    numpy.ndarray
        ``(D, D, 2)``: element ``[y, x]`` is ``(kx, ky) = ((x - D//2)/D, (y - D//2)/D)`` in cycles per pixel.
        Divide by the pixel size in Å for spatial frequencies in 1/Å.
    """
    box = _check_box(box)
    f = _frequencies_1d(box)
    ky, kx = np.meshgrid(f, f, indexing="ij")
    return np.stack([kx, ky], axis=-1).astype(dtype, copy=False)


def slice_coords(box: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """Coordinates of the central slice (z = 0) in 3-D, one row per lattice point.

    Parameters
    ----------
    box
        Even box size ``D`` in pixels.
    dtype
        Floating dtype of the result.

    Returns
    -------
    numpy.ndarray
        ``(D*D, 3)`` rows ``(kx, ky, 0)`` in cycles per pixel, flat row-major (row ``y * D + x``). The rotated
        slice of pose ``R`` is ``slice_coords(D) @ R``.
    """
    freqs = frequencies_2d(box, dtype=dtype).reshape(-1, 2)
    return np.concatenate([freqs, np.zeros((freqs.shape[0], 1), dtype=freqs.dtype)], axis=1)


def radius_px_grid(box: int) -> np.ndarray:
    """``(D, D)`` float64 distance ``|k|·D`` of each lattice point from DC, in pixels (cycles per box)."""
    box = _check_box(box)
    idx = np.arange(box) - box // 2
    return np.hypot(idx[None, :], idx[:, None]).astype(np.float64)


def circular_mask(box: int, radius_px: float | None = None) -> np.ndarray:
    """Disc of the centred lattice.

    Parameters
    ----------
    box
        Even box size ``D`` in pixels.
    radius_px
        Radius in Fourier pixels (cycles per box); ``None`` means ``D // 2`` (Nyquist).

    Returns
    -------
    numpy.ndarray
        ``(D, D)`` bool, True where ``|k|·D <= radius_px``.
    """
    box = _check_box(box)
    radius = box // 2 if radius_px is None else float(radius_px)
    return radius_px_grid(box) <= radius


def hermitian_half(box: int, radius_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One half of the disc of the lattice, and where each point's mirror ``-k`` lies.

    The Fourier (or Hartley) transform of a real image is fixed by half of its coefficients:
    ``F(-k) = conj(F(k))`` (Hartley: ``H(-k)`` from ``H(k)`` through ``F``). The disc is that of
    :func:`circular_mask` without the points whose ``-k`` is off the lattice (a frequency of ``-D/2`` on
    either axis), so that it is symmetric under ``k -> -k``.

    Parameters
    ----------
    box
        Even box size ``D`` in pixels.
    radius_px
        Disc radius in Fourier pixels; ``None`` means ``D // 2``.

    Returns
    -------
    idx_half : numpy.ndarray
        ``(M,)`` int64 ascending flat indices (``y * D + x``) of the disc points with ``ky < 0``, or
        ``ky == 0`` and ``kx <= 0`` (DC included, last).
    idx_mirror : numpy.ndarray
        ``(M,)`` int64 flat index of ``-k`` for each point of ``idx_half`` (DC maps to itself). The union of
        the two covers the disc, every point once except DC, which is in both.
    """
    box = _check_box(box)
    disc = circular_mask(box, radius_px)
    disc[0, :] = False
    disc[:, 0] = False
    centre = box // 2
    flat = np.flatnonzero(disc.ravel())
    idx_half = flat[flat <= centre * box + centre].astype(np.int64)
    y, x = np.divmod(idx_half, box)
    idx_mirror = ((2 * centre - y) * box + (2 * centre - x)).astype(np.int64)
    return idx_half, idx_mirror
