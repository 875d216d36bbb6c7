"""FSC: against a brute-force definition, the statistics of noise, a known signal-to-noise ratio,
interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.errors import InputError
from cryoscape.reconstruct.fsc import FSCCurve, fsc_curve


def _brute_force_fsc(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FSC by the textbook definition: full complex centred FFT, explicit loop over voxels and shells."""
    d = a.shape[0]
    fa = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(a)))
    fb = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(b)))
    n_shells = d // 2 + 1
    num = np.zeros(n_shells)
    pa = np.zeros(n_shells)
    pb = np.zeros(n_shells)
    count = np.zeros(n_shells, dtype=int)
    for iz in range(d):
        for iy in range(d):
            for ix in range(d):
                r = np.sqrt((iz - d // 2) ** 2 + (iy - d // 2) ** 2 + (ix - d // 2) ** 2)
                s = int(np.floor(r + 0.5))
                if s >= n_shells:
                    continue
                num[s] += (fa[iz, iy, ix] * np.conj(fb[iz, iy, ix])).real
                pa[s] += abs(fa[iz, iy, ix]) ** 2
                pb[s] += abs(fb[iz, iy, ix]) ** 2
                count[s] += 1
    return num / np.sqrt(pa * pb), count


def test_matches_brute_force_definition():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 10, 10))
    b = a + rng.normal(size=(10, 10, 10))
    curve = fsc_curve(a, b, voxel_size_angstrom=1.5)
    expected, count = _brute_force_fsc(a, b)
    np.testing.assert_allclose(curve.fsc, expected, atol=1e-10)
    np.testing.assert_array_equal(curve.n_voxels, count)
    np.testing.assert_allclose(curve.frequency_per_angstrom, np.arange(6) / (10 * 1.5))
    assert curve.box_size == 10


def test_self_and_negated_and_scaled():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(16, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(fsc_curve(a, a, 1.0).fsc, 1.0, atol=1e-6)
    np.testing.assert_allclose(fsc_curve(a, 3.0 * a, 1.0).fsc, 1.0, atol=1e-6)
    np.testing.assert_allclose(fsc_curve(a, -a, 1.0).fsc, -1.0, atol=1e-6)
    assert fsc_curve(a, a, 1.0).area_under_curve() == pytest.approx(1.0)
    assert fsc_curve(a, a, 2.0).resolution_angstrom(0.143) == pytest.approx(4.0)  # Nyquist


def test_independent_noise_is_zero_within_shell_bound():
    # For independent white-noise maps each shell's FSC is ~ N(0, 1/n_voxels) (see the fsc module
    # docstring): the standardized values z = FSC * sqrt(n) must look like unit normals.
    rng = np.random.default_rng(2)
    d = 32
    z_all = []
    for _ in range(4):
        curve = fsc_curve(rng.normal(size=(d, d, d)), rng.normal(size=(d, d, d)), 1.0)
        z_all.append(curve.fsc[1:] * np.sqrt(curve.n_voxels[1:]))
    z = np.concatenate(z_all)  # 64 values
    assert np.max(np.abs(z)) < 4.5
    assert 0.6 < np.mean(z**2) < 1.6  # chi-square(64)/64: 99.9 % interval ~ [0.55, 1.6]
    assert abs(np.mean(z)) < 0.5  # 4 sigma of the mean of 64 unit normals


def test_known_snr_gives_snr_over_one_plus_snr():
    # map_i = signal + noise_i with white signal (variance 1) and white noise (variance 1/snr):
    # FSC = snr / (1 + snr) in every shell.
    rng = np.random.default_rng(3)
    d = 32
    snr = 2.0
    signal = rng.normal(size=(d, d, d))
    a = signal + rng.normal(scale=np.sqrt(1 / snr), size=(d, d, d))
    b = signal + rng.normal(scale=np.sqrt(1 / snr), size=(d, d, d))
    curve = fsc_curve(a, b, 1.0)
    expected = snr / (1 + snr)
    shells = slice(2, None)  # shells with enough voxels for a tight bound
    tol = 5 * (1 - expected**2) / np.sqrt(curve.n_voxels[shells]) + 0.02
    assert np.all(np.abs(curve.fsc[shells] - expected) < tol)


def test_resolution_interpolates_first_crossing_and_auc():
    curve = FSCCurve(frequency_per_angstrom=np.arange(6) / 10.0, fsc=np.array([1.0, 0.9, 0.6, 0.4, 0.1,
    0.3]),
                     n_voxels=np.ones(6, dtype=np.int64), voxel_size_angstrom=1.0)
    # 0.5 is crossed halfway between shell 2 (0.6) and 3 (0.4): f = 0.25 / Å → 4 Å.
    assert curve.resolution_angstrom(0.5) == pytest.approx(4.0)
    # 0.143 between shell 3 (0.4) and 4 (0.1): 3 + (0.4 - 0.143) / 0.3 shells; the later rise does not
    # count.
    f = (3 + (0.4 - 0.143) / 0.3) / 10
    assert curve.resolution_angstrom(0.143) == pytest.approx(1 / f)
    assert curve.crossing_frequency(0.05) is None
    assert curve.resolution_angstrom(0.05) == pytest.approx(2.0)  # never crossed: Nyquist
    assert curve.resolution_angstrom(0.95) == float("inf")  # below at the first shell
    # trapezoids over x = shell / 5
    y = curve.fsc
    assert curve.area_under_curve() == pytest.approx(sum((y[i] + y[i + 1]) / 2 * 0.2 for i in range(5)))


def test_mask_is_applied_and_shapes_checked():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(12, 12, 12))
    b = rng.normal(size=(12, 12, 12))
    mask = np.zeros((12, 12, 12))
    mask[3:9, 3:9, 3:9] = 1.0
    np.testing.assert_allclose(fsc_curve(a, b, 1.0, mask=mask).fsc, fsc_curve(a * mask, b * mask, 1.0).fsc)
    with pytest.raises(InputError):
        fsc_curve(a, b[:10, :10, :10], 1.0)
    with pytest.raises(InputError):
        fsc_curve(a, b, 1.0, mask=mask[:10])
