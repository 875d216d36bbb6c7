"""Centred FFT/Hartley transforms, Fourier crop/pad and translations, against direct sums and analytic
signals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cryoscape.geometry.fourier import (
    fft2_center,
    fft3_center,
    fourier_crop,
    fourier_pad,
    ht2_center,
    ht3_center,
    ifft2_center,
    ifft3_center,
    iht2_center,
    iht3_center,
    phase_shift_2d,
    translate_images,
)


def _centred(box: int) -> np.ndarray:
    return np.arange(box) - box // 2


def _direct_kernel(box: int, ndim: int, kind: str) -> np.ndarray:
    """Matrix M[k, n] over flattened centred grids: exp(-2πi k·n/D) ("fft") or cas(2π k·n/D) ("cas")."""
    grid = np.array(list(itertools.product(_centred(box), repeat=ndim)), dtype=np.float64)  # row-major order
    theta = 2 * np.pi * (grid @ grid.T) / box
    return np.exp(-1j * theta) if kind == "fft" else np.cos(theta) + np.sin(theta)


def _cosines(box: int, terms, grid_box: int | None = None) -> np.ndarray:
    """Σ a cos(2π (fx X + fy Y)/box + φ) on a grid_box grid over the same field (X, Y in pixels of box)."""
    n = box if grid_box is None else grid_box
    coords = _centred(n) * (box / n)
    out = np.zeros((n, n))
    for a, fx, fy, phi in terms:
        out += a * np.cos(2 * np.pi * (fx * coords[None, :] + fy * coords[:, None]) / box + phi)
    return out


# --- transforms against direct sums -------------------------------------------------------------------------


@pytest.mark.parametrize("box", [2, 6])
def test_fft2_center_is_the_centred_dft(box):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, box, box)) + 1j * rng.normal(size=(3, box, box))
    m = _direct_kernel(box, 2, "fft")
    expected = (x.reshape(3, -1) @ m.T).reshape(3, box, box)
    np.testing.assert_allclose(fft2_center(x), expected, atol=1e-10)
    np.testing.assert_allclose(ifft2_center(expected), x, atol=1e-12)


def test_fft3_center_is_the_centred_dft():
    box = 4
    x = np.random.default_rng(1).normal(size=(box, box, box))
    m = _direct_kernel(box, 3, "fft")
    expected = (m @ x.ravel()).reshape(box, box, box)
    np.testing.assert_allclose(fft3_center(x), expected, atol=1e-10)
    np.testing.assert_allclose(ifft3_center(expected), x, atol=1e-12)


@pytest.mark.parametrize("box", [4, 6])
def test_hartley_2d_against_cas_sum(box):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, box, box))
    cas = _direct_kernel(box, 2, "cas")
    expected = (x.reshape(2, -1) @ cas.T).reshape(2, box, box)
    np.testing.assert_allclose(ht2_center(x), expected, atol=1e-10)
    # the inverse against its own direct formula, on an arbitrary real array (not only on ht2_center output)
    h = rng.normal(size=(2, box, box))
    inverse = (h.reshape(2, -1) @ cas.T).reshape(2, box, box) / box**2
    np.testing.assert_allclose(iht2_center(h), inverse, atol=1e-12)
    np.testing.assert_allclose(iht2_center(ht2_center(x)), x, atol=1e-12)


def test_hartley_3d_against_cas_sum():
    box = 4
    rng = np.random.default_rng(3)
    x = rng.normal(size=(box, box, box))
    cas = _direct_kernel(box, 3, "cas")
    np.testing.assert_allclose(ht3_center(x), (cas @ x.ravel()).reshape(x.shape), atol=1e-10)
    h = rng.normal(size=(box, box, box))
    np.testing.assert_allclose(iht3_center(h), (cas @ h.ravel()).reshape(x.shape) / box**3, atol=1e-12)
    np.testing.assert_allclose(iht3_center(ht3_center(x)), x, atol=1e-12)


def test_hartley_rejects_complex():
    with pytest.raises(TypeError):
        ht2_center(np.zeros((4, 4), dtype=complex))
    with pytest.raises(TypeError):
        ht2_center(torch.zeros(4, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="even"):
        fft2_center(np.zeros((5, 5)))


@pytest.mark.parametrize(
    "fn", [fft2_center, ifft2_center, ht2_center, iht2_center, fft3_center, ht3_center, iht3_center]
)
def test_torch_matches_numpy_and_keeps_type(fn):
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 6)).astype(np.float32)
    out_np = fn(x)
    out_t = fn(torch.from_numpy(x))
    assert isinstance(out_np, np.ndarray) and isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=1e-5, atol=1e-3)
    if fn in (ht2_center, iht2_center, ht3_center, iht3_center):
        assert out_np.dtype == np.float32 and out_t.dtype == torch.float32


def test_torch_hartley_gradients():
    x = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ht2_center, (x,))
    assert torch.autograd.gradcheck(lambda v: fourier_crop(v, 2), (x,))
    shifts = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(translate_images, (x, shifts))


# --- Fourier crop and pad -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("box", "new_box"), [(16, 8), (16, 10), (10, 4)])
def test_fourier_crop_constant_and_band_limited(box, new_box):
    const = np.full((2, box, box), 3.25, dtype=np.float32)
    out = fourier_crop(const, new_box)
    assert out.shape == (2, new_box, new_box) and out.dtype == np.float32
    np.testing.assert_allclose(out, 3.25, rtol=1e-6)
    # frequencies up to the new Nyquist (|f| <= new_box/2 cycles per box on each axis), any phase
    top, nyq = new_box // 2 - 1, new_box // 2
    terms = [(1.0, 0, 0, 0.0), (0.7, top, -1, 0.3), (-0.4, -top, top, 1.1), (0.25, 1, 0, -0.5)]
    terms += [(0.6, nyq, 0, 0.8), (0.3, 1, nyq, -0.4), (0.2, nyq, -nyq, 2.0)]
    fine = _cosines(box, terms)
    coarse = _cosines(box, terms, grid_box=new_box)
    np.testing.assert_allclose(fourier_crop(fine, new_box), coarse, atol=1e-12)
    np.testing.assert_allclose(fourier_crop(torch.from_numpy(fine), new_box).numpy(), coarse, atol=1e-12)


@pytest.mark.parametrize(("box", "new_box"), [(8, 16), (10, 12), (4, 10)])
def test_fourier_pad_constant_and_band_limited(box, new_box):
    const = np.full((box, box), -1.5)
    np.testing.assert_allclose(fourier_pad(const, new_box), -1.5, atol=1e-12)
    # includes the Nyquist frequency of the coarse box (split evenly, hence exact)
    nyq = box // 2
    terms = [(0.3, 0, 0, 0.0), (0.8, nyq - 1, 1, 0.2), (0.5, nyq, 0, 0.0), (0.6, 0, nyq, 0.0)]
    coarse = _cosines(box, terms)
    fine = _cosines(box, terms, grid_box=new_box)
    # the corner (±D/2, ±D/2) interpolates as the separable cos(π X)·cos(π Y) (all four corners, equal weight)
    coarse += 0.2 * _cosines(box, [(1.0, nyq, 0, 0.0)]) * _cosines(box, [(1.0, 0, nyq, 0.0)])
    fine += 0.2 * _cosines(box, [(1.0, nyq, 0, 0.0)], new_box) * _cosines(box, [(1.0, 0, nyq, 0.0)], new_box)
    padded = fourier_pad(coarse, new_box)
    assert padded.shape == (new_box, new_box)
    np.testing.assert_allclose(padded, fine, atol=1e-12)
    np.testing.assert_allclose(fourier_pad(torch.from_numpy(coarse), new_box).numpy(), fine, atol=1e-12)
    # cropping back undoes the padding exactly
    np.testing.assert_allclose(fourier_crop(padded, box), coarse, atol=1e-12)


def test_crop_pad_identity_and_errors():
    x = np.random.default_rng(5).normal(size=(8, 8)).astype(np.float32)
    np.testing.assert_array_equal(fourier_crop(x, 8), x)
    np.testing.assert_array_equal(fourier_pad(x, 8), x)
    with pytest.raises(ValueError):
        fourier_crop(x, 10)
    with pytest.raises(ValueError):
        fourier_pad(x, 6)
    with pytest.raises(ValueError):
        fourier_crop(x, 5)


# --- translations -------------------------------------------------------------------------------------------


def test_integer_shift_is_np_roll():
    rng = np.random.default_rng(6)
    images = rng.normal(size=(3, 10, 10))
    shifts = np.array([[2, 0], [0, -3], [4, 1]])  # (sx, sy)
    out = translate_images(images, shifts)
    for i, (sx, sy) in enumerate(shifts):
        expected = np.roll(images[i], (sy, sx), axis=(0, 1))
        np.testing.assert_allclose(out[i], expected, atol=1e-12)
        # content moves by +shift: image[y, x] -> image[y + sy, x + sx]
        assert out[i][(3 + sy) % 10, (5 + sx) % 10] == pytest.approx(images[i][3, 5])
    out_t = translate_images(torch.from_numpy(images), torch.from_numpy(shifts))
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-12)


def test_subpixel_shift_of_band_limited_signal():
    box = 16
    terms = [(1.0, 0, 0, 0.0), (0.7, 3, -2, 0.4), (-0.5, -5, 6, 1.3), (0.3, 7, 7, 0.0)]
    image = _cosines(box, terms)
    sx, sy = 0.37, -1.81
    # analytic: new(X, Y) = old(X - sx, Y - sy), i.e. each phase changes by -2π (fx sx + fy sy)/box
    moved = [(a, fx, fy, phi - 2 * np.pi * (fx * sx + fy * sy) / box) for a, fx, fy, phi in terms]
    shifted = _cosines(box, moved)
    np.testing.assert_allclose(translate_images(image, np.array([sx, sy])), shifted, atol=1e-12)
    f = phase_shift_2d(fft2_center(image), np.array([sx, sy]))
    np.testing.assert_allclose(ifft2_center(f).real, shifted, atol=1e-12)
    f32 = translate_images(torch.from_numpy(image).float(), torch.tensor([sx, sy]))
    assert f32.dtype == torch.float32
    np.testing.assert_allclose(f32.numpy(), shifted, atol=1e-5)


def test_phase_shift_broadcast_and_inverse():
    rng = np.random.default_rng(7)
    images = rng.normal(size=(4, 8, 8))
    shifts = rng.uniform(-3, 3, size=(4, 2))
    f = fft2_center(images)
    back = phase_shift_2d(phase_shift_2d(f, shifts), -shifts)
    np.testing.assert_allclose(back, f, atol=1e-10)
    # one shift for the whole batch broadcasts
    one = phase_shift_2d(f, np.array([1.0, 2.0]))
    np.testing.assert_allclose(one[2], phase_shift_2d(f[2], np.array([1.0, 2.0])), atol=1e-12)
    with pytest.raises(ValueError):
        phase_shift_2d(f, np.zeros((4, 3)))
