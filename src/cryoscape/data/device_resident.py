"""Training data on the GPU: the whole prepared stack resident in fp16 when it fits, else pinned async copies.

A :class:`DeviceResidentDataset` holds the normalised Hartley images of a
:class:`~cryoscape.data.dataset.HartleyDataset` on the device as float16 (N·D²·2 bytes: 100k images at box 128
take 3.3 GB), with the poses and CTF parameters; a batch is then a gather on the device, and training reads no
data over PCIe. The images are normalised by the dataset's std, so their values are of order 1 and fp16 (11
significant bits, below the noise of any particle image) loses nothing measurable; a stack with a finite value
beyond fp16's range (65504) is not made resident. Batches come out float32, as from the dataset.

Whether the stack fits (:func:`fits_on_device`) is decided from the device's free memory
(``torch.cuda.mem_get_info``) minus a reserve for the model, activations, optimizer state and the CUDA context
(:data:`RESERVE_FRACTION` of the device's memory, at least :data:`RESERVE_MIN_BYTES`).

Otherwise batches stay on the host and :class:`DeviceBatches` copies each one to the device from pinned
(page-locked) memory with ``non_blocking=True``, one batch ahead, so that the copy does not stall the host.

:func:`place_dataset` makes the choice. On CPU everything stays as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from cryoscape.data.ctf_batch import CTFBatch
from cryoscape.data.dataset import Batch, EpochSampler, HartleyDataset
from cryoscape.data.memory import FLOAT32_BYTES, prep_chunk_images

log = logging.getLogger(__name__)

#: Bytes of one float16 value.
FLOAT16_BYTES = 2
#: Largest finite float16 value.
FLOAT16_MAX = 65504.0
#: Fraction of the device's total memory kept free for everything but the data (weights, activations of a
#: batch, Adam state, cuBLAS workspaces, the CUDA context and the caching allocator's slack).
RESERVE_FRACTION = 0.25
#: The reserve is at least this many bytes.
RESERVE_MIN_BYTES = 2 * 2**30
#: float32 values of metadata per particle held next to the image: rotation (9), shift (2), CTF (9), position.
METADATA_VALUES = 21

MemoryQuery = Callable[[torch.device], tuple[int, int]]


def resident_bytes(n: int, box_size: int) -> int:
    """Device bytes of ``n`` fp16 images of ``box_size`` pixels and their float32 metadata."""
    return n * (box_size**2 * FLOAT16_BYTES + METADATA_VALUES * FLOAT32_BYTES)


def _cuda_mem_get_info(device: torch.device) -> tuple[int, int]:
    return torch.cuda.mem_get_info(device)


def fits_on_device(
    n: int,
    box_size: int,
    device: torch.device | str,
    mem_get_info: MemoryQuery | None = None,
    reserve_fraction: float = RESERVE_FRACTION,
    reserve_min_bytes: int = RESERVE_MIN_BYTES,
) -> bool:
    """Whether ``n`` images of ``box_size`` fit in the device's free memory with the reserve kept free.

    Parameters
    ----------
    n, box_size : int
    device : torch.device or str
        A CUDA device (any other device: False).
    mem_get_info : callable, optional
        ``device -> (free_bytes, total_bytes)``; default ``torch.cuda.mem_get_info`` (tests pass a stand-in).
    reserve_fraction, reserve_min_bytes
        The reserve: ``max(reserve_fraction * total, reserve_min_bytes)``.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    free, total = (mem_get_info or _cuda_mem_get_info)(device)
    reserve = max(reserve_fraction * total, reserve_min_bytes)
    return resident_bytes(n, box_size) <= free - reserve


