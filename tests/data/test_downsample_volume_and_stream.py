"""3-D map resampling against independent formulas, and the streaming stack writer's header and memory bound."""

from __future__ import annotations

import tracemalloc

import mrcfile
import numpy as np
import pytest

from cryoscape.data.downsample import check_new_box, resample_map_file, resample_stack, resample_volume
from cryoscape.data.particles import load_particles
from cryoscape.errors import InputError
from cryoscape.geometry.fourier import fourier_crop
from cryoscape.io.mrc import read_mrc, write_mrc
from cryoscape.io.mrc_stream import MrcStackWriter


def _cosines(box: int, freqs: np.ndarray, amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Σ a cos(2π f·x + φ) sampled at x = (i − box/2)/box on a box³ grid (z, y, x): the same field of view."""
    x = (np.arange(box) - box // 2) / box
    z, y, xx = np.meshgrid(x, x, x, indexing="ij")
    out = np.zeros((box,) * 3)
    for (fz, fy, fx), a, p in zip(freqs, amps, phases):
        out += a * np.cos(2 * np.pi * (fz * z + fy * y + fx * xx) + p)
    return out


def test_volume_crop_gives_the_samples_of_a_band_limited_map():
    rng = np.random.default_rng(0)
    freqs = rng.integers(-7, 8, size=(12, 3))  # |f| < 16/2 on every axis: representable on the 16³ grid
    amps, phases = rng.normal(size=12), rng.uniform(0, 2 * np.pi, 12)
    fine = _cosines(40, freqs, amps, phases).astype(np.float32)
    coarse = _cosines(16, freqs, amps, phases)
    np.testing.assert_allclose(resample_volume(fine, 16), coarse, atol=2e-5)
    # and back up: padding the coarse map gives the fine samples (band-limited interpolation)
    np.testing.assert_allclose(resample_volume(coarse.astype(np.float32), 40), fine, atol=2e-5)


def test_volume_crop_matches_a_numpy_fourier_crop_and_keeps_constants():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(24, 24, 24)).astype(np.float32)
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(vol.astype(np.float64))))
    kept = f[4:21, 4:21, 4:21].copy()  # frequencies -8..8 (17 per axis)
    for axis in range(3):  # ±8 are one frequency on the 16-grid: add them
        kept = np.moveaxis(kept, axis, 0)
        kept = np.concatenate([kept[:1] + kept[-1:], kept[1:16]])
        kept = np.moveaxis(kept, 0, axis)
    expected = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kept))).real * (16 / 24) ** 3
    np.testing.assert_allclose(resample_volume(vol, 16), expected, atol=1e-5)
    np.testing.assert_allclose(resample_volume(np.full((8, 8, 8), 2.5, np.float32), 4), 2.5, atol=1e-6)


def test_map_file_voxel_size_and_guard_rails(tmp_path):
    write_mrc(tmp_path / "m.mrc", np.ones((16, 16, 16), np.float32), voxel_size_angstrom=1.2)
    old_box, old_voxel, new_voxel = resample_map_file(tmp_path / "m.mrc", tmp_path / "s.mrc", 8)
    assert (old_box, old_voxel) == (16, pytest.approx(1.2)) and new_voxel == pytest.approx(2.4)
    data, header = read_mrc(tmp_path / "s.mrc")
    assert data.shape == (8, 8, 8) and header.voxel_size_angstrom == pytest.approx(2.4)
    assert not header.is_image_stack
    with pytest.raises(InputError, match="--upsample"):
        resample_map_file(tmp_path / "m.mrc", tmp_path / "u.mrc", 32)
    assert not (tmp_path / "u.mrc").exists()
    with pytest.raises(InputError, match="limit"):
        check_new_box(64, 100000, upsample=True)
    with pytest.raises(InputError, match="memory"):
        check_new_box(64, 64, chunk_size=10**9)  # 10⁹ images of 64² at a time cannot fit


def test_stream_writer_header_statistics_match_numpy(tmp_path):
    rng = np.random.default_rng(2)
    images = (rng.normal(3.0, 2.0, size=(50, 16, 16)) + np.linspace(0, 5, 50)[:, None, None]).astype(np.float32)
    with MrcStackWriter(tmp_path / "s.mrcs", 50, 16, 2.5) as writer:
        for start in (30, 0, 10, 20, 40):  # out of order
            writer.write(start, images[start:start + 10])
    assert mrcfile.validate(str(tmp_path / "s.mrcs"), print_file=open("/dev/null", "w"))
    with mrcfile.open(tmp_path / "s.mrcs") as m:
        data = np.asarray(m.data)
        np.testing.assert_array_equal(data, images)
        assert m.is_image_stack() and m.voxel_size.x == pytest.approx(2.5)
        h = m.header
        assert float(h.dmin) == data.min() and float(h.dmax) == data.max()
        np.testing.assert_allclose(float(h.dmean), data.astype(np.float64).mean(), rtol=1e-6)
        np.testing.assert_allclose(float(h.rms), data.astype(np.float64).std(), rtol=1e-6)


def test_stream_writer_refuses_rewrites_and_leaves_nothing_on_error(tmp_path):
    writer = MrcStackWriter(tmp_path / "s.mrcs", 4, 8, 1.0)
    writer.write(0, np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="already written"):
        writer.write(1, np.zeros((2, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match="never written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_downsample_memory_stays_near_one_chunk_up_to_closing(tmp_path):
    """Peak numpy allocations while cropping 4,000 images of 32² (16 MiB) to 28² (12 MiB) in chunks of 100: about
    one chunk's work. (The former writer recomputed the header statistics from the whole output at close:
    measured peak 12.4 MiB here against 5.6 MiB now.)"""
    n, box, chunk = 4000, 32, 100
    rng = np.random.default_rng(3)
    with MrcStackWriter(tmp_path / "in.mrcs", n, box, 1.0) as writer:
        for start in range(0, n, 500):
            writer.write(start, rng.normal(size=(500, box, box)).astype(np.float32))
    particles = load_particles(tmp_path / "in.mrcs")
    chunk_bytes = chunk * box * box * 4

    def peak_of(work) -> int:
        tracemalloc.start()
        try:
            work()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # reference: reading and Fourier-cropping one chunk (the transform's complex temporaries dominate)
    one_chunk = peak_of(lambda: fourier_crop(particles.read(np.arange(chunk)), 28))
    peak = peak_of(lambda: resample_stack(particles, 28, tmp_path / "out.mrcs", chunk_size=chunk))
    stack_bytes = n * box * box * 4
    assert peak < one_chunk + 3 * chunk_bytes, f"peak {peak / 2**20:.2f} MiB vs {one_chunk / 2**20:.2f} MiB"
    assert peak < stack_bytes / 2
    out, _ = read_mrc(tmp_path / "out.mrcs")
    with mrcfile.open(tmp_path / "out.mrcs", header_only=True) as m:
        np.testing.assert_allclose(float(m.header.rms), out.astype(np.float64).std(), rtol=1e-6)
