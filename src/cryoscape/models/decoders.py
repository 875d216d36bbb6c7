"""Coordinate-MLP decoder V(k, z) of a real volume's Hartley transform.

For a 3-D frequency ``k`` (cycles/pixel, ``k ∈ [−0.5, 0.5]³``; the point of slice lattice vector k₂ under
rotation R is ``k₂ @ R``) and a latent ``z``, the decoder returns the PAIR ``(H(k), H(−k))`` of Hartley values
of a real volume (``H = Re − Im`` of the centred FFT). How the network produces it depends on ``domain``:

- ``"hartley"`` and ``"fourier"``: Hermitian symmetry is exact by construction: the network is only evaluated
  on a canonical half-space and the pair is swapped for points outside it:

  - canonical: ``kz < 0``, or ``kz == 0 and ky < 0``, or ``kz == ky == 0 and kx <= 0`` (DC included);
  - a point outside is evaluated at ``−k`` and the two values of the pair are swapped.

  The network output ``o = (o₀, o₁)`` at a canonical point is the pair itself (``"hartley"``) or ``(Re F(k),
  Im F(k))`` (``"fourier"``), whose pair is ``(Re − Im, Re + Im)``. At k = 0 both elements are the first
  one. Training therefore evaluates only the Hermitian half of each slice (``geometry.lattice.hermitian_half``):
  one evaluation gives the values at ``idx_half`` and ``idx_mirror``.

  Seam band (``seam_band_px`` = b > 0, the default): with the hard switch above, H just below the plane kz = 0
  comes from the network at k and H just above it from the network at the mirror point, and nothing makes the
  two meet (``analysis.seam`` measures the jump). Within |kz| < b frequency pixels of the plane the pair at a
  canonical point k is instead the blend ``w·P(k) + (1 − w)·swap(P(−k))`` with ``w = 1/2 − kz·D/(2b)``
  (1 at kz = −b/D, 1/2 on the plane), where P is the network's pair evaluated at a point as it is. The result
  is continuous across the plane and still exactly Hermitian (the pair at −k is the swapped pair at k); the
  points of the band cost a second evaluation. b = 0 is the hard switch (cryoDRGN's Fourier decoder).
- ``"hartley_full"`` (cryoDRGN's Hartley decoder): the network has one output, H(k), defined on the whole
  space; the pair is ``(f(k), f(−k))``, two evaluations (one network call over 2P points). H(k) and H(−k) of a
  real volume are independent numbers, so nothing needs to be enforced. It costs twice as much per image as
  ``"hartley"``; its latent space organises in fewer epochs (the same network weights, seen with the sine
  features negated, serve k and −k).

Architecture (cryoDRGN's residual MLP, made cheaper): features = positional encoding of k; first layer
``W_k·features + W_z·z + b`` where the z part is computed once per image (B, hidden) and broadcast over the
points; then ``dec_layers`` residual layers ``h ← act(W h + b + h)``; then Linear(hidden, 2). Mixed precision:
under ``torch.autocast`` the linear layers run in bf16/fp16; the positional encoding is always computed in
float32 and the output is returned in float32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cryoscape.geometry.fourier import iht3_center
from cryoscape.models.config import ModelConfig
from cryoscape.models.fused import encoded_first_layer, onednn_linear_available
from cryoscape.models.positional import PositionalEncoding
from cryoscape.models.precision import reduced_dtype

#: Points of one network pass when decoding volumes on CPU: bounds the activations' memory and keeps them in
#: cache (4096 × 256 floats = 4 MiB; larger passes spill to memory and were slower on CPU).
DEFAULT_BATCH_POINTS = 4096
#: The same on a CUDA device, where a pass must be large to fill the GPU (131072 × 1024 bf16 values = 256 MiB
#: per activation buffer).
DEFAULT_BATCH_POINTS_CUDA = 131072

#: Added to a squared radius (px²) so that lattice points exactly on a sphere's edge count as inside
#: despite rounding.
RADIUS_TOLERANCE_PX2 = 1e-9


def batch_points_for(device: torch.device, batch_points: int | None) -> int:
    """``batch_points``, or the device's default (:data:`DEFAULT_BATCH_POINTS`, :data:`DEFAULT_BATCH_POINTS_CUDA`)."""
    if batch_points is not None:
        return int(batch_points)
    return DEFAULT_BATCH_POINTS_CUDA if device.type == "cuda" else DEFAULT_BATCH_POINTS


def make_activation(name: str) -> nn.Module:
    """The activation module for a :data:`~cryoscape.models.config.ACTIVATIONS` name."""
    table = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(table)}")
    return table[name]()


