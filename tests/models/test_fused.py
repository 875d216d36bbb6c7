"""The hand-fused encoding + first layer (models.fused) against the plain composition of modules."""

from __future__ import annotations

import pytest
import torch

from cryoscape.models import ModelConfig
from cryoscape.models.decoders import Decoder
from cryoscape.models.fused import encoded_first_layer


def _decoder(domain, zdim=3, pe_type="geom_ft", box=16, dim=32, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(zdim=zdim, dec_dim=dim, dec_layers=2, pe_type=pe_type, domain=domain)
    return Decoder(cfg, box, generator=torch.Generator().manual_seed(seed))


def _values_and_grads(dec, coords, z, fused, amp=False):
    dec.zero_grad(set_to_none=True)
    dec.fused = fused
    zz = None if z is None else z.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = dec(coords, zz)
    # a loss whose gradient differs per point and per pair member
    weights = torch.linspace(-1.0, 2.0, out.numel()).reshape(out.shape)
    (out.float() * weights).sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in dec.named_parameters()}
    if zz is not None:
        grads["z"] = zz.grad.detach().clone()
    return out.detach(), grads


@pytest.mark.parametrize("domain", ["hartley_full", "hartley", "fourier"])
@pytest.mark.parametrize("zdim", [0, 3])
@pytest.mark.parametrize("pe_type", ["geom_ft", "gaussian"])
def test_fused_matches_plain_fp32(domain, zdim, pe_type):
    dec = _decoder(domain, zdim=zdim, pe_type=pe_type)
    coords = torch.rand(4, 37, 3) - 0.5
    coords[:, :3] = 0.0  # DC rows (ties of the pair domains)
    z = torch.randn(4, zdim) if zdim else None
    plain, g_plain = _values_and_grads(dec, coords, z, fused=False)
    fused, g_fused = _values_and_grads(dec, coords, z, fused=True)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    assert set(g_plain) == set(g_fused)
    for name in g_plain:
        assert g_plain[name].abs().max() > 0, name  # every parameter takes part
        torch.testing.assert_close(g_fused[name], g_plain[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("domain", ["hartley_full", "hartley"])
def test_fused_matches_plain_bf16_autocast(domain):
    # bf16 autocast runs (emulated) on every x86 CPU; this checks values, not speed, so it is never skipped.
    # Both bf16 paths are compared with the fp32 result: the fused one must be no further from it than the
    # plain one (it rounds differently: k and -k share one encoding and their gradients are summed before the
    # product, which measured closer to fp32 than the plain path).
    dec = _decoder(domain, zdim=3, dim=64)
    coords = torch.rand(3, 41, 3) - 0.5
    z = torch.randn(3, 3)
    ref, g_ref = _values_and_grads(dec, coords, z, fused=False)
    plain, g_plain = _values_and_grads(dec, coords, z, fused=False, amp=True)
    fused, g_fused = _values_and_grads(dec, coords, z, fused=True, amp=True)
    assert fused.dtype == plain.dtype == torch.float32

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert rel(plain, ref) < 0.02
    assert rel(fused, ref) <= 1.5 * rel(plain, ref) + 1e-3
    for name in g_ref:
        assert rel(g_plain[name], g_ref[name]) < 0.1, name
        assert rel(g_fused[name], g_ref[name]) <= 1.5 * rel(g_plain[name], g_ref[name]) + 1e-3, name


def _layer_inputs(n_images, n_points, m, hidden, seed=1):
    torch.manual_seed(seed)
    points = torch.rand(n_images * n_points, 3) - 0.5
    freqs = torch.randn(3, m) * 40.0  # phases of tens of radians, as at box 64
    weight = torch.randn(hidden, 2 * m, requires_grad=True)
    bias = torch.randn(hidden, requires_grad=True)
    z = torch.randn(n_images, 3, requires_grad=True)
    z_weight = torch.randn(hidden, 3, requires_grad=True)
    return points, freqs, weight, bias, z, z_weight


def test_first_layer_is_the_layer_at_the_points_and_their_mirrors():
    n_images, n_points, m, hidden = 2, 9, 5, 7
    points, freqs, weight, bias, z, z_weight = _layer_inputs(n_images, n_points, m, hidden)

    def reference(k):
        phase = k @ freqs
        feats = torch.cat([torch.sin(phase), torch.cos(phase)], -1)
        h = (feats @ weight.t() + bias).view(n_images, n_points, hidden) + (z @ z_weight.t())[:, None]
        return torch.relu(h)

    for mirrored in (False, True):
        expected = reference(points)
        if mirrored:  # the layer evaluated at k, then at -k
            expected = torch.cat([expected, reference(-points)], dim=1)
        got = encoded_first_layer(points, freqs, z, z_weight, weight, bias, n_images, mirrored=mirrored)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(expected)
        grads_expected = torch.autograd.grad(expected, (weight, bias, z, z_weight), g)
        grads_got = torch.autograd.grad(got, (weight, bias, z, z_weight), g)
        for a, b in zip(grads_got, grads_expected, strict=True):
            assert b.abs().max() > 0
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mirrored", [False, True])
@pytest.mark.parametrize("chunk_rows", [4, 9, 20, 1000])
def test_blocks_of_rows_give_the_whole_layer(mirrored, chunk_rows):
    # 4: every image cut into point ranges (the last one short); 9: one image per block; 20: two images per
    # block and a last block of one; 1000: one block. All must equal the layer computed in one block.
    n_images, n_points, m, hidden = 5, 9, 6, 8
    points, freqs, weight, bias, z, z_weight = _layer_inputs(n_images, n_points, m, hidden, seed=2)
    g = torch.randn(n_images, 2 * n_points if mirrored else n_points, hidden)
    results = []
    for rows in (n_images * n_points, chunk_rows):
        out = encoded_first_layer(points, freqs, z, z_weight, weight, bias, n_images, mirrored, chunk_rows=rows)
        results.append((out, torch.autograd.grad(out, (weight, bias, z, z_weight), g)))
    (whole, g_whole), (blocked, g_blocked) = results
    assert (whole > 0).any() and (whole == 0).any()  # the ReLU mask takes part
    torch.testing.assert_close(blocked, whole, rtol=1e-6, atol=1e-6)
    for a, b in zip(g_blocked, g_whole, strict=True):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_large_encodings_are_recomputed_in_blocks(monkeypatch):
    # the default keeps the encoding up to KEEP_ENCODING_BYTES; above it the layer works in blocks of
    # CHUNK_ROWS and recomputes the encoding in the backward, with the same values and gradients
    from cryoscape.models import fused

    dec = _decoder("hartley_full", zdim=3, dim=32)  # (no seam band: one network call per forward)
    coords = torch.rand(6, 40, 3) - 0.5
    z = torch.randn(6, 3)
    kept, g_kept = _values_and_grads(dec, coords, z, fused=True)
    monkeypatch.setattr(fused, "KEEP_ENCODING_BYTES", 0)
    monkeypatch.setattr(fused, "CHUNK_ROWS", 64)  # blocks of one image (40 rows)
    calls = []
    original = fused._features
    monkeypatch.setattr(fused, "_features", lambda *a: calls.append(a[4][1] - a[4][0]) or original(*a))
    blocked, g_blocked = _values_and_grads(dec, coords, z, fused=True)
    assert calls == [1] * 12  # six blocks of one image forward, the same six recomputed backward
    torch.testing.assert_close(blocked, kept, rtol=1e-6, atol=1e-6)
    for name in g_kept:
        torch.testing.assert_close(g_blocked[name], g_kept[name], rtol=1e-5, atol=1e-5, msg=name)


def test_plain_path_used_where_the_fused_one_does_not_apply():
    dec = _decoder("hartley_full", zdim=3)
    coords = (torch.rand(2, 11, 3) - 0.5).requires_grad_(True)
    z = torch.randn(2, 3)
    out = dec(coords, z)  # coordinates asking for a gradient: plain path, gradient reaches them
    out.sum().backward()
    assert coords.grad is not None and coords.grad.abs().max() > 0
    with pytest.raises(ValueError):
        encoded_first_layer(torch.zeros(4, 3, requires_grad=True), torch.zeros(3, 3), None, None,
                            torch.zeros(5, 6), torch.zeros(5), 1)
    with pytest.raises(ValueError):  # rows not a whole number of images
        encoded_first_layer(torch.zeros(5, 3), torch.zeros(3, 3), None, None, torch.zeros(5, 6), torch.zeros(5), 2)
    with pytest.raises(ValueError):  # a latent without its weight
        encoded_first_layer(torch.zeros(4, 3), torch.zeros(3, 3), torch.zeros(1, 2), None, torch.zeros(5, 6),
                            torch.zeros(5), 1)
    shared = torch.rand(11, 3) - 0.5  # points shared by several latents
    dec.fused = True
    fused = dec(shared, z)
    dec.fused = False
    torch.testing.assert_close(fused, dec(shared, z), rtol=1e-5, atol=1e-5)
    for z_one in (z[:1], None):  # one latent, or none, at 2-D points: the plain path's shapes
        for domain in ("hartley_full", "hartley"):
            d = _decoder(domain, zdim=0 if z_one is None else 3)
            d.fused = True
            fused = d(shared, z_one)
            d.fused = False
            plain = d(shared, z_one)
            assert fused.shape == plain.shape
            torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
