"""Pose refinement during training: a learned correction of every particle's input pose (``--refine-poses``).

Each particle ``i`` has a correction ``c_i = (a_x, a_y, a_z, d_x, d_y)`` (5 numbers, in pixels), starting at zero:

- its rotation becomes ``exp([ω]ₓ) R_i`` with ``ω = a / (D/2)`` radians: a rotation about the image's own axes
  (x, y tilt the projection direction, z turns it in plane) by the angle that moves a point at the edge of the box
  (radius D/2 pixels) by ``|a|`` pixels, so that rotations and shifts are learned in the same unit;
- its shift becomes ``s_i + d`` (pixels; RELION's sign, ``data.dataset.Batch``).

The corrections of a batch are leaves of the training step's graph: the same loss that trains the networks gives
their gradients (through the rotated slice coordinates, the translated data and the encoder's input). They are
updated by an Adam of their own, row by row: every particle keeps its own first and second moments and its own
count of updates, so a particle's step depends only on its own gradients, whatever the batch order (a particle is
seen about once per epoch, so a shared step counter and moments, as in a dense Adam, would move particles that are
not in the batch). A step moves a coordinate by at most about ``pose_lr_px`` pixels.

An optional prior ties the poses to the input ones: a Gaussian of standard deviation ``pose_prior_px`` on each
coordinate of the correction, whose negative log-density (nats per image) is added to the loss scaled as the KL
term is, divided by the number of lattice points of the loss.

The table holds only tensors and is deterministic, so a checkpoint (:meth:`PoseTable.state_dict`) resumes a run
bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from cryoscape.io.records import Poses

#: Adam's moment decay rates and epsilon for the per-particle pose updates.
POSE_BETAS = (0.9, 0.999)
POSE_EPS = 1e-8


def skew(vectors: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3): ``skew(a) @ b = a × b``."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([
        torch.stack([zero, -z, y], dim=-1),
        torch.stack([z, zero, -x], dim=-1),
        torch.stack([-y, x, zero], dim=-1),
    ], dim=-2)


def correction_rotations(angles_px: torch.Tensor, box_size: int) -> torch.Tensor:
    """Rotations (B, 3, 3) ``exp([a / (D/2)]ₓ)`` of rotation corrections ``a`` (B, 3) in pixels at the box edge."""
    return torch.linalg.matrix_exp(skew(angles_px.to(torch.float32) / (box_size / 2)))


class PoseTable:
    """Learned corrections of the input poses of ``n`` particles (module docstring).

    Parameters
    ----------
    n : int
        Particles (dataset positions 0..n-1).
    box_size : int
        D, pixels (sets the rotation unit).
    lr_px : float
        Adam step size, pixels (rotations: at the box edge).
    prior_px : float or None
        Standard deviation (pixels) of the Gaussian prior on each coordinate of the correction; None: no prior.
    device : torch.device or str
    """

    def __init__(self, n: int, box_size: int, lr_px: float, prior_px: float | None = None,
                 device: torch.device | str = "cpu"):
        self.box_size = int(box_size)
        self.lr_px = float(lr_px)
        self.prior_px = None if prior_px is None else float(prior_px)
        self.correction_px = torch.zeros((int(n), 5), dtype=torch.float32, device=device)
        self.exp_avg = torch.zeros_like(self.correction_px)
        self.exp_avg_sq = torch.zeros_like(self.correction_px)
        self.updates = torch.zeros(int(n), dtype=torch.long, device=device)
        self._positions: torch.Tensor | None = None
        self._leaf: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.correction_px.shape[0]

    def apply(self, positions: torch.Tensor, rotations: torch.Tensor, shifts_px: torch.Tensor | None,
              learn: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The corrected poses of the particles at ``positions`` (B,).

        Parameters
        ----------
        positions : (B,) int64
            Dataset positions of the batch (distinct).
        rotations : (B, 3, 3)
            Input rotations.
        shifts_px : (B, 2) or None
            Input shifts (None: zero).
        learn : bool
            Make the batch's corrections leaves of the graph, for :meth:`step` after the backward pass.

        Returns
        -------
        rotations : (B, 3, 3) float32
        shifts_px : (B, 2) float32
        """
        rows = self.correction_px[positions]
        if learn:
            rows = rows.clone().requires_grad_(True)
            self._positions, self._leaf = positions, rows
        rot = correction_rotations(rows[:, :3], self.box_size) @ rotations.to(torch.float32)
        base = torch.zeros_like(rows[:, 3:]) if shifts_px is None else shifts_px.to(torch.float32)
        return rot, base + rows[:, 3:]

    def prior_nats(self) -> torch.Tensor | None:
        """Negative log prior (per image, batch mean; nats up to a constant) of the corrections made leaves by the
        last ``apply(..., learn=True)``; None without a prior."""
        if self.prior_px is None or self._leaf is None:
            return None
        return 0.5 * (self._leaf**2).sum(-1).mean() / self.prior_px**2

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of the rows of the last ``apply(..., learn=True)`` from their gradients (a batch whose
        gradients are not all finite, e.g. a skipped fp16 step, changes nothing)."""
        leaf, positions = self._leaf, self._positions
        self._leaf = self._positions = None
        if leaf is None or leaf.grad is None:
            return
        grad = leaf.grad
        finite = torch.isfinite(grad).all()  # kept on the device: no synchronisation
        grad = torch.where(finite, grad, 0.0)
        beta1, beta2 = POSE_BETAS
        old_count = self.updates[positions]
        count = old_count + finite.to(old_count.dtype)
        old_avg, old_avg_sq, old_value = self.exp_avg[positions], self.exp_avg_sq[positions], leaf.detach()
        exp_avg = beta1 * old_avg + (1 - beta1) * grad
        exp_avg_sq = beta2 * old_avg_sq + (1 - beta2) * grad * grad
        # Adam's bias corrections with each particle's own count of updates
        n = count.clamp(min=1).to(torch.float64).unsqueeze(-1)
        first = exp_avg / (1 - beta1**n).to(torch.float32)
        second = exp_avg_sq / (1 - beta2**n).to(torch.float32)
        value = old_value - self.lr_px * first / (second.sqrt() + POSE_EPS)
        self.correction_px[positions] = torch.where(finite, value, old_value)
        self.exp_avg[positions] = torch.where(finite, exp_avg, old_avg)
        self.exp_avg_sq[positions] = torch.where(finite, exp_avg_sq, old_avg_sq)
        self.updates[positions] = count

    def corrected(self, poses: Poses) -> Poses:
        """``poses`` (the input poses of the n particles, in dataset order) with the corrections applied."""
        device = self.correction_px.device
        positions = torch.arange(len(self), device=device)
        rot = torch.as_tensor(np.asarray(poses.rotations), dtype=torch.float32, device=device)
        shifts = torch.as_tensor(np.asarray(poses.shifts_px), dtype=torch.float32, device=device)
        with torch.no_grad():
            rot, shifts = self.apply(positions, rot, shifts)
        return Poses(rot.cpu().numpy().astype(np.float64), shifts.cpu().numpy().astype(np.float64), poses.box_size)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The table and its optimizer state (CPU tensors), for checkpoints."""
        return {name: getattr(self, name).detach().cpu().clone()
                for name in ("correction_px", "exp_avg", "exp_avg_sq", "updates")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` (the same number of particles)."""
        for name in ("correction_px", "exp_avg", "exp_avg_sq", "updates"):
            value = state[name]
            target = getattr(self, name)
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"pose table {name}: checkpoint shape {tuple(value.shape)} != {tuple(target.shape)}")
            target.copy_(value.to(target.device))
