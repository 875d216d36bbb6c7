"""GPU data placement, exercised on CPU: the "fits" decision from a mocked memory query, the fp16 resident copy
(built on the CPU device), its epoch batches, and pinned one-ahead copies with a stand-in pin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.data import device_resident as dr
from cryoscape.data.dataset import EpochSampler, HartleyDataset
from cryoscape.data.particles import load_particles

from ..training.synthetic import blob_volume, write_dataset

BOX = 16
GIB = 2**30


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    syn = write_dataset(tmp_path_factory.mktemp("resident"), [blob_volume(BOX, [(0, 0, 0), (2, 1, 0)])], 30, seed=1,
                        noise_std=0.3)
    particles = load_particles(syn.stack, poses=syn.poses, ctf=syn.ctf)
    return HartleyDataset(particles, data_std=float(BOX), in_memory=True)


def memory(free_gib: float, total_gib: float):
    calls = []

    def query(device):
        calls.append(device)
        return int(free_gib * GIB), int(total_gib * GIB)

    query.calls = calls
    return query


def test_resident_bytes():
    assert dr.resident_bytes(1000, 128) == 1000 * (128 * 128 * 2 + 21 * 4)


def test_fits_keeps_the_reserve_free():
    per_image = dr.resident_bytes(1, 128)
    # 24 GiB card with 20 GiB free: reserve max(0.25 * 24, 2) = 6 GiB -> 14 GiB for the data
    limit = int(14 * GIB // per_image)
    query = memory(20, 24)
    assert dr.fits_on_device(limit, 128, "cuda", query)
    assert not dr.fits_on_device(limit + 1, 128, "cuda", query)
    assert query.calls == [torch.device("cuda")] * 2
    # small card: the reserve is at least 2 GiB
    limit = int(1 * GIB // per_image)
    assert dr.fits_on_device(limit, 128, "cuda:1", memory(3, 4))
    assert not dr.fits_on_device(limit + 1, 128, "cuda:1", memory(3, 4))
    # no data on a device that is not CUDA, and no memory query
    query = memory(100, 100)
    assert not dr.fits_on_device(10, 16, "cpu", query) and query.calls == []


def test_place_dataset_decides_without_touching_cuda(dataset, monkeypatch):
    assert dr.place_dataset(dataset, "cpu") is dataset
    assert dr.place_dataset(dataset, "cuda", memory(0.5, 1)) is dataset  # does not fit: stays on the host
    made = []

    class Stub:
        def __init__(self, ds, device, chunk_size=None):
            made.append((ds, device))

    monkeypatch.setattr(dr, "DeviceResidentDataset", Stub)
    placed = dr.place_dataset(dataset, "cuda", memory(40, 80))
    assert isinstance(placed, Stub) and made == [(dataset, torch.device("cuda"))]


def test_place_dataset_keeps_the_host_copy_when_fp16_overflows(dataset, monkeypatch):
    def overflow(ds, device, chunk_size=None):
        raise ValueError("image 3 has Hartley values beyond the float16 range")

    monkeypatch.setattr(dr, "DeviceResidentDataset", overflow)
    assert dr.place_dataset(dataset, "cuda", memory(40, 80)) is dataset


def test_resident_batches_equal_the_dataset_batches(dataset):
    resident = dr.DeviceResidentDataset(dataset, "cpu", chunk_size=7)  # several chunks
    assert resident.images.dtype == torch.float16 and len(resident) == len(dataset) and resident.in_memory
    assert resident.particles is dataset.particles and resident.data_std == dataset.data_std
    positions = np.array([29, 0, 7, 8, 15])
    want, got = dataset.get_batch(positions), resident.get_batch(positions)
    assert got.images.dtype == torch.float32
    scale = want.images.abs().max()
    np.testing.assert_allclose(got.images.numpy(), want.images.numpy(), rtol=1e-3, atol=1e-3 * float(scale))
    assert not torch.equal(got.images, want.images)  # it is the fp16 copy
    np.testing.assert_array_equal(got.positions.numpy(), positions)
    assert torch.equal(got.rotations, want.rotations) and torch.equal(got.shifts_px, want.shifts_px)
    assert torch.equal(got.ctf.defocus_u_angstrom, want.ctf.defocus_u_angstrom)
    assert torch.equal(got.ctf.pixel_size_angstrom, want.ctf.pixel_size_angstrom)


def test_resident_epoch_follows_the_sampler(dataset):
    resident = dr.DeviceResidentDataset(dataset, "cpu")
    sampler = EpochSampler(len(dataset), 8, seed=3)
    batches = resident.epoch_batches(sampler)
    assert len(batches) == len(sampler) == 4
    orders = []
    for epoch in (0, 1):
        batches.set_epoch(epoch)
        got = [b.positions.numpy() for b in batches]
        want = list(sampler)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        orders.append(np.concatenate(got))
    assert sorted(orders[0]) == list(range(len(dataset))) and not np.array_equal(orders[0], orders[1])


def test_values_beyond_fp16_are_refused(dataset):
    tiny_std = HartleyDataset(dataset.particles, data_std=1e-6, in_memory=False)
    with pytest.raises(ValueError, match="float16 range"):
        dr.DeviceResidentDataset(tiny_std, "cpu")


class Epochs:
    """A stand-in for data.streaming.epoch_batches: set_epoch, len, sampler, iteration."""

    def __init__(self, dataset, batch_size):
        self.dataset = dataset
        self.sampler = EpochSampler(len(dataset), batch_size, seed=0)

    def set_epoch(self, epoch):
        self.sampler.set_epoch(epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for positions in self.sampler:
            yield self.dataset.get_batch(positions)


def test_device_batches_pin_every_tensor_one_batch_ahead(dataset):
    events = []

    def pin(t):
        events.append("pin")
        return t.clone()

    host = Epochs(dataset, 8)
    moved = dr.DeviceBatches(host, "cpu", pin=pin)
    per_batch = 4 + 9  # positions, images, rotations, shifts + the 9 CTF fields
    out = []
    for batch in moved:
        out.append(batch)
        events.append("yield")
    # batch i is handed out only after batch i + 1 was pinned and queued
    assert events[:2 * per_batch + 1] == ["pin"] * (2 * per_batch) + ["yield"]
    assert events.count("pin") == per_batch * len(host) and events.count("yield") == len(host)
    for got, positions in zip(out, host.sampler, strict=True):
        np.testing.assert_array_equal(got.positions.numpy(), positions)
        assert torch.equal(got.images, dataset.get_batch(positions).images)
    moved.set_epoch(1)
    assert host.sampler.epoch == 1


def test_training_batches_chooses(dataset, monkeypatch):
    host = Epochs(dataset, 8)
    assert dr.training_batches(host, dataset, "cpu") is host
    # CUDA, does not fit: pinned copies of the host batches
    through = dr.training_batches(host, dataset, "cuda", memory(0.5, 1))
    assert isinstance(through, dr.DeviceBatches) and through.batches is host
    # CUDA, fits: resident batches over the same sampler (built here on the CPU device)
    class OnCpu(dr.DeviceResidentDataset):
        def __init__(self, ds, device, chunk_size=None):
            super().__init__(ds, "cpu", chunk_size)

    monkeypatch.setattr(dr, "DeviceResidentDataset", OnCpu)
    resident = dr.training_batches(host, dataset, "cuda", memory(40, 80))
    assert isinstance(resident, dr.ResidentBatches) and resident.sampler is host.sampler
