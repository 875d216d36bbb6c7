"""The Fourier slice theorem in cryoscape's conventions, pinned on the cryoDRGN "hand" fixtures.

Conventions established here (the simulator, the slicer and the back-projector must use the same):

- A volume is indexed ``V[z, y, x]``; a voxel's coordinates are ``r = (x, y, z) - D//2`` (column = x).
  An image is ``P[y, x]`` with ``(x, y) - D//2`` likewise. Frequencies: the centred FFT (index - D//2).
- The 3-D Fourier point of the 2-D lattice vector ``k = (kx, ky, 0)`` (a row vector) is ``K = k @ R``
  (``Rᵀ k`` as a column): ``fft2_center(P)[ky, kx] == fft3_center(V)`` at ``K = (Kx, Ky, Kz)``, read at
  index ``[Kz, Ky, Kx] + D//2``.
- The matching real-space projection is ``P(x, y) = Σ_z V(Rᵀ (x, y, z)ᵀ)``: sample the volume at the row
  vectors ``r' @ R`` of the output grid points ``r' = (x, y, z)`` and sum along z (axis 0 of the sampled
  ``[z, y, x]`` array). In words: rotate the volume actively by ``R`` (``V_R(r) = V(Rᵀ r)``), then integrate
  along z. With ``Rᵀ`` in place of ``R`` (or the slice taken at ``R k``) the images do not match.
- The poses of cryoDRGN's ``hand_rot.pkl`` follow this convention: the 100 noiseless ``hand.mrcs``
  projections are consistent with a single volume under ``k @ R`` (held-out images predicted with
  correlation > 0.99), not under ``k @ Rᵀ`` (mean ≈ 0.78) nor with the images read transposed; the z-mirrored
  reconstruction does not reproduce them at the same poses (mean ≈ 0.6).

Fixture note: ``hand-vol.mrc`` is *not* the volume that ``hand.mrcs`` was projected from (its projections at
the ``hand_rot.pkl`` poses correlate below 0.5 with the images under every R/Rᵀ/mirror combination, and it
matches a reconstruction from the images under no signed axis permutation); it looks like the output of a
briefly trained model. It is used below only as a generic real 64³ volume for the exact slice-theorem checks;
absolute handedness against a RELION-written map cannot be pinned with these files.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from cryoscape.geometry.fourier import fft2_center, fft3_center, ifft2_center, ifft3_center
from cryoscape.geometry.lattice import slice_coords
from cryoscape.geometry.rotations import axis_angle_to_matrix

mrcfile = pytest.importorskip("mrcfile")

BOX = 64


def _grid_points(box: int) -> np.ndarray:
    """``(box³, 3)`` centred coordinates ``(x, y, z)`` of the voxels, in ``[z, y, x]`` flat order."""
    c = np.arange(box) - box // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(np.float64)


def _project(volume: np.ndarray, rot: np.ndarray, order: int, mode: str) -> np.ndarray:
    """Real-space projection ``P(x, y) = Σ_z V(Rᵀ (x, y, z))`` by interpolating V on the rotated grid."""
    box = volume.shape[0]
    r = _grid_points(box) @ rot + box // 2  # row r' @ R = Rᵀ r', as (x, y, z) voxel coordinates
    sampled = map_coordinates(volume, [r[:, 2], r[:, 1], r[:, 0]], order=order, mode=mode)
    return sampled.reshape(box, box, box).sum(axis=0)


def _direct_dft3(volume: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Exact ``Σ_r V(r) exp(-2πi K·r / D)`` at ``points`` ``(P, 3)`` = (Kx, Ky, Kz), cycles per box."""
    box = volume.shape[0]
    c = np.arange(box) - box // 2
    ex, ey, ez = (np.exp(-2j * np.pi * np.outer(points[:, i], c) / box) for i in range(3))
    t = volume @ ex.T  # (z, y, P)
    t = np.einsum("zyp,py->zp", t, ey)
    return np.einsum("zp,pz->p", t, ez)


def _lattice_k(box: int) -> np.ndarray:
    """``(D*D, 3)`` central-slice lattice in cycles per box, flat row-major."""
    return slice_coords(box) * box


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _lowpass_2d(image: np.ndarray, radius: float) -> np.ndarray:
    k = _lattice_k(image.shape[-1])
    mask = (np.linalg.norm(k, axis=1) <= radius).reshape(image.shape[-2:])
    return ifft2_center(fft2_center(image) * mask).real


@pytest.fixture(scope="module")
def hand(fixtures_dir):
    from cryoscape.io.legacy import load_pickle

    volume = mrcfile.read(fixtures_dir / "hand-vol.mrc").astype(np.float64)
    images = mrcfile.read(fixtures_dir / "hand.mrcs").astype(np.float64)
    rotations = np.asarray(load_pickle(fixtures_dir / "hand_rot.pkl"), dtype=np.float64)
    assert volume.shape == (BOX, BOX, BOX) and images.shape == (100, BOX, BOX)
    assert rotations.shape == (100, 3, 3)
    return volume, images, rotations


# exact lattice symmetries: 90° about x, y, z, a 3-cycle of the axes, and 180° about a diagonal
PERMUTATIONS = {
    "x90": axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0])),
    "y90": axis_angle_to_matrix(np.array([0.0, np.pi / 2, 0.0])),
    "z90": axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2])),
    "cycle": np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
    "xy180": axis_angle_to_matrix(np.pi * np.array([1.0, 1.0, 0.0]) / np.sqrt(2)),
}


