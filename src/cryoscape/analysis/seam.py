"""Seam diagnostic: the jump of a decoder's Hartley transform across the kz = 0 plane.

The pair decoders (``domain`` ``hartley`` and ``fourier``, :mod:`cryoscape.models.decoders`) evaluate their
network only on the canonical half-space ``kz < 0`` (plus half of the plane) and obtain the other half-space by
Hermitian symmetry, from the network's second output at ``−k``. With the hard switch (``seam_band_px`` 0,
cryoDRGN's Fourier decoder) nothing forces the two half-spaces to meet continuously: just below the plane
``H(k)`` is output 0 of the network at ``k``, just above it is output 1 at ``−k``. The default seam band blends
the two evaluations near the plane and is continuous; ``hartley_full`` evaluates one network everywhere and is
continuous by construction.

For every in-plane lattice point ``j = (jx, jy)`` (frequency pixels, ``k = j / D``) the diagnostic evaluates the
decoder at ``(kx, ky, ±δ)`` and reports, per frequency shell ``s = round(|j|)``::

    relative_jump[s] = RMS(H(k + δẑ) − H(k − δẑ)) / RMS(H)

with the RMS of H taken over both sides and every latent given. A continuous decoder gives a value of the
order of δ·|∂H/∂kz| / RMS(H), i.e. ~0 for the default δ = 10⁻³ pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_DELTA_PX = 1e-3


@dataclass(frozen=True)
class SeamProfile:
    """Jump across the kz = 0 plane per frequency shell.

    Attributes
    ----------
    shell_px : ndarray, shape (S,), int
        Shell radius (frequency pixels of the decoder's box), 0 .. D/2.
    rms_jump : ndarray, shape (S,)
        RMS over the shell's in-plane points and the latents of ``H(k + δẑ) − H(k − δẑ)`` (decoder units).
    rms_h : ndarray, shape (S,)
        RMS of H on both sides of the plane over the same points.
    relative_jump : ndarray, shape (S,)
        ``rms_jump / rms_h`` (NaN where ``rms_h`` is 0).
    n_points : ndarray, shape (S,), int
        In-plane lattice points per shell.
    box_size : int
    delta_px : float
    """

    shell_px: np.ndarray
    rms_jump: np.ndarray
    rms_h: np.ndarray
    relative_jump: np.ndarray
    n_points: np.ndarray
    box_size: int
    delta_px: float

    def band(self, lo_fraction: float, hi_fraction: float = 1.0) -> float:
        """Relative jump over the shells between two fractions of Nyquist (RMS-weighted by point count)."""
        nyquist = self.box_size / 2
        sel = (self.shell_px >= lo_fraction * nyquist) & (self.shell_px <= hi_fraction * nyquist)
        sel &= self.rms_h > 0
        if not sel.any():
            return float("nan")
        w = self.n_points[sel]
        return float(np.sqrt((w * self.rms_jump[sel] ** 2).sum() / (w * self.rms_h[sel] ** 2).sum()))

    def to_dict(self) -> dict:
        """Plain lists (JSON)."""
        return {"box_size": self.box_size, "delta_px": self.delta_px,
                "shell_px": self.shell_px.tolist(), "relative_jump": self.relative_jump.tolist(),
                "rms_jump": self.rms_jump.tolist(), "rms_h": self.rms_h.tolist(),
                "n_points": self.n_points.tolist(),
                "relative_jump_low_half": self.band(0.0, 0.5),
                "relative_jump_high_half": self.band(0.5, 1.0)}


@torch.no_grad()
def seam_profile(decoder: torch.nn.Module, z: np.ndarray | torch.Tensor | None = None,
                 delta_px: float = DEFAULT_DELTA_PX, batch_latents: int = 16) -> SeamProfile:
    """Jump of ``decoder``'s H across the kz = 0 plane, per shell (module docstring).

    Parameters
    ----------
    decoder : torch.nn.Module
        Anything called as ``decoder(coords (B, P, 3) cycles/pixel, z (B, zdim) or None) -> (B, P, 2)`` Hartley
        pairs, with a ``box_size`` attribute (e.g. :class:`cryoscape.models.decoders.Decoder`).
    z : array, shape (N, zdim), optional
        Latents to average over (None for a homogeneous decoder).
    delta_px : float
        Distance of the two evaluation points from the plane, frequency pixels (> 0).
    batch_latents : int
        Latents per decoder call.

    Returns
    -------
    SeamProfile
    """
    if not delta_px > 0:
        raise ValueError(f"delta_px must be > 0, got {delta_px}")
    box = int(decoder.box_size)
    device = next(decoder.parameters()).device if any(True for _ in decoder.parameters()) else "cpu"
    j = np.arange(box) - box // 2
    jy, jx = np.meshgrid(j, j, indexing="ij")
    jx, jy = jx.ravel(), jy.ravel()
    radius = np.sqrt(jx.astype(np.float64) ** 2 + jy**2)
    keep = radius <= box / 2
    jx, jy, radius = jx[keep], jy[keep], radius[keep]
    shells = np.rint(radius).astype(np.int64)
    n_shells = box // 2 + 1
    plane = np.stack([jx, jy, np.zeros_like(jx)], -1).astype(np.float64)
    step = np.array([0.0, 0.0, delta_px])
    above, below = plane + step, plane - step
    coords = torch.as_tensor(np.concatenate([above, below]) / box, dtype=torch.float32, device=device)
    n_pts = plane.shape[0]
    if z is None:
        latents = [None]
    else:
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32), device=device).reshape(len(z), -1)
        latents = [zt[i:i + batch_latents] for i in range(0, zt.shape[0], batch_latents)]
    sum_jump2 = np.zeros(n_shells)
    sum_h2 = np.zeros(n_shells)
    count = np.zeros(n_shells)
    for zb in latents:
        if zb is None:
            h = decoder(coords, None)[..., 0].reshape(1, -1)
        else:
            h = decoder(coords.expand(zb.shape[0], -1, -1), zb)[..., 0]
        h = h.double().cpu().numpy()
        h_up, h_down = h[:, :n_pts], h[:, n_pts:]
        jump2 = ((h_up - h_down) ** 2).sum(0)
        h2 = ((h_up**2 + h_down**2) / 2).sum(0)
        sum_jump2 += np.bincount(shells, jump2, minlength=n_shells)
        sum_h2 += np.bincount(shells, h2, minlength=n_shells)
        count += np.bincount(shells, minlength=n_shells) * h.shape[0]
    count = np.maximum(count, 1)
    rms_jump = np.sqrt(sum_jump2 / count)
    rms_h = np.sqrt(sum_h2 / count)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(rms_h > 0, rms_jump / np.where(rms_h > 0, rms_h, 1.0), np.nan)
    return SeamProfile(shell_px=np.arange(n_shells), rms_jump=rms_jump, rms_h=rms_h, relative_jump=relative,
                       n_points=np.bincount(shells, minlength=n_shells), box_size=box, delta_px=float(delta_px))


def seam_profile_of_run(run: str | os.PathLike, epoch: int | None = None, n_latents: int = 64,
                        seed: int = 0, delta_px: float = DEFAULT_DELTA_PX) -> SeamProfile:
    """:func:`seam_profile` of a trained run's decoder at ``n_latents`` of its latent means (drawn at random).

    Parameters
    ----------
    run : path
        Run directory of ``train-vae`` / ``train-nn``.
    epoch : int, optional
        Checkpoint epoch (default: the last).
    n_latents : int
        Particles whose latent means are used (all when fewer).
    """
    from cryoscape.runs import RunDir
    from cryoscape.training.config import load_trained

    run_dir = RunDir(run)
    model, _config, epoch = load_trained(run_dir, epoch)
    model.eval()
    decoder = model.decoder
    z = None
    if int(getattr(decoder, "zdim", 0)) > 0:
        with np.load(run_dir.z_path(epoch)) as data:
            mean = np.asarray(data["mean"], dtype=np.float32)
        rng = np.random.default_rng(seed)
        z = mean[np.sort(rng.choice(len(mean), size=min(n_latents, len(mean)), replace=False))]
    return seam_profile(decoder, z, delta_px=delta_px)
