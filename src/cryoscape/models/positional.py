"""Positional encodings of 3-D Fourier coordinates for the coordinate-MLP decoder.

Coordinates ``k`` are in cycles per pixel, ``k ∈ [−0.5, 0.5]³`` (the ``geometry.lattice`` convention). Every
encoding except ``"none"`` is ``[sin(k @ F), cos(k @ F)]`` for a fixed frequency matrix ``F`` of shape (3, M)
in radians per (cycle/pixel), stored as a buffer (so it is part of the state dict) and applied with one matrix
product in float32 (phases reach ~D·π/2 rad, too large for bf16/fp16).

- ``geom_ft`` (the paper's geometric encoding): for each axis j and i = 0..n−1 the frequency
  ``D·π·(2/D)^(i/(n−1))`` along axis j — wavelengths (in units of the coordinate) from 2/D (Nyquist: one
  period per two frequency pixels) to 1.
- ``geom_lowf``: the same frequencies divided by 2π (every wavelength 2π times longer; the highest frequencies
  are dropped): ``(D/2)·(2/D)^(i/(n−1))``.
- ``gaussian``: 3n random frequency vectors ``(D/2)·ω``, ``ω ~ N(0, feat_sigma² I₃)`` (random Fourier
  features).
- ``none``: the raw coordinates (3 features).

Column order: geometric frequencies are axis-major (x: f₀..f_{n−1}, y: ..., z: ...); the features are all
sines then all cosines.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cryoscape.models.config import PE_TYPES


def geometric_frequencies(pe_type: str, box_size: int, pe_dim: int) -> torch.Tensor:
    """Frequencies (radians per cycle/pixel) of a geometric encoding.

    Parameters
    ----------
    pe_type : {"geom_ft", "geom_lowf"}
    box_size : int
        Box size D (pixels).
    pe_dim : int
        Number of frequencies n per axis.

    Returns
    -------
    torch.Tensor, shape (n,), float64
        ``D·π·(2/D)^(i/(n−1))`` for geom_ft, that divided by 2π for geom_lowf (i = 0..n−1; n = 1 gives the
        highest frequency only).
    """
    i = torch.arange(pe_dim, dtype=torch.float64)
    exponent = i / (pe_dim - 1) if pe_dim > 1 else torch.zeros_like(i)
    freqs = box_size * math.pi * (2.0 / box_size) ** exponent
    if pe_type == "geom_lowf":
        freqs = freqs / (2 * math.pi)
    elif pe_type != "geom_ft":
        raise ValueError(f"not a geometric encoding: {pe_type!r}")
    return freqs


def frequency_matrix(pe_type: str, box_size: int, pe_dim: int, feat_sigma: float = 0.5,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The matrix F (3, M) of an encoding ``[sin(k @ F), cos(k @ F)]``, float32, radians per cycle/pixel.

    Geometric types give M = 3·pe_dim, block-diagonal per axis (axis-major columns); ``gaussian`` gives
    M = 3·pe_dim random columns ``(D/2)·ω``, ω ~ N(0, feat_sigma²), drawn from ``generator`` (or torch's
    global RNG).
    """
    if pe_type == "gaussian":
        omega = torch.randn((3 * pe_dim, 3), generator=generator, dtype=torch.float32) * feat_sigma
        return (omega * (box_size // 2)).T.contiguous()
    freqs = geometric_frequencies(pe_type, box_size, pe_dim)
    mat = torch.zeros((3, 3 * pe_dim), dtype=torch.float64)
    for axis in range(3):
        mat[axis, axis * pe_dim:(axis + 1) * pe_dim] = freqs
    return mat.to(torch.float32)


class PositionalEncoding(nn.Module):
    """Map coordinates (..., 3) in cycles/pixel to features (..., out_dim).

    Parameters
    ----------
    pe_type : str
        One of :data:`cryoscape.models.config.PE_TYPES`.
    box_size : int
        Box size D (pixels); sets the frequency scale.
    pe_dim : int or None
        Frequencies per axis (a third of the number of random frequencies); None = D // 2.
    feat_sigma : float
        Standard deviation of the gaussian frequencies (see module docstring).
    generator : torch.Generator, optional
        Source of the random frequencies (gaussian only).

    Attributes
    ----------
    freqs : torch.Tensor buffer, shape (3, M), float32
        The frequency matrix (empty (3, 0) for ``none``).
    out_dim : int
        2·M, or 3 for ``none``.
    """

    def __init__(self, pe_type: str, box_size: int, pe_dim: int | None = None, feat_sigma: float = 0.5,
                 generator: torch.Generator | None = None):
        super().__init__()
        if pe_type not in PE_TYPES:
            raise ValueError(f"unknown positional encoding {pe_type!r}; use one of {PE_TYPES}")
        self.pe_type = pe_type
        self.box_size = int(box_size)
        self.pe_dim = int(pe_dim) if pe_dim is not None else self.box_size // 2
        if pe_type == "none":
            freqs = torch.zeros((3, 0), dtype=torch.float32)
        else:
            freqs = frequency_matrix(pe_type, self.box_size, self.pe_dim, feat_sigma, generator)
        self.register_buffer("freqs", freqs)

    @property
    def out_dim(self) -> int:
        """Number of output features."""
        return 3 if self.pe_type == "none" else 2 * self.freqs.shape[1]

    def phase(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords @ freqs`` (..., M) float32, radians (computed outside autocast): the argument of the sines
        and cosines (``models.fused`` computes it block by block from ``coords`` and :attr:`freqs`)."""
        with torch.autocast(device_type=coords.device.type, enabled=False):
            return coords.float() @ self.freqs

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode ``coords`` (..., 3) (cycles/pixel) → (..., out_dim) float32 (computed outside autocast)."""
        with torch.autocast(device_type=coords.device.type, enabled=False):
            coords = coords.float()
            if self.pe_type == "none":
                return coords
            phase = self.phase(coords)
            return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)
