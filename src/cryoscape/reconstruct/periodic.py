"""Periodic + smooth decomposition of images (Moisan, J. Math. Imaging Vis. 39, 2011).

The DFT treats a D-pixel image as one period of a periodic image. A particle cut out of a micrograph is not
periodic: the CTF fringes reach the box edges, and the jump between opposite edges puts a cross of spurious
energy along the kx = 0 and ky = 0 axes of the spectrum and smears every frequency with the box's sinc. An image
u is the sum of a periodic component p and a smooth component s: s is the solution of Δs = Δ_boundary u (the
discrete Laplacian restricted to the wrap-around neighbours across the edges), i.e. in the Fourier domain

    ŝ(q, r) = v̂(q, r) / (2 cos(2πq/M) + 2 cos(2πr/N) − 4),    ŝ(0, 0) = 0,

with v the boundary image (v = u(opposite edge) − u(edge) on the edge pixels, zero inside). p = u − s has no
jump across the edges and differs from u only by a smooth (low-frequency, mostly near the edges) field; no pixel
is discarded and there is no parameter. Back-projection uses p (``BackprojectConfig.image_edges``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["periodic_component", "smooth_component"]


def smooth_component(images: torch.Tensor) -> torch.Tensor:
    """The smooth component s of real images (..., M, N); ``images - s`` is the periodic component.

    Parameters
    ----------
    images : torch.Tensor, shape (..., M, N), real

    Returns
    -------
    torch.Tensor, shape (..., M, N), dtype of ``images``
        Zero mean; zero for images whose opposite edges are equal.
    """
    u = images
    m, n = u.shape[-2:]
    v = torch.zeros_like(u)
    row_jump = u[..., -1, :] - u[..., 0, :]
    v[..., 0, :] += row_jump
    v[..., -1, :] -= row_jump
    col_jump = u[..., :, -1] - u[..., :, 0]
    v[..., :, 0] += col_jump
    v[..., :, -1] -= col_jump
    q = torch.arange(m, dtype=torch.float64, device=u.device)[:, None]
    r = torch.arange(n, dtype=torch.float64, device=u.device)[None, :]
    den = 2 * torch.cos(2 * math.pi * q / m) + 2 * torch.cos(2 * math.pi * r / n) - 4
    den[0, 0] = 1.0
    s_hat = torch.fft.fft2(v.to(torch.float64)) / den
    s_hat[..., 0, 0] = 0
    return torch.fft.ifft2(s_hat).real.to(u.dtype)


def periodic_component(images: torch.Tensor) -> torch.Tensor:
    """The periodic component ``images - smooth_component(images)`` (same shape and dtype)."""
    return images - smooth_component(images)
