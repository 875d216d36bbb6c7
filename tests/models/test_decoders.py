"""Decoder: shapes, exact Hermitian symmetry, volumes consistent with slices, mixed precision, learning."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from cryoscape.geometry.lattice import hermitian_half, slice_coords
from cryoscape.models import ModelConfig
from cryoscape.models.decoders import Decoder, residual_stack
from cryoscape.models.vae import HomogeneousModel


def _ht3_numpy(vol: np.ndarray) -> np.ndarray:
    """Independent centred 3-D Hartley transform: Re - Im of fftshift(fftn(ifftshift(v)))."""
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(vol.astype(np.float64))))
    return f.real - f.imag


def _decoder(domain="hartley", zdim=3, pe_type="gaussian", box=12, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(zdim=zdim, dec_dim=32, dec_layers=2, pe_type=pe_type, domain=domain)
    return Decoder(cfg, box, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("domain", ["hartley", "hartley_full", "fourier"])
def test_shapes_and_shared_coordinates(domain):
    dec = _decoder(domain=domain)
    z = torch.randn(4, 3)
    coords = torch.rand(4, 50, 3) - 0.5
    assert dec(coords, z).shape == (4, 50, 2)
    shared = torch.rand(50, 3) - 0.5
    out_shared = dec(shared, z)
    out_expanded = dec(shared.expand(4, 50, 3), z)
    assert out_shared.shape == (4, 50, 2)
    torch.testing.assert_close(out_shared, out_expanded)
    homo = _decoder(domain=domain, zdim=0)
    assert homo(shared).shape == (50, 2)
    assert homo(coords).shape == (4, 50, 2)
    with pytest.raises(ValueError):
        dec(coords, None)


@pytest.mark.parametrize("domain", ["hartley", "fourier"])
@pytest.mark.parametrize("pe_type", ["gaussian", "geom_ft", "geom_lowf", "none"])
def test_hermitian_symmetry(domain, pe_type):
    dec = _decoder(domain=domain, pe_type=pe_type)
    z = torch.randn(3, 3)
    k = torch.rand(3, 40, 3) - 0.5
    k[:, :5, 2] = 0.0  # points on the kz = 0 plane use the tie-break
    k[:, :2, 1] = 0.0
    k[:, 5] = 0.0  # DC: its own mirror, both elements equal
    plus, minus = dec(k, z), dec(-k, z)
    torch.testing.assert_close(minus, plus.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(plus[:, 5, 0], plus[:, 5, 1], rtol=0, atol=0)


def test_fourier_domain_pair_is_re_minus_im_and_re_plus_im():
    dec = _decoder(domain="fourier")
    z = torch.randn(2, 3)
    k = torch.rand(2, 30, 3) - 0.5
    # canonical half-space beyond the seam band (|kz| > 1 frequency pixel): network evaluated as is
    k[..., 2] = -k[..., 2].abs() - 1.5 / 12
    raw = dec.network(k, z)
    pair = dec(k, z)
    torch.testing.assert_close(pair[..., 0], raw[..., 0] - raw[..., 1])
    torch.testing.assert_close(pair[..., 1], raw[..., 0] + raw[..., 1])
    # outside the half-space the value is the complex conjugate of F(-k): H(k) = Re + Im
    torch.testing.assert_close(dec(-k, z)[..., 0], raw[..., 0] + raw[..., 1])


@pytest.mark.parametrize("domain", ["hartley", "fourier"])
def test_seam_band_makes_the_transform_continuous_across_the_plane(domain):
    from cryoscape.analysis.seam import seam_profile

    z = torch.randn(4, 3)
    banded = _decoder(domain=domain)
    assert banded.seam_band_px == 1.0  # the default
    hard = Decoder(dataclasses.replace(banded.config, seam_band_px=0.0), 12)
    hard.load_state_dict(banded.state_dict())
    jump_banded = seam_profile(banded, z).relative_jump
    jump_hard = seam_profile(hard, z).relative_jump
    assert np.nanmax(jump_hard) > 0.05  # an untrained network's half-spaces disagree
    assert np.nanmax(jump_banded) < 0.01  # continuous: only the slope over 2·10⁻³ px remains
    # on the plane the pair is the mean of the direct and the swapped mirror evaluation
    k = torch.tensor([[[2.0, -3.0, 0.0], [1.0, 4.0, -0.5]]]) / 12
    raw = banded._as_pairs(banded.network(k, z[:1]))
    mirror = banded._as_pairs(banded.network(-k, z[:1])).flip(-1)
    out = banded(k, z[:1])
    torch.testing.assert_close(out[0, 0], (raw[0, 0] + mirror[0, 0]) / 2)
    torch.testing.assert_close(out[0, 1], 0.75 * raw[0, 1] + 0.25 * mirror[0, 1])  # kz = -0.5 px: w = 3/4
    # the batched (B, P, 3) path and the shared (P, 3) path agree
    kk = torch.rand(4, 30, 3) - 0.5
    kk[:, :10, 2] = (torch.rand(4, 10) - 0.5) / 12  # inside the band
    per_image = banded(kk, z)
    shared = torch.stack([banded(kk[i], z[i:i + 1]).reshape(30, 2) for i in range(4)])
    torch.testing.assert_close(per_image, shared)


def test_configs_without_seam_band_load_with_the_hard_switch():
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k != "seam_band_px"}
    assert ModelConfig.from_dict(legacy).seam_band_px == 0.0
    assert ModelConfig.from_dict(ModelConfig().to_dict()).seam_band_px == ModelConfig().seam_band_px == 1.0
    with pytest.raises(Exception, match="seam_band_px"):
        ModelConfig(seam_band_px=-1.0)


@pytest.mark.parametrize("pe_type", ["gaussian", "geom_ft", "none"])
def test_hartley_full_evaluates_one_output_at_k_and_minus_k(pe_type):
    dec = _decoder(domain="hartley_full", pe_type=pe_type)
    assert dec.output.out_features == 1
    z = torch.randn(3, 3)
    k = torch.rand(3, 40, 3) - 0.5
    k[:, 5] = 0.0
    with torch.no_grad():
        pairs = dec(k, z)
        plus, minus = dec.network(k, z)[..., 0], dec.network(-k, z)[..., 0]
    assert pairs.shape == (3, 40, 2)
    torch.testing.assert_close(pairs[..., 0], plus)
    torch.testing.assert_close(pairs[..., 1], minus)
    torch.testing.assert_close(dec(-k, z), pairs.flip(-1))  # a valid Hartley pair field
    torch.testing.assert_close(pairs[:, 5, 0], pairs[:, 5, 1])
    # points off the canonical half-space are not folded: f(k) and f(-k) are independent values
    assert not torch.allclose(plus, minus)
    homogeneous = _decoder(domain="hartley_full", zdim=0, pe_type=pe_type)
    shared = torch.rand(50, 3) - 0.5
    with torch.no_grad():
        torch.testing.assert_close(homogeneous(shared),
                                   torch.cat([homogeneous.network(shared), homogeneous.network(-shared)], -1))


def _permutation_rotations():
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product([1, -1], repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            if np.isclose(np.linalg.det(m), 1):
                mats.append(m)
    return np.array(mats)  # the 24 rotations of the cube


@pytest.mark.parametrize("domain", ["hartley", "hartley_full", "fourier"])
def test_eval_volume_matches_slice_predictions(domain):
    box = 12
    dec = _decoder(domain=domain, box=box)
    z = torch.randn(2, 3)
    vols = dec.eval_volumes(z)
    assert vols.shape == (2, box, box, box) and vols.dtype == torch.float32
    rots = torch.tensor(_permutation_rotations(), dtype=torch.float32)
    idx_half, idx_mirror = hermitian_half(box)  # disc up to Nyquist
    k2 = torch.tensor(slice_coords(box), dtype=torch.float32)[torch.as_tensor(idx_half)]
    half = box // 2
    for n in range(2):
        h3 = _ht3_numpy(vols[n].numpy())
        coords = k2 @ rots  # (24, P, 3): the slice points k @ R, exactly on the grid
        with torch.no_grad():
            pairs = dec(coords, z[n:n + 1].expand(len(rots), 3)).numpy()
        j = np.rint(coords.numpy() * box).astype(int)
        ok = np.all(j >= -half, axis=-1) & np.all(j < half, axis=-1)
        jm = -j
        ok_m = np.all(jm >= -half, axis=-1) & np.all(jm < half, axis=-1)
        got = h3[j[..., 2] + half, j[..., 1] + half, j[..., 0] + half]
        got_m = h3[(jm[..., 2] + half) % box, (jm[..., 1] + half) % box, (jm[..., 0] + half) % box]
        scale = np.abs(pairs).max()
        np.testing.assert_allclose(got[ok], pairs[..., 0][ok], atol=1e-4 * scale)
        np.testing.assert_allclose(got_m[ok_m], pairs[..., 1][ok_m], atol=1e-4 * scale)
    assert np.all(idx_mirror >= 0)


def test_eval_volume_outside_sphere_is_zero_and_cropped_box():
    box = 12
    dec = _decoder(box=box)
    z = torch.randn(1, 3)
    h = dec.eval_hartley_volumes(z)[0].numpy()
    j = np.arange(box) - box // 2
    r2 = j[:, None, None] ** 2 + j[None, :, None] ** 2 + j[None, None, :] ** 2
    assert np.all(h[r2 > (box / 2) ** 2] == 0)
    assert np.count_nonzero(h[r2 <= (box / 2) ** 2]) == np.count_nonzero(r2 <= (box / 2) ** 2)
    full = dec.eval_hartley_volumes(z, radius_px=np.inf)[0].numpy()
    assert np.count_nonzero(full) == box**3
    np.testing.assert_array_equal(full[r2 <= (box / 2) ** 2], h[r2 <= (box / 2) ** 2])
    # a cropped box holds the central frequencies of the full one
    small = dec.eval_hartley_volumes(z, box_size=8, radius_px=np.inf)[0].numpy()
    np.testing.assert_array_equal(small, full[2:10, 2:10, 2:10])
    vol_small = dec.eval_volume(z, box_size=8, radius_px=np.inf).numpy()
    np.testing.assert_allclose(_ht3_numpy(vol_small) * (box / 8) ** 3, small, atol=1e-4 * np.abs(small).max())


def test_homogeneous_eval_volume_and_scale():
    dec = _decoder(zdim=0)
    v1 = dec.eval_volume()
    v2 = dec.eval_volume(scale=2.5)
    assert v1.shape == (12, 12, 12)
    torch.testing.assert_close(v2, 2.5 * v1)


@pytest.mark.parametrize("domain", ["hartley", "hartley_full"])
def test_bf16_autocast_close_to_fp32(domain):
    torch.manual_seed(0)
    cfg = ModelConfig(zdim=4, dec_dim=64, dec_layers=3, domain=domain)
    dec = Decoder(cfg, 32, generator=torch.Generator().manual_seed(0))
    k = torch.rand(4, 200, 3) - 0.5
    z = torch.randn(4, 4)
    with torch.no_grad():
        ref = dec(k, z)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = dec(k, z)
    assert low.dtype == torch.float32
    rel = float((low - ref).norm() / ref.norm())
    assert 0 < rel < 0.05


def test_gradient_steps_fit_a_tiny_volume():
    box = 8
    rng = np.random.default_rng(0)
    vol = rng.standard_normal((box, box, box))
    h3 = _ht3_numpy(vol) / box**1.5
    j = np.stack(np.meshgrid(*[np.arange(box) - box // 2] * 3, indexing="ij"), -1).reshape(-1, 3)[:, ::-1]
    inside = (j**2).sum(-1) <= (box // 2 - 1) ** 2
    j = j[inside]
    target = np.stack([h3[j[:, 2] + 4, j[:, 1] + 4, j[:, 0] + 4], h3[-j[:, 2] + 4, -j[:, 1] + 4, -j[:, 0] +
    4]], -1)
    coords = torch.tensor(j / box, dtype=torch.float32)
    target = torch.tensor(target, dtype=torch.float32)
    torch.manual_seed(0)
    model = HomogeneousModel(ModelConfig(zdim=0, dec_dim=64, dec_layers=2, pe_type="geom_ft"), box)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = ((model.decoder(coords) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize("domain", ["hartley", "hartley_full"])
def test_eval_volumes_bf16_close_to_fp32(domain):
    torch.manual_seed(0)
    cfg = ModelConfig(zdim=4, dec_dim=64, dec_layers=3, domain=domain)
    dec = Decoder(cfg, 16, generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 4)
    ref = dec.eval_volumes(z)
    low = dec.eval_volumes(z, amp=True)
    assert low.dtype == torch.float32 and low.shape == ref.shape == (3, 16, 16, 16)
    rel = float((low - ref).norm() / ref.norm())
    assert 0 < rel < 0.02  # not bit-identical (autocast ran), yet close
    corr = np.corrcoef(low.numpy().ravel(), ref.numpy().ravel())[0, 1]
    assert corr > 0.999


@pytest.mark.parametrize("domain", ["hartley", "hartley_full"])
def test_eval_volumes_same_in_point_chunks(domain):
    dec = _decoder(domain=domain, box=12)
    z = torch.randn(3, 3)
    whole = dec.eval_volumes(z)
    chunked = dec.eval_volumes(z, batch_points=37)  # many chunks, the last one partial
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def _first_layer_bounds(dec: Decoder) -> dict[str, float]:
    return {"coords_w": dec.input_coords.weight.abs().max().item(),
            "coords_b": dec.input_coords.bias.abs().max().item(), "z": dec.input_z.weight.abs().max().item()}


@pytest.mark.parametrize(("domain", "zdim", "init", "expected"), [
    ("hartley_full", 8, "auto", "joint"), ("hartley_full", 1, "auto", "joint"),
    ("hartley", 8, "auto", "joint"), ("fourier", 2, "auto", "joint"), ("hartley", 1, "auto", "separate"),
    ("fourier", 1, "auto", "separate"), ("hartley", 8, "separate", "separate"), ("hartley", 1, "joint", "joint"),
    ("hartley_full", 8, "separate", "separate"),
])
def test_first_layer_init_joint_or_separate(domain, zdim, init, expected):
    cfg = ModelConfig(zdim=zdim, dec_dim=256, dec_layers=1, domain=domain, first_layer_init=init)
    assert cfg.resolved_first_layer_init() == expected
    torch.manual_seed(0)
    dec = Decoder(cfg, 64, generator=torch.Generator().manual_seed(0))
    features = dec.pe.out_dim
    joint = 1 / (features + zdim) ** 0.5  # one nn.Linear over [features, z]
    bounds = _first_layer_bounds(dec)
    if expected == "joint":
        for name, value in bounds.items():
            assert 0.95 * joint < value <= joint, name  # uniform over the whole range, not shrunk further
    else:  # nn.Linear's own bound per part: 1/sqrt(features) for W_k and b, 1/sqrt(zdim) for W_z
        assert 0.95 / features**0.5 < bounds["coords_w"] <= 1 / features**0.5
        assert 0.8 / zdim**0.5 < bounds["z"] <= 1 / zdim**0.5
        assert bounds["z"] > 3 * joint


def test_first_layer_init_of_configs_written_before_the_field():
    for domain, init in (("hartley", "separate"), ("fourier", "separate"), ("hartley_full", "joint")):
        legacy = {k: v for k, v in ModelConfig(domain=domain).to_dict().items() if k != "first_layer_init"}
        assert ModelConfig.from_dict(legacy).first_layer_init == init
    assert ModelConfig.from_dict(ModelConfig().to_dict()).first_layer_init == ModelConfig().first_layer_init == "auto"
    with pytest.raises(Exception, match="first_layer_init"):
        ModelConfig(first_layer_init="xavier")


@pytest.mark.parametrize("act", [torch.nn.ReLU(), torch.nn.GELU()], ids=["relu", "gelu"])
@pytest.mark.parametrize("amp", [False, True])
def test_fused_residual_layers_match_the_plain_composition(amp, act, monkeypatch):
    # the plain form (the other forms are compared with it below)
    from cryoscape.models import decoders

    monkeypatch.setattr(decoders, "residual_form", lambda device, dtype: "plain")
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(48, 48) for _ in range(3)])
    x = torch.randn(2, 70, 48, requires_grad=True)

    def plain(h):
        for layer in layers:
            h = act(layer(h) + h)
        return h

    results = []
    for fn in (plain, lambda h: residual_stack(h, layers, act)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = fn(x.to(torch.bfloat16) if amp else x)  # the decoder's first layer gives bf16 under autocast
        grads = torch.autograd.grad(out.float().square().sum(), [x, *layers.parameters()])
        results.append((out.float(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    assert out_b.dtype == out_a.dtype == torch.float32 and out_b.shape == (2, 70, 48)
    if amp:  # same operations in bf16; the fused backward rounds g + g·W once instead of twice
        torch.testing.assert_close(out_b, out_a)
        for a, b in zip(grads_a, grads_b, strict=True):
            assert float((a - b).norm() / a.norm()) < 0.02
    else:
        torch.testing.assert_close(out_b, out_a, rtol=1e-6, atol=1e-6)
        for a, b in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_stack_reuses_its_buffers_and_equals_the_residual_stack(dtype, monkeypatch):
    from cryoscape.models import decoders
    from cryoscape.models.decoders import _InferenceStack

    monkeypatch.setattr(decoders, "residual_form", lambda device, dtype: "plain")  # the CPU stack's form

    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(32, 32) for _ in range(3)])
    stack = _InferenceStack(layers, rows=50, width=32, dtype=dtype, device=torch.device("cpu"))
    buffers = [b.data_ptr() for b in stack.buffers]
    for rows in (50, 17, 50):  # a partial chunk between full ones
        base, zproj = torch.randn(rows, 32), torch.randn(32)
        with torch.no_grad():
            want = residual_stack(torch.relu((base + zproj).to(dtype)), layers, torch.nn.ReLU())
            got = stack.run(base, zproj)
        assert got.dtype == dtype and got.shape == (rows, 32)
        assert got.data_ptr() in buffers  # a view of a preallocated buffer, not a new tensor
        assert torch.equal(got, want)  # same operations in the same order
    assert [b.data_ptr() for b in stack.buffers] == buffers


# ------------------------------------------------------------------ the CUDA forms, checked on CPU
def _slices(n_images, box, seed, flat_first=True):
    """Coordinates (B, P, 3) of the loss half-disc of ``n_images`` slices: random rotations, the first one
    the identity (every point on the plane kz = 0: the whole slice is in the seam band)."""
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.models.decoders import seam_band_rows

    idx_half, _ = hermitian_half(box, box / 2)
    freqs = np.stack(np.meshgrid(np.arange(box) - box // 2, np.arange(box) - box // 2, indexing="xy"), -1)
    points_2d = (freqs.reshape(-1, 2)[np.asarray(idx_half)] / box).astype(np.float32)
    rotations = random_rotations(n_images, np.random.default_rng(seed)).astype(np.float32)
    if flat_first:
        rotations[0] = np.eye(3, dtype=np.float32)
    coords = torch.matmul(torch.from_numpy(points_2d), torch.from_numpy(rotations)[:, :2, :])
    return coords, seam_band_rows(points_2d, rotations, box, 1.0), points_2d, rotations


@pytest.mark.parametrize("domain", ["hartley", "fourier"])
def test_seam_band_with_a_host_bound_equals_the_band_counted_on_the_device(domain):
    dec = _decoder(domain=domain, box=16)
    coords, bound, _, _ = _slices(6, 16, seed=3)
    band = int(dec.in_seam_band(torch.where(coords[..., 2:] > 0, -coords, coords)).sum())
    assert band <= bound < band + 2 * 128  # an upper bound, rounded up to a multiple of 128 rows
    z = torch.randn(6, 3)
    results = []
    for capacity in (None, bound, bound + 300):
        zz = z.clone().requires_grad_(True)
        dec.zero_grad(set_to_none=True)
        out = dec(coords, zz, band_capacity=capacity)
        weights = torch.linspace(-1.0, 2.0, out.numel()).reshape(out.shape)
        (out * weights).sum().backward()
        grads = [zz.grad.clone()] + [p.grad.clone() for p in dec.parameters()]
        overflow = dec.band_overflow
        results.append((out.detach(), grads))
        assert (overflow is None) == (capacity is None) and (overflow is None or not bool(overflow))
    (ref, g_ref), *others = results
    for out, grads in others:
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        for a, b in zip(grads, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    dec(coords, z, band_capacity=band - 1)
    assert bool(dec.band_overflow)  # too small a bound is reported, on the device


def test_host_bound_of_the_seam_band_holds_for_many_rotations():
    from cryoscape.models.decoders import seam_band_rows

    dec = _decoder(box=32)
    coords, _, points_2d, rotations = _slices(400, 32, seed=5)
    kc = torch.where(coords[..., 2:] > 0, -coords, coords)
    device_count = dec.in_seam_band(kc).sum(dim=1).numpy()  # per image
    for i in range(len(rotations)):  # the bound of each image alone holds (the tightest case)
        assert seam_band_rows(points_2d, rotations[i:i + 1], 32, 1.0) >= device_count[i]
    assert device_count[0] == len(points_2d)  # the flat slice: all its points in the band


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("form", ["folded", "onednn_folded", "onednn_sum"])
def test_every_form_of_the_residual_layers_equals_the_plain_one(amp, form, monkeypatch):
    # the folded forms (CUDA's one product with bias and ReLU; oneDNN's with a ReLU post-op, W + I) and oneDNN's
    # sum post-op compute the same function as the plain form
    from cryoscape.models import decoders

    if form.startswith("onednn") and not decoders.onednn_linear_available():
        pytest.skip("this PyTorch build has no oneDNN fused linear")
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(48, 48) for _ in range(3)])
    x = torch.randn(2, 70, 48)
    results = []
    for chosen in ("plain", form):
        monkeypatch.setattr(decoders, "residual_form", lambda device, dtype, f=chosen: f)
        h = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = residual_stack(h.to(torch.bfloat16) if amp else h, layers, torch.nn.ReLU())
        grads = torch.autograd.grad(out.float().square().sum(), [h, *layers.parameters()])
        results.append((out.float().detach(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    assert (out_a == 0).any() and (out_a > 0).any()

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    # bf16: W + I is rounded once, the plain sum once per layer; fp32 agrees to rounding
    assert rel(out_b, out_a) < (0.02 if amp else 1e-5)
    for a, b in zip(grads_a, grads_b, strict=True):
        assert b.abs().max() > 0 and rel(b, a) < (0.05 if amp else 1e-5)


def test_forms_chosen_by_device_and_dtype():
    from cryoscape.models import decoders

    assert decoders.residual_form(torch.device("cuda"), torch.bfloat16) == "folded"
    cpu = decoders.residual_form(torch.device("cpu"), torch.float32), decoders.residual_form(
        torch.device("cpu"), torch.bfloat16)
    expected = ("onednn_folded", "onednn_sum") if decoders.onednn_linear_available() else ("plain", "plain")
    assert cpu == expected


def test_folded_inference_stack_equals_the_folded_residual_stack(monkeypatch):
    # CUDA's inference stack is folded: checked on CPU with the folded form forced on both
    from cryoscape.models import decoders

    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(48, 48) for _ in range(3)])
    monkeypatch.setattr(decoders, "residual_form", lambda device, dtype: "folded")
    stack = decoders._InferenceStack(layers, rows=140, width=48, dtype=torch.float32, device=torch.device("cpu"))
    base, zproj = torch.randn(140, 48), torch.randn(48)
    with torch.no_grad():
        want = residual_stack(torch.relu(base + zproj), layers, torch.nn.ReLU())
        got = stack.run(base, zproj)
    assert stack.folded
    assert torch.equal(got, want)
