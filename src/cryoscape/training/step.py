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

One optimisation step (:class:`TrainStep`): forward, backward (through a ``torch.amp.GradScaler`` in fp16), Adam
(fused on CUDA: :func:`make_optimizer`), and the epoch's loss sums accumulated *on the device*. Nothing in the step
reads a value back to the host, so on a GPU the host queues steps ahead of the device; the caller reads the sums
(:meth:`TrainStep.sync`) once per log interval, which is also when a non-finite loss is noticed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from cryoscape.data.ctf_batch import CTFBatch
from cryoscape.models.precision import AmpPolicy, autocast_context, make_grad_scaler
from cryoscape.training.losses import gaussian_kl, pair_mse, reparameterize, translate_pairs

if TYPE_CHECKING:
    from cryoscape.training.pose_refinement import PoseTable


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
    band_overflow : torch.Tensor or None
        Boolean scalar on the device when the decoder ran with a seam-band bound (``band_rows``): True when the
        bound was too small (``models.decoders.Decoder.band_overflow``).
    """

    loss: torch.Tensor
    mse: torch.Tensor
    kl: torch.Tensor
    mu: torch.Tensor | None
    logvar: torch.Tensor | None
    band_overflow: torch.Tensor | None = None


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
        self._points_2d_host = freqs[np.asarray(idx_half)].astype(np.float32).astype(np.float64)
        # lattice points of the full disc: each half point and its mirror, the self-mirrored DC once
        self_mirrored = np.asarray(idx_half) == np.asarray(idx_mirror)
        self.register_buffer("self_mirrored", torch.as_tensor(self_mirrored), persistent=False)
        self.n_disc = 2 * len(idx_half) - int(self_mirrored.sum())
        self._self_mirrored_np = self_mirrored
        # frequency marching (set_active_radius_px): lattice radius (px) of each half point (host array)
        self.half_radius_px = np.hypot(freqs[np.asarray(idx_half), 0], freqs[np.asarray(idx_half), 1]) * box_size
        self.active = None
        self.n_active_disc = self.n_disc
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

    def set_active_radius_px(self, radius_px: float | None) -> None:
        """Restrict the decoder and the loss to the lattice points of the disc of ``radius_px`` (frequency
        marching; the encoder still sees its whole disc); None or a radius ≥ the loss radius: the whole disc.

        The MSE is then the mean over the smaller disc and the KL is divided by its number of points.
        """
        self.active = None
        self.n_active_disc = self.n_disc
        if radius_px is None:
            return
        inside = self.half_radius_px <= float(radius_px) + 1e-6  # on the host: no device synchronisation
        if inside.all():
            return
        active = np.flatnonzero(inside)
        self.active = torch.as_tensor(active, dtype=torch.long, device=self.points_2d.device)
        n_self = int(self._self_mirrored_np[active].sum())
        self.n_active_disc = 2 * len(active) - n_self

    @property
    def zdim(self) -> int:
        return int(getattr(self.model, "zdim", 0))

    def seam_band_rows(self, rotations: np.ndarray) -> int | None:
        """The host-side bound on the decoder's seam-band points for a batch with these rotations (B, 3, 3)
        (``models.decoders.seam_band_rows`` over the loss half-disc), or None when the decoder has no band.

        Passed to :meth:`forward` as ``band_rows``, it lets the step run without reading anything back from the
        device. With frequency marching the decoder sees a subset of these points, so the bound still holds.
        """
        from cryoscape.models.decoders import seam_band_rows

        band = float(getattr(self.model.decoder, "seam_band_px", 0.0))
        if band <= 0 or getattr(self.model.decoder, "full_space", False):
            return None
        return seam_band_rows(self._points_2d_host, rotations, self.box_size, band)

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
        amp: bool | torch.dtype = False,
        reduce: bool = True,
        decode: bool = True,
        band_rows: int | None = None,
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
        amp : bool or torch.dtype
            Autocast the networks: True in the device's reduced dtype (``models.precision.reduced_dtype``), a
            dtype (``torch.bfloat16`` / ``torch.float16``) in that one; False or ``torch.float32``: fp32.
        reduce : bool
            Batch means (training) or per-image values (evaluation).
        decode : bool
            Run the decoder; False only encodes (``mse`` and ``loss`` are then NaN).
        band_rows : int, optional
            Host-known bound on the seam band's points (:meth:`seam_band_rows` of the batch's rotations): the
            forward then never waits for the device. None: the band is counted on the device.
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
        points_2d, self_mirrored, n_disc = self.points_2d, self.self_mirrored, self.n_disc
        if self.active is not None:  # frequency marching: the decoder and the loss on the inner disc only
            points_2d, self_mirrored, n_disc = points_2d[self.active], self_mirrored[self.active], self.n_active_disc
            y_pos, y_neg = y_pos[:, self.active], y_neg[:, self.active]
            ctf_vals = None if ctf_vals is None else ctf_vals[:, self.active]
        points = torch.matmul(points_2d, rotations.to(torch.float32)[:, :2, :])  # (B, P, 3)
        with autocast:
            extra = {} if band_rows is None else {"band_capacity": band_rows}
            pairs = self.model.decoder(points, z, **extra)  # (B, P, 2): H(kR), H(-kR)
        pairs = pairs.to(torch.float32)
        pred_pos, pred_neg = pairs[..., 0], pairs[..., 1]
        if ctf_vals is not None:
            pred_pos, pred_neg = pred_pos * ctf_vals, pred_neg * ctf_vals
        mse = pair_mse(pred_pos, pred_neg, y_pos, y_neg, self_mirrored=self_mirrored, reduce=reduce)
        if mu is not None:
            kl = gaussian_kl(mu, logvar, reduce=reduce)
        else:
            kl = torch.zeros_like(mse)
        loss = mse + (beta / n_disc) * kl
        return LossParts(loss=loss, mse=mse, kl=kl, mu=mu, logvar=logvar,
                         band_overflow=getattr(self.model.decoder, "band_overflow", None))


def make_optimizer(
    params, lr: float, weight_decay: float, device: torch.device | str, fused: bool | None = None
) -> torch.optim.Adam:
    """Adam over ``params``; fused (one kernel, step counters on the device) on CUDA.

    The fused Adam keeps its step counts on the device and takes the gradient scaler's scale and inf flag as
    tensors, so an optimizer step never waits for the GPU; the default (``foreach``) Adam reads its step counts
    on the host, which is free on CPU (where it stays the default, so CPU runs are unchanged).

    Parameters
    ----------
    params : iterable of parameters
    lr, weight_decay : float
    device : torch.device or str
        Where the parameters are.
    fused : bool, optional
        Force the choice (default: fused exactly on CUDA).
    """
    if fused is None:
        fused = torch.device(device).type == "cuda"
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=bool(fused) or None)


def restore_generator(generator: torch.Generator, state: torch.Tensor, fallback_seed: int) -> bool:
    """Load a saved generator state; a state from another device type seeds ``fallback_seed`` instead.

    A CPU generator's state (5056 bytes) does not fit a CUDA generator (16 bytes) and vice versa, so a run
    resumed on another device cannot continue the same noise stream; it continues with a fresh, seeded one.

    Returns
    -------
    bool
        True when the saved state was loaded, False when the generator was seeded with ``fallback_seed``.
    """
    try:
        generator.set_state(state)
        return True
    except RuntimeError:
        generator.manual_seed(int(fallback_seed))
        return False


@dataclass(frozen=True)
class StepTotals:
    """Sums over the steps since :meth:`TrainStep.reset` (read back by :meth:`TrainStep.sync`).

    Attributes
    ----------
    loss, mse, kl : float
        Sums of the batch means times the batch sizes.
    images : int
        Images seen.
    steps : int
        Steps taken.
    first_bad_step : int or None
        Index (0-based, counted from the reset) of the first step whose loss was not finite.
    first_bad_loss : float
        That step's loss (NaN when there is none).
    first_bad_positions : torch.Tensor or None
        That step's batch positions (when the step was taken since the previous :meth:`TrainStep.sync`).
    band_overflow : bool
        Whether a step's seam-band bound (``band_rows``) was exceeded: that step's decoder left band points
        unblended (an internal error; the caller stops).
    """

    loss: float
    mse: float
    kl: float
    images: int
    steps: int
    first_bad_step: int | None = None
    first_bad_loss: float = float("nan")
    first_bad_positions: torch.Tensor | None = None
    band_overflow: bool = False

    @property
    def finite(self) -> bool:
        return self.first_bad_step is None


class TrainStep:
    """One optimisation step of a :class:`ReconstructionObjective`, with no host synchronisation.

    :meth:`forward` runs the objective under the precision ``policy`` and adds the batch's loss terms to float64
    sums kept on the device (with the index and loss of the first step whose loss is not finite);
    :meth:`backward_step` back-propagates (through a GradScaler when the policy is fp16: the loss is multiplied
    by the scale, the gradients unscaled inside the optimizer step, a step with non-finite gradients skipped and
    the scale lowered) and steps the optimizer. Calling the object does both. :meth:`sync` reads everything back
    at once; :meth:`due` says when a caller should: after every step on CPU (where reading is free), after
    ``sync_images`` images on a GPU.

    Parameters
    ----------
    module : nn.Module
        The objective (possibly wrapped in DistributedDataParallel).
    optimizer : torch.optim.Optimizer
        Over the objective's parameters (:func:`make_optimizer`).
    policy : AmpPolicy
        Precision (``models.precision.amp_policy``).
    device : torch.device or str
        Where the parameters are (the accumulators live there).
    sync_images : int
        On a GPU, :meth:`due` is True once this many images were trained since the last :meth:`sync`.
    defer : bool, optional
        Whether :meth:`due` waits for ``sync_images`` images (default: on CUDA only).
    host_rotations : numpy.ndarray, shape (N, 3, 3), optional
        The rotations of the dataset's positions, on the host. Given, each step bounds its seam band's size on
        the host (:meth:`ReconstructionObjective.seam_band_rows` of the batch's ``positions_host``), so the
        pair decoder's band costs no synchronisation (the loop gives them on CUDA).
    pose_table : training.pose_refinement.PoseTable, optional
        Corrections of the batch's poses (``--refine-poses``): every step trains on the corrected poses and,
        while :attr:`learn_poses` is True, adds the table's prior to the loss and updates the batch's corrections
        after the optimizer step.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, policy: AmpPolicy,
                 device: torch.device | str, sync_images: int = 1000, defer: bool | None = None,
                 host_rotations: np.ndarray | None = None, pose_table: PoseTable | None = None):
        self.module = module
        self.pose_table = pose_table
        #: Whether the steps learn the pose corrections (set per epoch by the loop).
        self.learn_poses = False
        self.host_rotations = None if host_rotations is None else np.asarray(host_rotations, dtype=np.float32)
        self.optimizer = optimizer
        self.policy = policy
        self.device = torch.device(device)
        self.sync_images = max(1, int(sync_images))
        self.defer = self.device.type == "cuda" if defer is None else bool(defer)
        self.scaler = make_grad_scaler(policy)
        self.reset()

    @property
    def objective(self) -> ReconstructionObjective:
        """The objective itself (``module`` unwrapped from DistributedDataParallel)."""
        return getattr(self.module, "module", self.module)

    def reset(self) -> None:
        """Zero the sums (start of an epoch)."""
        self._sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, mse, kl (x images)
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self._bad_loss = torch.full((), float("nan"), dtype=torch.float64, device=self.device)
        self._overflow = torch.zeros((), dtype=torch.bool, device=self.device)
        self._images = 0
        self._steps = 0
        self._images_since_sync = 0
        self._held: dict[int, torch.Tensor] = {}  # positions of the steps since the last sync

    def forward(self, batch, beta: float, generator: torch.Generator | None = None,
                band_rows: int | None = None) -> LossParts:
        """The :class:`LossParts` of ``batch`` (a ``data.dataset.Batch`` on the device), added to the sums.

        ``beta`` is the KL weight of this batch (a Python float: no tensor is made of it); ``band_rows`` the
        host-known bound on its seam-band points (``ReconstructionObjective.seam_band_rows``); None: from
        ``host_rotations`` when the step has them, else the band is counted on the device.
        """
        if band_rows is None and self.host_rotations is not None and batch.positions_host is not None:
            band_rows = self.objective.seam_band_rows(self.host_rotations[batch.positions_host])
        rotations, shifts = batch.rotations, batch.shifts_px
        learn = self.pose_table is not None and self.learn_poses
        if self.pose_table is not None:
            rotations, shifts = self.pose_table.apply(batch.positions, rotations, shifts, learn=learn)
        parts = self.module(
            batch.images,
            rotations,
            shifts,
            batch.ctf,
            beta=beta,
            generator=generator,
            sample=True,
            amp=self.policy.dtype or False,
            band_rows=band_rows,
        )
        prior = self.pose_table.prior_nats() if learn else None
        if prior is not None:  # scaled as the KL: nats per image over the loss's lattice points
            parts = dataclasses.replace(parts, loss=parts.loss + prior / self.objective.n_active_disc)
        if parts.band_overflow is not None:
            self._overflow |= parts.band_overflow
        k = batch.images.shape[0]
        loss = parts.loss.detach()
        terms = torch.stack([loss, parts.mse.detach(), parts.kl.detach()]).to(torch.float64)
        self._sums += terms * k
        first = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(first, self._steps, self._first_bad)
        self._bad_loss = torch.where(first, loss.to(torch.float64), self._bad_loss)
        self._held[self._steps] = batch.positions
        self._images += k
        self._images_since_sync += k
        self._steps += 1
        return parts

    def backward_step(self, parts: LossParts, loss_weight: float = 1.0) -> None:
        """Gradients of ``loss_weight * parts.loss`` (scaled in fp16), then one optimizer step."""
        loss = parts.loss * loss_weight if loss_weight != 1.0 else parts.loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.pose_table is not None:
            self.pose_table.step()

    def __call__(self, batch, beta: float, generator: torch.Generator | None = None,
                 band_rows: int | None = None) -> LossParts:
        """:meth:`forward` then :meth:`backward_step`: one training step on ``batch``."""
        parts = self.forward(batch, beta, generator, band_rows)
        self.backward_step(parts)
        return parts

    @property
    def steps(self) -> int:
        """Steps since :meth:`reset` (a host count: reading it does not synchronise)."""
        return self._steps

    def due(self) -> bool:
        """Whether a caller should :meth:`sync` now: always on CPU; on a GPU after ``sync_images`` images."""
        return not self.defer or self._images_since_sync >= self.sync_images

    def sync(self) -> StepTotals:
        """The sums since :meth:`reset`, read back from the device (one synchronisation)."""
        values = torch.cat([self._sums, self._first_bad.to(torch.float64).reshape(1),
                            self._bad_loss.reshape(1), self._overflow.to(torch.float64).reshape(1)]).cpu().tolist()
        first_bad = int(values[3])
        totals = StepTotals(
            loss=values[0], mse=values[1], kl=values[2], images=self._images, steps=self._steps,
            first_bad_step=None if first_bad < 0 else first_bad, first_bad_loss=values[4],
            first_bad_positions=self._held.get(first_bad), band_overflow=bool(values[5]),
        )
        self._held.clear()
        self._images_since_sync = 0
        return totals

    def state_dict(self) -> dict:
        """The gradient scaler's state (empty unless fp16), for checkpoints: a resumed fp16 run continues with
        the same loss scale and growth counter, so it is bit-identical to an uninterrupted one."""
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict` (ignored when empty or when this step does not scale)."""
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
