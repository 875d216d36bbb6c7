"""Scoring learned poses (and their map) against the true ones, up to the global rotation and hand.

Poses found ab initio are determined only up to a global rotation ``G`` and a mirror: a map ``V_L`` with poses
``R_L`` explains the images as well as ``V_T`` with ``R_T = R_L G`` when ``V_L(x) = V_T(x G)`` (row vectors),
and as well as the mirrored map ``V_L(x M)``, ``M = diag(1, 1, -1)`` (``transforms.flip_hand``), with poses
``M R_L M`` (the first two rows of a rotation, which alone act on the z = 0 lattice, are unchanged up to the
sign of their z components). :func:`align_poses` finds, for each hand, the rotation ``G`` minimising
``Σ_i ||R'_i G - R_T,i||²`` (the projection onto SO(3) of ``Σ_i R'_iᵀ R_T,i``; then again on the particles whose
error is below twice the median, against outliers) and keeps the hand with the smaller median error. A 3-D
translation ``c`` (voxels) of the learned map shows in every image as the 2-D shift ``(R_T,i c)[:2]``; it is
fitted by least squares to the shift differences and removed before the shift error is measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryoscape.errors import InputError
from cryoscape.reconstruct.fsc import FSCCurve, fsc_curve
from cryoscape.reconstruct.transforms import flip_hand

MIRROR = np.diag([1.0, 1.0, -1.0])


@dataclass(frozen=True)
class PoseAlignment:
    """Result of :func:`align_poses`.

    Attributes
    ----------
    rotation : ndarray, shape (3, 3)
        ``G``: the aligned poses are ``R' G`` (``R' = R_L``, or ``M R_L M`` when ``flipped``).
    flipped : bool
        Whether the learned map has the other hand.
    translation_px : ndarray, shape (3,)
        ``c``: the learned map's centre offset (x, y, z) in voxels, in the true frame.
    angular_error_deg : ndarray, shape (N,)
        Angle of ``R_T,i⁻¹ R'_i G`` per particle.
    shift_error_px : ndarray, shape (N,)
        ``|t_L,i - (R_T,i c)[:2] - t_T,i|`` per particle (pixels).
    """

    rotation: np.ndarray
    flipped: bool
    translation_px: np.ndarray
    angular_error_deg: np.ndarray
    shift_error_px: np.ndarray

    def summary(self) -> dict[str, float]:
        """Median, mean and 90th percentile of the angular and shift errors, and the hand."""
        a, s = self.angular_error_deg, self.shift_error_px
        return {"median_angular_error_deg": float(np.median(a)), "mean_angular_error_deg": float(np.mean(a)),
                "p90_angular_error_deg": float(np.percentile(a, 90)),
                "median_shift_error_px": float(np.median(s)), "mean_shift_error_px": float(np.mean(s)),
                "flipped_hand": bool(self.flipped)}


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) of ``aᵀ b`` for stacks of rotations (N, 3, 3)."""
    trace = np.einsum("nji,nji->n", a, b)
    return np.degrees(np.arccos(np.clip((trace - 1) / 2, -1.0, 1.0)))


def _project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _fit_rotation(learned: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = _project_so3(np.einsum("nji,njk->ik", learned, true))
    err = rotation_angle_deg(learned @ g, true)
    inliers = err <= max(2 * np.median(err), 1e-6)
    if inliers.sum() >= 3:
        g = _project_so3(np.einsum("nji,njk->ik", learned[inliers], true[inliers]))
        err = rotation_angle_deg(learned @ g, true)
    return g, err


def align_poses(learned_rotations: np.ndarray, learned_shifts_px: np.ndarray, true_rotations: np.ndarray,
                true_shifts_px: np.ndarray) -> PoseAlignment:
    """Global rotation, hand and map translation best aligning learned poses to true ones (module docstring).

    Parameters
    ----------
    learned_rotations, true_rotations : ndarray, shape (N, 3, 3)
    learned_shifts_px, true_shifts_px : ndarray, shape (N, 2)
        Shifts in pixels of the same box.

    Returns
    -------
    PoseAlignment
    """
    rl = np.asarray(learned_rotations, dtype=np.float64)
    rt = np.asarray(true_rotations, dtype=np.float64)
    tl = np.asarray(learned_shifts_px, dtype=np.float64)
    tt = np.asarray(true_shifts_px, dtype=np.float64)
    n = rl.shape[0]
    if n == 0 or rt.shape != rl.shape or tl.shape != (n, 2) or tt.shape != (n, 2):
        raise InputError(f"pose tables differ in size: {rl.shape}, {rt.shape}, {tl.shape}, {tt.shape}")
    best = None
    for flipped in (False, True):
        cand = MIRROR @ rl @ MIRROR if flipped else rl
        g, err = _fit_rotation(cand, rt)
        if best is None or np.median(err) < np.median(best[2]):
            best = (flipped, g, err)
    flipped, g, err = best
    # shift differences d_i = (R_T,i c)[:2]: least squares for c over particles
    a = rt[:, :2, :].reshape(-1, 3)
    d = (tl - tt).reshape(-1)
    c, *_ = np.linalg.lstsq(a, d, rcond=None)
    shift_err = np.linalg.norm(tl - tt - np.einsum("nij,j->ni", rt[:, :2, :], c), axis=1)
    return PoseAlignment(rotation=g, flipped=bool(flipped), translation_px=c, angular_error_deg=err,
                         shift_error_px=shift_err)


def align_volume(volume: np.ndarray, alignment: PoseAlignment) -> np.ndarray:
    """The learned map in the true frame: mirrored if ``flipped``, moved and rotated by ``c`` and ``G``.

    ``out(y) = V'((y + c) Gᵀ)`` with ``V'`` the (mirrored) learned map, y in voxels from the centre D/2,
    trilinear interpolation, zero outside.

    Returns
    -------
    ndarray, shape (D, D, D), float32
    """
    vol = np.asarray(volume, dtype=np.float64)
    if alignment.flipped:
        vol = flip_hand(vol)
    d = vol.shape[0]
    c = np.arange(d) - d // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    pts = (np.stack([x, y, z], -1).reshape(-1, 3) + alignment.translation_px) @ alignment.rotation.T
    coords = pts[:, ::-1].T + d // 2
    out = ndimage.map_coordinates(vol, coords, order=1, mode="constant", cval=0.0)
    return out.reshape(d, d, d).astype(np.float32)


def aligned_fsc(volume: np.ndarray, truth: np.ndarray, alignment: PoseAlignment,
                voxel_size_angstrom: float) -> FSCCurve:
    """FSC between the aligned learned map (:func:`align_volume`) and the true map."""
    return fsc_curve(align_volume(volume, alignment), np.asarray(truth, dtype=np.float32), voxel_size_angstrom)
