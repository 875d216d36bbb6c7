"""Per-image FSC scoring against ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cryoscape.io.mrc import write_mrc
from cryoscape.reconstruct.scoring import (
    choose_positions,
    ground_truth_maps,
    per_image_fsc,
    per_image_fsc_of_maps,
)


def _state_maps(d: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(d, d, d)).astype(np.float32) for _ in range(3)]


def test_perfect_generator_scores_one_and_wrong_state_scores_zero(tmp_path):
    maps = _state_maps()
    states = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    # latents: the state index as a 1-D z; paths for the true maps exercise the lazy .mrc reading
    paths = []
    for i, m in enumerate(maps):
        write_mrc(tmp_path / f"state_{i}.mrc", m, 2.0)
        paths.append(tmp_path / f"state_{i}.mrc")
    truth = ground_truth_maps(states, paths)
    latents = states[:, None].astype(np.float32)

    def perfect(z):  # batch (B, 1) -> (B, D, D, D), as a torch tensor
        return torch.as_tensor(np.stack([maps[int(v)] for v in z[:, 0]]))

    scores = per_image_fsc(perfect, latents, truth, 2.0, n_images=None, batch_size=3)
    np.testing.assert_array_equal(scores.positions, np.arange(8))
    np.testing.assert_allclose(scores.fsc, 1.0, atol=1e-5)
    np.testing.assert_allclose(scores.auc, 1.0, atol=1e-5)
    np.testing.assert_allclose(scores.resolution_0143_angstrom, 4.0)  # Nyquist at 2 Å/voxel

    def wrong(z):  # a single map for B = 1: the next state's map (independent noise)
        return maps[(int(z[0, 0]) + 1) % 3]

    bad = per_image_fsc(wrong, latents, truth, 2.0, n_images=5, seed=1)
    assert len(bad.positions) == 5 and len(np.unique(bad.positions)) == 5
    assert np.all(np.abs(bad.auc) < 0.15)
    assert bad.summary()["auc_mean"] < 0.15


def test_partial_agreement_orders_the_scores():
    maps = _state_maps()
    truth = ground_truth_maps(np.zeros(4, dtype=int), maps)
    rng = np.random.default_rng(5)
    noise = rng.normal(size=maps[0].shape).astype(np.float32)

    def noisy(z):  # z = noise level
        return maps[0] + float(z[0, 0]) * noise

    scores = per_image_fsc(noisy, np.array([[0.1], [0.5], [1.0], [3.0]]), truth, 1.0, n_images=None)
    assert np.all(np.diff(scores.auc) < 0)
    # map + sigma * independent noise: expected FSC = 1 / sqrt(1 + sigma²) (equal-power white maps)
    np.testing.assert_allclose(scores.fsc[:, 2:].mean(axis=1), 1 / np.sqrt(1 + np.array([0.01, 0.25, 1, 9])),
                               atol=0.05)


def test_choose_positions_and_bad_states():
    pos = choose_positions(100, 10, seed=3)
    assert len(pos) == 10 and np.all(np.diff(pos) > 0)
    np.testing.assert_array_equal(pos, choose_positions(100, 10, seed=3))
    with pytest.raises(Exception, match="state"):
        ground_truth_maps(np.array([0, 3]), _state_maps())



def test_truth_from_a_simulated_dataset_table(tmp_path):
    # The simulator's GroundTruthVolumes renders the true map of each row of ground_truth.csv; the lookup must
    # give the written gt_volumes of each particle's state.
    from cryoscape.io.mrc import read_mrc
    from cryoscape.reconstruct.scoring import truth_from_table
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.simulator import GroundTruthVolumes, run_simulation

    cfg = preset_config("tiny-32", n_particles=6, box_size=16, source="assembly", snr=float("inf"))
    result = run_simulation(cfg, tmp_path, show_progress=False)
    table = pd.read_csv(result.ground_truth_path)
    states, coords = table["state"].to_numpy(), table["coordinate"].to_numpy()
    truth = truth_from_table(GroundTruthVolumes(cfg), states, coords)
    for position in range(6):
        expected, _ = read_mrc(result.volume_paths[table["state"][position]])
        np.testing.assert_allclose(truth(position), expected, atol=1e-5 * np.abs(expected).max())


def test_maps_made_elsewhere_are_matched_by_position_and_sign(tmp_path):
    rng = np.random.default_rng(5)
    vols = [rng.normal(size=(16, 16, 16)).astype(np.float32) for _ in range(2)]
    states = np.array([0, 1, 1, 0, 1])
    true_map = ground_truth_maps(states, vols)
    positions = np.array([1, 3])
    # maps for positions 1, 3 = states 1, 0, written with protein negative (another program's sign)
    paths = []
    for i, p in enumerate(positions):
        write_mrc(tmp_path / f"vol_{i:03d}.mrc", -vols[states[p]], voxel_size_angstrom=2.0)
        paths.append(tmp_path / f"vol_{i:03d}.mrc")
    res = per_image_fsc_of_maps(paths, positions, true_map, 2.0, match_sign=True)
    np.testing.assert_array_equal(res.positions, positions)
    np.testing.assert_allclose(res.auc, 1.0, atol=1e-6)
    unsigned = per_image_fsc_of_maps(paths, positions, true_map, 2.0)
    assert (unsigned.auc < 0).all()
    swapped = per_image_fsc_of_maps(paths, positions[::-1], true_map, 2.0, match_sign=True)
    assert (np.abs(swapped.auc) < 0.2).all()  # each map scored against the other state's truth
