"""Hand-fused positional encoding + first decoder layer + latent term + ReLU, with its own backward.

The plain path of :meth:`cryoscape.models.decoders.Decoder.network` computes, for rows of points ``k``
(cycles/pixel) and latents ``z``::

    phase = k @ F                          (R, M)   float32, radians
    feats = cat([sin(phase), cos(phase)])  (R, 2M)  the positional encoding
    h = relu(feats @ Wᵀ + b + W_z z)       (R, H)   first layer (autocast dtype)

materialising ``phase``, ``sin``, ``cos``, their concatenation, the sum with the latent term and the activation
as separate tensors. :class:`EncodedFirstLayer` instead makes the whole layer one matrix product with ReLU.
Each row's features are extended by its image's latent and a constant 1 (then zeros up to a multiple of
:data:`FEATURE_ALIGN` columns), and the weight by the latent weight and the bias::

    A = [sin(phase) | cos(phase) | z | 1 | 0…]     (R, K)   compute dtype, written once per block
    V = [W | W_z | b | 0…]                          (H, K)
    h = relu(A @ Vᵀ)                                one product with a ReLU epilogue (cuBLASLt's on CUDA through
                                                    ``torch._addmm_activation``; oneDNN's post-op on CPU)

so the (R, H) activations are written once, and the backward's single product ``gradVᵀ = Aᵀ @ G`` gives the
gradients of W, W_z and b together. The gradient of z is the latent columns' share: ``(Σ over an image's rows of
G) @ W_z``. Sine and cosine go straight into ``A`` from the float32 phase, already in the compute dtype.

Blocks: the rows are worked through in blocks of about ``chunk_rows``. When all rows fit in one block, ``A`` is
kept for the backward; otherwise only the points (R, 3) are kept and the backward recomputes ``A`` block by block.
By default (:func:`encoded_first_layer`) one block holds all rows while ``A`` takes at most
:data:`KEEP_ENCODING_BYTES` on CPU (bounded memory for streamed training) and :data:`KEEP_ENCODING_BYTES_CUDA` on a
GPU. Recomputing costs one more sine and cosine per feature.

Mirrored rows (``domain="hartley_full"``, which evaluates the network at ``k`` and ``−k``): the encoding of
``−k`` is ``[−sin, cos]``, so with ``W = [W_s | W_c]``::

    W·PE(k)  = W_c·cos + W_s·sin + b
    W·PE(−k) = W_c·cos − W_s·sin + b

one encoding gives the layer at both points: an "even" product of ``[cos | z | 1]`` and an "odd" product of
``sin``, added and subtracted (half the encoding and half the first layer's FLOPs of evaluating the ``2P``
rows). Rows of each image are ordered as the plain path's ``cat([k, −k], dim=−2)``: its P points, then their
mirrors.

Values and gradients equal the plain composition (fp32 to rounding; tests in ``tests/models/test_fused.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch

#: The whole (R, K) feature matrix is computed in one block and kept for the backward up to this size (bytes)
#: on CPU; a larger one is computed in blocks of :data:`CHUNK_ROWS` rows and recomputed by the backward.
KEEP_ENCODING_BYTES = 128 << 20
#: The same bound on a CUDA device, whose memory holds the activations of a whole batch anyway.
KEEP_ENCODING_BYTES_CUDA = 4 << 30
#: Rows of points encoded at a time above the bound (16384 rows × 384 features = 24 MiB fp32).
CHUNK_ROWS = 16384
#: The feature matrix's width is rounded up to a multiple of this many columns (aligned rows for the GEMM).
FEATURE_ALIGN = 8


@functools.lru_cache(maxsize=1)
def onednn_linear_available() -> bool:
    """Whether this PyTorch build runs oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``) on CPU, in
    float32 and bf16, with a ReLU and with a sum post-op (checked once on tiny inputs)."""
    try:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.ones((4, 8), dtype=dtype)
            w = torch.eye(8, dtype=dtype)
            b = torch.zeros(8, dtype=dtype)
            ok = torch.equal(torch.ops.mkldnn._linear_pointwise(x, w, b, "relu", [], ""), x)
            ok = ok and torch.equal(torch.ops.mkldnn._linear_pointwise.binary(x, x, w, None, "add"), 2 * x)
            if not ok:
                return False
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def feature_columns(m: int, zdim: int) -> int:
    """Columns K of the extended feature matrix: 2M encoding, zdim latent, one constant, zero padding."""
    k = 2 * m + zdim + 1
    return -(-k // FEATURE_ALIGN) * FEATURE_ALIGN


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


def _features(points: torch.Tensor, freqs: torch.Tensor, z: torch.Tensor | None, n_points: int,
              block: tuple[int, int, int, int], dtype: torch.dtype) -> torch.Tensor:
    """The block's rows of ``A = [sin | cos | z | 1 | 0…]`` (rows, K) in ``dtype`` (module docstring)."""
    b0, b1, p0, p1 = block
    phase = _block_rows(points, n_points, b0, b1, p0, p1) @ freqs
    m = phase.shape[1]
    zdim = 0 if z is None else z.shape[1]
    feats = torch.empty((phase.shape[0], feature_columns(m, zdim)), dtype=dtype, device=phase.device)
    torch.sin(phase, out=feats[:, :m])
    torch.cos(phase, out=feats[:, m:2 * m])
    if z is not None:
        feats[:, 2 * m:2 * m + zdim].unflatten(0, (b1 - b0, p1 - p0)).copy_(z[b0:b1, None, :])
    feats[:, 2 * m + zdim] = 1.0
    feats[:, 2 * m + zdim + 1:] = 0.0
    return feats


