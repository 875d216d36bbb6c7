"""The reconstruction objective: image-formation model (slice, shift, CTF) and its loss, for one batch.

For a batch of normalised centred Hartley images ``Y`` (B, D, D) with rotations ``R``, shifts ``s`` (px) and
CTF (``data.ctf_batch.CTFBatch``):

1. the data are gathered on the Hermitian half of the loss disc as pairs ``(Y(k), Y(-k))``
   (``geometry.lattice.hermitian_half``; ``k`` in cycles/pixel), and translated by ``+s`` in the pair
   representation (``training.losses.translate_pairs``) so that the particle is centred;
2. heterogeneous models encode the centred data (see :func:`encoder_input`) to ``(mu, logvar)`` and draw
   ``z = mu + sigma * eps`` with a seeded ``torch.Generator``;
3. the decoder evaluates the pairs ``(V(k R), V(-k R))`` at the rotated points ``k @ R`` (B, P, 3);
4. the prediction is multiplied by the CTF at the 2-D points (``geometry.ctf.ctf_2d`` at ``k / pixel size``);
5. loss = MSE over the lattice points of the disc (each once, DC included once) + beta * KL / n_disc, where
   ``n_disc`` is the number of lattice points of the disc (cryoDRGN's scaling: the KL of one image is weighed
   against the *mean* per-pixel error, so beta = 1/zdim behaves as in cryoDRGN).

Encoder input: the centred data pairs on the disc, multiplied by the sign of the CTF (phase flipping, as
cryoDRGN does for its encoder), so that images of one conformation at different defocus look alike to the
encoder; the flip needs no knowledge of the CTF amplitude and keeps the noise white. ``encoder_input = "real"``
models instead see the centred real-space image (the inverse Hartley transform of the centred data, restricted
to the disc in Fourier space).

Mixed precision: the encoder and decoder run under ``torch.autocast`` (bf16 on CPU, bf16/fp16 on CUDA) when
``amp`` is on; their outputs are cast to fp32, and the CTF, the translation and the loss are computed in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cryoscape.data.ctf_batch import CTFBatch
from cryoscape.models.precision import autocast_context
from cryoscape.training.losses import gaussian_kl, pair_mse, reparameterize, translate_pairs


@dataclass(frozen=True)
class LossParts:
    """Terms of the loss of one batch.

    Attributes
    ----------
    loss : torch.Tensor, scalar
        ``mse + beta * kl / n_disc`` (what is minimised).
    mse : torch.Tensor, scalar or (B,)
        Mean squared error over the lattice points of the disc (each point once).
    kl : torch.Tensor, scalar or (B,)
        KL divergence (0 for a homogeneous model).
    mu, logvar : torch.Tensor (B, zdim) or None
        Posterior parameters.
    """

    loss: torch.Tensor
    mse: torch.Tensor
    kl: torch.Tensor
    mu: torch.Tensor | None
    logvar: torch.Tensor | None


class ReconstructionObjective(nn.Module):
    """The training objective of a model: image formation from the networks (slice at ``k @ R``, CTF, shift)
    on the lattice of the loss disc, compared with the data; ``forward`` returns the batch's :class:`LossParts`.

    It holds the networks (``.model``, from ``cryoscape.models.build_model``) so that DistributedDataParallel
    has a single ``forward`` to hook; the networks themselves are ``.model.encoder`` / ``.model.decoder``.

    Parameters
    ----------
    model : nn.Module
        From ``cryoscape.models.build_model`` (``encoder`` and ``decoder`` attributes).
    box_size : int
        D.
    loss_radius_px : float
        Radius of the loss disc (lattice pixels).
    """

    def __init__(self, model: nn.Module, box_size: int, loss_radius_px: float):
        super().__init__()
        from cryoscape.geometry.lattice import frequencies_2d, hermitian_half

        self.model = model
        self.box_size = int(box_size)
        idx_half, idx_mirror = hermitian_half(box_size, loss_radius_px)
        freqs = np.asarray(frequencies_2d(box_size), dtype=np.float64).reshape(-1, 2)
        self.register_buffer(
            "idx_half", torch.as_tensor(np.asarray(idx_half), dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "idx_mirror", torch.as_tensor(np.asarray(idx_mirror), dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "points_2d", torch.as_tensor(freqs[np.asarray(idx_half)], dtype=torch.float32), persistent=False
        )
        # lattice points of the full disc: each half point and its mirror, the self-mirrored DC once
        self_mirrored = np.asarray(idx_half) == np.asarray(idx_mirror)
        self.register_buffer("self_mirrored", torch.as_tensor(self_mirrored), persistent=False)
        self.n_disc = 2 * len(idx_half) - int(self_mirrored.sum())
        self.encoder_mode = None
        self.enc_same_as_loss = False
        if self.zdim > 0:
            cfg = model.config
            self.encoder_mode = cfg.encoder_input
            # the encoder's values are rebuilt from translated pairs on a symmetric disc: the encoder's own
            # (Hartley input) or every point whose mirror is on the lattice (real-space input)
            enc_radius = (
                cfg.resolved_enc_mask_radius_px(box_size) if self.encoder_mode == "hartley" else box_size
            )
            e_half, e_mirror = hermitian_half(box_size, enc_radius)
            self.enc_same_as_loss = bool(np.array_equal(e_half, idx_half))
            self.register_buffer("enc_half", torch.as_tensor(e_half, dtype=torch.long), persistent=False)
            self.register_buffer("enc_mirror", torch.as_tensor(e_mirror, dtype=torch.long), persistent=False)
            self.register_buffer(
                "enc_points_2d", torch.as_tensor(freqs[e_half], dtype=torch.float32), persistent=False
            )

    @property
    def zdim(self) -> int:
        return int(getattr(self.model, "zdim", 0))

    def data_pairs(
        self, images: torch.Tensor, shifts_px: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centred data pairs ``(Y(k), Y(-k))`` (B, P) from Hartley images (B, D, D)."""
        flat = images.reshape(images.shape[0], -1)
        y_pos = flat[:, self.idx_half]
        y_neg = flat[:, self.idx_mirror]
        if shifts_px is not None:
            y_pos, y_neg = translate_pairs(y_pos, y_neg, self.points_2d, shifts_px)
        return y_pos, y_neg

    def ctf_at_points(self, ctf: CTFBatch, points_2d: torch.Tensor | None = None) -> torch.Tensor:
        """CTF (B, P) at 2-D points (P, 2) in cycles/pixel (default: the loss half-disc).

        The frequencies in 1/Å are ``k / pixel_size_angstrom`` of each particle.
        """
        from cryoscape.geometry.ctf import ctf_2d

        pts = self.points_2d if points_2d is None else points_2d
        c = ctf.to(dtype=torch.float32)
        freqs = pts.unsqueeze(0) / c.pixel_size_angstrom[:, None, None]
        return ctf_2d(freqs, **c.ctf_2d_parameters())

    def encoder_input(
        self,
        images: torch.Tensor,
        shifts_px: torch.Tensor | None,
        ctf: CTFBatch | None,
        loss_pairs: tuple[torch.Tensor, torch.Tensor],
        loss_ctf: torch.Tensor | None,
    ) -> torch.Tensor:
        """What the encoder sees, (B, P_enc): see the module docstring.

        The centred Hartley image is rebuilt from translated pairs on a symmetric disc (zero elsewhere),
        phase-flipped by the CTF sign (Hartley input), or inverse-transformed (real input), then restricted to
        the encoder's pixels (``model.enc_mask_indices``).
        """
        if self.enc_same_as_loss:
            e_pos, e_neg = loss_pairs
            ctf_vals = loss_ctf
        else:
            flat = images.reshape(images.shape[0], -1)
            e_pos, e_neg = flat[:, self.enc_half], flat[:, self.enc_mirror]
            if shifts_px is not None:
                e_pos, e_neg = translate_pairs(e_pos, e_neg, self.enc_points_2d, shifts_px)
            ctf_vals = None
            if ctf is not None and self.encoder_mode == "hartley":
                ctf_vals = self.ctf_at_points(ctf, self.enc_points_2d)
        if ctf_vals is not None and self.encoder_mode == "hartley":
            sign = torch.sign(ctf_vals)
            e_pos, e_neg = e_pos * sign, e_neg * sign
        full = torch.zeros((images.shape[0], self.box_size**2), dtype=e_pos.dtype, device=e_pos.device)
        full[:, self.enc_half] = e_pos
        full[:, self.enc_mirror] = e_neg
        if self.encoder_mode == "real":
            from cryoscape.geometry.fourier import iht2_center

            full = iht2_center(full.reshape(-1, self.box_size, self.box_size)).reshape(full.shape)
        return full[:, self.model.enc_mask_indices]

    def forward(
        self,
        images: torch.Tensor,
        rotations: torch.Tensor,
        shifts_px: torch.Tensor | None,
        ctf: CTFBatch | None,
        beta: float,
        generator: torch.Generator | None = None,
        sample: bool = True,
        amp: bool = False,
        reduce: bool = True,
        decode: bool = True,
    ) -> LossParts:
        """Loss of a batch.

        Parameters
        ----------
        images : (B, D, D) normalised centred Hartley images
        rotations : (B, 3, 3)
        shifts_px : (B, 2) or None
        ctf : CTFBatch (each field (B,)) or None
        beta : float
            KL weight.
        generator : torch.Generator
            Source of the reparameterisation noise.
        sample : bool
            Draw z from q(z|x) (training) or use its mean (evaluation).
        amp : bool
            Autocast the networks.
        reduce : bool
            Batch means (training) or per-image values (evaluation).
        decode : bool
            Run the decoder; False only encodes (``mse`` and ``loss`` are then NaN).
        """
        y_pos, y_neg = self.data_pairs(images.to(torch.float32), shifts_px)
        ctf_vals = None if ctf is None else self.ctf_at_points(ctf)
        mu = logvar = z = None
        autocast = autocast_context(images.device, amp)
        if self.zdim > 0:
            enc_in = self.encoder_input(images.to(torch.float32), shifts_px, ctf, (y_pos, y_neg), ctf_vals)
            with autocast:
                mu, logvar = self.model.encoder(enc_in)
            mu, logvar = mu.to(torch.float32), logvar.to(torch.float32)
            z = reparameterize(mu, logvar, generator) if sample else mu
        if not decode:
            nan = torch.full((images.shape[0],) if not reduce else (), float("nan"), device=images.device)
            return LossParts(loss=nan, mse=nan, kl=nan, mu=mu, logvar=logvar)
        points = torch.matmul(self.points_2d, rotations.to(torch.float32)[:, :2, :])  # (B, P, 3)
        with autocast:
            pairs = self.model.decoder(points, z)  # (B, P, 2): H(kR), H(-kR)
        pairs = pairs.to(torch.float32)
        pred_pos, pred_neg = pairs[..., 0], pairs[..., 1]
        if ctf_vals is not None:
            pred_pos, pred_neg = pred_pos * ctf_vals, pred_neg * ctf_vals
        mse = pair_mse(pred_pos, pred_neg, y_pos, y_neg, self_mirrored=self.self_mirrored, reduce=reduce)
        if mu is not None:
            kl = gaussian_kl(mu, logvar, reduce=reduce)
        else:
            kl = torch.zeros_like(mse)
        loss = mse + (beta / self.n_disc) * kl
        return LossParts(loss=loss, mse=mse, kl=kl, mu=mu, logvar=logvar)
