"""Seam diagnostic: a constructed decoder with a known jump across kz = 0, and the real decoders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryoscape.analysis.seam import seam_profile
from cryoscape.models.config import ModelConfig
from cryoscape.models.decoders import Decoder

BOX = 16
CENTRE = torch.tensor([1.5, -2.0, 0.7], dtype=torch.float64)  # pixels


class SteppedDecoder(torch.nn.Module):
    """H(k) = cos(2π k·p) + step·[kz > 0] (+ z₀ when given): a smooth function plus a known jump."""

    def __init__(self, step: float):
        super().__init__()
        self.box_size = BOX
        self.step = step
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def hartley(self, k: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        smooth = torch.cos(2 * math.pi * (k.double() @ CENTRE))
        out = smooth + self.step * (k[..., 2] > 0).double()
        if z is not None:
            out = out + z[:, :1].double()
        return out

    def forward(self, coords: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([self.hartley(coords, z), self.hartley(-coords, z)], -1).float()


def expected_relative_jump(step: float, offset: float = 0.0) -> np.ndarray:
    """Independent formula: per shell, step / sqrt(mean(((b + step)² + b²) / 2)), b = cos(2π j·p / D) + offset."""
    j = np.arange(BOX) - BOX // 2
    jy, jx = np.meshgrid(j, j, indexing="ij")
    r = np.hypot(jx, jy)
    out = []
    for s in range(BOX // 2 + 1):
        sel = (np.rint(r) == s) & (r <= BOX / 2)
        b = np.cos(2 * np.pi * (jx[sel] * 1.5 - jy[sel] * 2.0) / BOX) + offset
        out.append(step / np.sqrt(np.mean(((b + step) ** 2 + b**2) / 2)))
    return np.array(out)


def test_known_jump_is_measured_per_shell():
    profile = seam_profile(SteppedDecoder(0.3))
    np.testing.assert_allclose(profile.relative_jump, expected_relative_jump(0.3), rtol=1e-3)
    np.testing.assert_allclose(profile.rms_jump, 0.3, rtol=1e-3)
    assert profile.n_points.sum() == int((np.hypot(*np.meshgrid(np.arange(BOX) - 8, np.arange(BOX) - 8))
                                          <= BOX / 2).sum())


def test_continuous_decoder_has_no_jump_and_latents_are_averaged():
    assert np.nanmax(seam_profile(SteppedDecoder(0.0)).relative_jump) < 1e-3
    z = np.array([[0.5], [-0.5]], dtype=np.float32)
    profile = seam_profile(SteppedDecoder(0.2), z)
    # H² averaged over the two latents: offsets ±0.5 of the smooth part
    h2 = [expected_relative_jump(0.2, off) for off in (0.5, -0.5)]
    expected = 0.2 / np.sqrt(np.mean([(0.2 / r) ** 2 for r in h2], axis=0))
    np.testing.assert_allclose(profile.relative_jump, expected, rtol=1e-3)


def test_band_summary_and_bad_delta():
    profile = seam_profile(SteppedDecoder(0.3))
    assert 0 < profile.band(0.5) < 1
    d = profile.to_dict()
    assert len(d["relative_jump"]) == BOX // 2 + 1
    with pytest.raises(ValueError):
        seam_profile(SteppedDecoder(0.3), delta_px=0.0)


def test_real_decoders_full_space_and_seam_band_are_continuous_hard_switch_is_not():
    torch.manual_seed(0)
    z = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
    full = Decoder(ModelConfig(zdim=2, dec_dim=32, dec_layers=2, domain="hartley_full"), BOX)
    pair = Decoder(ModelConfig(zdim=2, dec_dim=32, dec_layers=2, domain="hartley", seam_band_px=0.0), BOX)
    banded = Decoder(ModelConfig(zdim=2, dec_dim=32, dec_layers=2, domain="hartley"), BOX)
    jump_full = seam_profile(full, z).band(0.0)
    jump_pair = seam_profile(pair, z).band(0.0)
    assert jump_full < 1e-2  # one network on the whole space: only the O(δ) change
    assert jump_pair > 10 * jump_full  # untrained hard switch: outputs 0 and 1 are unrelated
    assert seam_profile(banded, z).band(0.0) < 1e-2  # the default seam band blends them continuously