def extended_weight(weight: torch.Tensor, z_weight: torch.Tensor | None, bias: torch.Tensor) -> torch.Tensor:
    """``V = [W | W_z | b | 0…]`` (H, K) in ``weight``'s dtype (module docstring); differentiable."""
    hidden, width = weight.shape
    zdim = 0 if z_weight is None else z_weight.shape[1]
    pad = feature_columns(width // 2, zdim) - (width + zdim + 1)
    parts = [weight] + ([z_weight.to(weight.dtype)] if z_weight is not None else [])
    parts += [bias.to(weight.dtype).unsqueeze(1), weight.new_zeros((hidden, pad))]
    return torch.cat(parts, dim=1)


class EncodedFirstLayer(torch.autograd.Function):
    """``relu(PE(k) @ Wᵀ + b + W_z z)`` for the rows of ``points`` (module docstring), optionally mirrored.

    Parameters (of ``apply``)
    -------------------------
    points : torch.Tensor, shape (B·P, 3), float32
        The B·P points k (cycles/pixel), batch-major (image b owns rows b·P .. b·P + P − 1). No gradient
        flows to them.
    freqs : torch.Tensor, shape (3, M), float32
        The encoding's frequencies (``phase = k @ freqs``, radians).
    z : torch.Tensor, shape (B, zdim), or None
        Latent of each image (broadcast over its points), in the compute dtype.
    weight_ext : torch.Tensor, shape (H, K)
        ``[W | W_z | b | 0…]`` (:func:`extended_weight`) in the compute dtype; W's sine columns first.
    n_images : int
        B.
    mirrored : bool
        Also evaluate ``−k``: output rows per image are the P points, then their P mirrors.
    chunk_rows : int
        Rows encoded at a time (all rows: one block, its features kept for the backward).

    Returns
    -------
    torch.Tensor, shape (B, P, H) or (B, 2P, H) when mirrored, compute dtype.
    """

    @staticmethod
    def forward(ctx, points, freqs, z, weight_ext, n_images: int, mirrored: bool, chunk_rows: int):
        dtype = weight_ext.dtype
        n_points = points.shape[0] // n_images
        hidden, m = weight_ext.shape[0], freqs.shape[1]
        out = torch.empty((n_images, 2 * n_points if mirrored else n_points, hidden), dtype=dtype,
                          device=points.device)
        zero_bias = weight_ext.new_zeros(hidden)
        blocks = list(_blocks(n_images, n_points, chunk_rows))
        onednn = (points.device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)
                  and onednn_linear_available())
        feats = weight_ext.new_empty((0, weight_ext.shape[1]))
        for block in blocks:
            b0, b1, p0, p1 = block
            feats = _features(points, freqs, z, n_points, block, dtype)
            shape = (b1 - b0, p1 - p0, hidden)
            if mirrored:
                even = feats[:, m:].mm(weight_ext[:, m:].t()).view(shape)  # [cos | z | 1 | 0…]
                odd = feats[:, :m].mm(weight_ext[:, :m].t()).view(shape)
                torch.add(even, odd, out=out[b0:b1, p0:p1]).relu_()
                torch.sub(even, odd, out=out[b0:b1, n_points + p0:n_points + p1]).relu_()
                del even, odd
            elif len(blocks) == 1 and onednn:  # oneDNN's linear with a ReLU post-op writes the whole output
                out = torch.ops.mkldnn._linear_pointwise(feats, weight_ext, None, "relu", [], "").view(out.shape)
            else:  # the block's rows of ``out`` are consecutive (see _block_rows): the product writes them
                torch._addmm_activation(zero_bias, feats, weight_ext.t(), out=out[b0:b1, p0:p1].view(-1, hidden))
        if len(blocks) > 1:  # the backward recomputes the features block by block
            feats = feats.new_empty((0, feats.shape[1]))
        ctx.save_for_backward(points, freqs, z, weight_ext, out, feats)
        ctx.mirrored = mirrored
        ctx.shape = (n_images, n_points, hidden, m, chunk_rows)
        return out

    @staticmethod
    def backward(ctx, grad):
        points, freqs, z, weight_ext, out, kept = ctx.saved_tensors
        n_images, n_points, hidden, m, chunk_rows = ctx.shape
        grad_pre = torch.ops.aten.threshold_backward(grad, out, 0)  # (B, P or 2P, H)
        if ctx.mirrored:
            g_pos, g_neg = grad_pre[:, :n_points], grad_pre[:, n_points:]
            g_even = g_pos + g_neg  # gradient of the cosine, latent and constant columns
            g_odd = g_pos - g_neg  # of the sine columns
        else:
            g_even = g_odd = grad_pre
        # the extended weight's gradient, block by block (from the kept or recomputed features), in float32
        grad_w = torch.zeros(weight_ext.shape, dtype=torch.float32, device=out.device)
        for block in _blocks(n_images, n_points, chunk_rows):
            b0, b1, p0, p1 = block
            feats = kept if kept.shape[0] else _features(points, freqs, z, n_points, block, out.dtype)
            ge = g_even[b0:b1, p0:p1].reshape(-1, hidden)
            if ctx.mirrored:
                go = g_odd[b0:b1, p0:p1].reshape(-1, hidden)
                grad_w[:, :m] += go.t().mm(feats[:, :m]).float()
                grad_w[:, m:] += ge.t().mm(feats[:, m:]).float()
            else:
                grad_w += ge.t().mm(feats).float()
            del feats
        grad_z = None
        if z is not None and ctx.needs_input_grad[2]:
            zdim = z.shape[1]
            grad_z = g_even.sum(1).mm(weight_ext[:, 2 * m:2 * m + zdim])
        return None, None, grad_z, grad_w.to(out.dtype), None, None, None


