"""B-factor convention against a plane wave, sharpen/blur inverse pair, Guinier estimate, low-pass, map
ops."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.reconstruct.sharpen import apply_bfactor, guinier_fit, low_pass
from cryoscape.reconstruct.transforms import flip_hand, invert_contrast


def _plane_wave(d: int, k: tuple[int, int, int]) -> np.ndarray:
    z, y, x = np.indices((d, d, d))
    return np.cos(2 * np.pi * (k[0] * z + k[1] * y + k[2] * x) / d)


def test_bfactor_on_plane_wave_matches_formula():
    # A plane wave of integer frequency k (cycles per box) has s = |k| / (D * apix) 1/Å; applying B
    # multiplies its amplitude by exp(-B s² / 4): positive B blurs, negative B (RELION's sharpening)
    # amplifies.
    d, apix = 16, 2.0
    k = (1, 2, 3)
    wave = _plane_wave(d, k)
    s2 = (1 + 4 + 9) / (d * apix) ** 2
    for b in (100.0, -60.0):
        out = apply_bfactor(wave, apix, b)
        np.testing.assert_allclose(out, np.exp(-b * s2 / 4) * wave, atol=1e-5)


def test_sharpen_then_blur_restores_map():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(24, 24, 24)).astype(np.float32)
    back = apply_bfactor(apply_bfactor(vol, 2.5, -80.0), 2.5, 80.0)
    np.testing.assert_allclose(back, vol, atol=1e-4)
    assert not np.allclose(apply_bfactor(vol, 2.5, -80.0), vol, atol=1e-2)


@pytest.mark.parametrize("b_map", [0.0, 150.0])
def test_guinier_recovers_applied_bfactor(b_map):
    # White noise has a flat spectrum; blurring it by B_map gives ln|F| = c - B_map s²/4, so the sharpening
    # B that the fit reports is -B_map.
    rng = np.random.default_rng(1)
    apix = 2.0
    vol = rng.normal(size=(32, 32, 32))
    blurred = apply_bfactor(vol, apix, b_map)
    fit = guinier_fit(blurred, apix, low_resolution_angstrom=10.0)
    assert fit.bfactor_angstrom2 == pytest.approx(-b_map, abs=10.0)
    # sharpening with the estimate flattens the spectrum again
    flat = guinier_fit(apply_bfactor(blurred, apix, fit.bfactor_angstrom2), apix)
    assert abs(flat.bfactor_angstrom2) < 10.0


def test_low_pass_keeps_low_and_removes_high_frequencies():
    d, apix = 32, 1.0
    low = _plane_wave(d, (0, 0, 3))  # 3/32 = 0.094 1/Å  (10.7 Å)
    high = _plane_wave(d, (0, 4, 8))  # sqrt(80)/32 = 0.28 1/Å  (3.6 Å)
    out = low_pass(low + high, apix, resolution_angstrom=6.0)  # cut at 0.167 1/Å, edge ±1/32
    np.testing.assert_allclose(out, low, atol=1e-5)
    # on the cutoff itself the raised cosine gives one half
    edge = _plane_wave(d, (0, 0, 4))  # 4/32 1/Å = 8 Å
    np.testing.assert_allclose(low_pass(edge, apix, 8.0), 0.5 * edge, atol=1e-5)


def test_flip_hand_mirrors_about_the_centre():
    d = 8
    vol = np.zeros((d, d, d), dtype=np.float32)
    vol[d // 2 + 3, 1, 2] = 1.0
    out = flip_hand(vol)
    assert out[d // 2 - 3, 1, 2] == 1.0 and out.sum() == 1.0
    rng = np.random.default_rng(2)
    vol = rng.normal(size=(d, d, d))
    np.testing.assert_array_equal(flip_hand(flip_hand(vol)), vol)
    # Fourier space: F_flipped(kz, ky, kx) = F(-kz, ky, kx) (centred FFT, independent numpy calls)
    ft = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(vol)))
    ft_flip = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(flip_hand(vol))))
    mirror = (d - np.arange(d)) % d  # centred index of -kz
    np.testing.assert_allclose(ft_flip, ft[mirror], atol=1e-9)


def test_invert_contrast():
    stack = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    np.testing.assert_array_equal(invert_contrast(stack), -stack)
