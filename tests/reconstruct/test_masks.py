"""The paper's soft mask against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cryoscape.errors import InputError
from cryoscape.reconstruct.masks import MaskConfig, mask_threshold, soft_mask


def _single_voxel(box: int = 16) -> np.ndarray:
    vol = np.zeros((box, box, box), dtype=np.float32)
    vol[8, 8, 8] = 1.0
    return vol


def test_single_voxel_gives_ball_with_cosine_edge():
    # Box 16 at 5 Å/voxel with the defaults (threshold ½ × 99.99th percentile, dilate 25 Å = 5 voxels,
    # edge 15 Å = 3 voxels). The 99.99th percentile of 4095 zeros and one 1 is 0.9999*4095 - 4094 = 0.5905,
    # so the threshold 0.295 keeps only the bright voxel.
    vol = _single_voxel()
    assert mask_threshold(vol) == pytest.approx(0.5 * (0.9999 * 4095 - 4094))
    mask = soft_mask(vol, voxel_size_angstrom=5.0)
    c = 8
    # inside the 25 Å ball: 1 (distances 0, 5 voxels along an axis, (3,4,0) → 5 voxels)
    assert mask[c, c, c] == 1.0
    assert mask[c, c, c + 5] == 1.0
    assert mask[c + 3, c + 4, c] == 1.0
    # cosine edge: d = 6 voxels = 30 Å, 5 Å into the 15 Å edge: ½(1 + cos(π/3)) = 0.75
    assert mask[c, c + 6, c] == pytest.approx(0.75, abs=1e-6)
    # d = 7 voxels (2, 3, 6): ½(1 + cos(2π/3)) = 0.25
    assert mask[c + 2, c + 3, c + 6] == pytest.approx(0.25, abs=1e-6)
    # d = sqrt(41) = 6.403 voxels (4, 5, 0)
    d = np.sqrt(41.0) * 5.0
    assert mask[c + 4, c + 5, c] == pytest.approx(0.5 * (1 + np.cos(np.pi * (d - 25.0) / 15.0)), abs=1e-6)
    # d >= 8 voxels = 40 Å: 0
    assert mask[c, c, 0] == 0.0
    assert mask[0, 0, 0] == 0.0
    # the ones are exactly the lattice points within 5 voxels: counted by hand
    points = itertools.product(range(-5, 6), repeat=3)
    n_ball = sum(1 for p in points if p[0] ** 2 + p[1] ** 2 + p[2] ** 2 <= 25)
    assert int((mask == 1.0).sum()) == n_ball
    assert mask.min() >= 0.0 and mask.max() <= 1.0


def test_explicit_threshold_and_hard_edge():
    vol = np.zeros((16, 16, 16), dtype=np.float32)
    vol[4:6, 8, 8] = 2.0
    vol[12, 8, 8] = 0.5  # below the explicit threshold: ignored
    mask = soft_mask(vol, 2.0, MaskConfig(threshold=1.0, dilate_angstrom=4.0, edge_angstrom=0.0))
    assert set(np.unique(mask)) == {0.0, 1.0}
    # a capsule: points within 2 voxels of the segment z in [4, 5] at (y, x) = (8, 8)
    z, y, x = np.indices(mask.shape)
    dz = np.clip(z, 4, 5) - z
    expected = (dz**2 + (y - 8) ** 2 + (x - 8) ** 2) <= 4
    np.testing.assert_array_equal(mask == 1.0, expected)


def test_default_threshold_is_half_the_percentile():
    rng = np.random.default_rng(0)
    vol = rng.gamma(2.0, size=(16, 16, 16))
    assert mask_threshold(vol) == pytest.approx(0.5 * np.percentile(vol, 99.99))
    cfg = MaskConfig(threshold_fraction=0.25, percentile=99.0)
    assert mask_threshold(vol, cfg) == pytest.approx(0.25 * np.percentile(vol, 99.0))


def test_empty_mask_is_an_input_error():
    with pytest.raises(InputError, match="threshold"):
        soft_mask(np.zeros((8, 8, 8)), 1.0, MaskConfig(threshold=1.0))
