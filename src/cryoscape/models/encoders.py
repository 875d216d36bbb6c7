"""Image encoder: residual MLP from masked image values to the latent mean and log-variance.

The encoder sees the values of an image on a centred disc, flattened in row-major order (row = y, column = x):
for ``encoder_input="hartley"`` the centred Hartley transform of the (normalised, CTF sign-flipped) image, on
the disc of frequency radius ``enc_mask_radius_px`` (|k|·D ≤ radius, the ``geometry.lattice.circular_mask``
convention, DC included); for ``encoder_input="real"`` the real-space pixels on the disc of the same radius
around pixel (D/2, D/2). Preparing these values (normalisation, phase flipping, windowing) is the data layer's
job; this module only fixes which pixels and in which order (:func:`encoder_mask_indices`).

Architecture (cryoDRGN's ``resid`` encoder): Linear(P_enc, enc_dim), act, ``enc_layers`` residual layers ``h ←
act(W h + b + h)``, Linear(enc_dim, 2·zdim); the first zdim outputs are the mean, the rest the log-variance.
"""

from __future__ import annotations

import torch
from torch import nn

from cryoscape.models.config import ModelConfig
from cryoscape.models.decoders import RADIUS_TOLERANCE_PX2, make_activation


def encoder_mask(box_size: int, config: ModelConfig) -> torch.Tensor:
    """Boolean (D, D) [y, x] disc of the encoder's input pixels: (i − D/2)² + (j − D/2)² ≤ radius²."""
    radius = config.resolved_enc_mask_radius_px(box_size)
    j = torch.arange(box_size, dtype=torch.float64) - box_size // 2
    r2 = j[:, None] ** 2 + j[None, :] ** 2
    return r2 <= radius**2 + RADIUS_TOLERANCE_PX2


def encoder_mask_indices(box_size: int, config: ModelConfig) -> torch.Tensor:
    """Flat row-major indices (P_enc,) int64 into a (D, D) image of the encoder's input values."""
    return torch.nonzero(encoder_mask(box_size, config).reshape(-1)).reshape(-1)


def encoder_input_size(box_size: int, config: ModelConfig) -> int:
    """Number P_enc of input values of the encoder for this box."""
    return int(encoder_mask(box_size, config).sum())


class Encoder(nn.Module):
    """Residual MLP (B, in_dim) → (mu, logvar), each (B, zdim).

    Parameters
    ----------
    in_dim : int
        Number of input values (:func:`encoder_input_size`).
    config : ModelConfig
        Uses enc_dim, enc_layers, zdim (> 0), activation.

    Attributes (state-dict names)
    -----------------------------
    input : Linear(in_dim, enc_dim); hidden : ModuleList of enc_layers Linear(enc_dim, enc_dim);
    output : Linear(enc_dim, 2·zdim).
    """

    def __init__(self, in_dim: int, config: ModelConfig):
        super().__init__()
        if config.zdim < 1:
            raise ValueError("an encoder needs zdim >= 1")
        self.in_dim = int(in_dim)
        self.zdim = config.zdim
        self.input = nn.Linear(self.in_dim, config.enc_dim)
        self.hidden = nn.ModuleList([nn.Linear(config.enc_dim, config.enc_dim)
                                     for _ in range(config.enc_layers)])
        self.output = nn.Linear(config.enc_dim, 2 * config.zdim)
        self.act = make_activation(config.activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``x`` (B, in_dim) → ``(mu, logvar)``, each (B, zdim) float32."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"encoder input must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        h = self.act(self.input(x))
        for layer in self.hidden:
            h = self.act(layer(h) + h)
        out = self.output(h).float()
        return out[:, :self.zdim], out[:, self.zdim:]
