"""Poses and CTF from STAR/CS/PKL against what cryoDRGN parsed from the same files (golden pairs)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from cryoscape.errors import InputError
from cryoscape.io.cs import write_cs
from cryoscape.io.legacy import load_pickle
from cryoscape.io.metadata import read_ctf, read_poses
from cryoscape.io.star import read_star, write_star

PFCRT = "FinalRefinement-OriginalParticles-PfCRT.star"
CS = "cryosparc_P12_J24_001_particles.cs"


# --- golden pairs ---------------------------------------------------------------------------------

def test_star_poses_equal_cryodrgn_pose_star_pkl(fixtures_dir):
    poses = read_poses(fixtures_dir / PFCRT, box_size=300)
    rot, trans = load_pickle(fixtures_dir / "pose.star.pkl")
    assert poses.box_size == 300
    np.testing.assert_allclose(poses.rotations, rot, atol=1e-6)
    # cryoDRGN stores translations as a fraction of the box (here D = 300): compare in pixels
    np.testing.assert_allclose(poses.shifts_px, trans * 300, atol=1e-6)
    # and the pixels are the file's rlnOriginX/Y, with their sign
    np.testing.assert_allclose(poses.shifts_px[0], [-0.14063, -0.04688])


def test_cs_poses_equal_cryodrgn_pose_cs_pkl(fixtures_dir):
    poses = read_poses(fixtures_dir / CS)
    rot, trans = load_pickle(fixtures_dir / "pose.cs.pkl")
    assert poses.box_size == 180
    assert len(poses) == 2019
    np.testing.assert_allclose(poses.rotations, rot, atol=1e-6)  # float32 poses in the file
    np.testing.assert_allclose(poses.shifts_px, trans * 180, atol=1e-4)


def test_star_ctf_equals_cryodrgn_ctf1_pkl(fixtures_dir):
    """ctf1.pkl was made with cryoDRGN parse_ctf_star -D 300 --Apix 1.035 -w 0.1.

    The star is RELION 3.0.6 with rlnDetectorPixelSize 1.035 µm and rlnMagnification 10000 (→ 1.035 Å/px,
    from the file itself) but no rlnAmplitudeContrast column: the 0.1 in ctf1 was given by hand, so our
    reader must get it from the argument, and must refuse to guess it.
    """
    path = fixtures_dir / PFCRT
    assert not read_star(path).has("rlnAmplitudeContrast")
    with pytest.raises(InputError, match="amplitude contrast"):
        read_ctf(path, box_size=300)
    ctf = read_ctf(path, box_size=300, amplitude_contrast=0.1)
    ref = load_pickle(fixtures_dir / "ctf1.pkl")
    assert ref.shape == (5, 9) and ref.dtype == np.float32
    assert ctf.box_size == 300
    np.testing.assert_array_equal(ref[:, 0], 300)
    ours = np.stack([ctf.pixel_size_angstrom, ctf.defocus_u_angstrom, ctf.defocus_v_angstrom,
                     ctf.defocus_angle_deg, ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast,
                     ctf.phase_shift_deg], axis=1)
    # ctf1 is float32: compare at float32 precision
    np.testing.assert_allclose(ours, ref[:, 1:].astype(np.float64), rtol=1e-6, atol=1e-7)


def test_cs_ctf_equals_cryodrgn_ctf2_pkl(fixtures_dir):
    ctf = read_ctf(fixtures_dir / CS)
    ref = load_pickle(fixtures_dir / "ctf2.pkl").astype(np.float64)
    assert ref.shape == (2019, 9)
    assert ctf.box_size == 180
    np.testing.assert_array_equal(ref[:, 0], 180)
    np.testing.assert_allclose(ctf.pixel_size_angstrom, ref[:, 1], rtol=1e-6)
    np.testing.assert_allclose(ctf.defocus_u_angstrom, ref[:, 2], rtol=1e-6)
    np.testing.assert_allclose(ctf.defocus_v_angstrom, ref[:, 3], rtol=1e-6)
    # cryoSPARC stores radians; both sides converted to degrees
    np.testing.assert_allclose(ctf.defocus_angle_deg, ref[:, 4], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ctf.voltage_kv, ref[:, 5], rtol=1e-6)
    np.testing.assert_allclose(ctf.cs_mm, ref[:, 6], rtol=1e-6)
    np.testing.assert_allclose(ctf.amplitude_contrast, ref[:, 7], rtol=1e-6)
    np.testing.assert_allclose(ctf.phase_shift_deg, ref[:, 8], atol=1e-5)


# --- RELION 3.1+ conventions ----------------------------------------------------------------------

def test_relion31_shifts_are_angstrom_over_pixel_size(fixtures_dir):
    poses = read_poses(fixtures_dir / "relion31.star")
    star = read_star(fixtures_dir / "relion31.star")
    assert poses.box_size == 256
    expected = np.stack([star.particles["rlnOriginXAngst"], star.particles["rlnOriginYAngst"]], 1) / 2.806
    np.testing.assert_allclose(poses.shifts_px, expected)
    angles = star.particles[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy()
    # RELION's Euler_angles2matrix(rot, tilt, psi) = (intrinsic ZYZ active rotation)ᵀ
    np.testing.assert_allclose(poses.rotations,
                               Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().swapaxes(1, 2),
                               atol=1e-12)
    np.testing.assert_array_equal(read_poses(fixtures_dir / "relion31.v2.star").shifts_px, poses.shifts_px)


def test_six_optics_groups_shifts_use_each_groups_pixel_size(fixtures_dir):
    path = fixtures_dir / "relion31.6opticsgroups.star"
    star = read_star(path)
    poses = read_poses(path)
    ctf = read_ctf(path)
    group_pixel = dict(zip(star.optics["rlnOpticsGroup"], star.optics["rlnImagePixelSize"]))
    pixel = np.array([group_pixel[g] for g in star.particles["rlnOpticsGroup"]])
    np.testing.assert_allclose(poses.shifts_px[:, 1], star.particles["rlnOriginYAngst"] / pixel)
    np.testing.assert_array_equal(ctf.pixel_size_angstrom, pixel)
    group_cs = dict(zip(star.optics["rlnOpticsGroup"], star.optics["rlnSphericalAberration"]))
    np.testing.assert_array_equal(ctf.cs_mm, [group_cs[g] for g in star.particles["rlnOpticsGroup"]])
    assert poses.box_size == ctf.box_size == 196


def test_relion5_ctf_and_poses(fixtures_dir):
    ctf = read_ctf(fixtures_dir / "relion5.star")
    assert ctf.box_size == 448
    np.testing.assert_allclose(ctf.amplitude_contrast, 0.1)
    np.testing.assert_allclose(ctf.voltage_kv, 100.0)
    poses = read_poses(fixtures_dir / "relion5.star")
    np.testing.assert_allclose(poses.shifts_px[0], np.array([-3.12578, -1.41031]) / 0.89)


def test_ctf_bfactor_and_relion30_pixel_size(fixtures_dir):
    ctf = read_ctf(fixtures_dir / "sta_testing_bin8.star", box_size=64)
    assert ctf.bfactor_angstrom2[0] == -13.0
    np.testing.assert_allclose(ctf.pixel_size_angstrom, 1.96 * 1e4 / 10000)


# --- errors ---------------------------------------------------------------------------------------

def test_relion30_needs_box_size(fixtures_dir):
    with pytest.raises(InputError, match="box size") as info:
        read_poses(fixtures_dir / PFCRT)
    assert PFCRT in str(info.value)


def test_missing_angle_columns_are_listed(fixtures_dir):
    with pytest.raises(InputError, match="rlnAngleRot, rlnAngleTilt, rlnAnglePsi"):
        read_poses(fixtures_dir / "toy.star", box_size=30)


def test_missing_one_origin_column(tmp_path):
    particles = pd.DataFrame({"rlnAngleRot": [1.0], "rlnAngleTilt": [2.0], "rlnAnglePsi": [3.0],
                              "rlnOriginX": [0.5]})
    path = write_star(tmp_path / "p.star", particles)
    with pytest.raises(InputError, match="rlnOriginY"):
        read_poses(path, box_size=64)


def test_cs_with_only_2d_alignments(fixtures_dir):
    with pytest.raises(InputError, match="only 2-D alignments") as info:
        read_poses(fixtures_dir / "cryosparc_J2_particles_exported.cs")
    assert "alignments3D" in str(info.value)
    ctf = read_ctf(fixtures_dir / "cryosparc_J2_particles_exported.cs")  # the CTF is still there
    assert len(ctf) == 22


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"'.txt'"):
        read_poses(tmp_path / "x.txt")
    with pytest.raises(InputError, match="not found"):
        read_ctf(tmp_path / "x.star")


def test_file_value_wins_over_disagreeing_argument(fixtures_dir):
    # a box size that differs is normal (downsampled stack): the file's box is kept, silently; callers rescale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poses = read_poses(fixtures_dir / "relion31.star", box_size=128)
    assert poses.box_size == 256
    with pytest.warns(UserWarning, match="ignored"):
        read_poses(fixtures_dir / "relion31.star", pixel_size_angstrom=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_poses(fixtures_dir / "relion31.star", box_size=256, pixel_size_angstrom=2.806)


# --- cryoSPARC conventions (synthetic files checked against independent formulas) -----------------

def _cs_array(n, rng, align_psize=2.0, blob_psize=2.0):
    dtype = [("blob/path", "S8"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4"),
             ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,)),
             ("alignments3D/psize_A", "<f4")]
    array = np.zeros(n, dtype=dtype)
    array["blob/shape"] = 64
    array["blob/psize_A"] = blob_psize
    array["alignments3D/psize_A"] = align_psize
    array["alignments3D/pose"] = rng.normal(size=(n, 3))
    array["alignments3D/shift"] = rng.normal(size=(n, 2)) * 3
    return array


def test_cs_rotation_is_transposed_exp_map(tmp_path):
    rng = np.random.default_rng(0)
    array = _cs_array(6, rng)
    poses = read_poses(write_cs(tmp_path / "p.cs", array))
    rotvec = array["alignments3D/pose"].astype(np.float64)
    expected = Rotation.from_rotvec(rotvec).as_matrix().transpose(0, 2, 1)
    np.testing.assert_allclose(poses.rotations, expected, atol=1e-12)
    np.testing.assert_array_equal(poses.shifts_px, array["alignments3D/shift"].astype(np.float64))


def test_cs_shifts_converted_from_alignment_pixels_to_image_pixels(tmp_path):
    """Particles re-extracted at 1 Å/px after aligning at 2 Å/px: a 3-px alignment shift is 6 image pixels."""
    rng = np.random.default_rng(1)
    array = _cs_array(4, rng, align_psize=2.0, blob_psize=1.0)
    poses = read_poses(write_cs(tmp_path / "p.cs", array))
    np.testing.assert_allclose(poses.shifts_px, 2.0 * array["alignments3D/shift"].astype(np.float64))


# --- cryoDRGN pickles -----------------------------------------------------------------------------

def test_pose_and_ctf_pickles(fixtures_dir):
    from_pkl = read_poses(fixtures_dir / "pose.star.pkl", box_size=300)
    from_star = read_poses(fixtures_dir / PFCRT, box_size=300)
    np.testing.assert_allclose(from_pkl.rotations, from_star.rotations, atol=1e-6)
    np.testing.assert_allclose(from_pkl.shifts_px, from_star.shifts_px, atol=1e-6)
    with pytest.raises(InputError, match="box size"):
        read_poses(fixtures_dir / "pose.star.pkl")
    ctf = read_ctf(fixtures_dir / "ctf1.pkl")
    assert ctf.box_size == 300
    np.testing.assert_allclose(ctf.amplitude_contrast, 0.1, rtol=1e-6)