class DeviceResidentDataset:
    """The batches of a HartleyDataset, served from a copy on ``device`` (images fp16, metadata float32).

    It offers what training and evaluation use of a :class:`HartleyDataset`: ``len``, :meth:`get_batch`,
    ``particles``, ``data_std``, ``in_memory`` (True), plus :meth:`epoch_batches`.

    Parameters
    ----------
    dataset : HartleyDataset
        The source (in memory or lazy); read once, a bounded chunk at a time.
    device : torch.device or str
    chunk_size : int, optional
        Images read per chunk (bounded in bytes by ``data.memory.prep_chunk_images``).

    Raises
    ------
    ValueError
        When an image has a finite value beyond the float16 range (the images are then left on the host).
    """

    def __init__(self, dataset: HartleyDataset, device: torch.device | str, chunk_size: int | None = None):
        self.device = torch.device(device)
        self.particles = dataset.particles
        self.data_std = dataset.data_std
        n, d = len(dataset), dataset.particles.box_size
        step = prep_chunk_images(d, chunk_size)
        images = torch.empty((n, d, d), dtype=torch.float16, device=self.device)
        parts: list[Batch] = []
        for start in range(0, n, step):
            batch = dataset.get_batch(np.arange(start, min(start + step, n)))
            ht = batch.images
            big = torch.isfinite(ht) & (ht.abs() > FLOAT16_MAX)
            if bool(big.any()):  # loading only (once per chunk), not in a training step
                first = start + int(torch.nonzero(big.flatten(1).any(1))[0])
                raise ValueError(
                    f"image {first} has Hartley values beyond the float16 range ({float(ht.abs().max()):.3g})"
                )
            images[start:start + ht.shape[0]] = ht.to(self.device, torch.float16)
            parts.append(dataclasses.replace(batch, images=ht[:0]))
        self.images = images

        def cat(field):
            values = [getattr(p, field) for p in parts]
            return None if not values or values[0] is None else torch.cat(values).to(self.device)

        self.rotations = cat("rotations")
        self.shifts_px = cat("shifts_px")
        ctfs = [p.ctf for p in parts]
        self.ctf = None if not ctfs or ctfs[0] is None else CTFBatch(**{
            f.name: torch.cat([getattr(c, f.name) for c in ctfs]).to(self.device)
            for f in dataclasses.fields(CTFBatch)
        })
        log.info("holding %d images on %s in float16 (%.2f GiB)", n, self.device,
                 resident_bytes(n, d) / 2**30)

    @property
    def in_memory(self) -> bool:
        return True

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def get_batch(self, positions: np.ndarray | list[int] | torch.Tensor,
                  positions_host: np.ndarray | None = None) -> Batch:
        """The :class:`Batch` at ``positions`` (host array or device tensor), on the device, images float32.

        ``positions_host``: the same positions on the host, when ``positions`` is a device tensor (kept in the
        batch; a host array is kept as it is).
        """
        if not torch.is_tensor(positions):
            positions_host = np.asarray(positions, dtype=np.int64)
        index = torch.as_tensor(positions_host if not torch.is_tensor(positions) else positions,
                                dtype=torch.long).to(self.device, non_blocking=True)

        def pick(t):
            return None if t is None else t[index]

        return Batch(index, self.images[index].to(torch.float32), pick(self.rotations), pick(self.shifts_px),
                     pick(self.ctf), positions_host)

    def epoch_batches(self, sampler: EpochSampler) -> ResidentBatches:
        """The batches of ``sampler`` served from the device (iterate once per epoch)."""
        return ResidentBatches(self, sampler)


class ResidentBatches:
    """Iterable over one epoch of batches of a :class:`DeviceResidentDataset`.

    The epoch's positions are copied to the device in one transfer at the start of each iteration; every batch
    is then a gather on the device (no host-device traffic per step).
    """

    def __init__(self, dataset: DeviceResidentDataset, sampler: EpochSampler):
        self.dataset = dataset
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        batches = list(self.sampler)
        if not batches:
            return
        sizes = [len(b) for b in batches]
        flat = torch.from_numpy(np.concatenate(batches).astype(np.int64)).to(self.dataset.device)
        for host, positions in zip(batches, torch.split(flat, sizes)):
            yield self.dataset.get_batch(positions, np.asarray(host, dtype=np.int64))


