"""Ab initio projection matching (reconstruct.abinit) on a tiny noise-free simulated set."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.data.particles import load_particles
from cryoscape.errors import InputError
from cryoscape.reconstruct.abinit import AbinitConfig, check_particles, initial_map, run_epoch
from cryoscape.reconstruct.pose_scoring import align_poses, aligned_fsc
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
        volume, previous = result.volume, result.poses
        if first is None:
            first = align_poses(result.poses.rotations, result.poses.shifts_px, particles.poses.rotations,
                                particles.poses.shifts_px)
    al = align_poses(previous.rotations, previous.shifts_px, particles.poses.rotations, particles.poses.shifts_px)
    assert np.median(al.angular_error_deg) < 15.0
    assert np.median(al.angular_error_deg) < 0.5 * np.median(first.angular_error_deg)
    assert np.median(al.shift_error_px) < 0.3
    assert aligned_fsc(volume, truth, al, 1.0).area_under_curve() > 0.9
    assert result.cost["global"] == 0 and result.cost["local"] > 0  # the last epoch refines locally


def test_empty_and_ctf_less_particle_sets_are_refused(tiny):
    particles, _ = tiny
    with pytest.raises(InputError, match="0 particles"):
        check_particles(particles.subset(np.zeros(0, dtype=np.int64)))
    no_ctf = type(particles)(images=particles.images, poses=None, ctf=None, indices=particles.indices)
    with pytest.raises(InputError, match="CTF"):
        check_particles(no_ctf)
