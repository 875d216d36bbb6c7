"""Rotation matrices: RELION Euler angles, axis-angle, quaternions and uniform random rotations.

Numpy only (the torch-free ``io`` layer imports this module). Angles are in radians here; files hold degrees.

Conventions
-----------
``euler_to_matrix`` is RELION's ``Euler_angles2matrix(rot, tilt, psi)`` (ZYZ)::

    R = Rz(psi) · Ry(tilt) · Rz(rot),   Rz(a) = [[cos a,  sin a, 0],    Ry(b) = [[cos b, 0, -sin b],
                                                 [-sin a, cos a, 0],              [0,     1,  0    ],
                                                 [0,      0,     1]]              [sin b, 0,  cos b]]

(the elementary matrices are the *transposes* of the active right-handed rotations). The 3-D Fourier point of
the 2-D lattice vector ``k = (kx, ky, 0)`` (a row vector) is ``k @ R``. This equals the matrices stored by
cryoDRGN in ``pose.star.pkl`` (tested in ``tests/geometry/test_rotations.py``).

``axis_angle_to_matrix`` is the exponential map of so(3): the *active* right-handed rotation by ``|v|``
radians about ``v/|v|`` (Rodrigues). cryoSPARC's ``alignments3D/pose`` gives RELION's matrix after
transposition.

Quaternions are ``(w, x, y, z)`` (scalar first), unit norm, ``q`` and ``-q`` being the same rotation;
the matrix of ``(cos θ/2, sin θ/2 · u)`` is ``axis_angle_to_matrix(θ u)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "axis_angle_to_matrix",
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "random_rotations",
]

# below this |sin(tilt)| the rot/psi split is undetermined (gimbal lock) and rot is set to 0
_GIMBAL_EPS = 1e-12


def _check_last_dims(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if array.shape[array.ndim - len(shape) :] != shape or array.ndim < len(shape):
        raise ValueError(f"{name} must have trailing shape {shape}, got {array.shape}")


def euler_to_matrix(angles_rad: np.ndarray) -> np.ndarray:
    """RELION ZYZ Euler angles to rotation matrices (``Euler_angles2matrix``).

    Parameters
    ----------
    angles_rad
        ``(..., 3)`` angles ``[rot, tilt, psi]`` in radians (RELION ``_rlnAngleRot/Tilt/Psi`` converted from
        degrees).

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)`` float64 rotation matrices ``Rz(psi) · Ry(tilt) · Rz(rot)`` (see the module docstring).
    """
    angles = np.asarray(angles_rad, dtype=np.float64)
    _check_last_dims(angles, (3,), "angles_rad")
    ca, cb, cg = np.cos(angles[..., 0]), np.cos(angles[..., 1]), np.cos(angles[..., 2])
    sa, sb, sg = np.sin(angles[..., 0]), np.sin(angles[..., 1]), np.sin(angles[..., 2])
    out = np.empty((*angles.shape[:-1], 3, 3), dtype=np.float64)
    out[..., 0, 0] = cg * cb * ca - sg * sa
    out[..., 0, 1] = cg * cb * sa + sg * ca
    out[..., 0, 2] = -cg * sb
    out[..., 1, 0] = -sg * cb * ca - cg * sa
    out[..., 1, 1] = -sg * cb * sa + cg * ca
    out[..., 1, 2] = sg * sb
    out[..., 2, 0] = sb * ca
    out[..., 2, 1] = sb * sa
    out[..., 2, 2] = cb
    return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    """Wrap radians into (-pi, pi]."""
    wrapped = np.mod(angle + np.pi, 2 * np.pi) - np.pi
    return np.where(wrapped <= -np.pi, wrapped + 2 * np.pi, wrapped)


def matrix_to_euler(matrices: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix`.

    Parameters
    ----------
    matrices
        ``(..., 3, 3)`` rotation matrices.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` float64 ``[rot, tilt, psi]`` in radians with ``tilt`` in ``[0, pi]`` and ``rot``,
        ``psi`` in ``(-pi, pi]``. At gimbal lock (``sin(tilt) == 0``, only ``rot + psi`` or ``psi - rot`` is
        defined) ``rot`` is 0. ``euler_to_matrix(matrix_to_euler(R))`` reproduces ``R`` to rounding
        everywhere, including near gimbal lock.
    """
    m = np.asarray(matrices, dtype=np.float64)
    _check_last_dims(m, (3, 3), "matrices")
    sin_tilt = np.hypot(m[..., 0, 2], m[..., 1, 2])
    tilt = np.arctan2(sin_tilt, m[..., 2, 2])
    locked = sin_tilt < _GIMBAL_EPS
    rot = np.where(locked, 0.0, np.arctan2(m[..., 2, 1], m[..., 2, 0]))
    # rot + psi and psi - rot from the upper 2x2 block: (1 + cos tilt)·(cos, sin)(rot + psi) and
    # (1 - cos tilt)·(cos, sin)(psi - rot); each is well conditioned on its own hemisphere of tilt, and
    # deriving psi from it keeps the reconstructed matrix exact even where rot itself is ill-determined.
    rot_plus_psi = np.arctan2(m[..., 0, 1] - m[..., 1, 0], m[..., 0, 0] + m[..., 1, 1])
    psi_minus_rot = np.arctan2(m[..., 0, 1] + m[..., 1, 0], m[..., 1, 1] - m[..., 0, 0])
    psi = np.where(m[..., 2, 2] >= 0, rot_plus_psi - rot, psi_minus_rot + rot)
    return np.stack([_wrap(rot), tilt, _wrap(psi)], axis=-1)


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Exponential map: rotation vector (axis × angle in radians) to the active rotation matrix.

    Parameters
    ----------
    rotvec
        ``(..., 3)`` rotation vectors ``θ u`` (``u`` unit axis, ``θ`` radians).

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)`` float64 ``I + sinθ K + (1 − cosθ) K²`` with ``K`` the cross-product matrix of ``u``
        (so ``R @ x`` rotates ``x`` counter-clockwise about ``u``). Accurate for small ``θ``.
    """
    v = np.asarray(rotvec, dtype=np.float64)
    _check_last_dims(v, (3,), "rotvec")
    theta2 = np.sum(v * v, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < 1e-4
    safe = np.where(small, 1.0, theta)
    # sinθ/θ and (1 − cosθ)/θ², with their Taylor series near 0
    a = np.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = np.zeros_like(x)
    k = np.stack(
        [np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], axis=-2
    )
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` to rotation matrices.

    Parameters
    ----------
    quaternions
        ``(..., 4)`` quaternions, scalar first; normalised here (must be non-zero).

    Returns
    -------
    numpy.ndarray
        ``(..., 3, 3)`` float64 active rotation matrices (``(cos θ/2, sin θ/2 u)`` → rotation by ``θ``
        about ``u``).
    """
    q = np.asarray(quaternions, dtype=np.float64)
    _check_last_dims(q, (4,), "quaternions")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("quaternions must be non-zero")
    w, x, y, z = np.moveaxis(q / norm, -1, 0)
    out = np.empty((*q.shape[:-1], 3, 3), dtype=np.float64)
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - w * z)
    out[..., 0, 2] = 2 * (x * z + w * y)
    out[..., 1, 0] = 2 * (x * y + w * z)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - w * x)
    out[..., 2, 0] = 2 * (x * z - w * y)
    out[..., 2, 1] = 2 * (y * z + w * x)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Parameters
    ----------
    matrices
        ``(..., 3, 3)`` rotation matrices.

    Returns
    -------
    numpy.ndarray
        ``(..., 4)`` float64 unit quaternions, scalar first, sign chosen so that ``w >= 0`` (for ``w == 0``
        the sign is arbitrary). Computed from the largest of ``|w|, |x|, |y|, |z|`` for accuracy.
    """
    m = np.asarray(matrices, dtype=np.float64)
    _check_last_dims(m, (3, 3), "matrices")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # four candidate (unnormalised) quaternions, each 4·q·q_i; use the one with the largest pivot
    candidates = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )
    pivots = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    best = np.argmax(pivots, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rotations drawn uniformly (Haar measure) on SO(3).

    Parameters
    ----------
    n
        Number of rotations.
    rng
        Source of randomness (``numpy.random.default_rng(seed)``).

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 3)`` float64 rotation matrices, from normalised 4-D Gaussian quaternions (uniform on S³,
        hence Haar-uniform on SO(3)).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    q = rng.standard_normal((n, 4))
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    # a zero Gaussian 4-vector has probability 0; guard anyway
    q = np.where(norm > 1e-12, q, np.array([1.0, 0.0, 0.0, 0.0]))
    return quaternion_to_matrix(q)