class _ResidualReLU(torch.autograd.Function):
    """``relu(h @ Wᵀ + b + h)`` for 2-D ``h`` with a fused forward epilogue and a fused backward.

    Forms of the same function (:func:`residual_form` chooses by device and dtype); ``weight`` is W, or ``W + I``
    (:func:`residual_weight`) in the folded forms, where ``h @ (W + I)ᵀ = h @ Wᵀ + h`` makes the layer one matrix
    product with bias and ReLU (the gradient of ``W + I`` is the gradient of W):

    - ``"plain"``: ``nn.Linear`` then ``+ h`` then ``relu`` (same operations, same order), the residual and the
      activation applied in place in the product's output buffer;
    - ``"folded"``: ``torch._addmm_activation``: on CUDA one cuBLASLt kernel whose epilogue adds the bias and
      applies the ReLU, so the activations are written once;
    - ``"onednn_folded"``: the same through oneDNN's linear with a ReLU post-op (CPU, float32: ``W + I`` is exact
      to float32 rounding there);
    - ``"onednn_sum"``: oneDNN's linear with the residual as a sum post-op (bias and residual added to the
      float32 accumulator, one rounding), then ReLU in place (CPU, bf16: there ``W + I`` would round the diagonal
      to bf16's coarse spacing near 1).

    The backward takes the ReLU mask from the saved output and folds the residual gradient into the matrix
    product (``g @ (W + I)``, one rounding instead of two in bf16). Tests compare every form with the plain
    composition.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, form: str) -> torch.Tensor:
        if form == "folded":
            out = torch._addmm_activation(bias, h, weight.t())
        elif form == "onednn_folded":
            out = torch.ops.mkldnn._linear_pointwise(h, weight, bias, "relu", [], "")
        elif form == "onednn_sum":
            out = torch.ops.mkldnn._linear_pointwise.binary(h, h, weight, bias, "add").relu_()
        else:
            out = torch.addmm(bias, h, weight.t()).add_(h).relu_()
        ctx.save_for_backward(h, weight, out)
        ctx.form = form
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight, out = ctx.saved_tensors
        grad_pre = torch.ops.aten.threshold_backward(grad, out, 0)  # grad where out > 0, else 0
        if ctx.form in ("folded", "onednn_folded"):
            grad_h = grad_pre.mm(weight)
        elif ctx.form == "onednn_sum":
            grad_h = torch.ops.mkldnn._linear_pointwise.binary(grad_pre, grad_pre, weight.t().contiguous(), None,
                                                               "add")
        else:
            grad_h = torch.addmm(grad_pre, grad_pre, weight)
        return grad_h, grad_pre.t().mm(h), grad_pre.sum(0), None


#: Forms of :class:`_ResidualReLU` whose weight argument is ``W + I``.
FOLDED_FORMS = ("folded", "onednn_folded")


def residual_form(device: torch.device, dtype: torch.dtype) -> str:
    """The form of :class:`_ResidualReLU` for activations of ``dtype`` on ``device``: ``"folded"`` on CUDA,
    ``"onednn_folded"`` (float32) or ``"onednn_sum"`` (bf16) on a CPU with oneDNN's fused linear, else
    ``"plain"``."""
    if device.type == "cuda":
        return "folded"
    if device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and onednn_linear_available():
        return "onednn_folded" if dtype == torch.float32 else "onednn_sum"
    return "plain"


def residual_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``W + I`` of a square weight, formed in float32 and then rounded to ``dtype`` (differentiable)."""
    eye = torch.eye(weight.shape[0], dtype=torch.float32, device=weight.device)
    return (weight.float() + eye).to(dtype)


def residual_stack(h: torch.Tensor, layers: nn.ModuleList, act: nn.Module) -> torch.Tensor:
    """Apply ``h ← act(layer(h) + h)`` for each Linear of ``layers`` to activations ``h`` (..., H).

    The layers run in the autocast dtype when autocast is on (weights cast as ``nn.Linear`` would be; gradients
    reach the float32 weights through the cast), else in ``h``'s dtype. ReLU layers use the fused
    :class:`_ResidualReLU` in the form of :func:`residual_form`; other activations the same ``addmm`` with the
    residual added in place.
    """
    shape = h.shape
    dtype = h.dtype
    if torch.is_autocast_enabled(h.device.type):
        dtype = torch.get_autocast_dtype(h.device.type)
    flat = h.reshape(-1, shape[-1]).to(dtype)
    form = residual_form(h.device, dtype) if isinstance(act, nn.ReLU) else None
    with torch.autocast(device_type=h.device.type, enabled=False):
        for layer in layers:
            bias = layer.bias.to(dtype)
            if form in FOLDED_FORMS:
                flat = _ResidualReLU.apply(flat, residual_weight(layer.weight, dtype), bias, form)
            elif form is not None:
                flat = _ResidualReLU.apply(flat, layer.weight.to(dtype), bias, form)
            else:
                flat = act(torch.addmm(bias, flat, layer.weight.to(dtype).t()).add_(flat))
    return flat.reshape(shape)


