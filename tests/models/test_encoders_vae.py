"""Encoder mask, encoder/VAE shapes, build_model and ModelConfig (validation and yaml/checkpoint parsing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.errors import InputError
from cryoscape.geometry.lattice import circular_mask
from cryoscape.models import (
    HetVAE,
    HomogeneousModel,
    ModelConfig,
    build_model,
    encoder_input_size,
    encoder_mask,
    encoder_mask_indices,
)


@pytest.mark.parametrize("box, radius", [(16, None), (16, 5.0), (32, 12.5)])
def test_encoder_mask_is_the_lattice_disc(box, radius):
    cfg = ModelConfig(enc_mask_radius_px=radius)
    expected = circular_mask(box, box / 2 - 1 if radius is None else radius)
    np.testing.assert_array_equal(encoder_mask(box, cfg).numpy(), expected)
    np.testing.assert_array_equal(encoder_mask_indices(box, cfg).numpy(), np.flatnonzero(expected))
    assert encoder_input_size(box, cfg) == int(expected.sum())


def test_vae_shapes_and_encode_images():
    torch.manual_seed(0)
    cfg = ModelConfig(zdim=3, enc_dim=16, enc_layers=2, dec_dim=16, dec_layers=1)
    model = build_model(cfg, 16)
    assert isinstance(model, HetVAE)
    images = torch.randn(5, 16, 16)
    x = images.reshape(5, -1)[:, encoder_mask_indices(16, cfg)]
    mu, logvar = model.encoder(x)
    assert mu.shape == logvar.shape == (5, 3)
    mu2, _ = model.encode_images(images)
    torch.testing.assert_close(mu, mu2)
    coords = torch.rand(5, 40, 3) - 0.5
    pairs = model.decoder(coords, mu)
    assert pairs.shape == (5, 40, 2)
    assert "enc_mask_indices" not in model.state_dict()
    # the networks are the model's only computation: no encode/decode/forward wrappers
    assert not any(hasattr(model, name) for name in ("encode", "decode", "reparameterize"))
    assert type(model).forward is torch.nn.Module.forward


def test_encoder_is_deterministic():
    torch.manual_seed(0)
    model = build_model(ModelConfig(zdim=2, enc_dim=8, dec_dim=8, enc_layers=1, dec_layers=1), 8)
    x = torch.randn(3, encoder_input_size(8, model.config))
    torch.testing.assert_close(model.encoder(x)[0], model.encoder(x)[0], rtol=0, atol=0)


def test_build_homogeneous_and_state_dict_roundtrip():
    cfg = ModelConfig(zdim=0, dec_dim=8, dec_layers=1)
    torch.manual_seed(0)
    a = build_model(cfg, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    b = build_model(cfg, 8, generator=torch.Generator().manual_seed(1))
    assert isinstance(a, HomogeneousModel)
    coords = torch.rand(20, 3) - 0.5
    assert not torch.equal(a.decoder(coords), b.decoder(coords))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.decoder(coords), b.decoder(coords), rtol=0, atol=0)
    assert type(a).forward is torch.nn.Module.forward


def test_model_config_validation_and_dict():
    cfg = ModelConfig(zdim=4, pe_type="geom_lowf")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resolved_pe_dim(64) == 32 and cfg.resolved_enc_mask_radius_px(64) == 31
    with pytest.raises(InputError, match="pe_type"):
        ModelConfig(pe_type="geom_full")
    with pytest.raises(InputError, match="zdim"):
        ModelConfig(zdim=-1)
    with pytest.raises(InputError, match=r"unknown setting.*model\.qdim"):
        ModelConfig.from_dict({"zdim": 2, "qdim": 8}, path="config.yaml")
