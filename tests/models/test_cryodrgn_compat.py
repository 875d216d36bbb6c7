"""cryoDRGN import: our model reproduces an independent re-implementation of cryoDRGN's forward pass.

The reference below is written from cryoDRGN's published conventions (odd lattice linspace(-0.5, 0.5, D+1),
features [sin, cos, z], ResidLinear = W x + b + x, Hartley decoder on the full cube, Fourier decoder with the
kz > 0 → conjugate rule and the index half on kz = 0, volume = iht(values · norm[1] + norm[0]) of the D³
part),
in numpy float64, directly from the raw state-dict tensors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from cryoscape.errors import InputError
from cryoscape.models.cryodrgn_compat import (
    cryodrgn_checkpoint_safe_globals,
    cryodrgn_model_config,
    import_cryodrgn,
)


def _mlp(sd, prefix, x, act=lambda y: np.maximum(y, 0)):
    idx = sorted({int(k[len(prefix) + 5:].split(".")[0]) for k in sd if k.startswith(prefix + "main.")})
    for n, i in enumerate(idx):
        key = f"{prefix}main.{i}."
        residual = key + "linear.weight" in sd
        w = sd[key + ("linear.weight" if residual else "weight")]
        b = sd[key + ("linear.bias" if residual else "bias")]
        y = x @ w.T + b + (x if residual else 0)
        x = act(y) if n < len(idx) - 1 else y
    return x


def _features(sd, prefix, coords, pe_type, box, pe_dim):
    if pe_type == "gaussian":
        phase = coords @ (sd[prefix + "rand_freqs"] * (box // 2)).T
        return np.concatenate([np.sin(phase), np.cos(phase)], -1)
    i = np.arange(pe_dim)
    freqs = box * np.pi * (2.0 / box) ** (i / (pe_dim - 1))
    if pe_type == "geom_lowf":
        freqs = (box // 2) * (1.0 / (box // 2)) ** (i / (pe_dim - 1))
    k = coords[:, :, None] * freqs  # (N, 3, n)
    return np.concatenate([np.sin(k), np.cos(k)], -1).reshape(len(coords), -1)  # per axis [sin, cos]


def _iht3(v):
    f = np.fft.fftshift(np.fft.fftn(np.fft.fftshift(v)))
    return (f.real - f.imag) / v.size


def _reference_volume(sd, cfg, z):
    """cryoDRGN eval_vol re-implemented: (D+1)^3 lattice, drop +Nyquist, inverse Hartley."""
    ma, lat = cfg["model_args"], cfg["lattice_args"]
    big = lat["D"]
    box = big - 1
    norm = cfg["dataset_args"]["norm"]
    t = np.linspace(-0.5, 0.5, big)
    x, y = np.meshgrid(t, t)
    plane = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], -1)

    def net(coords):
        feats = _features(sd, "decoder.", coords, ma["pe_type"], box, ma["pe_dim"] or box // 2)
        feats = np.concatenate([feats, np.broadcast_to(z, (len(coords), len(z)))], -1)
        return _mlp(sd, "decoder.decoder.", feats)

    vol = np.zeros((big, big, big))
    for i, dz in enumerate(t):
        c = plane + np.array([0.0, 0.0, dz])
        if ma["domain"] == "hartley":
            vol[i] = net(c)[:, 0].reshape(big, big)
            continue
        keep = (c**2).sum(-1) <= 0.25 + 1e-12
        c = c[keep]
        if dz == 0:  # index halves of the (masked) plane: first half evaluated, second = conjugate mirror
            n = len(c)
            top = net(c[: n // 2 + 1])
            vals = np.empty(n)
            vals[: n // 2 + 1] = top[:, 0] - top[:, 1]
            vals[n // 2 + 1:] = (top[:, 0] + top[:, 1])[np.arange(n // 2 - 1, -1, -1)]
        else:
            flip = c[:, 2] > 0
            out = net(np.where(flip[:, None], -c, c))
            im = np.where(flip, -out[:, 1], out[:, 1])
            vals = out[:, 0] - im
        sl = np.zeros(big * big)
        sl[keep] = vals
        vol[i] = sl.reshape(big, big)
    vol = vol * norm[1] + norm[0]
    return _iht3(vol[:-1, :-1, :-1])


def _reference_encoder(sd, cfg, image):
    """cryoDRGN encode: symmetrised Hartley image on the (D+1)^2 lattice, normalised, disc without DC."""
    box = image.shape[-1]
    f = np.fft.fftshift(np.fft.fft2(np.fft.fftshift(image)))
    ht = f.real - f.imag
    sym = np.zeros((box + 1, box + 1))
    sym[:-1, :-1] = ht
    sym[-1, :] = sym[0, :]
    sym[:, -1] = sym[:, 0]
    norm = cfg["dataset_args"]["norm"]
    sym = (sym - norm[0]) / norm[1]
    j = np.arange(box + 1) - box // 2
    r2 = (j[:, None] ** 2 + j[None, :] ** 2).ravel()
    mask = r2 <= cfg["model_args"]["enc_mask"] ** 2
    mask[(box + 1) ** 2 // 2] = False
    out = _mlp(sd, "encoder.", sym.ravel()[mask][None])[0]
    zdim = cfg["model_args"]["zdim"]
    return out[:zdim], out[zdim:]


@pytest.fixture(scope="module")
def fixture_model(fixtures_dir):
    cfg = yaml.safe_load((fixtures_dir / "het_config.yaml").read_text())
    with torch.serialization.safe_globals(cryodrgn_checkpoint_safe_globals()):
        ckpt = torch.load(fixtures_dir / "het_weights.pkl", weights_only=True, map_location="cpu")
    return cfg, ckpt


def test_fixture_config_maps_to_cryoscape(fixture_model):
    cfg, _ = fixture_model
    config, box = cryodrgn_model_config(cfg)
    assert box == 64
    assert (config.zdim, config.enc_dim, config.enc_layers, config.dec_layers) == (8, 8, 2, 3)
    assert config.dec_dim == 8  # cryoDRGN's Hartley decoder, weights used as they are
    assert (config.pe_type, config.pe_dim, config.domain) == ("gaussian", 8, "hartley_full")


def test_fixture_volume_matches_reference(fixture_model):
    cfg, ckpt = fixture_model
    imp = import_cryodrgn(cfg, ckpt)
    sd = {k: v.double().numpy() for k, v in ckpt["model_state_dict"].items()}
    z = np.array([0.3, -0.5, 0.1, 0.8, -1.2, 0.0, 0.4, -0.2])
    ref = _reference_volume(sd, cfg, z)
    ours = imp.model.decoder.eval_volume(torch.tensor(z[None], dtype=torch.float32), scale=imp.data_std,
                                         radius_px=imp.volume_radius_px).numpy()
    assert ours.shape == (64, 64, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.abs(ref).max())
    # and a second z gives a different map (the latent is used)
    other = imp.model.decoder.eval_volume(torch.zeros(1, 8), scale=imp.data_std, radius_px=math.inf).numpy()
    assert np.abs(other - ours).max() > 1e-3 * np.abs(ref).max()


def test_fixture_encoder_matches_reference(fixture_model, fixtures_dir):
    import mrcfile

    cfg, ckpt = fixture_model
    imp = import_cryodrgn(cfg, ckpt)
    sd = {k: v.double().numpy() for k, v in ckpt["model_state_dict"].items()}
    with mrcfile.open(fixtures_dir / "hand.mrcs", permissive=True) as m:
        images = -np.asarray(m.data[:3], dtype=np.float64)  # invert_data: true
    f = np.fft.fftshift(np.fft.fft2(np.fft.fftshift(images, axes=(-2, -1))), axes=(-2, -1))
    ht = (f.real - f.imag) / imp.data_std
    with torch.no_grad():
        mu, logvar = imp.model.encode_images(torch.tensor(ht, dtype=torch.float32))
    for n in range(3):
        ref_mu, ref_logvar = _reference_encoder(sd, cfg, images[n])
        np.testing.assert_allclose(mu[n].numpy(), ref_mu, atol=1e-4 * (1 + np.abs(ref_mu).max()))
        np.testing.assert_allclose(logvar[n].numpy(), ref_logvar, atol=1e-4 * (1 + np.abs(ref_logvar).max()))


def _synthetic_model(pe_type, pdim, domain="fourier", mean=0.0, zdim=2, box=8, seed=0):
    """A random cryoDRGN-layout decoder + encoder state dict (first layer residual when widths match)."""
    rng = np.random.default_rng(seed)
    pe_dim = 3
    n_in = 3 * pe_dim * 2 + zdim
    sd = {}
    if pe_type == "gaussian":
        sd["decoder.rand_freqs"] = rng.standard_normal((3 * pe_dim, 3)) * 0.5
    sizes = [(n_in, pdim), (pdim, pdim), (pdim, 2 if domain == "fourier" else 1)]
    for i, (a, b) in enumerate(sizes):
        resid = a == b
        key = f"decoder.decoder.main.{2 * i}." + ("linear." if resid else "")
        sd[key + "weight"] = rng.standard_normal((b, a)) / math.sqrt(a)
        sd[key + "bias"] = rng.standard_normal(b) * 0.1
    sizes = [(12, 4), (4, 4), (4, 2 * zdim)]  # 12 = disc of radius 2 without DC
    for i, (a, b) in enumerate(sizes):
        key = f"encoder.main.{2 * i}." + ("linear." if a == b else "")
        sd[key + "weight"] = rng.standard_normal((b, a)) / math.sqrt(a)
        sd[key + "bias"] = rng.standard_normal(b) * 0.1
    cfg = {"lattice_args": {"D": box + 1, "extent": 0.5, "ignore_DC": True},
           "dataset_args": {"norm": [mean, 3.0], "invert_data": True},
           "model_args": {"qlayers": 1, "qdim": 4, "players": 1, "pdim": pdim, "zdim": zdim, "pe_type":
           pe_type,
                          "pe_dim": pe_dim, "feat_sigma": 0.5, "domain": domain, "enc_mask": 2,
                          "encode_mode": "resid", "activation": "relu"}}
    return cfg, sd


@pytest.mark.parametrize("pe_type, pdim, domain, mean", [
    ("gaussian", 10, "fourier", 0.0), ("geom_ft", 20, "fourier", 0.0), ("geom_lowf", 10, "fourier", 0.0),
    ("geom_ft", 10, "hartley", 0.25), ("gaussian", 20, "hartley", 0.0)])
def test_synthetic_import_matches_reference(pe_type, pdim, domain, mean):
    # pdim = 20 = 3*3*2 + zdim makes cryoDRGN's first decoder layer a ResidLinear (identity folded);
    # a non-zero norm mean is folded into the biases (Hartley: cryoDRGN adds it to every voxel)
    cfg, sd = _synthetic_model(pe_type, pdim, domain, mean)
    imp = import_cryodrgn(cfg, {k: torch.tensor(v, dtype=torch.float32) for k, v in sd.items()})
    sd32 = {k: torch.tensor(v, dtype=torch.float32).double().numpy() for k, v in sd.items()}
    z = np.array([0.7, -0.4])
    ref = _reference_volume(sd32, cfg, z)
    ours = imp.model.decoder.eval_volume(torch.tensor(z[None], dtype=torch.float32), scale=imp.data_std,
                                         radius_px=imp.volume_radius_px).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-5 * np.abs(ref).max())
    # encoder: disc of radius 2 without DC on the 9x9 lattice (the +Nyquist copies are outside it here)
    image = np.random.default_rng(1).standard_normal((8, 8))
    ref_mu, _ = _reference_encoder(sd32, cfg, image)
    f = np.fft.fftshift(np.fft.fft2(np.fft.fftshift(image)))
    with torch.no_grad():
        mu, _ = imp.model.encode_images(torch.tensor((f.real - f.imag)[None] / 3.0, dtype=torch.float32))
    np.testing.assert_allclose(mu[0].numpy(), ref_mu, atol=1e-5)


def test_fourier_with_nonzero_norm_mean_is_refused():
    cfg, _ = _synthetic_model("gaussian", 10, "fourier", mean=0.5)
    with pytest.raises(InputError, match="norm"):
        cryodrgn_model_config(cfg)


def test_unsupported_settings_are_listed():
    cfg, _ = _synthetic_model("gaussian", 10)
    bad = {**cfg, "model_args": {**cfg["model_args"], "pe_type": "geom_full", "encode_mode": "conv",
                                 "activation": "tanh"}}
    with pytest.raises(InputError) as info:
        cryodrgn_model_config(bad, source="config.yaml")
    text = str(info.value)
    assert text.startswith("config.yaml: ")
    for word in ("geom_full", "conv", "tanh"):
        assert word in text
