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
                          ctf=fixtures_dir / "test_ctf.pkl", allow_overfocus=True)  # dummy CTF, defocus 0
    sub = load_particles(fixtures_dir / "toy_projections.mrcs", poses=fixtures_dir / "toy_rot_trans.pkl",
                         ctf=fixtures_dir / "test_ctf.pkl", ind=fixtures_dir / "ind100.pkl", allow_overfocus=True)
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


def _two_group_star(tmp_path, pixel_sizes, nan_angle=False):
    import pandas as pd

    from cryoscape.io.mrc import write_mrc
    from cryoscape.io.star import write_star

    write_mrc(tmp_path / "s.mrcs", np.zeros((4, 8, 8), np.float32), 1.0)
    optics = pd.DataFrame({"rlnOpticsGroup": [1, 2], "rlnVoltage": [300.0, 300.0],
                           "rlnSphericalAberration": [2.7, 2.7], "rlnAmplitudeContrast": [0.1, 0.1],
                           "rlnImagePixelSize": pixel_sizes, "rlnImageSize": [8, 8]})
    particles = pd.DataFrame({"rlnImageName": [f"{i + 1}@s.mrcs" for i in range(4)], "rlnOpticsGroup": [1, 1, 1, 2],
                              "rlnAngleRot": [0.0, 10.0, np.nan if nan_angle else 20.0, 30.0],
                              "rlnAngleTilt": [0.0] * 4, "rlnAnglePsi": [0.0] * 4,
                              "rlnDefocusU": [1e4] * 4, "rlnDefocusV": [1e4] * 4, "rlnDefocusAngle": [0.0] * 4})
    if nan_angle:  # write_star refuses NaN: write it by hand into the text
        particles["rlnAngleRot"] = particles["rlnAngleRot"].fillna(-999.0)
        path = write_star(tmp_path / "p.star", particles, optics)
        path.write_text(path.read_text().replace("-999.0", "nan"))
        return path
    return write_star(tmp_path / "p.star", particles, optics)


def test_mixed_pixel_sizes_are_refused_unless_allowed(tmp_path):
    path = _two_group_star(tmp_path, [1.0, 1.1])
    with pytest.raises(InputError, match=r"2 different pixel sizes \(1 Å × 3, 1.1 Å × 1; e.g. particle 3, 0-based\)"):
        load_particles(path)
    assert len(load_particles(path, allow_mixed_pixel_sizes=True)) == 4
    assert load_particles(_two_group_star(tmp_path, [1.0, 1.0])).pixel_size_angstrom == 1.0


def test_unusable_values_in_the_particle_file_are_not_silently_dropped(tmp_path):
    """A NaN angle in the star's own poses must raise, not quietly load the particles without poses."""
    path = _two_group_star(tmp_path, [1.0, 1.0], nan_angle=True)
    with pytest.raises(InputError, match=r"p.star: line \d+ \(particle 2, 0-based\): rlnAngleRot is nan"):
        load_particles(path)
