"""Pose search (reconstruct.pose_search) and pose scoring (reconstruct.pose_scoring) on tiny simulated sets."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.geometry.rotations import axis_angle_to_matrix, random_rotations
from cryoscape.io.records import Poses
from cryoscape.reconstruct.backproject import BackprojectConfig, backproject_arrays
from cryoscape.reconstruct.pose_scoring import MIRROR, align_poses, aligned_fsc, rotation_angle_deg
from cryoscape.reconstruct.pose_search import (
    PoseSearchConfig,
    Projector,
    grid_step_deg,
    healpix_directions,
    lattice_points,
    search_cost,
    search_poses,
    so3_grid,
)
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import GroundTruthVolumes, Simulator

RIGID = {"source": "hinge", "hinge_angles_deg": (30.0, 30.0), "box_size": 32}


@pytest.fixture(scope="module")
def clean():
    """64 noise-free images (box 32, CTF, shifts up to 2 px) of one rigid state, with the true map."""
    cfg = preset_config("tiny-32", n_particles=64, snr=float("inf"), max_shift_px=2.0, **RIGID)
    sim = Simulator(cfg)
    return sim, sim.images(0, sim.n), GroundTruthVolumes(cfg)(0, 0.0)


def test_healpix_directions_are_equal_area():
    theta, phi = healpix_directions(4)
    assert theta.size == 192
    z = np.cos(theta)
    # equal-area pixels: z is uniform on [-1, 1] (mean 0, mean square 1/3), 48 pixels per quarter of the z range
    assert abs(z.mean()) < 1e-9
    assert abs(np.mean(z ** 2) - 1 / 3) < 0.01
    # rings (nside 4): polar caps z = ±(1 - i²/48) with 4i pixels, i = 1..3; 9 rings of 16 between
    levels, counts = np.unique(np.round(z, 9), return_counts=True)
    assert counts.tolist() == [4, 8, 12] + [16] * 9 + [12, 8, 4]
    np.testing.assert_allclose(levels[-3:], 1 - np.array([3, 2, 1]) ** 2 / 48)
    dirs = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), z], -1)
    assert np.unique(np.round(dirs, 9), axis=0).shape[0] == 192


@pytest.mark.parametrize("level", [0, 1, 2])
def test_so3_grid_covers_so3_within_its_step(level):
    grid = so3_grid(level)
    assert grid.shape == (72 * 8 ** level, 3, 3)
    np.testing.assert_allclose(np.linalg.det(grid), 1.0, atol=1e-12)
    probe = random_rotations(500, np.random.default_rng(level))
    trace = np.einsum("nji,mji->nm", probe, grid).max(1)
    nearest = np.degrees(np.arccos(np.clip((trace - 1) / 2, -1, 1)))
    assert nearest.max() < grid_step_deg(level)
    assert np.median(nearest) > grid_step_deg(level) / 4  # not a denser grid than stated


def test_search_finds_true_poses_of_clean_projections(clean):
    sim, images, truth = clean
    config = PoseSearchConfig(base_level=1, refine_levels=3, max_shift_px=3.0, shift_step_px=1.0)
    found = search_poses(Projector(truth), images, sim.ctf_params(), 12, config)
    err = rotation_angle_deg(found.rotations, sim.poses().rotations)
    finest = grid_step_deg(config.base_level + config.refine_levels)
    assert np.median(err) < finest
    assert np.mean(err < 2 * finest) > 0.85
    shift_err = np.linalg.norm(found.shifts_px - sim.poses().shifts_px, axis=1)
    assert np.median(shift_err) < 0.25


def test_local_refinement_reduces_a_known_perturbation(clean):
    sim, images, truth = clean
    true = sim.poses()
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(len(true), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    start_rot = axis_angle_to_matrix(axes * np.radians(5.0)) @ true.rotations
    start_shift = true.shifts_px + rng.choice([-1.0, 1.0], size=(len(true), 2)) * np.sqrt(2.0)  # 2 px off
    assert np.allclose(rotation_angle_deg(start_rot, true.rotations), 5.0)
    config = PoseSearchConfig(base_level=3, refine_levels=4, max_shift_px=4.0, shift_step_px=2.0)
    found = search_poses(Projector(truth), images, sim.ctf_params(), 14, config,
                         start_rotations=start_rot, start_shifts_px=start_shift, start_level=2)
    err = rotation_angle_deg(found.rotations, true.rotations)
    shift_err = np.linalg.norm(found.shifts_px - true.shifts_px, axis=1)
    assert np.median(err) < 1.5
    assert np.median(shift_err) < 0.5


def test_search_cost_counts_grid_and_shifts():
    cost = search_cost(PoseSearchConfig(base_level=2, max_shift_px=4.0, shift_step_px=2.0), 100)
    assert cost["grid_rotations"] == 4608 and cost["global_shifts"] == 25
    assert cost["global"] == 25 * 4608 * 200 + 4608 * 100
    assert lattice_points(16, 3).shape[0] == 14  # half of the 28 nonzero points within radius 3


@pytest.mark.parametrize("flipped", [False, True])
def test_scoring_recovers_global_rotation_hand_and_translation(flipped):
    cfg = preset_config("tiny-32", n_particles=400, ctf=False, snr=float("inf"), max_shift_px=2.0, **RIGID)
    sim = Simulator(cfg)
    true = sim.poses()
    g = random_rotations(1, np.random.default_rng(5))[0]
    c = np.array([1.5, -1.0, 2.0])
    learned = true.rotations @ g.T
    if flipped:
        learned = MIRROR @ learned @ MIRROR
    learned_shifts = true.shifts_px + np.einsum("nij,j->ni", true.rotations[:, :2, :], c)
    al = align_poses(learned, learned_shifts, true.rotations, true.shifts_px)
    assert al.flipped == flipped
    np.testing.assert_allclose(al.rotation, g, atol=1e-9)
    np.testing.assert_allclose(al.translation_px, c, atol=1e-9)
    assert al.angular_error_deg.max() < 1e-4 and al.shift_error_px.max() < 1e-9
    # the map the learned poses give, brought back to the true frame, matches the truth
    vol = backproject_arrays(sim.images(0, sim.n), Poses(learned, learned_shifts, 32), None, 1.0,
                             BackprojectConfig(ctf_correction="none")).full
    truth = GroundTruthVolumes(cfg)(0, 0.0)
    assert aligned_fsc(vol, truth, al, 1.0).area_under_curve() > 0.9
