"""Loss terms of the VAE in the Hartley pair representation.

The decoder returns, for every evaluated lattice point ``k`` of the Hermitian half of the disc, the pair
``(H(k), H(-k))`` of Hartley values. The data are gathered the same way (values at ``idx_half`` and
``idx_mirror``), so every loss here works on pairs of tensors of shape (B, P).

Translation in the pair representation
---------------------------------------
With the centred transform ``F(k) = sum_x f(x) exp(-2 pi i k.x)`` (``k`` in cycles/pixel, ``x`` in pixels),
translating the image by ``s`` pixels (``f'(x) = f(x - s)``) gives ``F'(k) = F(k) exp(-2 pi i k.s)``. For a
real image ``F(-k) = conj F(k)``; writing ``F(k) = a + i b``, the Hartley values are ``H(k) = a - b`` and
``H(-k) = a + b``. With ``phi = 2 pi k.s``, ``c = cos phi`` and ``s_ = sin phi``::

    Re F'(k) = a c + b s_,   Im F'(k) = b c - a s_
    H'(k)  = Re - Im = a (c + s_) + b (s_ - c) = c H(k) + s_ H(-k)
    H'(-k) = c H(-k) - s_ H(k)                      (the same with phi -> -phi)

so a translation is a 2x2 rotation of each pair, computed here without complex numbers.
"""

from __future__ import annotations

import math

import torch


def translate_pairs(
    h_pos: torch.Tensor, h_neg: torch.Tensor, points_2d: torch.Tensor, shifts_px: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate images given as Hartley pairs by ``shifts_px`` (image content moves by ``+shift``).

    Parameters
    ----------
    h_pos, h_neg : torch.Tensor, shape (B, P)
        Hartley values ``H(k)`` and ``H(-k)`` of each image at the points ``k``.
    points_2d : torch.Tensor, shape (P, 2) or (B, P, 2)
        Lattice points ``(kx, ky)`` in cycles/pixel.
    shifts_px : torch.Tensor, shape (B, 2)
        Shifts ``(x, y)`` in pixels.

    Returns
    -------
    (torch.Tensor, torch.Tensor), each shape (B, P)
        ``H'(k)``, ``H'(-k)`` of the translated images.
    """
    pts = points_2d if points_2d.dim() == 3 else points_2d.unsqueeze(0)
    phase = 2.0 * math.pi * (pts[..., 0] * shifts_px[:, None, 0] + pts[..., 1] * shifts_px[:, None, 1])
    c = torch.cos(phase)
    s = torch.sin(phase)
    return c * h_pos + s * h_neg, c * h_neg - s * h_pos


def pair_mse(
    pred_pos: torch.Tensor,
    pred_neg: torch.Tensor,
    data_pos: torch.Tensor,
    data_neg: torch.Tensor,
    self_mirrored: torch.Tensor | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """Mean squared error over the lattice points of the disc, every point once.

    The pairs hold each disc point once, except the points that are their own mirror (DC: ``k = -k``), which
    appear as both members of their pair; those count once.

    Parameters
    ----------
    pred_pos, pred_neg, data_pos, data_neg : torch.Tensor, shape (B, P)
        Predicted and data values at ``k`` and ``-k`` of the P pairs.
    self_mirrored : torch.Tensor, shape (P,), bool, optional
        True where the pair's point is its own mirror (its ``-k`` member is not counted). None: no such point.

    Returns
    -------
    torch.Tensor
        A scalar (``reduce``, the batch mean) or the per-image error, shape (B,).
    """
    err_neg = (pred_neg - data_neg).square()
    if self_mirrored is None:
        n_points = 2 * pred_pos.shape[-1]
    else:
        counted = (~self_mirrored).to(err_neg.dtype)
        err_neg = err_neg * counted
        n_points = pred_pos.shape[-1] + counted.sum()  # a tensor: no device synchronisation
    err = (pred_pos - data_pos).square() + err_neg
    per_image = err.sum(dim=-1) / n_points
    return per_image.mean() if reduce else per_image


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """KL divergence of ``N(mu, exp(logvar))`` from the prior ``N(0, I)``, summed over latent dimensions.

    Parameters
    ----------
    mu, logvar : torch.Tensor, shape (B, zdim)

    Returns
    -------
    torch.Tensor
        The mean over the batch (``reduce``) or per image, shape (B,).
    """
    per_image = -0.5 * torch.sum(1.0 + logvar - mu.square() - logvar.exp(), dim=-1)
    return per_image.mean() if reduce else per_image


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One sample ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` drawn from ``generator``."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def beta_at(epoch_fraction: float, beta: float, schedule: str) -> float:
    """The KL weight at a point of training.

    Parameters
    ----------
    epoch_fraction : float
        Training progress in epochs (0 at the start; 1.5 = halfway through the second epoch).
    beta : float
        Final KL weight.
    schedule : str
        ``"constant"``; ``"linear:E"`` (ramp from 0 to ``beta`` over the first ``E`` epochs); ``"cyclic:E"``
        (ramp from 0 to ``beta`` over the first half of every ``E``-epoch cycle, then hold).
    """
    if schedule == "constant":
        return beta
    kind, _, arg = schedule.partition(":")
    period = float(arg)
    if kind == "linear":
        return beta * min(1.0, epoch_fraction / period)
    if kind == "cyclic":
        phase = (epoch_fraction % period) / period
        return beta * min(1.0, 2.0 * phase)
    raise ValueError(f"unknown beta schedule {schedule!r}")


def parse_beta_schedule(schedule: str) -> str:
    """Validate a beta schedule string; returns it unchanged or raises ValueError."""
    if schedule == "constant":
        return schedule
    kind, sep, arg = schedule.partition(":")
    if kind not in ("linear", "cyclic") or not sep:
        raise ValueError(f"beta schedule must be 'constant', 'linear:E' or 'cyclic:E', got {schedule!r}")
    try:
        period = float(arg)
    except ValueError:
        raise ValueError(f"beta schedule period must be a number of epochs, got {arg!r}") from None
    if not period > 0:
        raise ValueError(f"beta schedule period must be positive, got {period}")
    return schedule


def march_radius_px(epoch_fraction: float, start_px: float, final_px: float, epochs: float) -> float:
    """Loss radius (lattice pixels) under frequency marching at a point of training.

    Parameters
    ----------
    epoch_fraction : float
        Training progress in epochs (0 at the start; 1.5 = halfway through the second epoch).
    start_px, final_px : float
        Radius at the start and after ``epochs`` epochs (the run's loss radius).
    epochs : float
        Length of the march in epochs; ≤ 0 means no marching (``final_px`` throughout).

    Returns
    -------
    float
        ``start + (final − start) · t / epochs``, held at ``final`` from ``t = epochs`` on (and never above
        it when ``start > final``).
    """
    if epochs <= 0 or start_px >= final_px:
        return float(final_px)
    return float(min(final_px, start_px + (final_px - start_px) * max(0.0, epoch_fraction) / epochs))