def encoded_first_layer(points: torch.Tensor, freqs: torch.Tensor, z: torch.Tensor | None,
                        z_weight: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor, n_images: int,
                        mirrored: bool = False, chunk_rows: int | None = None) -> torch.Tensor:
    """``relu(PE(k) @ Wᵀ + b + W_z z)`` by :class:`EncodedFirstLayer`; ``points`` must not require a gradient.

    Parameters
    ----------
    points : (B·P, 3) float32
    freqs : (3, M) float32
    z : (B, zdim) or None
        Latents; cast to ``weight``'s dtype (the compute dtype).
    z_weight : (H, zdim) or None
        ``W_z`` (None exactly when ``z`` is None).
    weight : (H, 2M)
        ``W`` in the compute dtype (sine columns first).
    bias : (H,)
    n_images : int
    mirrored : bool
    chunk_rows : int, optional
        None: all rows in one block when the features take at most :data:`KEEP_ENCODING_BYTES` (CPU) or
        :data:`KEEP_ENCODING_BYTES_CUDA` (CUDA), else blocks of :data:`CHUNK_ROWS`.

    Returns
    -------
    torch.Tensor, shape (B, P, H) or (B, 2P, H), ``weight``'s dtype.
    """
    if points.requires_grad or freqs.requires_grad:
        raise ValueError("the fused first layer does not differentiate with respect to the coordinates")
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] % int(n_images):
        raise ValueError(f"points must have shape (B·P, 3) with B = {n_images}, got {tuple(points.shape)}")
    if (z is None) != (z_weight is None):
        raise ValueError("give both z and z_weight, or neither")
    zdim = 0 if z is None else z.shape[1]
    if chunk_rows is None:
        rows = points.shape[0]
        feature_bytes = rows * feature_columns(freqs.shape[1], zdim) * weight.element_size()
        bound = KEEP_ENCODING_BYTES_CUDA if points.device.type == "cuda" else KEEP_ENCODING_BYTES
        chunk_rows = max(rows, 1) if feature_bytes <= bound else CHUNK_ROWS
    weight_ext = extended_weight(weight, z_weight, bias)
    z_cast = None if z is None else z.to(weight.dtype)
    return EncodedFirstLayer.apply(points.float(), freqs.float(), z_cast, weight_ext, int(n_images),
                                   bool(mirrored), int(chunk_rows))
