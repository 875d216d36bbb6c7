"""Hand-fused positional encoding + first decoder layer + latent term + ReLU, with its own backward.

The plain path of :meth:`cryoscape.models.decoders.Decoder.network` computes, for rows of points ``k``
(cycles/pixel) and latents ``z``::

    phase = k @ F                          (R, M)   float32, radians
    feats = cat([sin(phase), cos(phase)])  (R, 2M)  the positional encoding
    h = relu(feats @ Wᵀ + b + W_z z)       (R, H)   first layer (autocast dtype)

materialising ``sin``, ``cos``, their concatenation, the sum with the latent term and the activation as separate
tensors. :class:`EncodedFirstLayer` writes sine and cosine straight into one feature buffer (already in the
compute dtype), adds bias, latent term and ReLU in place in the matmul's output, and in its backward takes the
ReLU mask from the saved output and needs no gradient of the encoding (the coordinates are data).

Mirrored rows (``domain="hartley_full"``, which evaluates the network at ``k`` and ``−k``): the encoding of
``−k`` is ``[−sin, cos]``, so with ``W = [W_s | W_c]``::

    W·PE(k)  = W_c·cos + W_s·sin + b
    W·PE(−k) = W_c·cos − W_s·sin + b

one encoding and two half-width products give the first layer at both points (half the encoding and half the
first layer's FLOPs of evaluating the ``2P`` rows). Rows of each image are ordered as the plain path's
``cat([k, −k], dim=−2)``: its P points, then their mirrors.

Values and gradients equal the plain composition (fp32 to rounding; tests in ``tests/models/test_fused.py``);
speed figures: ``benchmarks/train_throughput.py --levers``.
"""

from __future__ import annotations

import torch


def _encode_into(phase: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[sin(phase), cos(phase)]`` (R, 2M) in ``dtype``, written once (computed in float32, then rounded)."""
    m = phase.shape[-1]
    feats = torch.empty((phase.shape[0], 2 * m), dtype=dtype, device=phase.device)
    torch.sin(phase, out=feats[:, :m])
    torch.cos(phase, out=feats[:, m:])
    return feats


class EncodedFirstLayer(torch.autograd.Function):
    """``relu(PE(k) @ Wᵀ + b + zproj)`` for the rows of ``phase`` (module docstring), optionally mirrored.

    Parameters (of ``apply``)
    -------------------------
    phase : torch.Tensor, shape (B·P, M), float32
        ``k @ F`` of the B·P points (radians), batch-major (image b owns rows b·P .. b·P + P − 1). No gradient
        flows to it.
    zproj : torch.Tensor, shape (B, H), or None
        Latent term ``W_z z`` of each image (broadcast over its points), in ``weight``'s dtype.
    weight : torch.Tensor, shape (H, 2M)
        First-layer weight (sine columns first), in the compute dtype.
    bias : torch.Tensor, shape (H,)
        First-layer bias, compute dtype.
    n_images : int
        B.
    mirrored : bool
        Also evaluate ``−k``: output rows per image are the P points, then their P mirrors.

    Returns
    -------
    torch.Tensor, shape (B, P, H) or (B, 2P, H) when mirrored, compute dtype.
    """

    @staticmethod
    def forward(ctx, phase, zproj, weight, bias, n_images: int, mirrored: bool):
        dtype = weight.dtype
        rows, m = phase.shape
        n_points = rows // n_images
        hidden = weight.shape[0]
        feats = _encode_into(phase, dtype)
        if mirrored:
            sin, cos = feats[:, :m], feats[:, m:]
            even = torch.addmm(bias, cos, weight[:, m:].t()).view(n_images, n_points, hidden)
            odd = sin.mm(weight[:, :m].t()).view(n_images, n_points, hidden)
            out = torch.empty((n_images, 2 * n_points, hidden), dtype=dtype, device=phase.device)
            torch.add(even, odd, out=out[:, :n_points])
            torch.sub(even, odd, out=out[:, n_points:])
            del even, odd
        else:
            out = torch.addmm(bias, feats, weight.t()).view(n_images, n_points, hidden)
        if zproj is not None:
            out.add_(zproj.unsqueeze(1))
        out.relu_()
        ctx.save_for_backward(feats, out)
        ctx.mirrored = mirrored
        ctx.has_z = zproj is not None
        ctx.shape = (n_images, n_points, hidden, m)
        return out

    @staticmethod
    def backward(ctx, grad):
        feats, out = ctx.saved_tensors
        n_images, n_points, hidden, m = ctx.shape
        grad_pre = torch.ops.aten.threshold_backward(grad, out, 0)  # (B, P or 2P, H)
        if ctx.mirrored:
            g_pos, g_neg = grad_pre[:, :n_points], grad_pre[:, n_points:]
            g_even = (g_pos + g_neg).reshape(-1, hidden)  # gradient of the cosine part (and bias, z)
            g_odd = (g_pos - g_neg).reshape(-1, hidden)  # of the sine part
            grad_w = torch.cat([g_odd.t().mm(feats[:, :m]), g_even.t().mm(feats[:, m:])], dim=1)
        else:
            g_even = grad_pre.reshape(-1, hidden)
            grad_w = g_even.t().mm(feats)
        grad_b = g_even.sum(0)
        grad_z = g_even.view(n_images, n_points, hidden).sum(1) if ctx.has_z else None
        return None, grad_z, grad_w, grad_b, None, None


def encoded_first_layer(phase: torch.Tensor, zproj: torch.Tensor | None, weight: torch.Tensor,
                        bias: torch.Tensor, n_images: int, mirrored: bool = False) -> torch.Tensor:
    """Apply :class:`EncodedFirstLayer` (see there for shapes); ``phase`` must not require a gradient."""
    if phase.requires_grad:
        raise ValueError("the fused first layer does not differentiate with respect to the coordinates")
    return EncodedFirstLayer.apply(phase, zproj, weight, bias, int(n_images), bool(mirrored))
