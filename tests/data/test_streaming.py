"""Streaming training data (``data.streaming``): epoch order, chunk locality over several stacks and ``--ind``
subsets, batches equal to the direct lazy reads, sharding, bounded prefetch, one torch thread in workers,
resident file pages released, and bit-identical resume of a lazy run."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from cryoscape.data import streaming
from cryoscape.data.dataset import HartleyDataset
from cryoscape.data.particles import load_particles
from cryoscape.data.streaming import (
    PREFETCH_WINDOWS,
    StreamingBatches,
    StreamSampler,
    chunk_images,
    disk_order,
    stream_memory_bytes,
    stream_order,
)
from cryoscape.io.legacy import write_pose_pickle
from cryoscape.io.mrc import write_mrc
from cryoscape.io.records import Poses

BOX = 16


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def three_stacks(tmp_path_factory):
    """90 images in three stacks of 40, 20 and 30 listed by a .txt file (as RELION splits by micrograph);
    the pixel value of image i of the listing is i everywhere (so an image tells where it came from)."""
    folder = tmp_path_factory.mktemp("stacks")
    sizes = [40, 20, 30]
    names, start = [], 0
    rng = np.random.default_rng(1)
    for k, size in enumerate(sizes):
        values = np.arange(start, start + size, dtype=np.float32)
        images = values[:, None, None] + 0.01 * rng.standard_normal((size, BOX, BOX)).astype(np.float32)
        write_mrc(folder / f"mic{k}.mrcs", images, voxel_size_angstrom=2.0)
        names.append(f"mic{k}.mrcs")
        start += size
    (folder / "all.txt").write_text("\n".join(names) + "\n")
    n = start
    from cryoscape.geometry.rotations import random_rotations

    write_pose_pickle(folder / "pose.pkl", Poses(random_rotations(n, rng), rng.normal(size=(n, 2)), BOX))
    return folder


def _particles(folder, ind=None):
    return load_particles(folder / "all.txt", poses=folder / "pose.pkl", ind=ind)


def test_order_is_reproducible_complete_and_changes_with_epoch_and_seed():
    disk = np.arange(103)
    a, starts = stream_order(disk, 10, 3, seed=5, epoch=2)
    b, _ = stream_order(disk, 10, 3, seed=5, epoch=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a), np.arange(103))  # every particle exactly once
    assert starts[0] == 0 and starts[-1] == 103 and np.all(np.diff(starts) > 0)
    assert not np.array_equal(a, stream_order(disk, 10, 3, seed=5, epoch=3)[0])
    assert not np.array_equal(a, stream_order(disk, 10, 3, seed=6, epoch=2)[0])
    unshuffled, _ = stream_order(disk, 10, 3, seed=5, epoch=2, shuffle=False)
    np.testing.assert_array_equal(unshuffled, disk)


def test_windows_are_a_few_whole_chunks_and_mix_them():
    disk = np.arange(1000)
    order, starts = stream_order(disk, 50, 4, seed=0, epoch=0)
    assert starts.size - 1 == 5  # 20 chunks, 4 per window
    mixed = 0
    for j in range(starts.size - 1):
        window = order[starts[j]:starts[j + 1]]
        chunks = np.unique(window // 50)
        assert chunks.size == 4
        # the window holds whole chunks only: a few sequential reads
        np.testing.assert_array_equal(np.sort(window), np.concatenate([np.arange(c * 50, c * 50 + 50) for c in chunks]))
        mixed += np.count_nonzero(np.diff(window // 50))
    assert mixed > 500  # images of the chunks are interleaved, not chunk after chunk
    # chunks are visited in a random order, not the file order
    firsts = [np.min(order[starts[j]:starts[j + 1]] // 50) for j in range(starts.size - 1)]
    assert firsts != sorted(firsts)


def test_disk_order_over_several_stacks_and_an_index_subset(three_stacks):
    ps = _particles(three_stacks)
    np.testing.assert_array_equal(disk_order(ps), np.arange(90))
    ind = np.random.default_rng(3).permutation(90)[:50]  # an unsorted --ind selection
    sub = _particles(three_stacks, ind=ind)
    disk = disk_order(sub)
    originals = sub.indices[disk]
    assert np.all(np.diff(originals) > 0)  # (file, image) increasing along disk order
    sampler = StreamSampler(disk, 7, chunk=6, chunks_per_window=2, seed=1)
    order, starts = sampler.windows()
    for j in range(starts.size - 1):
        read = np.sort(sub.indices[order[starts[j]:starts[j + 1]]])
        runs = [r for r in np.split(read, np.flatnonzero(np.diff(np.searchsorted(originals, read)) != 1) + 1)]
        assert len(runs) <= 2  # at most one run of the disk order per chunk


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_streamed_batches_equal_direct_reads_every_particle_once(three_stacks, workers):
    ind = np.random.default_rng(4).permutation(90)[:70]
    ps = _particles(three_stacks, ind=ind)
    ds = HartleyDataset(ps, data_std=2.5)
    stream = StreamingBatches(ds, 8, chunk_size=9, seed=7, num_workers=workers, chunks_per_window=3)
    assert stream.workers == (workers or streaming.DEFAULT_WORKERS)
    stream.set_epoch(1)
    batches = list(stream)
    assert len(batches) == len(stream) == 9
    positions = np.concatenate([b.positions.numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(positions), np.arange(70))
    np.testing.assert_array_equal(positions, np.concatenate(list(stream.sampler)))
    for b in batches:
        direct = ds.get_batch(b.positions.numpy())
        torch.testing.assert_close(b.images, direct.images, rtol=0, atol=1e-6)
        assert torch.equal(b.rotations, direct.rotations) and torch.equal(b.shifts_px, direct.shifts_px)
    stream.set_epoch(1)
    again = np.concatenate([b.positions.numpy() for b in stream])
    np.testing.assert_array_equal(again, positions)


def test_images_carry_their_particle(three_stacks):
    """Independent check of the image ↔ position pairing: unwindowed, the Hartley DC of image i is D²·i / std."""
    ps = _particles(three_stacks)
    ds = HartleyDataset(ps, data_std=1.0, window=False)
    stream = StreamingBatches(ds, 16, chunk_size=10, seed=2, num_workers=1)
    for b in stream:
        dc = b.images[:, BOX // 2, BOX // 2].numpy() / BOX**2
        np.testing.assert_allclose(dc, ps.indices[b.positions.numpy()], atol=0.05)


def test_sharded_streams_split_each_global_batch(three_stacks):
    ps = _particles(three_stacks)
    ds = HartleyDataset(ps, data_std=1.0)
    whole = StreamingBatches(ds, 10, chunk_size=8, seed=3, num_workers=1)
    ranks = [StreamingBatches(ds, 5, chunk_size=8, seed=3, rank=r, world_size=2, num_workers=1) for r in (0, 1)]
    got = [list(r) for r in ranks]
    assert len(got[0]) == len(got[1]) == len(whole)
    for g, a, b in zip(whole, *got):
        np.testing.assert_array_equal(torch.cat([a.positions, b.positions]).numpy(), g.positions.numpy())
        assert torch.equal(torch.cat([a.images, b.images]), g.images)


def test_prefetch_is_bounded_by_windows_not_by_the_stack(three_stacks):
    ps = _particles(three_stacks)
    ds = HartleyDataset(ps, data_std=1.0)
    window_bytes = 2 * 3 * BOX * BOX * 4  # two chunks of three images per window: 15 windows
    for workers in (1, 2):
        stream = StreamingBatches(ds, 4, chunk_size=100, seed=0, num_workers=workers, chunks_per_window=2,
                                  window_bytes=window_bytes)
        assert stream.chunk == 3
        sizes = [s.size for s in stream.sampler.plan()[1]]
        assert max(sizes) <= 6 and len(sizes) == 15
        for _ in stream:
            pass
        assert stream.windows_taken == 15
        assert 1 <= stream.most_ahead <= max(workers, PREFETCH_WINDOWS)
    # the bound does not depend on the number of particles, and shrinks the chunk at large boxes
    assert chunk_images(128, 1024) == streaming.WINDOW_BYTES // (4 * 128 * 128 * 4)
    assert chunk_images(512, 1024) == 32 and chunk_images(16, 1024) == 1024
    assert stream_memory_bytes(256, 1024) == (PREFETCH_WINDOWS + 2) * streaming.WINDOW_BYTES
    assert stream_memory_bytes(128, 1024, workers=8) == 10 * streaming.WINDOW_BYTES


def _threads(_):
    return torch.get_num_threads()


def test_workers_run_torch_on_one_thread():
    loader = torch.utils.data.DataLoader(list(range(2)), batch_size=None, num_workers=1,
                                         collate_fn=_threads, worker_init_fn=streaming._worker_init)
    assert [t for t in loader] == [streaming.WORKER_THREADS] * 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_lazy_reads_do_not_keep_the_file_resident(tmp_path):
    """Reading a 32 MiB stack lazily (evaluation path and streaming) leaves the file's pages unmapped."""

    def rss_file() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
        return 0

    n, box = 2048, 64
    write_mrc(tmp_path / "big.mrcs", np.ones((n, box, box), np.float32), voxel_size_angstrom=1.0)
    ps = load_particles(tmp_path / "big.mrcs")
    ds = HartleyDataset(ps, data_std=1.0)
    before = rss_file()
    for start in range(0, n, 256):
        ds.get_batch(np.arange(start, start + 256))
    stream = StreamingBatches(ds, 64, chunk_size=256, seed=0)
    reader = streaming.WindowReader(ds, stream.disk)
    for segment in stream.sampler.plan()[1]:
        reader[segment]
    assert rss_file() - before < 8 * 2**20  # 32 MiB were read


