"""Hand-fused positional encoding + first decoder layer + latent term + ReLU, with its own backward.

The plain path of :meth:`cryoscape.models.decoders.Decoder.network` computes, for rows of points ``k``
(cycles/pixel) and latents ``z``::

    phase = k @ F                          (R, M)   float32, radians
    feats = cat([sin(phase), cos(phase)])  (R, 2M)  the positional encoding
    h = relu(feats @ Wᵀ + b + W_z z)       (R, H)   first layer (autocast dtype)

materialising ``phase``, ``sin``, ``cos``, their concatenation, the sum with the latent term and the activation
as separate tensors, and keeping the (R, 2M) encoding alive for the backward. :class:`EncodedFirstLayer`
instead works through the rows in blocks of about ``chunk_rows``: per block it computes the phase, writes sine
and cosine straight into one block-sized feature buffer (already in the compute dtype) and multiplies it into
its rows of the output; bias, latent term and ReLU are added in place in the output. The backward takes the
ReLU mask from the saved output and needs the encoding only for the weight gradient (no gradient of the
encoding is needed: the coordinates are data). When all rows fit in one block the encoding is kept for it;
otherwise only the points (R, 3) are kept and the backward recomputes the encoding block by block. By default
(:func:`encoded_first_layer`) one block holds all rows while the encoding takes at most
:data:`KEEP_ENCODING_BYTES`: at box 64 with 8 images (about 13k rows, M = 96) it is 10 MiB. Above that the
encoding never occupies more than one block: at box 128 (M = 192) with 32 images it would be 0.3 GiB in
float32 (a 64-wide layer's activations 0.05 GiB), at box 256 (M = 384) 2.4 GiB. Recomputing costs one more
sine and cosine per feature: noticeable for narrow networks at large boxes, where the encoding is a large part
of the step, and small beside the matrix products at widths of 256 and more.

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

from collections.abc import Iterator

import torch

#: The whole (R, 2M) encoding is computed in one block and kept for the backward up to this size (bytes);
#: a larger one is computed in blocks of :data:`CHUNK_ROWS` rows and recomputed by the backward.
KEEP_ENCODING_BYTES = 128 << 20
#: Rows of points encoded at a time above :data:`KEEP_ENCODING_BYTES` (16384 rows × 384 features = 24 MiB fp32).
CHUNK_ROWS = 16384


def _encode_into(phase: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[sin(phase), cos(phase)]`` (R, 2M) in ``dtype``, written once (computed in float32, then rounded)."""
    m = phase.shape[-1]
    feats = torch.empty((phase.shape[0], 2 * m), dtype=dtype, device=phase.device)
    torch.sin(phase, out=feats[:, :m])
    torch.cos(phase, out=feats[:, m:])
    return feats


