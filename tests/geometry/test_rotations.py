"""Rotation conventions: RELION Euler ZYZ, exp map, quaternions, uniform SO(3).

Each convention is checked against something independent of our code: an explicit product of elementary
rotations written out here, scipy's Rotation, and the matrices cryoDRGN stored in the real fixtures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from cryoscape.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotations,
)

angle = st.floats(-math.pi, math.pi, allow_nan=False)
euler = st.tuples(angle, st.floats(0.0, math.pi), angle)
rotvec = st.tuples(*(st.floats(-7.0, 7.0, allow_nan=False) for _ in range(3)))
quat = st.tuples(*(st.floats(-1.0, 1.0, allow_nan=False) for _ in range(4))).filter(
    lambda q: sum(c * c for c in q) > 1e-3
)


def _rz(a: float) -> np.ndarray:
    """RELION's elementary Z matrix (tilt = psi = 0): [[c, s, 0], [-s, c, 0], [0, 0, 1]]."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _ry(b: float) -> np.ndarray:
    """RELION's elementary Y matrix (rot = psi = 0): [[c, 0, -s], [0, 1, 0], [s, 0, c]]."""
    c, s = math.cos(b), math.sin(b)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _assert_rotation(m: np.ndarray) -> None:
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


# --- Euler (RELION) ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(euler)
def test_euler_matches_elementary_product(angles):
    rot, tilt, psi = angles
    expected = _rz(psi) @ _ry(tilt) @ _rz(rot)
    np.testing.assert_allclose(euler_to_matrix(np.array(angles)), expected, atol=1e-13)


def test_euler_elementary_matrices_are_transposed_active_rotations():
    # rot alone: R = Rz_active(rot)^T, so the Fourier point k @ R of k = (1, 0, 0) is (cos rot, sin rot, 0)
    a = 0.4
    m = euler_to_matrix(np.array([a, 0.0, 0.0]))
    np.testing.assert_allclose(np.array([1.0, 0.0, 0.0]) @ m, [math.cos(a), math.sin(a), 0.0], atol=1e-15)
    np.testing.assert_allclose(m, Rotation.from_euler("z", a).as_matrix().T, atol=1e-15)
    m = euler_to_matrix(np.array([0.0, a, 0.0]))
    np.testing.assert_allclose(m, Rotation.from_euler("y", a).as_matrix().T, atol=1e-15)
    # general: intrinsic z-y-z active rotation (rot, tilt, psi), transposed
    angles = np.array([0.3, 1.1, -2.0])
    np.testing.assert_allclose(
        euler_to_matrix(angles), Rotation.from_euler("ZYZ", angles).as_matrix().T, atol=1e-14
    )


