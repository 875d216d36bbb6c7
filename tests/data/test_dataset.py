"""HartleyDataset, normalisation (robust to outlier images), memory estimate, window, contrast and the epoch
sampler."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoscape.data.ctf_batch import CTF_2D_PARAMETERS, CTFBatch
from cryoscape.data.dataset import (
    EpochSampler,
    HartleyDataset,
    ImagePrep,
    choose_in_memory,
    estimate_data_std,
    in_memory_bytes,
    make_loader,
    soft_window,
)
from cryoscape.data.memory import PREP_CHUNK_BYTES, prep_chunk_images
from cryoscape.data.normalization import scale_outliers
from cryoscape.data.particles import load_particles
from cryoscape.geometry.fourier import ht2_center
from cryoscape.geometry.rotations import random_rotations
from cryoscape.io.legacy import write_ctf_pickle, write_pose_pickle
from cryoscape.io.mrc import write_mrc
from cryoscape.io.records import CTFParams, Poses

BOX = 16
N = 40


@pytest.fixture(scope="module")
def particles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ds")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(N, BOX, BOX)).astype(np.float32)
    write_mrc(folder / "p.mrcs", images, voxel_size_angstrom=2.0)
    poses = Poses(random_rotations(N, rng), rng.normal(size=(N, 2)), BOX)
    write_pose_pickle(folder / "pose.pkl", poses)
    ctf = CTFParams(
        np.full(N, 2.0),
        rng.uniform(1e4, 2e4, N),
        rng.uniform(1e4, 2e4, N),
        rng.uniform(0, 90, N),
        np.full(N, 300.0),
        np.full(N, 2.7),
        np.full(N, 0.1),
        np.zeros(N),
        BOX,
    )
    write_ctf_pickle(folder / "ctf.pkl", ctf)
    ps = load_particles(folder / "p.mrcs", poses=folder / "pose.pkl", ctf=folder / "ctf.pkl")
    return ps, images


def test_window_shape():
    w = soft_window(32, 0.5, 0.9)
    assert w[16, 16] == 1.0 and w[0, 0] == 0.0
    assert w[16, 16 + 7] == 1.0  # r = 7/16 < 0.5
    assert w[16, 16 + 15] == 0.0  # r = 15/16 > 0.9
    assert 0 < w[16, 16 + 11] < 1  # r = 11/16 on the edge
    np.testing.assert_allclose(w, w.T)


@pytest.mark.parametrize("in_memory", [False, True])
def test_batch_contents(particles, in_memory):
    ps, images = particles
    ds = HartleyDataset(ps, data_std=3.0, invert=True, window=False, in_memory=in_memory)
    pos = np.array([5, 0, 17])
    batch = ds.get_batch(pos)
    expected = -np.asarray(ht2_center(images[pos].astype(np.float64))) / 3.0
    np.testing.assert_allclose(batch.images.numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(batch.positions.numpy(), pos)
    np.testing.assert_allclose(batch.shifts_px.numpy(), ps.poses.shifts_px[pos], rtol=1e-6)
    np.testing.assert_allclose(batch.rotations.numpy(), ps.poses.rotations[pos], rtol=1e-6)
    assert isinstance(batch.ctf, CTFBatch) and len(batch.ctf) == len(pos)
    for name in ("pixel_size_angstrom", *CTF_2D_PARAMETERS):
        np.testing.assert_allclose(getattr(batch.ctf, name).numpy(), getattr(ps.ctf, name)[pos], rtol=1e-6)
    assert ds.in_memory is in_memory


def test_window_and_no_inversion_by_default(particles):
    ps, images = particles
    ds = HartleyDataset(ps, data_std=1.0)
    expected = np.asarray(ht2_center(images[[2]] * soft_window(BOX, 0.85)))
    np.testing.assert_allclose(ds.get_batch([2]).images.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_data_std_is_the_std_of_hartley_values(particles):
    ps, images = particles
    prep = ImagePrep(BOX, window=False)
    assert estimate_data_std(ps, prep) == pytest.approx(
        np.asarray(ht2_center(images.astype(np.float64))).std(), rel=1e-5
    )


def test_in_memory_decision(particles):
    ps, _ = particles
    need = in_memory_bytes(N, BOX)
    # the prepared stack plus the working memory of preparing the (here single) chunk
    assert need == N * BOX**2 * 4 * (1 + 24)
    assert choose_in_memory(ps, None, need / 2**30)
    assert not choose_in_memory(ps, None, (need - 1) / 2**30)
    assert not choose_in_memory(ps, True, 1.0)
    assert choose_in_memory(ps, False, 1e-9)


def test_prep_chunks_are_bounded_in_bytes():
    assert prep_chunk_images(64) == PREP_CHUNK_BYTES // (64 * 64 * 4)
    assert prep_chunk_images(64, 10) == 10
    assert prep_chunk_images(4096) == 1
    # a large stack: the transient is a fixed number of bounded chunks, not a fraction of the stack
    assert in_memory_bytes(10**6, 64) - 10**6 * 64 * 64 * 4 == in_memory_bytes(10**5, 64) - 10**5 * 64 * 64 * 4


def _memory_benchmark():
    """benchmarks/memory_budget.py as a module (its measurement runs a load in a fresh process)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "memory_budget.py"
    spec = importlib.util.spec_from_file_location("memory_budget", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_in_memory_estimate_covers_the_resident_peak_of_loading(tmp_path):
    """Load a 64 MiB stack with the command's allocator settings: the resident peak grows by at least the
    prepared stack (the measurement works) and by no more than the estimate (the budget counts what is held:
    before, the mapped pages of the file and the temporaries of 1024-image chunks were not counted)."""
    result = _memory_benchmark().measure(64, 1 / 16, tmp_path)
    n = result["n_images"]
    assert n == 4096
    assert result["estimate_gib"] * 2**30 == in_memory_bytes(n, 64)
    assert result["stack_gib"] <= result["peak_growth_gib"] <= result["estimate_gib"]


@pytest.fixture(scope="module")
def outlier_particles(tmp_path_factory):
    """40 noise images; image 7 multiplied by 1e30 and image 12 all zeros."""
    folder = tmp_path_factory.mktemp("outliers")
    rng = np.random.default_rng(5)
    images = rng.normal(size=(N, BOX, BOX)).astype(np.float32)
    images[7] *= np.float32(1e30)
    images[12] = 0.0
    write_mrc(folder / "p.mrcs", images, voxel_size_angstrom=2.0)
    return load_particles(folder / "p.mrcs"), images


def test_data_std_ignores_outlier_images_and_reports_them(outlier_particles, caplog):
    ps, images = outlier_particles
    prep = ImagePrep(BOX, window=False)
    with caplog.at_level(logging.WARNING, logger="cryoscape"):
        std = estimate_data_std(ps, prep)
    good = np.setdiff1d(np.arange(N), [7, 12])
    assert std == pytest.approx(np.asarray(ht2_center(images[good].astype(np.float64))).std(), rel=1e-5)
    # the plain std of all values is ~1e30: every other image would be ~0 after normalisation
    assert np.asarray(ht2_center(images.astype(np.float64))).std() > 1e20 * std
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 40" in warnings[0] and "7 (x" in warnings[0] and "12 (x0)" in warnings[0]


def test_outliers_are_reported_by_original_index(outlier_particles, caplog):
    ps, _ = outlier_particles
    subset = ps.subset(np.arange(5, 30))  # position 2 is original particle 7
    assert subset.indices[2] == 7
    with caplog.at_level(logging.WARNING, logger="cryoscape"):
        estimate_data_std(subset, ImagePrep(BOX))
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "7 (x" in message and "12 (x0)" in message
    assert re.search(r"(?<![0-9])2 \(x", message) is None  # the position in the subset is not reported


def test_scale_outliers():
    rng = np.random.default_rng(6)
    ms = np.exp(rng.normal(0.0, 0.2, 500))  # ordinary spread of image power
    assert not scale_outliers(ms).any()
    assert not scale_outliers(np.ones(10)).any()  # identical images: no spread, no outlier
    flagged = ms.copy()
    flagged[[3, 9, 11, 20]] = [ms[3] * 1e6, 0.0, np.nan, np.inf]
    np.testing.assert_array_equal(np.flatnonzero(scale_outliers(flagged)), [3, 9, 11, 20])
    uniform = np.ones(10)
    uniform[[1, 2]] = [3.0**2, 1.5**2]  # rms x3 is an outlier, x1.5 is not (the minimum ratio is 4 in power)
    np.testing.assert_array_equal(np.flatnonzero(scale_outliers(uniform)), [1])


def test_sampler_permutations_are_reproducible():
    s = EpochSampler(103, 10, seed=3)
    s.set_epoch(0)
    first = np.concatenate(list(s))
    assert len(list(s)) == len(s) == 11
    np.testing.assert_array_equal(np.sort(first), np.arange(103))
    np.testing.assert_array_equal(np.concatenate(list(s)), first)
    s.set_epoch(1)
    assert not np.array_equal(np.concatenate(list(s)), first)
    assert not np.array_equal(first, np.arange(103))


def test_chunk_shuffling_reads_contiguous_chunks():
    s = EpochSampler(100, 7, chunk_size=25, seed=0)
    order = s.order()
    np.testing.assert_array_equal(np.sort(order), np.arange(100))
    chunks = order // 25
    # each chunk's particles are visited consecutively
    assert np.count_nonzero(np.diff(chunks)) == 3
    assert not np.array_equal(order, np.arange(100))


def test_sharding_splits_each_global_batch():
    full = EpochSampler(50, 8, seed=1)
    ranks = [EpochSampler(50, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    batches = [list(r) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == 7
    for g, a, b in zip(full, *batches):
        np.testing.assert_array_equal(np.concatenate([a, b]), g)
    odd = [EpochSampler(49, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    assert len(list(odd[0])) == len(list(odd[1])) == len(odd[0])  # every process takes the same steps


def test_loader_with_a_worker_gives_the_same_batches(particles):
    ps, _ = particles
    ds = HartleyDataset(ps, data_std=1.0)
    sampler = EpochSampler(len(ds), 16, seed=0)
    direct = [ds.get_batch(p).images for p in sampler]
    for workers in (0, 1):
        loaded = [b.images for b in make_loader(ds, sampler, num_workers=workers)]
        assert len(loaded) == len(direct)
        for x, y in zip(loaded, direct):
            assert torch.equal(x, y)


def _phase_flipped_centre_contrast(ps) -> np.ndarray:
    """Central minus peripheral mean of each image, phase-flipped with the RELION CTF and low-passed to 30 Å.

    With RELION's CTF sign, positive (white) particles give a positive value.
    """
    from cryoscape.geometry.ctf import ctf_grid
    from cryoscape.geometry.fourier import fft2_center, ifft2_center
    from cryoscape.geometry.lattice import radius_px_grid

    c, box = ps.ctf, ps.box_size
    images = ps.read(np.arange(len(ps))).astype(np.float64)
    grid = ctf_grid(
        box,
        c.pixel_size_angstrom,
        c.defocus_u_angstrom,
        c.defocus_v_angstrom,
        c.defocus_angle_deg,
        c.voltage_kv,
        c.cs_mm,
        c.amplitude_contrast,
        c.phase_shift_deg,
    )
    low = radius_px_grid(box) / (box * c.pixel_size_angstrom[0]) < 1 / 30
    flipped = ifft2_center(fft2_center(images) * np.sign(grid) * low).real
    j = np.arange(box) - box // 2
    r = np.hypot(j[None], j[:, None])
    return flipped[:, r < box / 8].mean(1) - flipped[:, (r > box / 2.5) & (r < box / 2)].mean(1)


def test_contrast_of_the_real_fixture_particles(fixtures_dir):
    """Which fixtures need --invert-data under our default (no inversion, RELION CTF sign).

    Measured: the 7 EMPIAR-10076 particles are dark (protein black) under RELION's CTF sign, so training on
    them needs --invert-data; the 5 RELION 3.1 particles are too noisy to call (mixed signs): no claim.
    """
    empiar = load_particles(fixtures_dir / "empiar_10076_7.star", datadir=fixtures_dir)
    assert np.all(_phase_flipped_centre_contrast(empiar) < 0)