def _blocks(n_images: int, n_points: int, chunk_rows: int) -> Iterator[tuple[int, int, int, int]]:
    """``(b0, b1, p0, p1)``: images ``b0:b1``, their points ``p0:p1``, about ``chunk_rows`` rows each.

    Whole images are grouped while one fits in a block; a larger image is cut into point ranges.
    """
    if n_points <= chunk_rows:
        step = max(1, chunk_rows // max(n_points, 1))
        for b0 in range(0, n_images, step):
            yield b0, min(n_images, b0 + step), 0, n_points
    else:
        for b in range(n_images):
            for p0 in range(0, n_points, chunk_rows):
                yield b, b + 1, p0, min(n_points, p0 + chunk_rows)


def _block_rows(points: torch.Tensor, n_points: int, b0: int, b1: int, p0: int, p1: int) -> torch.Tensor:
    """The (rows, 3) points of images ``b0:b1``, points ``p0:p1`` (``points`` is (B·P, 3), batch-major).

    A block is whole images (``p0:p1`` = ``0:P``) or a point range of one image (``b1 = b0 + 1``): either way
    its rows are consecutive, from image b0's point p0 to image b1 − 1's point p1.
    """
    return points[b0 * n_points + p0:(b1 - 1) * n_points + p1]


class EncodedFirstLayer(torch.autograd.Function):
    """``relu(PE(k) @ Wᵀ + b + zproj)`` for the rows of ``points`` (module docstring), optionally mirrored.

    Parameters (of ``apply``)
    -------------------------
    points : torch.Tensor, shape (B·P, 3), float32
        The B·P points k (cycles/pixel), batch-major (image b owns rows b·P .. b·P + P − 1). No gradient
        flows to them.
    freqs : torch.Tensor, shape (3, M), float32
        The encoding's frequencies (``phase = k @ freqs``, radians).
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
    chunk_rows : int
        Rows encoded at a time (all rows: one block, its encoding kept for the backward).

    Returns
    -------
    torch.Tensor, shape (B, P, H) or (B, 2P, H) when mirrored, compute dtype.
    """

    @staticmethod
    def forward(ctx, points, freqs, zproj, weight, bias, n_images: int, mirrored: bool, chunk_rows: int):
        dtype = weight.dtype
        n_points = points.shape[0] // n_images
        hidden, m = weight.shape[0], freqs.shape[1]
        out = torch.empty((n_images, 2 * n_points if mirrored else n_points, hidden), dtype=dtype,
                          device=points.device)
        w_sin, w_cos = weight[:, :m].t(), weight[:, m:].t()
        blocks = list(_blocks(n_images, n_points, chunk_rows))
        feats = torch.empty((0, 2 * m), dtype=dtype, device=points.device)
        for b0, b1, p0, p1 in blocks:
            feats = _encode_into(_block_rows(points, n_points, b0, b1, p0, p1) @ freqs, dtype)
            shape = (b1 - b0, p1 - p0, hidden)
            if mirrored:
                even = torch.addmm(bias, feats[:, m:], w_cos).view(shape)
                odd = feats[:, :m].mm(w_sin).view(shape)
                torch.add(even, odd, out=out[b0:b1, p0:p1])
                torch.sub(even, odd, out=out[b0:b1, n_points + p0:n_points + p1])
                del even, odd
            else:  # the block's rows of ``out`` are consecutive (see _block_rows): the product writes them
                torch.addmm(bias, feats, weight.t(), out=out[b0:b1, p0:p1].view(-1, hidden))
        if len(blocks) > 1:  # the backward recomputes the encoding block by block
            feats = feats.new_empty((0, 2 * m))
        if zproj is not None:
            out.add_(zproj.unsqueeze(1))
        out.relu_()
        ctx.save_for_backward(points, freqs, out, feats)
        ctx.mirrored = mirrored
        ctx.has_z = zproj is not None
        ctx.shape = (n_images, n_points, hidden, m, chunk_rows)
        return out

    @staticmethod
    def backward(ctx, grad):
        points, freqs, out, kept = ctx.saved_tensors
        n_images, n_points, hidden, m, chunk_rows = ctx.shape
        grad_pre = torch.ops.aten.threshold_backward(grad, out, 0)  # (B, P or 2P, H)
        if ctx.mirrored:
            g_pos, g_neg = grad_pre[:, :n_points], grad_pre[:, n_points:]
            g_even = g_pos + g_neg  # gradient of the cosine part (and bias, z)
            g_odd = g_pos - g_neg  # of the sine part
        else:
            g_even = g_odd = grad_pre
        # the weight gradient, block by block (from the kept or the recomputed encoding), summed in float32
        grad_w = torch.zeros((hidden, 2 * m), dtype=torch.float32, device=out.device)
        for b0, b1, p0, p1 in _blocks(n_images, n_points, chunk_rows):
            if kept.shape[0]:  # one block, its encoding kept by the forward
                feats = kept
            else:
                feats = _encode_into(_block_rows(points, n_points, b0, b1, p0, p1) @ freqs, out.dtype)
            ge = g_even[b0:b1, p0:p1].reshape(-1, hidden)
            if ctx.mirrored:
                go = g_odd[b0:b1, p0:p1].reshape(-1, hidden)
                grad_w[:, :m] += go.t().mm(feats[:, :m]).float()
                grad_w[:, m:] += ge.t().mm(feats[:, m:]).float()
            else:
                grad_w += ge.t().mm(feats).float()
            del feats
        grad_b = g_even.reshape(-1, hidden).sum(0)
        grad_z = g_even.sum(1) if ctx.has_z else None
        return None, None, grad_z, grad_w.to(out.dtype), grad_b, None, None, None


def encoded_first_layer(points: torch.Tensor, freqs: torch.Tensor, zproj: torch.Tensor | None,
                        weight: torch.Tensor, bias: torch.Tensor, n_images: int, mirrored: bool = False,
                        chunk_rows: int | None = None) -> torch.Tensor:
    """Apply :class:`EncodedFirstLayer` (see there for shapes); ``points`` must not require a gradient.

    ``chunk_rows`` None: all rows in one block when the encoding takes at most :data:`KEEP_ENCODING_BYTES`,
    else blocks of :data:`CHUNK_ROWS`.
    """
    if points.requires_grad or freqs.requires_grad:
        raise ValueError("the fused first layer does not differentiate with respect to the coordinates")
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] % int(n_images):
        raise ValueError(f"points must have shape (B·P, 3) with B = {n_images}, got {tuple(points.shape)}")
    if chunk_rows is None:
        rows = points.shape[0]
        encoding_bytes = rows * 2 * freqs.shape[1] * weight.element_size()
        chunk_rows = max(rows, 1) if encoding_bytes <= KEEP_ENCODING_BYTES else CHUNK_ROWS
    return EncodedFirstLayer.apply(points.float(), freqs.float(), zproj, weight, bias, int(n_images),
                                   bool(mirrored), int(chunk_rows))