def test_euler_matches_cryodrgn_pose_star_fixture(fixtures_dir):
    starfile = pytest.importorskip("starfile")
    from cryoscape.io.legacy import load_pickle

    particles = starfile.read(fixtures_dir / "FinalRefinement-OriginalParticles-PfCRT.star")
    degrees = particles[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(dtype=np.float64)
    rotations, _trans = load_pickle(fixtures_dir / "pose.star.pkl")
    assert rotations.shape == (5, 3, 3)
    np.testing.assert_allclose(euler_to_matrix(np.deg2rad(degrees)), rotations, atol=1e-12)
    # and it is not the transpose (which would be the other common reading of the same angles)
    assert np.abs(np.swapaxes(euler_to_matrix(np.deg2rad(degrees)), -1, -2) - rotations).max() > 0.1


@settings(max_examples=200, deadline=None)
@given(euler)
def test_euler_round_trip(angles):
    a = np.array(angles)
    m = euler_to_matrix(a)
    _assert_rotation(m)
    back = matrix_to_euler(m)
    np.testing.assert_allclose(euler_to_matrix(back), m, atol=1e-12)
    assert 0.0 <= back[1] <= math.pi
    assert -math.pi < back[0] <= math.pi and -math.pi < back[2] <= math.pi
    if 1e-6 < a[1] < math.pi - 1e-6:
        # unique angles away from gimbal lock (up to 2π on rot and psi)
        diff = (back - a + math.pi) % (2 * math.pi) - math.pi
        np.testing.assert_allclose(diff, 0.0, atol=1e-8)


@pytest.mark.parametrize("tilt", [0.0, 1e-14, 1e-9, math.pi, math.pi - 1e-14, math.pi - 1e-9])
def test_matrix_to_euler_gimbal_lock(tilt):
    a = np.array([0.7, tilt, -2.1])
    m = euler_to_matrix(a)
    back = matrix_to_euler(m)
    np.testing.assert_allclose(euler_to_matrix(back), m, atol=1e-12)
    if tilt in (0.0, math.pi):
        assert back[0] == 0.0  # canonical choice at exact gimbal lock
        combined = 0.7 - 2.1 if tilt == 0.0 else -2.1 - 0.7  # rot + psi, or psi - rot
        np.testing.assert_allclose(back[2], (combined + math.pi) % (2 * math.pi) - math.pi, atol=1e-12)


def test_euler_broadcast_shapes():
    rng = np.random.default_rng(0)
    a = rng.uniform(-3, 3, size=(4, 5, 3))
    m = euler_to_matrix(a)
    assert m.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(m[2, 3], euler_to_matrix(a[2, 3]))
    assert matrix_to_euler(m).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        euler_to_matrix(np.zeros(4))


# --- axis-angle -------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rotvec)
def test_axis_angle_matches_scipy(v):
    v = np.array(v)
    m = axis_angle_to_matrix(v)
    _assert_rotation(m)
    np.testing.assert_allclose(m, Rotation.from_rotvec(v).as_matrix(), atol=1e-12)


def test_axis_angle_is_active_counterclockwise():
    m = axis_angle_to_matrix(np.array([0.0, 0.0, math.pi / 2]))
    np.testing.assert_allclose(m @ np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-15)
    axis = np.array([1.0, 2.0, -0.5])
    m = axis_angle_to_matrix(0.8 * axis / np.linalg.norm(axis))
    np.testing.assert_allclose(m @ axis, axis, atol=1e-14)


@pytest.mark.parametrize("theta", [0.0, 1e-12, 1e-6, 1e-4, 2e-4, 1e-2])
def test_axis_angle_small_angles(theta):
    u = np.array([0.6, -0.8, 0.0])
    v = theta * u
    k = np.array([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    exact = np.eye(3) + math.sin(theta) * k + (1.0 - math.cos(theta)) * (k @ k)
    np.testing.assert_allclose(axis_angle_to_matrix(v), exact, atol=1e-16 + 1e-15)


def test_axis_angle_cryosparc_fixture(fixtures_dir):
    # cryoDRGN's pose.cs.pkl holds expmap(alignments3D/pose) transposed (the .cs file is numpy's .npy format)
    from cryoscape.io.legacy import load_pickle

    cs = np.load(fixtures_dir / "cryosparc_P12_J24_001_particles.cs", allow_pickle=False)
    rotations, _trans = load_pickle(fixtures_dir / "pose.cs.pkl")
    ours = np.swapaxes(axis_angle_to_matrix(cs["alignments3D/pose"].astype(np.float64)), -1, -2)
    np.testing.assert_allclose(ours, rotations, atol=1e-6)  # the .cs poses are float32


# --- quaternions ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(quat)
def test_quaternion_matches_scipy_and_round_trips(q):
    q = np.array(q) / np.linalg.norm(q)
    m = quaternion_to_matrix(q)
    _assert_rotation(m)
    scipy_xyzw = np.roll(q, -1)
    np.testing.assert_allclose(m, Rotation.from_quat(scipy_xyzw).as_matrix(), atol=1e-12)
    back = matrix_to_quaternion(m)
    assert back[0] >= 0.0
    np.testing.assert_allclose(np.linalg.norm(back), 1.0, atol=1e-14)
    sign = 1.0 if np.dot(back, q) >= 0 else -1.0
    np.testing.assert_allclose(back, sign * q, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(rotvec)
def test_quaternion_agrees_with_axis_angle(v):
    v = np.array(v)
    theta = np.linalg.norm(v)
    u = v / theta if theta > 0 else np.array([1.0, 0.0, 0.0])
    q = np.concatenate([[math.cos(theta / 2)], math.sin(theta / 2) * u])
    np.testing.assert_allclose(quaternion_to_matrix(q), axis_angle_to_matrix(v), atol=1e-12)


def test_matrix_to_quaternion_half_turns():
    # w = 0: rotations by π, where the largest-pivot branch must be taken
    for axis in np.eye(3):
        m = axis_angle_to_matrix(math.pi * axis)
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(m)), m, atol=1e-14)


# --- uniform random rotations -----------------------------------------------------------------------------


def test_random_rotations_are_uniform():
    rng = np.random.default_rng(1234)
    n = 20000
    m = random_rotations(n, rng)
    assert m.shape == (n, 3, 3)
    _assert_rotation(m)
    # Haar measure: E[R] = 0, each entry has variance 1/3 (so standard error sqrt(1/(3n)) ≈ 0.004)
    np.testing.assert_allclose(m.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose((m**2).mean(axis=0), 1.0 / 3.0, atol=0.02)
    # cos(tilt) = R[2, 2] is uniform on [-1, 1] and rot, psi are uniform on (-π, π]: Kolmogorov-Smirnov
    from scipy import stats

    angles = matrix_to_euler(m)
    assert stats.kstest(m[:, 2, 2], stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert stats.kstest(angles[:, 0], stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
    assert stats.kstest(angles[:, 2], stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
    # rotation angle θ has density (1 - cos θ)/π on [0, π]: CDF (θ - sin θ)/π
    theta = np.arccos(np.clip((np.trace(m, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert stats.kstest(theta, lambda t: (t - np.sin(t)) / math.pi).pvalue > 1e-3


def test_random_rotations_reproducible_with_rng():
    a = random_rotations(5, np.random.default_rng(7))
    b = random_rotations(5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert random_rotations(0, np.random.default_rng(0)).shape == (0, 3, 3)
