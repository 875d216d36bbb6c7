"""Central slices (extract_slices) and their adjoint (insert_slices).

Checked against: the adjoint identity on random data; the Fourier slice theorem with an analytic real-space
projection of Gaussian blobs (independent of our code: the projection of v(Rᵀr) along z); the real fixture
hand.mrcs + hand_rot.pkl (cryoDRGN's noiseless projections): a reconstruction from 80 images must predict the
20 held-out images with the rotations as given (k @ R), and clearly worse with their transposes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.geometry.slicing import extract_slices, insert_slices


def _random_rotations(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0] *= -1
    return q


def _ft3(v: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float64)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(t)))


def _ift2(f: torch.Tensor) -> np.ndarray:
    dims = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(f, dim=dims)), dim=dims).real.numpy()


def _ft2(x: np.ndarray) -> torch.Tensor:
    dims = (-2, -1)
    t = torch.as_tensor(x, dtype=torch.float64)
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(t, dim=dims)), dim=dims)


def _pad(v: np.ndarray, box: int) -> np.ndarray:
    d = v.shape[0]
    out = np.zeros((box,) * 3, dtype=v.dtype)
    a = box // 2 - d // 2
    out[a:a + d, a:a + d, a:a + d] = v
    return out


@pytest.mark.parametrize("oversampling", [1, 2])
@pytest.mark.parametrize("dtype", [torch.complex128, torch.float64])
def test_insert_is_adjoint_of_extract(oversampling: int, dtype: torch.dtype) -> None:
    d = 12
    box = d * oversampling
    gen = torch.Generator().manual_seed(0)
    volume = torch.randn((box,) * 3, dtype=dtype, generator=gen)
    slices = torch.randn((7, d, d), dtype=dtype, generator=gen)
    rot = torch.as_tensor(_random_rotations(7, 1))
    lhs = torch.sum(extract_slices(volume, rot, slice_box=d) * slices.conj())
    data, _ = insert_slices(slices, rot, box)
    rhs = torch.sum(volume * data.conj())
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-9)


def test_weights_are_trilinear_partition_of_unity() -> None:
    d = 10
    rot = torch.as_tensor(_random_rotations(5, 2))
    ones = torch.ones((5, d, d), dtype=torch.float64)
    data, weight = insert_slices(ones, rot, d, weights=2 * ones)
    # every slice point within the cube keeps all eight corners inside: total weight = number of points
    assert torch.allclose(weight, 2 * data)
    radius_ok = extract_slices(torch.ones((d,) * 3, dtype=torch.float64), rot)
    assert torch.isclose(data.sum(), radius_ok.sum())
    # grid-aligned points (identity) put weight 1 on their own voxel and nothing elsewhere
    data, _ = insert_slices(ones[:1], torch.eye(3, dtype=torch.float64)[None], d)
    expected = torch.zeros((d,) * 3, dtype=torch.float64)
    expected[d // 2] = 1.0
    assert torch.equal(data, expected)


def _gaussian_blobs(box: int, centres: np.ndarray, sigma: float, amps: np.ndarray) -> np.ndarray:
    grid = np.arange(box) - box // 2
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    v = np.zeros((box,) * 3)
    for (cx, cy, cz), a in zip(centres, amps):
        v += a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma**2))
    return v


def _analytic_projection(box: int, centres: np.ndarray, sigma: float, amps: np.ndarray,
                         rot: np.ndarray) -> np.ndarray:
    """∑_z v(Rᵀ r) for Gaussian blobs: a 2-D Gaussian at the xy part of R c (continuous integral along z)."""
    grid = np.arange(box) - box // 2
    y, x = np.meshgrid(grid, grid, indexing="ij")
    img = np.zeros((box, box))
    for c, a in zip(centres, amps):
        p = rot @ c
        img += a * np.sqrt(2 * np.pi) * sigma * np.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2) / (2 * sigma**2))
    return img


def test_fourier_slice_theorem_against_analytic_projection() -> None:
    d = 32
    sigma = 1.6
    centres = np.array([[5.0, -3.0, 2.0], [-6.0, 1.0, -4.0], [1.0, 7.0, 3.0], [0.0, 0.0, -7.0]])
    amps = np.array([1.0, 0.7, 1.3, 0.5])
    vol = _gaussian_blobs(d, centres, sigma, amps)
    rot = _random_rotations(6, 3)
    expected = np.stack([_analytic_projection(d, centres, sigma, amps, r) for r in rot])
    got = _ift2(extract_slices(_ft3(_pad(vol, 2 * d)), torch.as_tensor(rot), slice_box=d))
    for g, e in zip(got, expected):
        assert np.corrcoef(g.ravel(), e.ravel())[0, 1] > 0.999
        assert np.abs(g - e).max() < 0.08 * np.abs(e).max()
    # the transposed convention projects a different view
    transposed = torch.as_tensor(rot.transpose(0, 2, 1))
    wrong = _ift2(extract_slices(_ft3(_pad(vol, 2 * d)), transposed, slice_box=d))
    assert min(np.corrcoef(w.ravel(), e.ravel())[0, 1] for w, e in zip(wrong, expected)) < 0.9


def test_grid_aligned_rotations_are_exact() -> None:
    """Identity: slice = DFT of the sum along z; 90° about z: the view rotates (x, y) → (−y, x)... exactly."""
    d = 16
    rng = np.random.default_rng(4)
    vol = rng.standard_normal((d, d, d))
    ft = _ft3(vol)
    ident = extract_slices(ft, torch.eye(3, dtype=torch.float64)[None])
    assert np.allclose(_ift2(ident)[0], vol.sum(axis=0), atol=1e-10)
    # rotation taking lattice x to volume y: k @ R with R rows = images of the lattice axes
    rot = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    # k=(kx,ky,0) → volume point (kz_vol=ky, ky_vol=kx, kx_vol=0): the projection along the volume x axis,
    # with image x = volume y and image y = volume z
    expected = vol.sum(axis=2)  # indexed [z, y] = [image y, image x]
    assert np.allclose(_ift2(extract_slices(ft, rot))[0], expected, atol=1e-10)


def test_hand_fixture_rotation_convention(fixtures_dir) -> None:
    from cryoscape.io.legacy import load_pickle
    from cryoscape.io.mrc import read_mrc

    images, _ = read_mrc(fixtures_dir / "hand.mrcs")
    rot = np.asarray(load_pickle(fixtures_dir / "hand_rot.pkl"), dtype=np.float64)
    d = images.shape[-1]
    train, test = np.arange(80), np.arange(80, 100)
    spectra = _ft2(images)

    def held_out_correlation(rotations: np.ndarray) -> float:
        r = torch.as_tensor(rotations)
        data, weight = insert_slices(spectra[train], r[train], d)
        volume_ft = data / torch.clamp(weight, min=1.0)
        pred = _ift2(extract_slices(volume_ft, r[test]))
        return float(np.mean([np.corrcoef(p.ravel(), images[i].ravel())[0, 1] for p, i in zip(pred, test)]))

    good = held_out_correlation(rot)
    transposed = held_out_correlation(rot.transpose(0, 2, 1))
    assert good > 0.98
    assert transposed < good - 0.1
