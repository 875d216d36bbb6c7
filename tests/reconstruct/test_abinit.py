"""Ab initio projection matching (reconstruct.abinit) on a tiny noise-free simulated set."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.data.particles import load_particles
from cryoscape.errors import InputError
from cryoscape.geometry.rotations import axis_angle_to_matrix
from cryoscape.io.records import Poses
from cryoscape.reconstruct.abinit import AbinitConfig, check_particles, initial_map, refine_poses, run_epoch
from cryoscape.reconstruct.pose_scoring import align_poses, aligned_fsc, rotation_angle_deg
from cryoscape.reconstruct.pose_search import PoseSearchConfig
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import GroundTruthVolumes, run_simulation

SEARCH = PoseSearchConfig(base_level=1, refine_levels=2, keep_poses=4, max_shift_px=1.0, shift_step_px=1.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """200 noise-free images (box 24, CTF, shifts ±1 px) of one rigid state, written as a RELION star."""
    cfg = preset_config("tiny-32", box_size=24, n_particles=200, snr=float("inf"), max_shift_px=1.0,
                        hinge_angles_deg=(30.0, 30.0))
    out = tmp_path_factory.mktemp("abinit_tiny")
    run_simulation(cfg, out, show_progress=False)
    return load_particles(out / "particles.star"), GroundTruthVolumes(cfg)(0, 0.0)


def test_frequency_marching_schedule():
    config = AbinitConfig(num_epochs=6, local_epochs=2, k_start_px=4, k_end_px=10)
    radii = [config.k_max_at(e, 32) for e in range(1, 7)]
    assert radii == [4.0, 6.0, 8.0, 10.0, 10.0, 10.0]
    assert [config.is_local(e) for e in range(1, 7)] == [False] * 4 + [True] * 2
    assert AbinitConfig().k_range(64) == (6.4, 31.0)
    with pytest.raises(InputError):
        AbinitConfig(num_epochs=2, local_epochs=2)


def test_abinit_finds_poses_of_a_known_map_up_to_rotation(tiny):
    particles, truth = tiny
    config = AbinitConfig(num_epochs=6, local_epochs=1, search=SEARCH)
    volume, previous = initial_map(particles, config), None
    first = None
    for epoch in range(1, 7):
        result = run_epoch(particles, volume, epoch, config, previous)
        volume, previous = result.reference, result.poses
        if first is None:
            first = align_poses(result.poses.rotations, result.poses.shifts_px, particles.poses.rotations,
                                particles.poses.shifts_px)
    al = align_poses(previous.rotations, previous.shifts_px, particles.poses.rotations, particles.poses.shifts_px)
    assert np.median(al.angular_error_deg) < 15.0
    assert np.median(al.angular_error_deg) < 0.5 * np.median(first.angular_error_deg)
    assert np.median(al.shift_error_px) < 0.3
    assert aligned_fsc(result.volume, truth, al, 1.0).area_under_curve() > 0.9
    assert result.cost["global"] == 0 and result.cost["local"] > 0  # the last epoch refines locally


def test_empty_and_ctf_less_particle_sets_are_refused(tiny):
    particles, _ = tiny
    with pytest.raises(InputError, match="0 particles"):
        check_particles(particles.subset(np.zeros(0, dtype=np.int64)))
    no_ctf = type(particles)(images=particles.images, poses=None, ctf=None, indices=particles.indices)
    with pytest.raises(InputError, match="CTF"):
        check_particles(no_ctf)


def test_refinement_reduces_a_known_pose_perturbation(tiny):
    particles, _ = tiny
    true = particles.poses
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(len(true), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angle = rng.uniform(0, 2 * np.pi, len(true))
    start = Poses(axis_angle_to_matrix(axes * np.radians(5.0)) @ true.rotations,
                  true.shifts_px + 1.0 * np.stack([np.cos(angle), np.sin(angle)], 1), true.box_size)
    config = AbinitConfig(num_epochs=2, local_epochs=0,
                          search=PoseSearchConfig(base_level=2, refine_levels=3, max_shift_px=2.0, shift_step_px=2.0))
    result = refine_poses(particles, start, config, 2, start_level=3)
    err = rotation_angle_deg(result.poses.rotations, true.rotations)
    shift_err = np.linalg.norm(result.poses.shifts_px - true.shifts_px, axis=1)
    assert np.median(err) < 2.5  # from 5°
    assert np.median(shift_err) < 0.5  # from 1 px


def test_fsc_weights_keep_signal_and_damp_noise():
    from cryoscape.reconstruct.abinit import fsc_weights, low_pass

    rng = np.random.default_rng(0)
    signal = rng.normal(size=(16, 16, 16))
    np.testing.assert_allclose(fsc_weights(signal, signal), 1.0)
    noise = fsc_weights(rng.normal(size=(16, 16, 16)), rng.normal(size=(16, 16, 16)))
    assert noise[0] == 1.0 and noise[4:].max() < 0.45
    np.testing.assert_allclose(low_pass(signal, 100.0, np.ones(20)), signal, atol=1e-5)
    np.testing.assert_allclose(low_pass(signal, 6.0, np.ones(20)), low_pass(signal, 6.0), atol=1e-6)
    assert np.abs(low_pass(signal, 100.0, np.zeros(20))).max() < 1e-6


def test_cross_half_refinement_moves_towards_the_truth(tiny):
    particles, _ = tiny
    true = particles.poses
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(len(true), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    start = Poses(axis_angle_to_matrix(axes * np.radians(5.0)) @ true.rotations, true.shifts_px, true.box_size)
    config = AbinitConfig(num_epochs=2, local_epochs=0, cross_half_reference=True,
                          search=PoseSearchConfig(base_level=2, refine_levels=3, max_shift_px=2.0, shift_step_px=2.0))
    result = refine_poses(particles, start, config, 2, start_level=3)
    assert np.median(rotation_angle_deg(result.poses.rotations, true.rotations)) < 3.5
