"""Fourier shell correlation (FSC) between two maps, resolution at a threshold, area under the curve.

Shells are spherical shells of the 3-D discrete Fourier transform one Fourier voxel thick: the voxel with
integer frequency ``(kz, ky, kx)`` (cycles per box) belongs to shell ``round(|k|)``. Shell ``i`` has
spatial frequency ``i / (D * voxel_size)`` in 1/Å; shells run from 0 (DC) to ``D // 2`` (Nyquist).

``FSC_i = Re Σ F1 F2* / sqrt(Σ |F1|² Σ |F2|²)`` over the voxels of shell ``i``. For two independent
white-noise maps, each shell value is approximately normal with mean 0 and standard deviation ``1 /
sqrt(n_i)``, ``n_i`` being the number of voxels in the shell (the ``n_i`` Fourier voxels hold ``n_i / 2``
independent complex values, i.e. ``n_i`` independent real numbers, because the maps are real).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoscape.errors import InputError


@dataclass(frozen=True)
class FSCCurve:
    """An FSC curve over Fourier shells.

    Attributes
    ----------
    frequency_per_angstrom : ndarray, shape (S,)
        Spatial frequency of each shell (1/Å), ``S = D // 2 + 1`` shells from DC to Nyquist.
    fsc : ndarray, shape (S,)
        Correlation in each shell (the DC shell is included for completeness but never used for
        resolutions).
    n_voxels : ndarray, shape (S,), int64
        Number of Fourier voxels in each shell (of the full, not Hermitian-half, transform).
    voxel_size_angstrom : float
        Voxel size of the maps (Å).
    """

    frequency_per_angstrom: np.ndarray
    fsc: np.ndarray
    n_voxels: np.ndarray
    voxel_size_angstrom: float

    @property
    def box_size(self) -> int:
        """Box size D of the maps (voxels)."""
        return 2 * (len(self.fsc) - 1)

    @property
    def nyquist_angstrom(self) -> float:
        """The Nyquist resolution 2 × voxel size (Å)."""
        return 2.0 * self.voxel_size_angstrom

    def crossing_frequency(self, threshold: float) -> float | None:
        """Frequency (1/Å) where the curve first drops below ``threshold``, linearly interpolated.

        The search starts at shell 1 (DC is skipped). Returns None when the curve stays at or above the
        threshold up to Nyquist, and 0 when shell 1 is already below it.
        """
        values = self.fsc[1:]
        freqs = self.frequency_per_angstrom[1:]
        below = np.flatnonzero(values < threshold)
        if below.size == 0:
            return None
        j = int(below[0])
        if j == 0:
            return 0.0
        f0, f1 = freqs[j - 1], freqs[j]
        c0, c1 = values[j - 1], values[j]
        return float(f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0))

    def resolution_angstrom(self, threshold: float) -> float:
        """Resolution (Å) at the first crossing of ``threshold``.

        The Nyquist resolution when the curve never crosses, and ``inf`` when it is below the threshold
        already at the first shell (no resolution at all).
        """
        freq = self.crossing_frequency(threshold)
        if freq is None:
            return self.nyquist_angstrom
        if freq <= 0:
            return float("inf")
        return 1.0 / freq

    def area_under_curve(self) -> float:
        """Area under the FSC curve over normalised frequency ``f / f_Nyquist`` in [0, 1] (trapezoids).

        1 for identical maps, about 0 for unrelated ones. (CryoBench's "AUC-FSC", integrated over frequency
        in cycles per pixel from 0 to 0.5, is half this value.)
        """
        x = np.arange(len(self.fsc)) / (len(self.fsc) - 1)
        y = self.fsc
        return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns for a CSV: shell, frequency (1/Å), resolution (Å), fsc, n_voxels."""
        with np.errstate(divide="ignore"):
            resolution = np.where(self.frequency_per_angstrom > 0, 1.0 / self.frequency_per_angstrom,
            np.inf)
        return {
            "shell": np.arange(len(self.fsc)),
            "frequency_per_angstrom": self.frequency_per_angstrom,
            "resolution_angstrom": resolution,
            "fsc": self.fsc,
            "n_voxels": self.n_voxels,
        }


