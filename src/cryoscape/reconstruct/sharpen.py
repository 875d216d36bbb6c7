"""B-factor sharpening/blurring, Guinier estimate of the B-factor, and low-pass filtering of maps.

Convention (RELION's ``relion_postprocess``): applying a B-factor ``B`` (Å²) multiplies every Fourier
coefficient by ``exp(-B s² / 4)``, with ``s = |k|`` the spatial frequency in 1/Å. A positive B blurs (it is
the usual temperature-factor decay); a **negative B sharpens**. A map whose amplitudes decay as
``exp(-B_map s² / 4)`` has a Guinier plot ``ln|F|`` vs ``s²`` of slope ``-B_map / 4``; the sharpening
B-factor RELION reports and applies is ``4 × slope = -B_map``, which restores a flat amplitude fall-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from cryoscape.errors import InputError
from cryoscape.reconstruct.fsc import shell_index_rfft


def _frequency_squared_rfft(box_size: int, voxel_size_angstrom: float) -> np.ndarray:
    """``s²`` (1/Å²) on the ``rfftn`` grid of a (D, D, D) map."""
    d = int(box_size)
    k = np.fft.fftfreq(d, float(voxel_size_angstrom))
    kx = np.fft.rfftfreq(d, float(voxel_size_angstrom))
    return k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2


def _check_volume(volume: np.ndarray) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(f"expected a cubic 3-D map, got shape {volume.shape}")
    return volume


def _filter(volume: np.ndarray, gain: np.ndarray) -> np.ndarray:
    ft = scipy.fft.rfftn(np.asarray(volume, dtype=np.float64))
    return scipy.fft.irfftn(ft * gain, s=volume.shape).astype(np.float32)


def apply_bfactor(volume: np.ndarray, voxel_size_angstrom: float, bfactor_angstrom2: float) -> np.ndarray:
    """Multiply the map's Fourier transform by ``exp(-B s² / 4)`` (negative B sharpens).

    Parameters
    ----------
    volume : ndarray, shape (D, D, D)
    voxel_size_angstrom : float
    bfactor_angstrom2 : float
        B (Å²), RELION's sign convention (see module docstring).

    Returns
    -------
    ndarray, shape (D, D, D), float32
    """
    volume = _check_volume(volume)
    s2 = _frequency_squared_rfft(volume.shape[0], voxel_size_angstrom)
    return _filter(volume, np.exp(-float(bfactor_angstrom2) * s2 / 4.0))


def low_pass(volume: np.ndarray, voxel_size_angstrom: float, resolution_angstrom: float,
             edge_shells: float = 2.0) -> np.ndarray:
    """Low-pass filter at ``resolution_angstrom`` with a raised-cosine edge.

    The gain is 1 below ``1/resolution - w/2``, 0 above ``1/resolution + w/2`` and a half cosine in
    between, where ``w = edge_shells / (D × voxel size)`` (the edge is ``edge_shells`` Fourier shells wide;
    0 for a hard cut).

    Returns
    -------
    ndarray, shape (D, D, D), float32
    """
    volume = _check_volume(volume)
    if resolution_angstrom <= 0:
        raise InputError(f"low-pass resolution must be > 0 Å, got {resolution_angstrom}")
    s = np.sqrt(_frequency_squared_rfft(volume.shape[0], voxel_size_angstrom))
    cutoff = 1.0 / float(resolution_angstrom)
    width = float(edge_shells) / (volume.shape[0] * float(voxel_size_angstrom))
    if width > 0:
        t = np.clip((s - (cutoff - width / 2)) / width, 0.0, 1.0)
        gain = 0.5 * (1.0 + np.cos(np.pi * t))
    else:
        gain = (s <= cutoff).astype(np.float64)
    return _filter(volume, gain)


@dataclass(frozen=True)
class GuinierFit:
    """Straight-line fit of ``ln(mean |F|)`` against ``s²`` over a resolution range.

    Attributes
    ----------
    bfactor_angstrom2 : float
        The sharpening B-factor ``4 × slope`` (RELION's value to apply; negative for a map whose amplitudes
        decay).
    slope : float
        Slope of ln|F| vs s² (Å²).
    intercept : float
    s2_per_angstrom2 : ndarray, shape (S,)
        s² of the shells used.
    log_amplitude : ndarray, shape (S,)
        ln of the shell-averaged amplitude of those shells.
    """

    bfactor_angstrom2: float
    slope: float
    intercept: float
    s2_per_angstrom2: np.ndarray
    log_amplitude: np.ndarray


def guinier_fit(volume: np.ndarray, voxel_size_angstrom: float, low_resolution_angstrom: float = 10.0,
                high_resolution_angstrom: float | None = None) -> GuinierFit:
    """Estimate the B-factor from the Guinier plot of the map (as RELION's postprocess does).

    Parameters
    ----------
    volume : ndarray, shape (D, D, D)
    voxel_size_angstrom : float
    low_resolution_angstrom
        Lowest resolution (Å) of the fitted range (default 10 Å).
    high_resolution_angstrom
        Highest resolution (Å) of the fitted range; default Nyquist. Give the FSC resolution for a noisy
        map.

    Returns
    -------
    GuinierFit
    """
    volume = _check_volume(volume)
    box = volume.shape[0]
    apix = float(voxel_size_angstrom)
    high = 2.0 * apix if high_resolution_angstrom is None else float(high_resolution_angstrom)
    if high >= low_resolution_angstrom:
        raise InputError(f"Guinier fit range is empty: {low_resolution_angstrom} Å to {high} Å",
                         fix="choose a high resolution limit finer than the low one")
    ft = scipy.fft.rfftn(np.asarray(volume, dtype=np.float64))
    shells, mult = shell_index_rfft(box)
    n_shells = box // 2 + 1
    inside = shells < n_shells
    amp = np.bincount(shells[inside], weights=(mult * np.abs(ft))[inside], minlength=n_shells)
    count = np.bincount(shells[inside], weights=mult[inside], minlength=n_shells)
    freq = np.arange(n_shells) / (box * apix)
    use = (freq >= 1.0 / low_resolution_angstrom) & (freq <= 1.0 / high + 1e-12) & (amp > 0)
    if use.sum() < 3:
        raise InputError(f"fewer than 3 Fourier shells between {low_resolution_angstrom} Å and {high:.3g} Å "
                         f"(voxel size {apix} Å, box {box})",
                         fix="widen the Guinier fit range (--guinier-low/--guinier-high)")
    s2 = freq[use] ** 2
    log_amp = np.log(amp[use] / count[use])
    slope, intercept = np.polyfit(s2, log_amp, 1)
    return GuinierFit(bfactor_angstrom2=float(4.0 * slope), slope=float(slope), intercept=float(intercept),
                      s2_per_angstrom2=s2, log_amplitude=log_amp)