def _map_tensors(obj, fn):
    """``obj`` (a tensor, None, or a dataclass of them, nested) with ``fn`` applied to every tensor."""
    if obj is None:
        return None
    if torch.is_tensor(obj):
        return fn(obj)
    if not dataclasses.is_dataclass(obj):  # host values (e.g. a batch's positions_host) stay as they are
        return obj
    return type(obj)(**{f.name: _map_tensors(getattr(obj, f.name), fn) for f in dataclasses.fields(obj)})


def _pin(t: torch.Tensor) -> torch.Tensor:
    return t.pin_memory()


class DeviceBatches:
    """Host batches (from a DataLoader) copied to ``device`` from pinned memory, one batch ahead.

    Each host batch's tensors are page-locked (``pin``) and copied with ``non_blocking=True``; the copy of batch
    i + 1 is queued before batch i is handed out, so the host does not wait for transfers. On a CPU device the
    batches pass through unchanged.

    Parameters
    ----------
    batches : iterable of Batch
        Re-iterable (a DataLoader, or ``data.streaming.epoch_batches``: then ``set_epoch`` is passed on);
        iterated once per epoch.
    device : torch.device or str
    pin : callable, optional
        ``tensor -> pinned tensor``; default ``Tensor.pin_memory`` on CUDA, none elsewhere (tests pass a
        stand-in).
    """

    def __init__(self, batches: Iterable[Batch], device: torch.device | str,
                 pin: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.batches = batches
        self.device = torch.device(device)
        self.pin = pin if pin is not None else (_pin if self.device.type == "cuda" else None)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def _move(self, batch: Batch) -> Batch:
        if self.pin is not None:
            batch = _map_tensors(batch, self.pin)
        return batch.to(self.device)  # Batch.to copies with non_blocking=True

    def __iter__(self) -> Iterator[Batch]:
        if self.pin is None and self.device.type == "cpu":
            yield from self.batches
            return
        ahead = None
        for batch in self.batches:
            moved = self._move(batch)
            if ahead is not None:
                yield ahead
            ahead = moved
        if ahead is not None:
            yield ahead


def place_dataset(
    dataset: HartleyDataset,
    device: torch.device | str,
    mem_get_info: MemoryQuery | None = None,
    chunk_size: int | None = None,
) -> HartleyDataset | DeviceResidentDataset:
    """``dataset`` on a CUDA ``device`` when it fits there (:func:`fits_on_device`), else ``dataset`` itself.

    Parameters
    ----------
    dataset : HartleyDataset
    device : torch.device or str
    mem_get_info : callable, optional
        Memory query (see :func:`fits_on_device`).
    chunk_size : int, optional
        Images read per chunk while copying.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return dataset
    n, d = len(dataset), dataset.particles.box_size
    if not fits_on_device(n, d, device, mem_get_info):
        log.info("the stack (%.2f GiB in float16) does not fit on %s with its reserve: batches are copied from "
                 "the host", resident_bytes(n, d) / 2**30, device)
        return dataset
    try:
        return DeviceResidentDataset(dataset, device, chunk_size)
    except ValueError as exc:
        log.info("%s: batches are copied from the host in float32", exc)
        return dataset


def training_batches(batches, dataset: HartleyDataset, device: torch.device | str,
                     mem_get_info: MemoryQuery | None = None):
    """The training batches of an epoch, on ``device``.

    Parameters
    ----------
    batches
        Host batches with ``set_epoch``, ``len``, iteration and a ``sampler`` (an ``EpochSampler``), as
        ``data.streaming.epoch_batches`` makes.
    dataset : HartleyDataset
        Their dataset.
    device : torch.device or str
    mem_get_info : callable, optional
        Memory query (see :func:`fits_on_device`).

    Returns
    -------
    ``batches`` itself on CPU; on CUDA a :class:`ResidentBatches` over the same sampler when the stack fits the
    device (:func:`place_dataset`), else ``batches`` through :class:`DeviceBatches` (pinned async copies).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return batches
    placed = place_dataset(dataset, device, mem_get_info)
    if isinstance(placed, DeviceResidentDataset):
        return placed.epoch_batches(batches.sampler)
    return DeviceBatches(batches, device)