def test_lazy_training_resumes_bit_identically(tmp_path):
    from cryoscape.models import ModelConfig
    from cryoscape.runs import RunDir
    from cryoscape.training import loop
    from cryoscape.training.config import DataConfig, TrainConfig

    from ..training.synthetic import blob_volume, write_dataset

    syn = write_dataset(tmp_path / "data", [blob_volume(BOX, [(0, 0, 0), (3, 0, 0)])], 96, noise_std=0.3, seed=1)
    data = DataConfig(particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf), lazy=True, chunk_size=16,
                      num_workers=1)
    model = ModelConfig(zdim=1, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    config = TrainConfig(model=model, data=data, num_epochs=3, batch_size=8, lr=1e-3, amp=False, checkpoint_every=1)
    loop.fit(config, tmp_path / "a")
    loop.fit(dataclasses.replace(config, num_epochs=2), tmp_path / "b")
    loop.fit(config, tmp_path / "b", resume_from=tmp_path / "b")
    a, b = RunDir(tmp_path / "a").load_checkpoint(3), RunDir(tmp_path / "b").load_checkpoint(3)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    np.testing.assert_array_equal(RunDir(tmp_path / "a").load_z(3).mean, RunDir(tmp_path / "b").load_z(3).mean)
    assert "streamed from disk" in (tmp_path / "a" / "run.log").read_text()
