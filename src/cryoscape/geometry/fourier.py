"""Centred Fourier and Hartley transforms, Fourier cropping/padding and sub-pixel translation.

Every function accepts a numpy array or a torch tensor and returns the same kind (torch results keep the
device, and autograd flows through them). Transforms act on the last 2 (``*2*``) or 3 (``*3*``) axes, which
must have even sizes.

Conventions
-----------
- Centred transform: ``F = fftshift(fftn(ifftshift(x)))``, unnormalised forward, ``1/N`` on the inverse.
  Index ``i`` of an axis of length ``D`` holds frequency ``i - D//2`` cycles per box (DC at ``D//2``); the
  real-space origin is likewise pixel ``D//2``. Written out, ``F[k] = Σ_n x[n] exp(-2πi k·n / D)`` with ``k``
  and ``n`` both centred indices.
- Hartley: ``H = Re F - Im F = Σ_n x[n] cas(2π k·n / D)``, ``cas = cos + sin``; its inverse is the same
  transform divided by ``N`` (the number of points), exactly.
- Translation: content moves by ``+shift``: ``translate_images(x, s)[y + sy, x + sx] = x[y, x]``; in Fourier
  space ``F[k] · exp(-2πi (kx sx + ky sy) / D)``. Shifts are ``(..., 2)`` as ``(sx, sy)`` in pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "fft2_center",
    "fft3_center",
    "fourier_crop",
    "fourier_pad",
    "ht2_center",
    "ht3_center",
    "ifft2_center",
    "ifft3_center",
    "iht2_center",
    "iht3_center",
    "phase_shift_2d",
    "translate_images",
]

Array = Any  # numpy.ndarray or torch.Tensor


def _is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def _axes(ndim: int) -> tuple[int, ...]:
    return tuple(range(-ndim, 0))


def _check_even(x: Array, ndim: int) -> None:
    if x.ndim < ndim:
        raise ValueError(f"expected at least {ndim} dimensions, got shape {tuple(x.shape)}")
    sizes = tuple(x.shape[-ndim:])
    if any(s % 2 for s in sizes):
        raise ValueError(f"the last {ndim} axes must have even sizes, got {sizes}")


def _fft_center(x: Array, ndim: int) -> Array:
    _check_even(x, ndim)
    axes = _axes(ndim)
    if _is_torch(x):
        f = torch.fft.fftn(torch.fft.ifftshift(x, dim=axes), dim=axes)
        return torch.fft.fftshift(f, dim=axes)
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x, axes=axes), axes=axes), axes=axes)


def _ifft_center(f: Array, ndim: int) -> Array:
    _check_even(f, ndim)
    axes = _axes(ndim)
    if _is_torch(f):
        x = torch.fft.ifftn(torch.fft.ifftshift(f, dim=axes), dim=axes)
        return torch.fft.fftshift(x, dim=axes)
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(f, axes=axes), axes=axes), axes=axes)


def _ht_center(x: Array, ndim: int) -> Array:
    if _is_torch(x):
        if x.is_complex():
            raise TypeError("the Hartley transform takes a real array")
    elif np.iscomplexobj(x):
        raise TypeError("the Hartley transform takes a real array")
    f = _fft_center(x, ndim)
    return f.real - f.imag


def _iht_center(h: Array, ndim: int) -> Array:
    n = int(np.prod(h.shape[-ndim:]))
    return _ht_center(h, ndim) / n


def fft2_center(x: Array) -> Array:
    """Centred 2-D FFT over the last two axes.

    Parameters
    ----------
    x
        ``(..., D, D)`` real or complex images (numpy or torch).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., D, D)`` complex, DC at ``[D//2, D//2]``, unnormalised.
    """
    return _fft_center(x, 2)


def ifft2_center(f: Array) -> Array:
    """Inverse of :func:`fft2_center` (complex output; take ``.real`` for a real image)."""
    return _ifft_center(f, 2)


def fft3_center(x: Array) -> Array:
    """Centred 3-D FFT over the last three axes (``(..., D, D, D)`` → complex, DC at ``D//2`` per axis)."""
    return _fft_center(x, 3)


def ifft3_center(f: Array) -> Array:
    """Inverse of :func:`fft3_center` (complex output; take ``.real`` for a real volume)."""
    return _ifft_center(f, 3)


def ht2_center(x: Array) -> Array:
    """Centred 2-D Hartley transform ``Re F - Im F`` of real images.

    Parameters
    ----------
    x
        ``(..., D, D)`` real images.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., D, D)`` real, same floating precision as the FFT of ``x``.
    """
    return _ht_center(x, 2)


def iht2_center(h: Array) -> Array:
    """Exact inverse of :func:`ht2_center`: the same transform divided by ``D*D``."""
    return _iht_center(h, 2)


def ht3_center(x: Array) -> Array:
    """Centred 3-D Hartley transform ``Re F - Im F`` of real volumes (last three axes)."""
    return _ht_center(x, 3)


def iht3_center(h: Array) -> Array:
    """Exact inverse of :func:`ht3_center`: the same transform divided by ``D**3``."""
    return _iht_center(h, 3)


def _check_new_box(images: Array, new_box: int) -> tuple[int, int]:
    _check_even(images, 2)
    box = int(images.shape[-1])
    if images.shape[-2] != box:
        raise ValueError(f"images must be square, got shape {tuple(images.shape)}")
    new_box = int(new_box)
    if new_box < 2 or new_box % 2:
        raise ValueError(f"new_box must be an even integer >= 2, got {new_box}")
    return box, new_box


def _real_like(result: Array, images: Array) -> Array:
    """Real part of ``result`` in the floating dtype of ``images`` (float32 stays float32)."""
    real = result.real
    if _is_torch(images):
        return real.to(images.dtype) if images.is_floating_point() else real
    if np.issubdtype(images.dtype, np.floating):
        return real.astype(images.dtype, copy=False)
    return real


def fourier_crop(images: Array, new_box: int) -> Array:
    """Downsample images by keeping the central ``new_box × new_box`` Fourier coefficients.

    The field of view is kept, so the pixel size grows by ``D / new_box``. Pixel values are preserved (a
    constant image stays the same constant), and an image band-limited to ``|f| <= new_box/2`` cycles per box
    on each axis becomes exactly its samples on the coarser grid (pixel ``D//2`` stays the origin): the
    coefficients at ``±new_box/2``, one frequency on the coarse lattice, are added together.

    Parameters
    ----------
    images
        ``(..., D, D)`` real images.
    new_box
        Even target box, ``<= D``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., new_box, new_box)`` real, same dtype as ``images`` when it is floating.
    """
    box, new_box = _check_new_box(images, new_box)
    if new_box > box:
        raise ValueError(f"fourier_crop: new_box {new_box} is larger than the box {box} (use fourier_pad)")
    if new_box == box:
        return images.clone() if _is_torch(images) else np.array(images, copy=True)
    start = box // 2 - new_box // 2
    # keep frequencies -new_box/2 .. +new_box/2 inclusive, then fold +new_box/2 onto -new_box/2 (rows, then
    # columns): on the coarse lattice the two are the same frequency, so this is exact resampling
    f = fft2_center(images)[..., start : start + new_box + 1, start : start + new_box + 1]
    f = _fold_nyquist(f, new_box)
    scale = (new_box / box) ** 2
    return _real_like(ifft2_center(f) * scale, images)


def _fold_nyquist(f: Array, new_box: int) -> Array:
    """``(..., n+1, n+1)`` → ``(..., n, n)``: add the last row and column onto the first ones."""
    if _is_torch(f):
        f = torch.cat([(f[..., :1, :] + f[..., -1:, :]), f[..., 1:new_box, :]], dim=-2)
        return torch.cat([(f[..., :, :1] + f[..., :, -1:]), f[..., :, 1:new_box]], dim=-1)
    f = np.concatenate([(f[..., :1, :] + f[..., -1:, :]), f[..., 1:new_box, :]], axis=-2)
    return np.concatenate([(f[..., :, :1] + f[..., :, -1:]), f[..., :, 1:new_box]], axis=-1)


def fourier_pad(images: Array, new_box: int) -> Array:
    """Upsample images by zero-padding their centred Fourier transform to ``new_box``.

    The field of view is kept (pixel size shrinks by ``D / new_box``); pixel values are preserved and the
    result is the band-limited interpolant of the input. The Nyquist row/column of the input (index 0,
    frequency ``-D/2``) is split evenly between ``±D/2`` so that the result stays real and symmetric, and
    ``fourier_crop`` back to ``D`` returns the input exactly.

    Parameters
    ----------
    images
        ``(..., D, D)`` real images.
    new_box
        Even target box, ``>= D``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., new_box, new_box)`` real, same dtype as ``images`` when it is floating.
    """
    box, new_box = _check_new_box(images, new_box)
    if new_box < box:
        raise ValueError(f"fourier_pad: new_box {new_box} is smaller than the box {box} (use fourier_crop)")
    if new_box == box:
        return images.clone() if _is_torch(images) else np.array(images, copy=True)
    f = fft2_center(images)
    start = new_box // 2 - box // 2
    lead = tuple(images.shape[:-2])
    if _is_torch(images):
        padded = torch.zeros((*lead, new_box, new_box), dtype=f.dtype, device=f.device)
    else:
        padded = np.zeros((*lead, new_box, new_box), dtype=f.dtype)
    stop = start + box
    padded[..., start:stop, start:stop] = f
    # split the Nyquist row (frequency -D/2 -> half there, half at +D/2), then the Nyquist column
    padded[..., start, start:stop] = padded[..., start, start:stop] * 0.5
    padded[..., stop, start:stop] = padded[..., start, start:stop]
    padded[..., start : stop + 1, start] = padded[..., start : stop + 1, start] * 0.5
    padded[..., start : stop + 1, stop] = padded[..., start : stop + 1, start]
    scale = (new_box / box) ** 2
    return _real_like(ifft2_center(padded) * scale, images)


def _phase_ramp(f: Array, shifts_px: Array) -> Array:
    """``exp(-2πi (kx sx + ky sy) / D)`` shaped to broadcast with ``f`` ``(..., D, D)``."""
    box_y, box_x = int(f.shape[-2]), int(f.shape[-1])
    if _is_torch(f):
        real_dtype = torch.float64 if f.dtype in (torch.complex128, torch.float64) else torch.float32
        s = torch.as_tensor(shifts_px, dtype=real_dtype, device=f.device)
        ky = (torch.arange(box_y, device=f.device, dtype=real_dtype) - box_y // 2) / box_y
        kx = (torch.arange(box_x, device=f.device, dtype=real_dtype) - box_x // 2) / box_x
        phase = -2 * torch.pi * (kx * s[..., 0, None, None] + ky[:, None] * s[..., 1, None, None])
        return torch.polar(torch.ones_like(phase), phase)
    real_dtype = np.float32 if f.dtype in (np.complex64, np.float32) else np.float64
    s = np.asarray(shifts_px, dtype=real_dtype)
    ky = ((np.arange(box_y) - box_y // 2) / box_y).astype(real_dtype)
    kx = ((np.arange(box_x) - box_x // 2) / box_x).astype(real_dtype)
    phase = -2 * np.pi * (kx * s[..., 0, None, None] + ky[:, None] * s[..., 1, None, None])
    return np.exp(1j * phase.astype(real_dtype))


def phase_shift_2d(f_centred: Array, shifts_px: Array) -> Array:
    """Translate images in Fourier space: multiply by the phase ramp of a shift.

    Parameters
    ----------
    f_centred
        ``(..., D, D)`` centred FFTs (:func:`fft2_center`).
    shifts_px
        ``(..., 2)`` shifts ``(sx, sy)`` in pixels, broadcast against the leading axes of ``f_centred``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., D, D)`` complex: the transform of the image whose content moved by ``+shift``
        (``new[y + sy, x + sx] = old[y, x]``), i.e. ``F[k] · exp(-2πi k·s / D)``.
    """
    _check_even(f_centred, 2)
    if tuple(shifts_px.shape)[-1:] != (2,):
        raise ValueError(f"shifts_px must have a last axis of size 2 (sx, sy), got {tuple(shifts_px.shape)}")
    return f_centred * _phase_ramp(f_centred, shifts_px)


def translate_images(images: Array, shifts_px: Array) -> Array:
    """Translate real images by (sub-)pixel shifts through the Fourier phase (periodic boundary).

    Parameters
    ----------
    images
        ``(..., D, D)`` real images.
    shifts_px
        ``(..., 2)`` shifts ``(sx, sy)`` in pixels; content moves by ``+shift``. Integer shifts equal
        ``np.roll(images, (sy, sx), axis=(-2, -1))``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., D, D)`` real, same dtype as ``images`` when it is floating.
    """
    if not _is_torch(shifts_px):
        shifts_px = np.asarray(shifts_px)
    shifted = phase_shift_2d(fft2_center(images), shifts_px)
    return _real_like(ifft2_center(shifted), images)