def shell_index_rfft(box_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shell index and multiplicity of every voxel of a real-input 3-D FFT (``scipy.fft.rfftn`` layout).

    Parameters
    ----------
    box_size
        Box D (even).

    Returns
    -------
    shells : ndarray, shape (D, D, D//2 + 1), int64
        ``round(|k|)`` with k the integer frequency (cycles per box).
    multiplicity : ndarray, shape (D, D, D//2 + 1), float64
        2 for the voxels that stand for themselves and their Hermitian mirror (0 < kx < D/2), 1 for the
        planes kx = 0 and kx = D/2; sums weighted by it equal sums over the full transform.
    """
    d = int(box_size)
    k = np.fft.fftfreq(d, 1.0 / d)
    kx = np.arange(d // 2 + 1, dtype=np.float64)
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    shells = np.rint(r).astype(np.int64)
    mult = np.full(d // 2 + 1, 2.0)
    mult[0] = 1.0
    mult[-1] = 1.0
    multiplicity = np.broadcast_to(mult[None, None, :], shells.shape)
    return shells, multiplicity


def _check_maps(map1: np.ndarray, map2: np.ndarray) -> int:
    if map1.shape != map2.shape:
        raise InputError(f"maps have different shapes {map1.shape} and {map2.shape}",
                         fix="resample one to the other's box: cryoscape downsample MAP -D N -o OUT.mrc")
    if map1.ndim != 3 or len(set(map1.shape)) != 1 or map1.shape[0] % 2:
        raise InputError(f"maps must be cubic with an even box, got shape {map1.shape}")
    return int(map1.shape[0])


def fsc_curve(map1: np.ndarray, map2: np.ndarray, voxel_size_angstrom: float,
              mask: np.ndarray | None = None) -> FSCCurve:
    """Fourier shell correlation of two maps.

    Parameters
    ----------
    map1, map2 : ndarray, shape (D, D, D)
        Real-space maps (any float dtype), same box and voxel size.
    voxel_size_angstrom
        Voxel size (Å), for the frequency axis.
    mask : ndarray, shape (D, D, D), optional
        Real-space mask (e.g. :func:`cryoscape.reconstruct.masks.soft_mask`) multiplied into both maps
        first.

    Returns
    -------
    FSCCurve
        Shells 0..D/2. A shell where one map has no power gets FSC 0.
    """
    map1 = np.asarray(map1, dtype=np.float64)
    map2 = np.asarray(map2, dtype=np.float64)
    box = _check_maps(map1, map2)
    if mask is not None:
        mask = np.asarray(mask, dtype=np.float64)
        if mask.shape != map1.shape:
            raise InputError(f"mask shape {mask.shape} differs from the maps' {map1.shape}",
                             fix="make the mask from a map of the same box")
        map1 = map1 * mask
        map2 = map2 * mask
    f1 = scipy.fft.rfftn(map1)
    f2 = scipy.fft.rfftn(map2)
    shells, mult = shell_index_rfft(box)
    n_shells = box // 2 + 1
    inside = shells < n_shells
    idx = shells[inside]
    w = mult[inside]
    a = f1[inside]
    b = f2[inside]
    cross = np.bincount(idx, weights=w * (a * np.conj(b)).real, minlength=n_shells)
    p1 = np.bincount(idx, weights=w * np.abs(a) ** 2, minlength=n_shells)
    p2 = np.bincount(idx, weights=w * np.abs(b) ** 2, minlength=n_shells)
    counts = np.bincount(idx, weights=w, minlength=n_shells).round().astype(np.int64)
    denom = np.sqrt(p1 * p2)
    fsc = np.divide(cross, denom, out=np.zeros(n_shells), where=denom > 0)
    freqs = np.arange(n_shells) / (box * float(voxel_size_angstrom))
    return FSCCurve(frequency_per_angstrom=freqs, fsc=fsc, n_voxels=counts,
                    voxel_size_angstrom=float(voxel_size_angstrom))


def write_fsc_csv(curve: FSCCurve, path) -> None:
    """Write the curve as CSV (columns of :meth:`FSCCurve.to_table`)."""
    import pandas as pd

    pd.DataFrame(curve.to_table()).to_csv(path, index=False, float_format="%.6g")
