"""Lattice conventions: centred frequencies, slice coordinates, disc masks and the Hermitian half."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.geometry.fourier import fft2_center, ht2_center
from cryoscape.geometry.lattice import (
    circular_mask,
    frequencies_2d,
    hermitian_half,
    radius_px_grid,
    slice_coords,
)


@pytest.mark.parametrize("box", [2, 8, 10])
def test_frequencies_2d_layout(box):
    freqs = frequencies_2d(box)
    assert freqs.shape == (box, box, 2)
    # numpy's own frequency convention, shifted: independent of our index arithmetic
    f1 = np.fft.fftshift(np.fft.fftfreq(box))
    for y in range(box):
        for x in range(box):
            assert freqs[y, x, 0] == pytest.approx(f1[x])  # kx follows the column
            assert freqs[y, x, 1] == pytest.approx(f1[y])  # ky follows the row
            assert freqs[y, x, 0] == pytest.approx((x - box // 2) / box)
    assert tuple(freqs[box // 2, box // 2]) == (0.0, 0.0)
    assert freqs[0, 0, 0] == -0.5
    assert frequencies_2d(box, dtype=np.float32).dtype == np.float32


def test_frequencies_match_the_centred_fft():
    # a plane wave exp(2πi (kx X + ky Y)), X = x - D//2 px, has its FFT peak where frequencies_2d == (kx, ky)
    box = 16
    kx, ky = 3 / box, -5 / box
    idx = np.arange(box) - box // 2
    wave = np.exp(2j * np.pi * (kx * idx[None, :] + ky * idx[:, None]))
    f = fft2_center(wave)
    peak = np.unravel_index(np.argmax(np.abs(f)), f.shape)
    np.testing.assert_allclose(frequencies_2d(box)[peak], [kx, ky])
    np.testing.assert_allclose(abs(f[peak]), box * box)


def test_slice_coords_flat_row_major():
    box = 6
    coords = slice_coords(box)
    assert coords.shape == (box * box, 3)
    np.testing.assert_array_equal(coords[:, 2], 0.0)
    for y in range(box):
        for x in range(box):
            np.testing.assert_allclose(coords[y * box + x], [(x - box // 2) / box, (y - box // 2) / box, 0.0])
    np.testing.assert_array_equal(coords[:, :2], frequencies_2d(box).reshape(-1, 2))


@pytest.mark.parametrize(("box", "radius"), [(8, None), (8, 2.5), (16, 5), (16, 0)])
def test_circular_mask_brute_force(box, radius):
    mask = circular_mask(box, radius)
    assert mask.dtype == bool and mask.shape == (box, box)
    r = box // 2 if radius is None else radius
    for y in range(box):
        for x in range(box):
            inside = (x - box // 2) ** 2 + (y - box // 2) ** 2 <= r * r
            assert mask[y, x] == inside
    np.testing.assert_allclose(radius_px_grid(box)[box // 2, box // 2 + 3], 3.0)


@pytest.mark.parametrize(("box", "radius"), [(8, None), (10, 3), (16, 7.5), (16, None), (6, 0)])
def test_hermitian_half_covers_disc_once(box, radius):
    idx_half, idx_mirror = hermitian_half(box, radius)
    assert idx_half.dtype == np.int64 and idx_mirror.dtype == np.int64
    dc = (box // 2) * box + box // 2
    disc = circular_mask(box, radius).copy()
    disc[0, :] = False  # -k of these is off the lattice
    disc[:, 0] = False
    disc_flat = set(np.flatnonzero(disc.ravel()).tolist())
    half, mirror = idx_half.tolist(), idx_mirror.tolist()
    assert len(set(half)) == len(half) and len(set(mirror)) == len(mirror)
    assert set(half) | set(mirror) == disc_flat
    assert set(half) & set(mirror) == {dc}  # DC is its own mirror, every other point appears once
    assert 2 * len(half) - 1 == len(disc_flat)
    assert dc in half and idx_mirror[half.index(dc)] == dc
    # the mirror really is -k
    coords = slice_coords(box)
    np.testing.assert_allclose(coords[idx_mirror], -coords[idx_half])


@pytest.mark.parametrize("box", [8, 12])
def test_hermitian_symmetry_of_real_image(box):
    rng = np.random.default_rng(box)
    image = rng.normal(size=(box, box))
    idx_half, idx_mirror = hermitian_half(box)
    f = fft2_center(image).ravel()
    np.testing.assert_allclose(f[idx_mirror], np.conj(f[idx_half]), atol=1e-10)
    # Hartley: H(-k) = Re F(k) + Im F(k), so the half determines the whole disc too
    h = ht2_center(image).ravel()
    np.testing.assert_allclose(h[idx_mirror], f[idx_half].real + f[idx_half].imag, atol=1e-10)


def test_odd_box_rejected():
    with pytest.raises(ValueError, match="even"):
        frequencies_2d(7)
    with pytest.raises(ValueError, match="even"):
        hermitian_half(9)