class _InferenceStack:
    """First-layer activation and :func:`residual_stack` (ReLU) for inference, in two reused buffers.

    Values equal ``residual_stack(relu(base + zproj), layers, ReLU)`` computed in ``dtype`` with the same form
    of the layers: on CUDA the folded one (``relu(h @ (W + I)ᵀ + b)`` in one product), elsewhere the plain one
    (the product, then the residual and ReLU in place), the same operations in the same order. Each layer writes
    its product into the buffer it does not read (``out=``): no tensor is allocated per layer.
    Fresh (rows, H) outputs cost a new multi-megabyte allocation per layer whose first touch made the product
    slower on CPU (figures: ``benchmarks/map_generation.py``).

    Parameters
    ----------
    layers : nn.ModuleList
        The hidden ``nn.Linear(H, H)`` layers.
    rows : int
        Largest number of rows of one call.
    width : int
        H, the decoder's hidden width.
    dtype : torch.dtype
        Compute dtype (float32, or the reduced dtype of ``amp``).
    device : torch.device
    """

    def __init__(self, layers: nn.ModuleList, rows: int, width: int, dtype: torch.dtype, device: torch.device):
        self.folded = residual_form(device, dtype) == "folded"
        self.params = [((residual_weight(layer.weight, dtype) if self.folded else layer.weight.to(dtype)).t(),
                        layer.bias.to(dtype)) for layer in layers]
        self.buffers = [torch.empty((rows, width), dtype=dtype, device=device) for _ in range(2)]
        self.dtype = dtype

    def run(self, base: torch.Tensor, zproj: torch.Tensor) -> torch.Tensor:
        """``residual_stack(relu(base + zproj))`` for ``base`` (R, H) float32 and ``zproj`` (H,) float32.

        Returns a view of an internal buffer (R, H), valid until the next call.
        """
        n = base.shape[0]
        cur, nxt = self.buffers[0][:n], self.buffers[1][:n]
        if self.dtype == base.dtype:
            torch.add(base, zproj, out=cur)
        else:
            cur.copy_(base + zproj)
        cur.relu_()
        for weight_t, bias in self.params:
            if self.folded:
                torch._addmm_activation(bias, cur, weight_t, out=nxt)
            else:
                torch.addmm(bias, cur, weight_t, out=nxt).add_(cur).relu_()
            cur, nxt = nxt, cur
        return cur


def flip_to_canonical(coords: torch.Tensor) -> torch.Tensor:
    """Boolean (...,): True where ``coords`` (..., 3) is outside the canonical half-space (module doc)."""
    kx, ky, kz = coords[..., 0], coords[..., 1], coords[..., 2]
    on_plane = kz == 0
    return (kz > 0) | (on_plane & (ky > 0)) | (on_plane & (ky == 0) & (kx > 0))


#: Slack (cycles/pixel) added to the seam band's half-width when its points are counted on the host
#: (:func:`seam_band_rows`), far above the rounding of float32 coordinates, so the count bounds the device's.
BAND_COUNT_SLACK = 1e-5
#: :func:`seam_band_rows` rounds its bound up to a multiple of this many rows (fewer distinct shapes).
BAND_ROWS_ALIGN = 128


