"""Positional encodings: frequencies against the paper's formula, features against numpy, fp32 under
autocast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoscape.models.positional import PositionalEncoding


@pytest.mark.parametrize("box", [16, 64])
def test_geom_ft_frequencies_match_formula(box):
    n = box // 2
    pe = PositionalEncoding("geom_ft", box)
    # independent: k_j * D * pi * (2/D)^(i/(D/2-1)), i = 0..D/2-1, axis-major columns
    expected = np.array([box * np.pi * (2.0 / box) ** (i / (box / 2 - 1)) for i in range(n)])
    f = pe.freqs.numpy()
    assert f.shape == (3, 3 * n)
    for axis in range(3):
        np.testing.assert_allclose(f[axis, axis * n:(axis + 1) * n], expected, rtol=1e-6)
        others = np.delete(f[axis], np.arange(axis * n, (axis + 1) * n))
        assert np.all(others == 0)
    # wavelengths (in cycles/pixel units) from 2/D (Nyquist) to 1
    wavelengths = 2 * np.pi / expected
    np.testing.assert_allclose([wavelengths.min(), wavelengths.max()], [2.0 / box, 1.0], rtol=1e-9)


def test_geom_lowf_is_geom_ft_over_two_pi():
    ft = PositionalEncoding("geom_ft", 32).freqs
    lowf = PositionalEncoding("geom_lowf", 32).freqs
    torch.testing.assert_close(lowf, ft / (2 * math.pi), rtol=1e-6, atol=0)
    # highest lowf frequency D/2 rad per cycle/pixel, lowest 1
    assert math.isclose(float(lowf.max()), 16.0, rel_tol=1e-6)
    assert math.isclose(float(lowf[lowf > 0].min()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("pe_type", ["geom_ft", "geom_lowf", "gaussian"])
def test_features_are_sin_cos_of_phases(pe_type):
    box = 16
    pe = PositionalEncoding(pe_type, box, pe_dim=5, generator=torch.Generator().manual_seed(1))
    coords = torch.rand(7, 3, dtype=torch.float32) - 0.5
    out = pe(coords).numpy().astype(np.float64)
    phase = coords.numpy().astype(np.float64) @ pe.freqs.numpy().astype(np.float64)
    expected = np.concatenate([np.sin(phase), np.cos(phase)], axis=-1)
    assert out.shape == (7, 2 * 15) == (7, pe.out_dim)
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_gaussian_frequencies_scale_and_state_dict():
    box, sigma = 64, 0.5
    pe = PositionalEncoding("gaussian", box, pe_dim=200, feat_sigma=sigma,
                            generator=torch.Generator().manual_seed(0))
    # columns are (D/2) * omega, omega ~ N(0, sigma^2): sample std close to D/2 * sigma
    std = float(pe.freqs.std())
    assert abs(std - box / 2 * sigma) < 0.1 * box / 2 * sigma
    assert "freqs" in pe.state_dict()
    same = PositionalEncoding("gaussian", box, pe_dim=200, feat_sigma=sigma,
                              generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(same.freqs, pe.freqs, rtol=0, atol=0)
    other = PositionalEncoding("gaussian", box, pe_dim=200, feat_sigma=sigma,
                               generator=torch.Generator().manual_seed(1))
    other.load_state_dict(pe.state_dict())
    torch.testing.assert_close(other.freqs, pe.freqs, rtol=0, atol=0)


def test_encoding_stays_fp32_under_autocast():
    pe = PositionalEncoding("geom_ft", 64)
    coords = torch.rand(5, 3) - 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = pe(coords)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pe(coords))


def test_none_returns_coordinates():
    pe = PositionalEncoding("none", 16)
    coords = torch.rand(4, 3) - 0.5
    assert pe.out_dim == 3
    torch.testing.assert_close(pe(coords), coords)