@pytest.mark.parametrize("name", sorted(PERMUTATIONS))
def test_fourier_slice_exact_for_lattice_rotations(hand, name):
    volume = hand[0]
    rot = np.round(PERMUTATIONS[name])  # a signed permutation: the rotated grid is the grid itself
    assert np.isclose(np.linalg.det(rot), 1.0)
    # periodic sampling at integer points: exact (the DFT is periodic too)
    projection = _project(volume, rot, order=0, mode="grid-wrap")
    slice_2d = fft2_center(projection).ravel()
    k = _lattice_k(BOX)
    points = (k @ rot).astype(np.int64)
    idx = (points + BOX // 2) % BOX
    volume_ft = fft3_center(volume)
    scale = np.abs(slice_2d).max()
    np.testing.assert_allclose(volume_ft[idx[:, 2], idx[:, 1], idx[:, 0]], slice_2d, atol=1e-9 * scale)
    # an independent direct DFT at a sample of the rotated points
    pick = np.random.default_rng(0).choice(len(k), 60, replace=False)
    np.testing.assert_allclose(_direct_dft3(volume, k[pick] @ rot), slice_2d[pick], atol=1e-9 * scale)
    # the other reading (slice at R k instead of k @ R) does not hold for these non-symmetric rotations
    if not np.allclose(rot, rot.T):
        wrong = (k @ rot.T).astype(np.int64)
        wrong_idx = (wrong + BOX // 2) % BOX
        mismatch = np.abs(volume_ft[wrong_idx[:, 2], wrong_idx[:, 1], wrong_idx[:, 0]] - slice_2d).max()
        assert mismatch > 0.1 * scale


def test_fourier_slice_general_rotations(hand):
    volume, _images, rotations = hand
    # make the test volume smooth and contained (band-limited, zero near the edges) so that real-space
    # interpolation is accurate; the Fourier side is evaluated exactly by a direct DFT
    c = np.arange(BOX) - BOX // 2
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    radius = np.sqrt(x * x + y * y + z * z)
    window = np.clip((26.0 - radius) / 6.0, 0.0, 1.0)
    smooth = ifft3_center(fft3_center(volume * window) * (radius <= 10)).real * (radius <= 30)
    k = _lattice_k(BOX)
    low = np.flatnonzero(np.linalg.norm(k, axis=1) <= 6)
    for i in (0, 17, 58):
        rot = rotations[i]
        projection = _project(smooth, rot, order=3, mode="constant")
        slice_2d = fft2_center(projection).ravel()[low]
        exact = _direct_dft3(smooth, k[low] @ rot)
        rel = np.linalg.norm(slice_2d - exact) / np.linalg.norm(exact)
        assert rel < 1e-3, (i, rel)
        wrong = _direct_dft3(smooth, k[low] @ rot.T)
        assert np.linalg.norm(slice_2d - wrong) / np.linalg.norm(exact) > 0.3


def _reconstruct(images: np.ndarray, rotations: np.ndarray, radius: float) -> np.ndarray:
    """Direct Fourier inversion: trilinear insertion of the slices at k @ R, divided by the weights."""
    box = images.shape[-1]
    k = _lattice_k(box)
    disc = np.linalg.norm(k, axis=1) <= radius
    data = np.zeros(box**3, dtype=complex)
    weight = np.zeros(box**3)
    for image, rot in zip(images, rotations):
        values = fft2_center(image).ravel()[disc]
        pos = k[disc] @ rot + box // 2
        base = np.floor(pos).astype(np.int64)
        frac = pos - base
        for corner in np.ndindex(2, 2, 2):
            w = np.prod(np.where(np.array(corner), frac, 1.0 - frac), axis=1)
            ix, iy, iz = (base[:, j] + corner[j] for j in range(3))
            flat = (iz * box + iy) * box + ix
            np.add.at(data, flat, w * values)
            np.add.at(weight, flat, w)
    data = data / np.maximum(weight, 1.0)
    return ifft3_center(data.reshape(box, box, box)).real


def test_hand_images_follow_k_at_R(hand):
    _volume, images, rotations = hand
    train, held_out = np.arange(90), np.arange(90, 100)

    def prediction_scores(rots: np.ndarray, mirror: bool = False, stack: np.ndarray = images) -> np.ndarray:
        recon = _reconstruct(stack[train], rots[train], radius=10)
        if mirror:
            recon = recon[::-1]  # z-mirrored volume (flip axis 0)
        scores = []
        for i in held_out:
            predicted = _project(recon, rots[i], order=1, mode="constant")
            scores.append(_corr(_lowpass_2d(predicted, 8), _lowpass_2d(stack[i], 8)))
        return np.array(scores)

    right = prediction_scores(rotations)
    assert right.min() > 0.99, right
    transposed = prediction_scores(np.swapaxes(rotations, 1, 2))
    assert transposed.mean() < 0.9, transposed
    # handedness relative to the poses: the mirrored volume does not reproduce the images at the same poses
    mirrored = prediction_scores(rotations, mirror=True)
    assert mirrored.mean() < 0.9, mirrored
    # image axes: read as [x, y] instead of [y, x], the same stack is no longer consistent with these poses
    swapped = prediction_scores(rotations, stack=np.swapaxes(images, 1, 2))
    assert swapped.mean() < 0.9, swapped
