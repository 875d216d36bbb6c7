"""ParticleSet / load_particles: every input format, index subsets, consistency checks."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.data.particles import load_index, load_particles
from cryoscape.errors import InputError
from cryoscape.io.legacy import load_pickle


def test_star_gives_images_poses_ctf(fixtures_dir):
    ps = load_particles(fixtures_dir / "relion31.star", require_poses=True, require_ctf=True)
    assert len(ps) == 5 and ps.box_size == 256
    assert ps.pixel_size_angstrom == pytest.approx(2.806)
    assert ps.read([0, 4]).shape == (2, 256, 256)


def test_same_images_through_mrc_star_and_cs(fixtures_dir):
    sets = [load_particles(fixtures_dir / f"empiar_10076_7.{ext}") for ext in ("mrc", "star", "cs")]
    ref = sets[0].read(np.arange(7))
    for ps in sets[1:]:
        np.testing.assert_array_equal(ps.read(np.arange(7)), ref)


def test_index_subset_selects_images_and_poses_together(fixtures_dir):
    full = load_particles(fixtures_dir / "toy_projections.mrcs", poses=fixtures_dir / "toy_rot_trans.pkl",
                          ctf=fixtures_dir / "test_ctf.pkl")
    sub = load_particles(fixtures_dir / "toy_projections.mrcs", poses=fixtures_dir / "toy_rot_trans.pkl",
                         ctf=fixtures_dir / "test_ctf.pkl", ind=fixtures_dir / "ind100.pkl")
    expected = np.asarray(load_pickle(fixtures_dir / "ind100.pkl"))
    np.testing.assert_array_equal(sub.indices, expected)
    np.testing.assert_array_equal(sub.read([3]), full.read([int(expected[3])]))
    np.testing.assert_array_equal(sub.poses.rotations, full.poses.rotations[expected])
    np.testing.assert_array_equal(sub.ctf.defocus_u_angstrom, full.ctf.defocus_u_angstrom[expected])
    # a subset of a subset maps back to original indices
    subsub = sub.subset(np.array([5, 2]))
    np.testing.assert_array_equal(subsub.indices, expected[[5, 2]])
    np.testing.assert_array_equal(subsub.read([0]), full.read([int(expected[5])]))


def test_pose_count_mismatch_is_refused(fixtures_dir, tmp_path):
    with pytest.raises(InputError, match="1000 images"):
        load_particles(fixtures_dir / "toy_projections.mrcs", poses=fixtures_dir / "pose.star.pkl")


def test_missing_poses_when_required(fixtures_dir):
    with pytest.raises(InputError, match="poses"):
        load_particles(fixtures_dir / "toy_projections.mrcs", require_poses=True)


def test_cs_with_only_2d_alignments_when_poses_required(fixtures_dir):
    with pytest.raises(InputError, match=r"(?i)2-?D|alignments3D"):
        load_particles(fixtures_dir / "toy_projections.mrcs",
                       poses=fixtures_dir / "cryosparc_J2_particles_exported.cs")


@pytest.mark.parametrize(("ind", "message"), [
    (np.array([0, 1000]), "outside the 1000 images"),
    (np.array([-1]), "outside"),
    (np.array([3, 3]), "duplicates"),
    (np.array([], dtype=np.int64), "non-empty"),
    (np.array([0.5]), "integers"),
])
def test_bad_index_subsets(ind, message):
    with pytest.raises(InputError, match=message):
        load_index(ind, 1000)


def test_index_file_out_of_range_names_file(fixtures_dir, tmp_path):
    path = tmp_path / "ind.txt"
    path.write_text("0 1 5000\n")
    with pytest.raises(InputError, match=r"ind\.txt.*5000"):
        load_particles(fixtures_dir / "toy_projections.mrcs", ind=path)


def test_poses_for_another_box_are_rescaled(fixtures_dir, tmp_path):
    """A star made for box 300 applied to images of another box: shifts follow the images' box."""
    from cryoscape.io.metadata import read_poses

    poses = read_poses(fixtures_dir / "FinalRefinement-OriginalParticles-PfCRT.star", box_size=300)
    half = poses.rescaled(150)
    np.testing.assert_allclose(half.shifts_px, poses.shifts_px / 2)
    np.testing.assert_array_equal(half.rotations, poses.rotations)
