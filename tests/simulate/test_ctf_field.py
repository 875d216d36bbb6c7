"""Realistic CTF mode: the CTF as a linear convolution on a larger field, cropped (extraction from a micrograph)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cryoscape.errors import InputError
from cryoscape.geometry.ctf import ctf_grid
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import Simulator


def _cfg(**kw):
    base = {"source": "hinge", "box_size": 24, "n_particles": 4, "snr": float("inf"), "ctf": True,
            "max_shift_px": 0.0, "seed": 3, "defocus_min_angstrom": 20000.0, "defocus_max_angstrom": 25000.0,
            "pixel_size_angstrom": 6.0}
    base.update(kw)
    return preset_config(None, **base)


def _psf(sim: Simulator, i: int, size: int) -> np.ndarray:
    """Real-space point-spread function (size, size) of particle i's CTF, centred at size // 2."""
    c = sim.config
    grid = ctf_grid(size, np.array([sim.pixel_size_angstrom]), sim.defocus_u_angstrom[i:i + 1],
                    sim.defocus_v_angstrom[i:i + 1], sim.defocus_angle_deg[i:i + 1], np.array([c.voltage_kv]),
                    np.array([c.cs_mm]), np.array([c.amplitude_contrast]), np.zeros(1),
                    np.array([c.bfactor_angstrom2]))[0]
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(grid))).real


def test_field_mode_is_the_cropped_linear_convolution():
    sim = Simulator(_cfg(ctf_field_factor=4))
    d = sim.box_size
    projections = sim.clean_images(0, 4, ctf=False)  # shifted, no CTF
    images = sim.clean_images(0, 4)
    for i in range(4):
        psf = _psf(sim, i, 4 * d)  # the CTF sampled on the 4d field, as the simulator does
        full = signal.fftconvolve(projections[i], psf, mode="full")  # linear convolution, (5d - 1)²
        lo = 2 * d + d // 2  # centre of the projection (d // 2) + centre of the psf (2d) in the output
        expected = full[lo - d // 2:lo + d // 2, lo - d // 2:lo + d // 2]
        err = np.linalg.norm(images[i] - expected) / np.linalg.norm(expected)
        assert err < 1e-9


def test_field_mode_differs_from_the_circular_mode_and_matches_it_without_ctf():
    box_mode = Simulator(_cfg(ctf_field_factor=1, pixel_size_angstrom=3.0))
    field_mode = Simulator(_cfg(ctf_field_factor=2, pixel_size_angstrom=3.0))
    a, b = box_mode.clean_images(0, 4), field_mode.clean_images(0, 4)
    assert np.linalg.norm(a - b) > 0.05 * np.linalg.norm(a)  # the wrapped-around fringes are gone
    np.testing.assert_allclose(box_mode.clean_images(0, 4, ctf=False), field_mode.clean_images(0, 4, ctf=False),
                               atol=1e-9)
    # larger fields converge (what leaves a 2× field hardly reaches the box)
    c = Simulator(_cfg(ctf_field_factor=3, pixel_size_angstrom=3.0)).clean_images(0, 4)
    assert np.linalg.norm(b - c) < 0.05 * np.linalg.norm(b)


def test_bad_field_factor():
    with pytest.raises(InputError):
        _cfg(ctf_field_factor=0).validate()
