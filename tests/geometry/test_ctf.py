"""The CTF against an independent scalar implementation (RELION's K1..K5 form): sign, zeros, astigmatism."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from cryoscape.geometry.ctf import ctf_2d, ctf_grid, wavelength_angstrom


def _reference_ctf(sx, sy, dfu, dfv, angle_deg, kv, cs_mm, w, phase_deg, bfactor=0.0):
    """Scalar CTF written the way RELION's ctf.h does: −sin(K1 Δf' u² + K2 u⁴ − K5 − K3) · exp(−B u²/4).

    Δf' = −(dU+dV)/2 − (dU−dV)/2 · cos 2(α − α_ast) (RELION's sign-flipped defocus), K3 = atan(w/√(1−w²)).
    Wavelength: RELION's 12.2643247 / √(V (1 + 0.978466e-6 V)) Å (V in volts).
    """
    volts = kv * 1e3
    lam = 12.2643247 / math.sqrt(volts + 0.978466e-6 * volts * volts)
    u2 = sx * sx + sy * sy
    k1 = math.pi * lam
    k2 = math.pi / 2 * cs_mm * 1e7 * lam**3
    k3 = math.atan(w / math.sqrt(1 - w * w))
    k5 = math.radians(phase_deg)
    ellipse = math.atan2(sy, sx)
    deltaf = -(dfu + dfv) / 2 - (dfu - dfv) / 2 * math.cos(2 * (ellipse - math.radians(angle_deg)))
    return -math.sin(k1 * deltaf * u2 + k2 * u2 * u2 - k5 - k3) * math.exp(-bfactor / 4 * u2)


PARAMS = list(
    itertools.product(
        [(15000.0, 15000.0, 0.0), (21000.0, 18500.0, 37.0), (9000.0, 12000.0, -110.0)],  # dU, dV, angle
        [300.0, 200.0],  # kV
        [2.7, 0.01],  # Cs
        [0.1, 0.07],  # w
        [0.0, 90.0],  # phase shift
        [0.0, 80.0],  # B
    )
)


def _physical_wavelength_angstrom(kv: float) -> float:
    """λ = h / √(2 m e V (1 + e V / (2 m c²))) from the SI constants."""
    h, m, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    volts = kv * 1e3
    return h / math.sqrt(2 * m * e * volts * (1 + e * volts / (2 * m * c * c))) * 1e10


def test_wavelength():
    assert wavelength_angstrom(300) == pytest.approx(0.0196876, abs=5e-8)
    for kv in (80.0, 100.0, 200.0, 300.0):
        # RELION's constants agree with the physical formula to ~1e-5 (relative)
        assert wavelength_angstrom(kv) == pytest.approx(_physical_wavelength_angstrom(kv), rel=1e-5)
    both = wavelength_angstrom(np.array([300.0, 200.0]))
    np.testing.assert_allclose(both, [wavelength_angstrom(300.0), wavelength_angstrom(200.0)], rtol=1e-15)
    as_tensor = wavelength_angstrom(torch.tensor(300.0, dtype=torch.float64))
    assert float(as_tensor) == pytest.approx(0.0196876, abs=5e-8)


def test_ctf_matches_scalar_reference_over_parameter_grid():
    rng = np.random.default_rng(0)
    pixel = 1.3
    freqs = rng.uniform(-0.5 / pixel, 0.5 / pixel, size=(40, 2))
    freqs[0] = 0.0
    freqs[1] = [0.2, 0.0]
    freqs[2] = [0.0, -0.15]
    for (dfu, dfv, ang), kv, cs, w, ps, b in PARAMS:
        ours = ctf_2d(freqs, dfu, dfv, ang, kv, cs, w, ps, b)
        expected = [_reference_ctf(sx, sy, dfu, dfv, ang, kv, cs, w, ps, b) for sx, sy in freqs]
        np.testing.assert_allclose(ours, expected, atol=2e-6, err_msg=str((dfu, dfv, ang, kv, cs, w, ps, b)))


def test_ctf_batched_parameters_and_torch():
    rng = np.random.default_rng(1)
    n, p = 6, 30
    freqs = rng.uniform(-0.3, 0.3, size=(n, p, 2))
    dfu = rng.uniform(8000, 30000, n)
    dfv = dfu - rng.uniform(0, 2000, n)
    ang = rng.uniform(-180, 180, n)
    kv = np.array([300.0, 300, 200, 300, 200, 300])
    cs, w, ps, b = np.full(n, 2.7), np.full(n, 0.1), rng.uniform(0, 90, n), rng.uniform(0, 100, n)
    cols = [a[:, None] for a in (dfu, dfv, ang, kv, cs, w, ps, b)]
    ours = ctf_2d(freqs, *cols)
    assert ours.shape == (n, p) and ours.dtype == np.float64
    expected = [
        [_reference_ctf(*freqs[i, j], *(a[i] for a in (dfu, dfv, ang, kv, cs, w, ps, b))) for j in range(p)]
        for i in range(n)
    ]
    np.testing.assert_allclose(ours, expected, atol=2e-6)
    # shared frequencies (P, 2) with per-image parameters (N, 1)
    np.testing.assert_allclose(ctf_2d(freqs[0], *cols)[0], ours[0], atol=1e-12)
    # torch float64 / float32
    t64 = ctf_2d(torch.from_numpy(freqs), *(torch.from_numpy(c) for c in cols))
    assert isinstance(t64, torch.Tensor) and t64.dtype == torch.float64
    np.testing.assert_allclose(t64.numpy(), ours, atol=1e-12)
    t32 = ctf_2d(torch.from_numpy(freqs).float(), *(torch.from_numpy(c).float() for c in cols))
    assert t32.dtype == torch.float32
    np.testing.assert_allclose(t32.numpy(), ours, atol=2e-3)  # γ reaches ~10² rad; float32 phase error
    f32 = ctf_2d(freqs.astype(np.float32), *cols)
    assert f32.dtype == np.float32


def test_ctf_torch_gradients():
    freqs = torch.rand(2, 10, 2, dtype=torch.float64) * 0.2 - 0.1
    dfu = torch.tensor([[12000.0], [20000.0]], dtype=torch.float64, requires_grad=True)
    ang = torch.tensor([[10.0], [-40.0]], dtype=torch.float64, requires_grad=True)

    def f(df, a):
        return ctf_2d(freqs, df, df - 500.0, a, 300.0, 2.7, 0.1, 0.0, 20.0)

    assert torch.autograd.gradcheck(f, (dfu, ang))


def test_sign_at_zero_frequency():
    zero = np.zeros((1, 2))
    for w in (0.0, 0.07, 0.1, 0.3):
        assert ctf_2d(zero, 15000, 14000, 20, 300, 2.7, w, 0.0)[0] == pytest.approx(w, abs=1e-15)
    # a 90° phase plate: CTF(0) = √(1 − w²) sin 90° + w cos 90°
    assert ctf_2d(zero, 15000, 14000, 20, 300, 2.7, 0.1, 90.0)[0] == pytest.approx(math.sqrt(1 - 0.01))
    # white particles: the low-frequency CTF of an underfocused image is positive up to the first zero
    s = np.stack([np.linspace(0, 0.02, 50), np.zeros(50)], axis=1)
    assert np.all(ctf_2d(s, 20000, 20000, 0, 300, 2.7, 0.1, 0.0) > 0)


@pytest.mark.parametrize(
    ("defocus", "kv", "w"), [(15000.0, 300.0, 0.1), (8000.0, 200.0, 0.07), (30000.0, 300.0, 0.0)]
)
def test_first_zero_analytic(defocus, kv, w):
    # Cs = 0, no astigmatism: CTF = 0 ⇔ tan γ = w/√(1−w²) ⇔ γ = asin(w) − π (first solution with γ < 0),
    # with γ = −π λ Δf s²  ⇒  s₀ = √((1 − asin(w)/π) / (λ Δf))
    lam = wavelength_angstrom(kv)
    s0 = math.sqrt((1 - math.asin(w) / math.pi) / (lam * defocus))
    for direction in (0.0, 1.0, 2.5):
        unit = np.array([math.cos(direction), math.sin(direction)])
        assert abs(ctf_2d((s0 * unit)[None], defocus, defocus, 33.0, kv, 0.0, w, 0.0)[0]) < 1e-12
        line = np.linspace(0.01 * s0, 0.999 * s0, 400)[:, None] * unit
        values = ctf_2d(line, defocus, defocus, 33.0, kv, 0.0, w, 0.0)
        assert np.all(values > 0)  # no earlier zero
        assert ctf_2d((1.001 * s0 * unit)[None], defocus, defocus, 33.0, kv, 0.0, w, 0.0)[0] < 0


def test_astigmatism_direction():
    # dU along the defocus angle (measured from +x towards +y), dV perpendicular to it
    dfu, dfv, angle, kv, w = 25000.0, 12000.0, 30.0, 300.0, 0.1
    lam = wavelength_angstrom(kv)

    def first_zero(df):
        return math.sqrt((1 - math.asin(w) / math.pi) / (lam * df))

    for theta, df in ((angle, dfu), (angle + 90, dfv), (angle + 180, dfu), (angle - 90, dfv)):
        unit = np.array([math.cos(math.radians(theta)), math.sin(math.radians(theta))])
        value = ctf_2d((first_zero(df) * unit)[None], dfu, dfv, angle, kv, 0.0, w, 0.0)[0]
        assert abs(value) < 1e-12, theta
    # and not the other way round
    unit = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    assert abs(ctf_2d((first_zero(dfv) * unit)[None], dfu, dfv, angle, kv, 0.0, w, 0.0)[0]) > 0.1


def test_ctf_grid_layout_and_astigmatism_on_image():
    box, pixel = 64, 2.0
    dfu, dfv = 30000.0, 15000.0
    grid = ctf_grid(box, pixel, np.array([dfu]), np.array([dfv]), np.array([0.0]), 300.0, 2.7, 0.1, 0.0)
    assert grid.shape == (1, box, box)
    c = box // 2
    assert grid[0, c, c] == pytest.approx(0.1)
    # element [y, x] is the CTF at ((x - D/2), (y - D/2)) / (D · pixel)
    for y, x in ((c, c + 5), (c + 7, c - 3), (0, 0), (c - 11, c + 20)):
        s = ((x - c) / (box * pixel), (y - c) / (box * pixel))
        expected = _reference_ctf(*s, dfu, dfv, 0.0, 300.0, 2.7, 0.1, 0.0)
        assert grid[0, y, x] == pytest.approx(expected, abs=2e-6)
    # defocus angle 0: the larger defocus (dU) is along x (columns), so the first zero along the centre row is
    # closer to DC than along the centre column
    row, col = grid[0, c, c:], grid[0, c:, c]
    first_row, first_col = np.argmax(row < 0), np.argmax(col < 0)
    assert 0 < first_row < first_col
    # rotating the defocus angle by 90° swaps the two
    rotated = ctf_grid(box, pixel, [dfu], [dfv], [90.0], 300.0, 2.7, 0.1, 0.0)
    np.testing.assert_allclose(rotated[0], grid[0].T, atol=1e-12)


def test_ctf_grid_batched_and_torch():
    box = 16
    pix = np.array([1.0, 1.5, 2.0])
    dfu = np.array([10000.0, 20000.0, 15000.0])
    dfv = dfu - 300
    ang = np.array([0.0, 45.0, -20.0])
    grid = ctf_grid(box, pix, dfu, dfv, ang, 300.0, 2.7, 0.1, np.array([0.0, 30.0, 0.0]), 10.0)
    assert grid.shape == (3, box, box)
    for i in range(3):
        single = ctf_grid(box, pix[i], dfu[i], dfv[i], ang[i], 300.0, 2.7, 0.1, [0.0, 30.0, 0.0][i], 10.0)
        np.testing.assert_allclose(grid[i], single[0], atol=1e-12)
    phase = [0.0, 30.0, 0.0]
    tgrid = ctf_grid(box, torch.tensor(pix), torch.tensor(dfu), dfv, ang, 300.0, 2.7, 0.1, phase, 10.0)
    assert isinstance(tgrid, torch.Tensor) and tgrid.dtype == torch.float64
    np.testing.assert_allclose(tgrid.numpy(), grid, atol=1e-12)
