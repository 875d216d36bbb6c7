"""Particle thumbnails for the report's gallery: a fixed random sample of CTF phase-flipped images, 8-bit.

Phase flipping multiplies an image's Fourier transform by ``sign(CTF)`` (the RELION CTF of
:mod:`cryoscape.geometry.ctf`, positive at zero frequency), which undoes the contrast reversals of the CTF
without amplifying noise: particles of positive density then show white. Thumbnails are Fourier-cropped to at most
``thumbnail_px`` pixels and scaled per image from its 1st to 99th percentile to 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoscape.errors import InputError


@dataclass(frozen=True)
class Gallery:
    """A random sample of particles as small 8-bit images.

    Attributes
    ----------
    rows : ndarray (S,) int64
        Rows of the run's latent array (``TrainedRun.z``) of the sampled particles, increasing.
    pixels : ndarray (S, T, T) uint8
        Phase-flipped, Fourier-cropped images scaled per image to 0..255 (white = high density).
    size_px : int
        T, the thumbnail box.
    pixel_size_angstrom : float or None
        Pixel size of the thumbnails (Å).
    phase_flipped : bool
        False when the particles have no CTF (images shown as they are).
    """

    rows: np.ndarray
    pixels: np.ndarray
    size_px: int
    pixel_size_angstrom: float | None
    phase_flipped: bool


def sample_rows(n: int, count: int, seed: int = 0) -> np.ndarray:
    """``min(n, count)`` distinct rows of ``range(n)`` drawn at random with ``seed``, increasing."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(int(n), int(count)), replace=False)).astype(np.int64)


def phase_flip(images: np.ndarray, ctf: np.ndarray) -> np.ndarray:
    """Images (k, D, D) with their centred Fourier transform multiplied by ``sign(ctf)`` (k, D, D); real float32."""
    from cryoscape.geometry.fourier import fft2_center, ifft2_center

    flipped = ifft2_center(fft2_center(np.asarray(images, dtype=np.float64)) * np.sign(ctf))
    return np.ascontiguousarray(flipped.real, dtype=np.float32)


def to_uint8(images: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Each image (k, T, T) scaled from its ``low_pct`` to its ``high_pct`` percentile onto 0..255."""
    images = np.asarray(images, dtype=np.float64)
    lo = np.percentile(images, low_pct, axis=(1, 2), keepdims=True)
    hi = np.percentile(images, high_pct, axis=(1, 2), keepdims=True)
    scaled = (images - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _ctf_images(ctf, positions: np.ndarray, box: int) -> np.ndarray:
    from cryoscape.geometry.ctf import ctf_grid

    sub = ctf.subset(positions)
    return ctf_grid(box, sub.pixel_size_angstrom, sub.defocus_u_angstrom, sub.defocus_v_angstrom,
                    sub.defocus_angle_deg, sub.voltage_kv, sub.cs_mm, sub.amplitude_contrast, sub.phase_shift_deg)


def particle_gallery(run, count: int = 1000, thumbnail_px: int = 48, seed: int = 0,
                     chunk: int = 256) -> Gallery:
    """Thumbnails of ``count`` random particles of ``run`` (a :class:`~cryoscape.analysis.api.TrainedRun`).

    Images and CTF are read from the run's particle file through :func:`cryoscape.data.particles.load_particles`
    (the run's ``--poses``/``--ctf``/``--datadir``); ``invert_data`` runs have their images multiplied by -1 so
    that particles show white like the others.

    Raises
    ------
    InputError
        When the run names no particle file or its images cannot be read.
    """
    from cryoscape.data.particles import load_particles
    from cryoscape.geometry.fourier import fourier_crop

    data = run.config.data
    if run.particles_path is None:
        raise InputError("the run names no particle file", path=run.path, fix="train on a particle file")
    from cryoscape.analysis.api import resolve_run_path

    particles = load_particles(run.particles_path, ctf=resolve_run_path(data.ctf, run.path),
                               datadir=resolve_run_path(data.datadir, run.path), allow_mixed_pixel_sizes=True,
                               allow_overfocus=True)
    rows = sample_rows(len(run.indices), count, seed)
    originals = np.asarray(run.indices)[rows]
    box = particles.box_size
    size = min(int(thumbnail_px), box)
    size -= size % 2
    parts = []
    for start in range(0, len(rows), chunk):
        positions = originals[start:start + chunk]
        images = particles.read(positions)
        if particles.ctf is not None:
            images = phase_flip(images, _ctf_images(particles.ctf, positions, box))
        if data.invert_data:
            images = -images
        if size < box:
            images = np.asarray(fourier_crop(images, size), dtype=np.float32)
        parts.append(to_uint8(images))
    pixels = np.concatenate(parts) if parts else np.zeros((0, size, size), np.uint8)
    apix = particles.pixel_size_angstrom
    return Gallery(rows=rows, pixels=pixels, size_px=size,
                   pixel_size_angstrom=None if apix is None else float(apix) * box / size,
                   phase_flipped=particles.ctf is not None)