def seam_band_rows(points_2d: np.ndarray, rotations: np.ndarray, box_size: int, seam_band_px: float) -> int:
    """An upper bound, computed on the host, on the number of seam-band points of a batch (``Decoder.forward``'s
    ``band_capacity``).

    Parameters
    ----------
    points_2d : (P, 2) array
        The lattice points (cycles/pixel) evaluated for every image (``k @ R`` gives the 3-D points).
    rotations : (B, 3, 3) array
        The batch's rotation matrices.
    box_size : int
    seam_band_px : float
        The band's half-width b (> 0).

    Returns
    -------
    int
        The number of points with ``|kz| < b/D + BAND_COUNT_SLACK`` (``kz = k @ R[:2, 2]``), rounded up to a
        multiple of :data:`BAND_ROWS_ALIGN`, at least one multiple.
    """
    normal = np.asarray(rotations, dtype=np.float64)[:, :2, 2]  # (B, 2): kz of the slice's x and y axes
    kz = np.asarray(points_2d, dtype=np.float64) @ normal.T  # (P, B)
    count = int(np.count_nonzero(np.abs(kz) < seam_band_px / box_size + BAND_COUNT_SLACK))
    return max(1, -(-count // BAND_ROWS_ALIGN)) * BAND_ROWS_ALIGN


def grid_offsets_3d(box_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer frequency offsets (D³, 3) as (jx, jy, jz) of the centred grid [z, y, x], flat row-major.

    Index i along an axis holds offset ``i − D//2``.
    """
    j = torch.arange(box_size, device=device) - box_size // 2
    jz, jy, jx = torch.meshgrid(j, j, j, indexing="ij")
    return torch.stack([jx.reshape(-1), jy.reshape(-1), jz.reshape(-1)], dim=-1)


class Decoder(nn.Module):
    """V(k, z) → Hartley pair (H(k), H(−k)) of a real volume (see module docstring).

    Parameters
    ----------
    config : ModelConfig
        Uses dec_dim, dec_layers, pe_type, pe_dim, feat_sigma, domain, activation, zdim.
    box_size : int
        Box size D of the volume (pixels, even); sets the encoding's frequency scale and the default grid of
        :meth:`eval_volume`.
    generator : torch.Generator, optional
        Source of the random frequencies of the gaussian encoding (the weights use torch's global RNG).

    Attributes (state-dict names)
    -----------------------------
    pe.freqs : (3, M) buffer; input_coords : Linear(pe.out_dim, dec_dim); input_z : Linear(zdim, dec_dim,
    bias=False) or None; hidden : ModuleList of dec_layers Linear(dec_dim, dec_dim); output :
    Linear(dec_dim, 2), or Linear(dec_dim, 1) for ``domain="hartley_full"``.
    """

    def __init__(self, config: ModelConfig, box_size: int, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.box_size = int(box_size)
        self.zdim = config.zdim
        self.domain = config.domain
        self.seam_band_px = 0.0 if config.domain == "hartley_full" else float(config.seam_band_px)
        self.pe = PositionalEncoding(config.pe_type, self.box_size, config.resolved_pe_dim(self.box_size),
                                     config.feat_sigma, generator)
        hidden = config.dec_dim
        self.input_coords = nn.Linear(self.pe.out_dim, hidden)
        self.input_z = nn.Linear(self.zdim, hidden, bias=False) if self.zdim > 0 else None
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(config.dec_layers)])
        self.full_space = self.domain == "hartley_full"
        self.output = nn.Linear(hidden, 1 if self.full_space else 2)
        self.act = make_activation(config.activation)
        #: Use the hand-fused encoding + first layer (:mod:`cryoscape.models.fused`); False = plain modules.
        self.fused = True
        #: Whether the last :meth:`forward` with a ``band_capacity`` found more band points than that bound
        #: (a boolean scalar on the device), else None.
        self.band_overflow: torch.Tensor | None = None
        if config.resolved_first_layer_init() == "joint":
            self._init_first_layer_jointly()

    def _init_first_layer_jointly(self) -> None:
        """Initialise ``input_coords`` and ``input_z`` as ONE Linear over [features, z] (cryoDRGN's layer).

        ``nn.Linear`` draws weights and bias from U(−1/√fan_in, 1/√fan_in); separately initialised, the z
        projection (fan_in = zdim) starts ~√(features/zdim) times larger than in the concatenated layer. Used
        when ``config.resolved_first_layer_init()`` is ``"joint"`` (see
        :attr:`cryoscape.models.config.ModelConfig.first_layer_init` for when and the measurements).
        """
        bound = 1.0 / (self.pe.out_dim + self.zdim) ** 0.5
        with torch.no_grad():
            self.input_coords.weight.uniform_(-bound, bound)
            self.input_coords.bias.uniform_(-bound, bound)
            if self.input_z is not None:
                self.input_z.weight.uniform_(-bound, bound)

    # ------------------------------------------------------------------ network
    def network(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Raw network output at the given points, without canonicalisation.

        Parameters
        ----------
        coords : torch.Tensor, shape (B, P, 3) or (P, 3)
            Frequencies (cycles/pixel).
        z : torch.Tensor, shape (B, zdim), or None
            Latents (required iff zdim > 0).

        Returns
        -------
        torch.Tensor, shape (B, P, n_out) (or (P, n_out) when coords is 2-D and z is None); autocast dtype.
            n_out = 1 for ``domain="hartley_full"``, else 2.
        """
        h = residual_stack(self.first_layer(coords, z), self.hidden, self.act)
        return self.output(h)

    def first_layer(self, coords: torch.Tensor, z: torch.Tensor | None = None,
                    mirrored: bool = False) -> torch.Tensor:
        """Activations after the first layer: ``act(W_k·PE(k) + b + W_z·z)``.

        Parameters
        ----------
        coords : torch.Tensor, shape (B, P, 3) or (P, 3)
            Frequencies (cycles/pixel).
        z : torch.Tensor, shape (B, zdim), or None
            Latents (required iff zdim > 0).
        mirrored : bool
            Evaluate ``cat([k, −k], dim=−2)`` (rows: the P points, then their mirrors), as ``hartley_full`` does.

        Returns
        -------
        torch.Tensor, shape (B, P or 2P, H) (or (P or 2P, H) for 2-D coords and no z); autocast dtype.
            Computed by :func:`cryoscape.models.fused.encoded_first_layer` (one encoding for k and −k) when
            :attr:`fused` is on, the activation is ReLU and no gradient is asked for the coordinates; else by
            the plain composition of modules (the reference the fused path is tested against).
        """
        if self.zdim > 0:
            if z is None:
                raise ValueError(f"this decoder has zdim={self.zdim}: a latent z (B, {self.zdim}) is needed")
            if z.ndim != 2 or z.shape[1] != self.zdim:
                raise ValueError(f"z must have shape (B, {self.zdim}), got {tuple(z.shape)}")
            if coords.ndim == 3 and coords.shape[0] != z.shape[0]:
                raise ValueError(f"coords batch {coords.shape[0]} != z batch {z.shape[0]}")
        elif z is not None:
            raise ValueError("this decoder is homogeneous (zdim=0): pass z=None")
        shared = coords.ndim == 2 and z is not None and z.shape[0] > 1  # points broadcast over latents
        if (self.fused and isinstance(self.act, nn.ReLU) and self.pe.pe_type != "none" and not shared
                and not coords.requires_grad):
            return self._fused_first_layer(coords, z, mirrored)
        if mirrored:
            coords = torch.cat([coords, -coords], dim=-2)
        h = self.input_coords(self.pe(coords))
        if z is not None:
            h = h + self.input_z(z).unsqueeze(-2)
        return self.act(h)

    def _fused_first_layer(self, coords: torch.Tensor, z: torch.Tensor | None, mirrored: bool) -> torch.Tensor:
        """:meth:`first_layer` by :func:`cryoscape.models.fused.encoded_first_layer` (same shapes)."""
        squeeze = coords.ndim == 2 and z is None  # with a latent the plain path broadcasts to (1, P, H)
        k = coords.unsqueeze(0) if coords.ndim == 2 else coords
        dtype = self.input_coords.weight.dtype
        if torch.is_autocast_enabled(k.device.type):
            dtype = torch.get_autocast_dtype(k.device.type)
        z_weight = None if z is None else self.input_z.weight.to(dtype)
        weight, bias = self.input_coords.weight.to(dtype), self.input_coords.bias.to(dtype)
        with torch.autocast(device_type=k.device.type, enabled=False):
            h = encoded_first_layer(k.reshape(-1, 3), self.pe.freqs, z, z_weight, weight, bias, k.shape[0],
                                    mirrored)
        return h[0] if squeeze else h

    def _as_pairs(self, out: torch.Tensor) -> torch.Tensor:
        """Network outputs (..., 2) at canonical points → Hartley pairs (H(k), H(−k)) (module docstring)."""
        if self.domain == "fourier":
            re, im = out[..., 0], out[..., 1]
            return torch.stack([re - im, re + im], dim=-1)
        return out

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None,
                band_capacity: int | None = None) -> torch.Tensor:
        """Hartley pairs (H(k), H(−k)) at ``coords``.

        Parameters
        ----------
        coords : torch.Tensor, shape (B, P, 3) or (P, 3)
            Frequencies k (cycles/pixel), e.g. slice lattice points ``k₂ @ R``. A (P, 3) array is shared
            by all images of ``z``.
        z : torch.Tensor, shape (B, zdim), or None
            Latents (required iff zdim > 0).
        band_capacity : int, optional
            For (B, P, 3) coordinates: an upper bound on the number of points in the seam band
            (:func:`seam_band_rows` of the rotations), known on the host. The band's mirror evaluations then
            have this static count and the call never waits for the device; :attr:`band_overflow` records
            (on the device) whether the bound was too small. None: the band's points are counted on the device
            (one host synchronisation).

        Returns
        -------
        torch.Tensor, shape (B, P, 2) (or (P, 2) when coords is 2-D and z is None), float32
            ``[..., 0] = H(k)``, ``[..., 1] = H(−k)``.
        """
        if self.full_space:
            k = coords.float()
            h = residual_stack(self.first_layer(k, z, mirrored=True), self.hidden, self.act)
            both = self.output(h)[..., 0].float()  # f at the points, then at their mirrors
            n_points = k.shape[-2]
            return torch.stack([both[..., :n_points], both[..., n_points:]], dim=-1)
        with torch.autocast(device_type=coords.device.type, enabled=False):
            k = coords.float()
            flip = flip_to_canonical(k)
            kc = torch.where(flip.unsqueeze(-1), -k, k)
        self.band_overflow = None
        if self.seam_band_px > 0 and kc.ndim == 3:
            out = self._pairs_with_seam_band(kc, z, band_capacity)
        else:
            out = self._as_pairs(self.network(kc, z).float())
            if self.seam_band_px > 0:
                out = self._blend_seam_band(kc, z, out)
        out = torch.where(flip.unsqueeze(-1), out.flip(-1), out)
        # k = 0 is its own mirror: both elements are the first one
        is_dc = (k == 0).all(-1, keepdim=True)
        return torch.where(is_dc, out[..., :1], out)

    def seam_weight(self, kz: torch.Tensor) -> torch.Tensor:
        """Weight w of the direct evaluation at canonical points with ``kz`` (cycles/pixel, ≤ 0): 1 outside the
        seam band, ``1/2 − kz·D/(2b)`` inside it (module docstring)."""
        return (0.5 - kz * (self.box_size / (2.0 * self.seam_band_px))).clamp(max=1.0)

    def in_seam_band(self, kc: torch.Tensor) -> torch.Tensor:
        """Boolean (...,): canonical points ``kc`` (..., 3) within the seam band (need the mirror evaluation)."""
        return kc[..., 2] * self.box_size > -self.seam_band_px

    def _band_slots(self, band: torch.Tensor, capacity: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flat indices of the seam band's points (``band``, (B·P,) boolean), in row-major order.

        ``capacity`` None: exactly the band's points (``nonzero``: one host synchronisation on CUDA). Else
        ``capacity`` slots filled by a prefix sum and a scatter, nothing read back: slots past the band's count
        hold the index ``B·P`` (one past the last point). Sets :attr:`band_overflow` when the band has more
        points than slots (those beyond are then not blended).

        Returns
        -------
        (torch.Tensor, torch.Tensor or None)
            The indices (n,) and, with a capacity, which slots hold a band point (n,) boolean.
        """
        if capacity is None:
            return band.nonzero(as_tuple=True)[0], None
        rows = band.shape[0]
        count = band.sum()
        position = torch.cumsum(band, 0) - 1
        slot = torch.where(band & (position < capacity), position, capacity)  # slot ``capacity`` is discarded
        index = torch.full((capacity + 1,), rows, dtype=torch.long, device=band.device)
        index.scatter_(0, slot, torch.arange(rows, device=band.device))
        self.band_overflow = count > capacity
        return index[:capacity], torch.arange(capacity, device=band.device) < count

    def _pairs_with_seam_band(self, kc: torch.Tensor, z: torch.Tensor | None,
                              capacity: int | None) -> torch.Tensor:
        """The pairs (B, P, 2) at canonical points ``kc`` (B, P, 3), blended inside the seam band (module
        docstring), with one network call over the B·P points and the mirrors of the band's points.

        Every row of that call is its own one-point "image" with its own latent. ``capacity``: see
        :meth:`_band_slots`; unfilled slots evaluate some real point, get weight 1 and write to a discarded row.
        """
        n_images, n_points = kc.shape[0], kc.shape[1]
        rows = n_images * n_points
        flat_kc = kc.reshape(-1, 3)
        index, valid = self._band_slots(self.in_seam_band(kc).reshape(-1), capacity)
        row = index.clamp(max=rows - 1)
        points = torch.cat([flat_kc, -flat_kc[row]]).unsqueeze(1)
        z_rows = None if z is None else torch.cat([z.repeat_interleave(n_points, dim=0), z[row // n_points]])
        both = self._as_pairs(self.network(points, z_rows).float())[:, 0]
        flat, mirror = both[:rows], both[rows:].flip(-1)
        w = self.seam_weight(flat_kc[row, 2])
        if valid is not None:
            w = torch.where(valid, w, 1.0)
        blended = w.unsqueeze(-1) * flat[row] + (1 - w.unsqueeze(-1)) * mirror
        if valid is None:
            return flat.index_put((index,), blended).view(n_images, n_points, 2)
        extended = torch.cat([flat, flat.new_zeros((1, 2))]).index_put((index,), blended)  # a discarded last row
        return extended[:rows].view(n_images, n_points, 2)

    def _blend_seam_band(self, kc: torch.Tensor, z: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
        """Blend the pairs ``out`` (..., P, 2) at points ``kc`` (P, 3) shared by every latent inside the seam
        band with the swapped pairs evaluated at ``−kc`` (module docstring; one call over the band's points)."""
        idx = self.in_seam_band(kc).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:  # the shape is known on the host after nonzero: no further synchronisation
            return out
        mirror = self._as_pairs(self.network(-kc[idx], z).float()).flip(-1)
        w = self.seam_weight(kc[idx, 2]).unsqueeze(-1)
        out = out.clone()
        out[..., idx, :] = w * out[..., idx, :] + (1 - w) * mirror
        return out

    # ------------------------------------------------------------------ volumes
    @torch.no_grad()
    def eval_hartley_volumes(self, z: torch.Tensor | None = None, box_size: int | None = None,
                             radius_px: float | None = None, batch_points: int | None = None,
                             amp: bool = False) -> torch.Tensor:
        """Centred Hartley transforms (N, D, D, D) of the volumes at latents ``z`` (zero outside the sphere).

        Only the canonical half of the sphere is evaluated; each evaluation fills a point and its mirror.
        See :meth:`eval_volumes` for the parameters. Values are in the decoder's units (not rescaled).
        """
        D = self.box_size if box_size is None else int(box_size)
        if D % 2 or D < 2 or D > self.box_size:
            raise ValueError(f"box_size must be even and at most the model's box {self.box_size}, got {D}")
        radius = D / 2 if radius_px is None else float(radius_px)
        device = self.output.weight.device
        if self.zdim > 0:
            if z is None:
                raise ValueError(f"this decoder has zdim={self.zdim}: give z of shape (N, {self.zdim})")
            z = torch.as_tensor(z, dtype=torch.float32, device=device).reshape(-1, self.zdim)
            n_vol = z.shape[0]
        else:
            if z is not None:
                raise ValueError("this decoder is homogeneous (zdim=0): pass z=None")
            n_vol = 1
        j = grid_offsets_3d(D, device)
        inside = (j.double() ** 2).sum(-1) <= radius**2 + RADIUS_TOLERANCE_PX2
        flip = flip_to_canonical(j)
        mirror_on_grid = (j > -(D // 2)).all(-1)  # -j has all components <= D/2 - 1
        flat = torch.arange(D**3, device=device)
        idx_can = flat[inside & ~flip]
        idx_orphan = flat[inside & flip & ~mirror_on_grid]  # mirror off the grid: evaluate at -k itself
        mirror_flat = self._flat_index(-j, D)
        k_eval = torch.cat([j[idx_can], -j[idx_orphan]]).to(torch.float32) / self.box_size
        n_can = idx_can.shape[0]
        # DC is its own mirror: it keeps the first element of its pair
        can_has_mirror = mirror_on_grid[idx_can] & (mirror_flat[idx_can] != idx_can)
        pairs = self.pairs_at_canonical_points(k_eval, z, batch_points, amp)  # (n_vol, n_points, 2)
        vols = torch.zeros((n_vol, D**3), dtype=torch.float32, device=device)
        vols[:, idx_can] = pairs[:, :n_can, 0]
        vols[:, mirror_flat[idx_can[can_has_mirror]]] = pairs[:, :n_can, 1][:, can_has_mirror]
        vols[:, idx_orphan] = pairs[:, n_can:, 1]
        return vols.reshape(n_vol, D, D, D)

    @torch.no_grad()
    def pairs_at_canonical_points(self, k: torch.Tensor, z: torch.Tensor | None = None,
                                  batch_points: int | None = None, amp: bool = False) -> torch.Tensor:
        """Hartley pairs (N, P, 2) float32 at canonical points ``k`` (P, 3) for every latent of ``z`` (N, zdim).

        The inference path of :meth:`forward` for many latents at the same points: the positional encoding
        and its first-layer projection are computed once for all latents (forward would redo them per
        call); the hidden layers are the same :func:`residual_stack`. ``k`` must lie in the canonical half-space
        (:func:`flip_to_canonical` False everywhere), as the grid points of :meth:`eval_hartley_volumes` do;
        the values equal ``forward(k, z)`` there (points of the seam band are also evaluated at ``−k`` and
        blended, as in :meth:`forward`).

        Parameters
        ----------
        k : torch.Tensor, shape (P, 3)
            Canonical frequencies (cycles/pixel).
        z : torch.Tensor, shape (N, zdim), or None
            Latents (None for a homogeneous decoder: N = 1).
        batch_points : int, optional
            Points per network pass (bounds memory: about 4·batch_points·dec_dim floats are live); default by
            device (:func:`batch_points_for`).
        amp : bool
            Run the hidden and output layers in reduced precision (bf16 on CPU and on CUDA where supported,
            else fp16); the positional encoding and the first layer stay float32.
        """
        if bool(flip_to_canonical(k).any()):
            raise ValueError("pairs_at_canonical_points needs points of the canonical half-space")
        device = self.output.weight.device
        k = k.to(device=device, dtype=torch.float32)
        dtype = reduced_dtype(device) if amp else torch.float32
        if self.zdim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.zdim:
                raise ValueError(f"this decoder has zdim={self.zdim}: give z of shape (N, {self.zdim})")
            z_proj = self.input_z(z.to(device=device, dtype=torch.float32))  # (N, H)
        elif z is not None:
            raise ValueError("this decoder is homogeneous (zdim=0): pass z=None")
        else:
            z_proj = torch.zeros((1, self.input_coords.out_features), dtype=torch.float32, device=device)
        w_out, b_out = self.output.weight.to(dtype).t(), self.output.bias.to(dtype)
        n_canonical = k.shape[0]
        band = self.in_seam_band(k) if self.seam_band_px > 0 else torch.zeros_like(k[:, 0], dtype=torch.bool)
        band_idx = band.nonzero(as_tuple=True)[0]
        k = torch.cat([k, -k[band_idx]])  # the band's mirror points are evaluated after the canonical ones
        n_points = k.shape[0]
        out = torch.empty((z_proj.shape[0], n_points, 2), dtype=torch.float32, device=device)
        chunk = max(1, batch_points_for(device, batch_points) // (2 if self.full_space else 1))
        stack = None
        if isinstance(self.act, nn.ReLU):  # else the generic residual_stack
            rows_max = min(n_points, chunk) * (2 if self.full_space else 1)
            stack = _InferenceStack(self.hidden, rows_max, self.input_coords.out_features, dtype, device)
        for p0 in range(0, n_points, chunk):
            k_chunk = k[p0:p0 + chunk]
            n_chunk = k_chunk.shape[0]
            if self.full_space:  # rows: the chunk's points, then their mirrors
                k_chunk = torch.cat([k_chunk, -k_chunk])
            # encoding and first-layer projection of this chunk of points, shared by every latent
            base = self.input_coords(self.pe(k_chunk))  # (rows, H) float32
            for i in range(z_proj.shape[0]):
                if stack is not None:
                    h = stack.run(base, z_proj[i])
                else:
                    h = residual_stack(self.act((base + z_proj[i]).to(dtype)), self.hidden, self.act)
                rows = torch.addmm(b_out, h, w_out).float()
                if self.full_space:
                    rows = torch.stack([rows[:n_chunk, 0], rows[n_chunk:, 0]], dim=-1)
                out[i, p0:p0 + n_chunk] = rows
        out = self._as_pairs(out)
        if band_idx.numel():
            w = self.seam_weight(k[band_idx, 2]).unsqueeze(-1)
            out[:, band_idx] = w * out[:, band_idx] + (1 - w) * out[:, n_canonical:].flip(-1)
        out = out[:, :n_canonical]
        is_dc = (k[:n_canonical] == 0).all(-1)
        out[:, is_dc, 1] = out[:, is_dc, 0]
        return out

    @staticmethod
    def _flat_index(offsets: torch.Tensor, box_size: int) -> torch.Tensor:
        """Flat [z, y, x] index of integer offsets (..., 3) (jx, jy, jz), wrapped into the grid."""
        i = (offsets + box_size // 2) % box_size
        return (i[..., 2] * box_size + i[..., 1]) * box_size + i[..., 0]

    @torch.no_grad()
    def eval_volumes(self, z: torch.Tensor | None = None, box_size: int | None = None,
                     radius_px: float | None = None, batch_points: int | None = None,
                     scale: float = 1.0, amp: bool = False) -> torch.Tensor:
        """Real-space volumes (N, D, D, D) float32, indexed [z, y, x], at latents ``z``.

        Parameters
        ----------
        z : torch.Tensor or array, shape (N, zdim), or None
            Latents; None for a homogeneous decoder (N = 1).
        box_size : int, optional
            Output box D' (even, ≤ the model's box D). A smaller box evaluates the central D'³ frequencies
            (k = j / D for offsets j ∈ [−D'/2, D'/2)), i.e. a Fourier-cropped map with voxel size × D/D';
            values are rescaled by (D'/D)³ so that density values are preserved (as
            ``geometry.fourier.fourier_crop``).
        radius_px : float, optional
            Frequencies with |j| > radius_px (pixels of the output grid) are set to zero; default D'/2 (the
            Nyquist sphere). ``math.inf`` evaluates the whole cube.
        batch_points : int, optional
            Rows of the matmul per network call, bounding memory; default by device (:func:`batch_points_for`).
        scale : float
            Factor applied to the decoded Hartley values (e.g. the data normalisation std).
        amp : bool
            Run the network's linear layers under autocast (bf16 on CPU, see
            :func:`cryoscape.models.precision.autocast_context`); the positional encoding, the outputs and the
            inverse transform stay float32; the maps stay close to the fp32 ones (the tolerance is in
            ``tests/models/test_decoders.py``).

        Returns
        -------
        torch.Tensor, shape (N, D', D', D'), float32, on the decoder's device
            ``iht3_center`` of the decoded Hartley volume: a slice of this volume's transform at ``k₂ @ R``
            equals the decoder's prediction there (exactly on grid points).
        """
        hartley = self.eval_hartley_volumes(z, box_size, radius_px, batch_points, amp)
        D = hartley.shape[-1]
        factor = scale * (D / self.box_size) ** 3
        return iht3_center(hartley * factor).to(torch.float32)

    @torch.no_grad()
    def eval_volume(self, z: torch.Tensor | None = None, box_size: int | None = None,
                    radius_px: float | None = None, batch_points: int | None = None,
                    scale: float = 1.0, amp: bool = False) -> torch.Tensor:
        """One real-space volume (D', D', D') at latent ``z`` (zdim,) or (1, zdim); see
        :meth:`eval_volumes`."""
        return self.eval_volumes(z, box_size, radius_px, batch_points, scale, amp)[0]

