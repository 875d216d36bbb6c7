"""Projections of densities in Fourier space (torch, float64).

Two paths give the centred 2-D DFT of the projection (sum along z of the rotated density,
``image(x, y) = sum_z v(Rᵀ r)``, i.e. the Fourier point of lattice vector k is ``k @ R``):

* :func:`gaussian_projections_ft` — analytic for a sum of isotropic Gaussians (pseudo-atoms): the DFT of a
  Gaussian of peak ``a`` and width ``sigma`` (pixels) at ``p`` is
  ``a (2 pi sigma²)^{3/2} exp(-2 pi² sigma² |k|²) exp(-2 pi i k·p)`` (k in cycles per pixel).
  Separable in kx and ky, so a batch costs two matrix products. :func:`gaussian_volume_ft` evaluates the
  same function on the 3-D grid; the ground-truth volume is its inverse DFT, so an image's spectrum and the
  volume's spectrum agree wherever the slice meets grid points.
* :func:`volume_projections_ft` — Fourier slices of a map, 2x zero-padded, trilinear (``geometry.slicing``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cryoscape.geometry.fourier import fft3_center, ifft3_center, phase_shift_2d
from cryoscape.geometry.slicing import extract_slices


def frequencies_1d(box: int) -> torch.Tensor:
    """Centred-grid frequencies (cycles per pixel), shape (D,), float64: ``(i - D // 2) / D``."""
    return (torch.arange(box, dtype=torch.float64) - box // 2) / box


def _gaussian_factors(positions_px: torch.Tensor, sigma_px: float, box: int) -> torch.Tensor:
    """exp(-2π²σ²k²) exp(-2πi k p) for positions (..., M) → (..., M, D) complex128."""
    k = frequencies_1d(box)
    envelope = torch.exp(-2 * math.pi**2 * sigma_px**2 * k**2)
    phase = -2 * math.pi * positions_px[..., None] * k
    return torch.polar(envelope.expand_as(phase), phase)


def gaussian_amplitudes(peaks: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """DFT amplitude ``a (2π σ²)^{3/2}`` of Gaussians of peak height ``a`` (per voxel) and width σ (px)."""
    return peaks * (2 * math.pi * sigma_px**2) ** 1.5


def gaussian_projections_ft(positions_px: torch.Tensor, peaks: torch.Tensor, sigma_px: float,
                            rotations: torch.Tensor, box: int) -> torch.Tensor:
    """Centred 2-D DFTs of the projections of sums of Gaussians.

    Parameters
    ----------
    positions_px : torch.Tensor, shape (B, M, 3) or (M, 3)
        Gaussian centres (x, y, z) in pixels relative to the box centre (index ``box // 2``).
    peaks : torch.Tensor, shape (B, M) or (M,)
        Peak heights (density per voxel); 0 removes a Gaussian.
    sigma_px : float
        Width (pixels).
    rotations : torch.Tensor, shape (B, 3, 3)
        RELION rotation matrices; the projected position is the (x, y) part of ``R p``.
    box : int
        Image side D.

    Returns
    -------
    torch.Tensor, shape (B, D, D), complex128
        Centred DFT (row = ky, column = kx).
    """
    rot = rotations.to(torch.float64)
    n = rot.shape[0]
    pos = positions_px.to(torch.float64).expand(n, -1, -1) if positions_px.ndim == 2 else positions_px
    amp = gaussian_amplitudes(peaks.to(torch.float64), sigma_px).expand(n, -1)
    projected = torch.einsum("bij,bmj->bmi", rot, pos)
    ex = _gaussian_factors(projected[..., 0], sigma_px, box)  # (B, M, D) over kx
    ey = _gaussian_factors(projected[..., 1], sigma_px, box)  # (B, M, D) over ky
    return torch.matmul((ey * amp[..., None]).transpose(1, 2), ex)


def gaussian_volume_ft(positions_px: torch.Tensor, peaks: torch.Tensor, sigma_px: float,
                       box: int) -> torch.Tensor:
    """The centred 3-D DFT, on the box³ grid, of a sum of Gaussians (same function as the projections).

    Parameters
    ----------
    positions_px : torch.Tensor, shape (M, 3)
        Centres (x, y, z), pixels from the box centre.
    peaks : torch.Tensor, shape (M,)
        Peak heights.
    sigma_px : float
        Width (pixels).
    box : int
        Grid side D.

    Returns
    -------
    torch.Tensor, shape (D, D, D), complex128, indexed [kz, ky, kx]
    """
    pos = positions_px.to(torch.float64)
    amp = gaussian_amplitudes(peaks.to(torch.float64), sigma_px)
    ex = _gaussian_factors(pos[:, 0], sigma_px, box)
    ey = _gaussian_factors(pos[:, 1], sigma_px, box)
    ez = _gaussian_factors(pos[:, 2], sigma_px, box)
    yx = (ey * amp[:, None])[:, :, None] * ex[:, None, :]  # (M, D, D)
    return torch.matmul(ez.transpose(0, 1), yx.reshape(pos.shape[0], box * box)).reshape(box, box, box)


def gaussian_volume(positions_px: torch.Tensor, peaks: torch.Tensor, sigma_px: float, box: int) -> np.ndarray:
    """Real-space ground-truth volume (D, D, D) float32: the inverse DFT of :func:`gaussian_volume_ft`."""
    volume_ft = gaussian_volume_ft(positions_px, peaks, sigma_px, box)
    return ifft3_center(volume_ft).real.numpy().astype(np.float32)


def padded_volume_ft(volume: np.ndarray, padding: int = 2) -> torch.Tensor:
    """Centred 3-D DFT (complex64) of ``volume`` zero-padded to ``padding`` × its box, for Fourier slicing."""
    d = volume.shape[0]
    big = padding * d
    padded = torch.zeros((big, big, big), dtype=torch.float32)
    a = big // 2 - d // 2
    padded[a:a + d, a:a + d, a:a + d] = torch.as_tensor(np.asarray(volume, dtype=np.float32))
    return fft3_center(padded)


def volume_projections_ft(padded_ft: torch.Tensor, rotations: torch.Tensor, box: int) -> torch.Tensor:
    """Centred 2-D DFTs (B, D, D) complex128 of the projections of a map, from its padded DFT."""
    return extract_slices(padded_ft, rotations.to(torch.float32), slice_box=box).to(torch.complex128)


def translate_ft(spectra: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Move the image content of centred spectra (B, D, D) by ``shifts_px`` (B, 2) = (x, y) pixels."""
    return phase_shift_2d(spectra, shifts_px.to(torch.float64))


def fourier_crop_volume(volume: np.ndarray, box: int) -> np.ndarray:
    """Fourier-crop a cube (D, D, D) to (d, d, d), voxel values preserved (a constant stays that constant)."""
    d_full = volume.shape[0]
    if box == d_full:
        return np.asarray(volume, dtype=np.float32)
    ft = fft3_center(torch.as_tensor(np.asarray(volume, dtype=np.float64)))
    a = d_full // 2 - box // 2
    cropped = ft[a:a + box, a:a + box, a:a + box] * (box / d_full) ** 3
    return ifft3_center(cropped).real.numpy().astype(np.float32)
