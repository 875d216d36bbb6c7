"""The contrast transfer function (RELION's model), numpy or torch.

Formula (RELION ``CTF::getCTF``; units in the names)::

    λ    = 12.2643247 / sqrt(V (1 + 0.978466e-6 V))            Å, V = 1000 · voltage_kv volts
    Δf(α) = ½ [dU + dV + (dU − dV) cos 2(α − α_ast)]            α = atan2(sy, sx), α_ast = defocus angle
    γ    = 2π (−½ Δf λ s² + ¼ Cs λ³ s⁴) − phase_shift          s = |(sx, sy)| in 1/Å, Cs in Å
    CTF  = −(√(1 − w²) sin γ − w cos γ) · exp(−B s² / 4)         w = amplitude contrast

Defocus is positive for underfocus. At ``s = 0`` (no phase shift) the CTF is ``+w``: positive density gives
white particles, as in RELION (cryoDRGN uses the opposite overall sign and inverts its images instead).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cryoscape.geometry.lattice import frequencies_2d

__all__ = ["ctf_2d", "ctf_grid", "wavelength_angstrom"]

Array = Any  # numpy.ndarray or torch.Tensor


def wavelength_angstrom(voltage_kv: Array) -> Array:
    """Relativistic electron wavelength.

    Parameters
    ----------
    voltage_kv
        Acceleration voltage in kV (scalar, numpy array or torch tensor).

    Returns
    -------
    float, numpy.ndarray or torch.Tensor
        ``12.2643247 / sqrt(V (1 + 0.978466e-6 V))`` in Å with ``V`` in volts (0.0196876 Å at 300 kV).
    """
    if isinstance(voltage_kv, torch.Tensor):
        volts = voltage_kv * 1000.0
        return 12.2643247 / torch.sqrt(volts * (1.0 + 0.978466e-6 * volts))
    if np.ndim(voltage_kv) == 0:
        volts = float(voltage_kv) * 1000.0
        return 12.2643247 / math.sqrt(volts * (1.0 + 0.978466e-6 * volts))
    volts = np.asarray(voltage_kv, dtype=np.float64) * 1000.0
    return 12.2643247 / np.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def ctf_2d(
    freqs_per_angstrom: Array,
    defocus_u_angstrom: Array,
    defocus_v_angstrom: Array,
    defocus_angle_deg: Array,
    voltage_kv: Array,
    cs_mm: Array,
    amplitude_contrast: Array,
    phase_shift_deg: Array,
    bfactor_angstrom2: Array = 0.0,
) -> Array:
    """CTF at arbitrary spatial frequencies.

    Parameters
    ----------
    freqs_per_angstrom
        ``(..., P, 2)`` spatial frequencies ``(sx, sy)`` in 1/Å (numpy or torch).
    defocus_u_angstrom, defocus_v_angstrom
        Defocus along the major/minor axes in Å (positive = underfocus).
    defocus_angle_deg
        Angle of the ``defocus_u`` axis from the x axis, degrees (counter-clockwise towards +y).
    voltage_kv
        Acceleration voltage in kV.
    cs_mm
        Spherical aberration in mm.
    amplitude_contrast
        Amplitude contrast fraction ``w`` in [0, 1).
    phase_shift_deg
        Extra phase shift (phase plate) in degrees.
    bfactor_angstrom2
        B-factor of the envelope ``exp(-B s²/4)`` in Å².

    Each parameter is a scalar or an array broadcastable to ``(..., 1)`` (e.g. ``(N, 1)`` for frequencies of
    shape ``(N, P, 2)`` or ``(P, 2)``); numpy arrays, torch tensors and floats may be mixed.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(..., P)`` CTF values, the type of ``freqs_per_angstrom``. Torch: computed in its dtype and device,
        differentiable with respect to the frequencies and every tensor parameter. Numpy: computed in float64,
        returned in the floating dtype of the frequencies.
    """
    params = (
        defocus_u_angstrom,
        defocus_v_angstrom,
        defocus_angle_deg,
        voltage_kv,
        cs_mm,
        amplitude_contrast,
        phase_shift_deg,
        bfactor_angstrom2,
    )
    if isinstance(freqs_per_angstrom, torch.Tensor):
        freqs = freqs_per_angstrom
        if not freqs.is_floating_point():
            freqs = freqs.to(torch.get_default_dtype())

        def conv(p: Array) -> torch.Tensor:
            return torch.as_tensor(p, dtype=freqs.dtype, device=freqs.device)

        lib = torch
        out_dtype = None
    else:
        freqs = np.asarray(freqs_per_angstrom)
        out_dtype = freqs.dtype if np.issubdtype(freqs.dtype, np.floating) else np.float64
        freqs = freqs.astype(np.float64, copy=False)

        def conv(p: Array) -> np.ndarray:
            if isinstance(p, torch.Tensor):
                p = p.detach().cpu().numpy()
            return np.asarray(p, dtype=np.float64)

        lib = np
    if freqs.shape[-1:] != (2,):
        shape = tuple(freqs.shape)
        raise ValueError(f"freqs_per_angstrom must have a last axis of size 2 (sx, sy), got {shape}")
    dfu, dfv, angle_deg, kv, cs, w, phase_deg, bfactor = (conv(p) for p in params)

    sx, sy = freqs[..., 0], freqs[..., 1]
    s2 = sx * sx + sy * sy
    alpha = lib.arctan2(sy, sx)
    lam = wavelength_angstrom(kv)
    cs_angstrom = cs * 1e7
    defocus = 0.5 * (dfu + dfv + (dfu - dfv) * lib.cos(2.0 * (alpha - angle_deg * (math.pi / 180.0))))
    gamma = 2.0 * math.pi * (-0.5 * defocus * lam * s2 + 0.25 * cs_angstrom * lam**3 * s2 * s2)
    gamma = gamma - phase_deg * (math.pi / 180.0)
    ctf = -(lib.sqrt(1.0 - w * w) * lib.sin(gamma) - w * lib.cos(gamma))
    ctf = ctf * lib.exp(-bfactor * s2 / 4.0)
    if out_dtype is not None:
        ctf = ctf.astype(out_dtype, copy=False)
    return ctf


def ctf_grid(
    box: int,
    pixel_size_angstrom: Array,
    defocus_u_angstrom: Array,
    defocus_v_angstrom: Array,
    defocus_angle_deg: Array,
    voltage_kv: Array,
    cs_mm: Array,
    amplitude_contrast: Array,
    phase_shift_deg: Array,
    bfactor_angstrom2: Array = 0.0,
) -> Array:
    """CTF images on the centred FFT lattice of a box.

    Parameters
    ----------
    box
        Even box size ``D`` in pixels.
    pixel_size_angstrom
        Pixel size in Å, scalar or ``(N,)``; lattice point ``k`` (cycles per pixel, see
        :func:`cryoscape.geometry.lattice.frequencies_2d`) is at ``s = k / pixel_size`` in 1/Å.
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_deg, voltage_kv, cs_mm, amplitude_contrast, \
phase_shift_deg, bfactor_angstrom2
        As in :func:`ctf_2d`, each a scalar or an ``(N,)`` array (e.g. the fields of a ``CTFParams``).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(N, D, D)`` CTF, element ``[n, y, x]`` for frequency ``((x - D//2), (y - D//2)) / (D · pixel_size)``
        (``N = 1`` when every parameter is a scalar). A torch tensor (dtype and device of the first tensor
        parameter) when any parameter is a tensor, else float64 numpy.
    """
    params = (
        pixel_size_angstrom,
        defocus_u_angstrom,
        defocus_v_angstrom,
        defocus_angle_deg,
        voltage_kv,
        cs_mm,
        amplitude_contrast,
        phase_shift_deg,
        bfactor_angstrom2,
    )
    tensors = [p for p in params if isinstance(p, torch.Tensor)]
    lattice = frequencies_2d(box).reshape(-1, 2)  # (D*D, 2) cycles per pixel
    if tensors:
        ref = tensors[0]
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        conv = [torch.as_tensor(p, dtype=dtype, device=ref.device) for p in params]
        n = torch.broadcast_shapes(*(p.reshape(-1).shape for p in conv))[0]
        cols = [p.reshape(-1).expand(n)[:, None] for p in conv]  # (N, 1) each
        freqs = torch.as_tensor(lattice, dtype=dtype, device=ref.device)[None] / cols[0][..., None]
    else:
        conv = [np.asarray(p, dtype=np.float64).reshape(-1) for p in params]
        n = np.broadcast_shapes(*(p.shape for p in conv))[0]
        cols = [np.broadcast_to(p, (n,))[:, None] for p in conv]
        freqs = lattice[None] / cols[0][..., None]  # (N, D*D, 2) in 1/Å
    ctf = ctf_2d(freqs, *cols[1:])
    return ctf.reshape(n, box, box)
