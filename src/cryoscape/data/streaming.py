"""Streaming training batches from disk: contiguous-chunk shuffling, a bounded shuffle window, worker prefetch.

When the prepared stack does not fit the memory budget (``--lazy``), an epoch is planned as follows:

1. The particles are put in *disk order* (:func:`disk_order`: by stack file, then image within the file), so
   that consecutive positions in that order are consecutive images on disk (with gaps under an ``--ind``
   subset). Disk order is cut into *chunks* of :func:`chunk_images` particles.
2. The chunks are visited in a random order, and every :data:`CHUNKS_PER_WINDOW` consecutive chunks of that
   order form a *window*, whose particles are shuffled together (:func:`stream_order`). The order depends only
   on ``(seed, epoch)`` (and the set and chunk size), so a resumed run sees the batches of an uninterrupted one.
3. The batches are consecutive slices of that order, sharded across processes exactly as
   :class:`~cryoscape.data.dataset.EpochSampler` shards them.
4. A worker process prepares one window at a time (:class:`WindowReader`): it reads the window's images in disk
   order, a bounded sub-chunk at a time (so each chunk is one sequential read), windows and transforms them
   (``HartleyDataset.prep``), normalises them, stores each in its slot of the shuffled window (a tensor in shared
   memory), and releases the stack's memory maps, so the file's pages are never resident in the processes.
   The training process only slices batches out of the prepared windows (:class:`StreamingBatches`).

Memory is bounded by windows, whatever the stack size: each prepared window is at most :data:`WINDOW_BYTES`
(float32 Hartley images), and at most ``max(workers, PREFETCH_WINDOWS)`` windows are being prepared or queued
while the training process holds at most two (the one being sliced and the next, when a batch straddles them):
see :func:`stream_memory_bytes`.

Workers run torch with one thread (:data:`WORKER_THREADS`) so that, on a small machine, they take one core's
share of preparation and do not oversubscribe the cores the training step uses. ``num_workers = 0`` asks for
the default, :data:`DEFAULT_WORKERS` worker process.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from cryoscape.data.dataset import SHUFFLE_STREAM_KEY, Batch, EpochSampler, HartleyDataset, make_loader
from cryoscape.data.memory import FLOAT32_BYTES, prep_chunk_images
from cryoscape.data.particles import ParticleSet

__all__ = ["CHUNKS_PER_WINDOW", "DEFAULT_WORKERS", "PREFETCH_WINDOWS", "WINDOW_BYTES", "WORKER_THREADS",
           "InMemoryBatches", "StreamSampler", "StreamingBatches", "WindowReader", "chunk_images", "disk_order",
           "epoch_batches", "stream_memory_bytes", "stream_order"]

#: Chunks whose particles are shuffled together (one window).
CHUNKS_PER_WINDOW = 4
#: Upper bound of one prepared window (float32 Hartley images, bytes): the chunk size shrinks at large boxes.
WINDOW_BYTES = 128 * 2**20
#: Windows being prepared or waiting in the queue (at least one per worker).
PREFETCH_WINDOWS = 2
#: Worker processes when ``num_workers`` is 0.
DEFAULT_WORKERS = 1
#: torch threads in each worker process.
WORKER_THREADS = 1


def chunk_images(box_size: int, chunk_size: int, chunks_per_window: int = CHUNKS_PER_WINDOW,
                 window_bytes: int = WINDOW_BYTES) -> int:
    """Particles per chunk: ``chunk_size``, reduced so that a window of ``chunks_per_window`` chunks of prepared
    float32 images of ``box_size`` px fits in ``window_bytes``; at least 1."""
    if chunk_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {chunk_size}")
    fit = window_bytes // (chunks_per_window * box_size**2 * FLOAT32_BYTES)
    return max(1, min(int(chunk_size), int(fit)))


def stream_memory_bytes(box_size: int, chunk_size: int, workers: int = DEFAULT_WORKERS,
                        chunks_per_window: int = CHUNKS_PER_WINDOW, window_bytes: int = WINDOW_BYTES) -> int:
    """Upper bound of the prepared images held at once while streaming (bytes): the windows in flight
    (``max(workers, PREFETCH_WINDOWS)``) and the two the training process may hold, each at most
    ``chunks_per_window * chunk_images(...)`` images. Independent of the number of particles."""
    per_window = chunks_per_window * chunk_images(box_size, chunk_size, chunks_per_window, window_bytes)
    windows = max(int(workers), PREFETCH_WINDOWS) + 2
    return windows * per_window * box_size**2 * FLOAT32_BYTES


def disk_order(particles: ParticleSet) -> np.ndarray:
    """Positions of ``particles`` sorted by where their images are stored (stack file, then image in it).

    Returns
    -------
    ndarray, shape (N,), int64
        A permutation of 0..N-1; consecutive entries are consecutive (or increasing) images of one file.
    """
    indices = np.asarray(particles.indices, dtype=np.int64)
    source = particles.images
    files = getattr(source, "file_index", None)
    within = getattr(source, "image_index", None)
    if files is None or within is None:
        return np.argsort(indices, kind="stable").astype(np.int64)
    return np.lexsort((within[indices], files[indices])).astype(np.int64)


def stream_order(disk: np.ndarray, chunk: int, chunks_per_window: int, seed: int, epoch: int,
                 shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's order: chunks of ``disk`` in random order, particles shuffled within windows of chunks.

    Parameters
    ----------
    disk : ndarray (N,) int64
        Positions in disk order (:func:`disk_order`).
    chunk : int
        Particles per chunk (consecutive entries of ``disk``).
    chunks_per_window : int
        Chunks shuffled together.
    seed, epoch : int
        The order is a function of these (and of ``disk``, ``chunk``, ``chunks_per_window``) only.
    shuffle : bool
        False: disk order, windows of ``chunk * chunks_per_window`` particles.

    Returns
    -------
    order : ndarray (N,) int64
        Every position exactly once.
    window_starts : ndarray (W + 1,) int64
        Window ``j`` is ``order[window_starts[j]:window_starts[j + 1]]``.
    """
    disk = np.asarray(disk, dtype=np.int64)
    n = disk.size
    if chunk < 1 or chunks_per_window < 1:
        raise ValueError("chunk and chunks_per_window must be >= 1")
    n_chunks = math.ceil(n / chunk)
    if not shuffle:
        return disk.copy(), np.append(np.arange(0, n, chunk * chunks_per_window), n).astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), SHUFFLE_STREAM_KEY]))
    chunk_order = rng.permutation(n_chunks)
    parts, starts, offset = [], [0], 0
    for w in range(0, n_chunks, chunks_per_window):
        members = np.concatenate([disk[c * chunk:(c + 1) * chunk] for c in chunk_order[w:w + chunks_per_window]])
        parts.append(rng.permutation(members))
        offset += members.size
        starts.append(offset)
    order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return order.astype(np.int64), np.asarray(starts, dtype=np.int64)


class StreamSampler(EpochSampler):
    """:class:`~cryoscape.data.dataset.EpochSampler` whose epoch order is :func:`stream_order`.

    Parameters
    ----------
    disk : ndarray (N,) int64
        Positions in disk order.
    batch_size, seed, rank, world_size, shuffle
        As for EpochSampler.
    chunk : int
        Particles per chunk.
    chunks_per_window : int
    """

    def __init__(self, disk: np.ndarray, batch_size: int, *, chunk: int, chunks_per_window: int = CHUNKS_PER_WINDOW,
                 shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(len(disk), batch_size, shuffle=shuffle, chunk_size=chunk, seed=seed, rank=rank,
                         world_size=world_size)
        self.disk = np.asarray(disk, dtype=np.int64)
        self.chunks_per_window = int(chunks_per_window)

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's ``(order, window_starts)`` (:func:`stream_order`)."""
        return stream_order(self.disk, int(self.chunk_size), self.chunks_per_window, self.seed, self.epoch,
                            shuffle=self.shuffle)

    def order(self) -> np.ndarray:
        return self.windows()[0]

    def plan(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """This process's batches and the windows it needs, for the current epoch.

        Returns
        -------
        batches : list of ndarray (int64)
            Positions of each batch of this process (the same as iterating the sampler).
        segments : list of ndarray (int64)
            The positions of each window that this process uses, in the order the batches consume them
            (empty windows left out); ``concatenate(segments) == concatenate(batches)``.
        """
        order, starts = self.windows()
        window_of = np.empty(self.n, dtype=np.int64)
        for j in range(starts.size - 1):
            window_of[order[starts[j]:starts[j + 1]]] = j
        batches = [np.asarray(b, dtype=np.int64) for b in self]  # EpochSampler's own sharding
        stream = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        ids = window_of[stream]
        cuts = np.flatnonzero(np.diff(ids)) + 1
        segments = [s for s in np.split(stream, cuts) if s.size]
        return batches, segments


class WindowReader(torch.utils.data.Dataset):
    """Prepared, normalised Hartley images of a window of positions (read in disk order, stored in the order
    asked). Runs in the worker processes: ``reader[positions]`` → tensor (k, D, D) float32 in shared memory.

    Parameters
    ----------
    dataset : HartleyDataset
        A lazy dataset (its particles, image preparation and data std are used).
    disk : ndarray (N,) int64
        Positions in disk order (:func:`disk_order`).
    """

    def __init__(self, dataset: HartleyDataset, disk: np.ndarray):
        self.dataset = dataset
        self.rank_on_disk = np.empty(len(disk), dtype=np.int64)
        self.rank_on_disk[np.asarray(disk, dtype=np.int64)] = np.arange(len(disk))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, positions: np.ndarray) -> torch.Tensor:
        positions = np.asarray(positions, dtype=np.int64)
        particles = self.dataset.particles
        d = particles.box_size
        out = torch.empty((positions.size, d, d), dtype=torch.float32)
        if torch.utils.data.get_worker_info() is not None:
            out.share_memory_()  # filled in place: sending it to the training process copies nothing
        reading = np.argsort(self.rank_on_disk[positions], kind="stable")
        step = prep_chunk_images(d)
        release = getattr(particles.images, "close", None)
        for start in range(0, reading.size, step):
            slots = torch.from_numpy(reading[start:start + step])
            images = self.dataset.prep(particles.read(positions[reading[start:start + step]]))
            out[slots] = images / self.dataset.data_std
            if release is not None:
                release()  # the mapped pages of the file read so far are not kept resident
        return out


def _identity(item):
    return item


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(WORKER_THREADS)


class _Segments:
    """The DataLoader's sampler: this epoch's windows (lists of positions), counted as they are dispatched."""

    def __init__(self) -> None:
        self.items: list[np.ndarray] = []
        self.dispatched = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        self.dispatched = 0
        for item in self.items:
            self.dispatched += 1
            yield item

    def __len__(self) -> int:
        return len(self.items)


class StreamingBatches:
    """An epoch's :class:`~cryoscape.data.dataset.Batch` objects streamed from disk (see the module docstring).

    Use like a sampler and loader in one: ``set_epoch(e)``, ``len()`` (batches of this process), iterate.

    Parameters
    ----------
    dataset : HartleyDataset
        A lazy dataset (``in_memory`` False).
    batch_size : int
        Images per batch per process.
    chunk_size : int
        Largest chunk (particles); reduced at large boxes by :func:`chunk_images`.
    seed, rank, world_size, shuffle
        As for :class:`~cryoscape.data.dataset.EpochSampler`.
    num_workers : int
        Worker processes preparing windows; 0 means :data:`DEFAULT_WORKERS`.
    chunks_per_window, window_bytes
        Shuffle window (tests and benchmarks change them).
    """

    def __init__(self, dataset: HartleyDataset, batch_size: int, *, chunk_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, shuffle: bool = True,
                 chunks_per_window: int = CHUNKS_PER_WINDOW, window_bytes: int = WINDOW_BYTES):
        self.dataset = dataset
        self.disk = disk_order(dataset.particles)
        self.chunk = chunk_images(dataset.particles.box_size, chunk_size, chunks_per_window, window_bytes)
        self.sampler = StreamSampler(self.disk, batch_size, chunk=self.chunk, chunks_per_window=chunks_per_window,
                                     shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
        self.workers = int(num_workers) if num_workers > 0 else DEFAULT_WORKERS
        self.segments = _Segments()
        self.windows_taken = 0
        self.most_ahead = 0  # largest (windows dispatched to workers - windows taken), for the memory bound
        self._loader = torch.utils.data.DataLoader(
            WindowReader(dataset, self.disk),
            sampler=self.segments,
            batch_size=None,
            collate_fn=_identity,
            num_workers=self.workers,
            prefetch_factor=max(1, PREFETCH_WINDOWS // self.workers),
            worker_init_fn=_worker_init,
            persistent_workers=False,
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches iterating produces."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def _windows(self) -> Iterator[torch.Tensor]:
        self.windows_taken = 0
        for window in self._loader:
            self.windows_taken += 1
            self.most_ahead = max(self.most_ahead, self.segments.dispatched - self.windows_taken)
            yield window

    def __iter__(self) -> Iterator[Batch]:
        batches, segments = self.sampler.plan()
        self.segments.items = segments
        windows = self._windows()
        current, offset = None, 0
        try:
            for positions in batches:
                parts, need = [], positions.size
                while need:
                    if current is None or offset == current.shape[0]:
                        current, offset = next(windows), 0
                    take = min(need, current.shape[0] - offset)
                    parts.append(current[offset:offset + take])
                    offset += take
                    need -= take
                images = parts[0] if len(parts) == 1 else torch.cat(parts)
                yield self.dataset.batch_with_images(positions, images)
        finally:
            windows.close()


class InMemoryBatches:
    """The in-memory counterpart of :class:`StreamingBatches`: a random permutation per epoch, batches
    gathered from the prepared stack (:class:`~cryoscape.data.dataset.EpochSampler` and ``make_loader``)."""

    def __init__(self, dataset: HartleyDataset, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0):
        self.sampler = EpochSampler(len(dataset), batch_size, shuffle=True, seed=seed, rank=rank,
                                    world_size=world_size)
        self._loader = make_loader(dataset, self.sampler, num_workers=num_workers)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self._loader)


def epoch_batches(dataset: HartleyDataset, batch_size: int, *, chunk_size: int, seed: int, rank: int = 0,
                  world_size: int = 1, num_workers: int = 0) -> InMemoryBatches | StreamingBatches:
    """The training batches of ``dataset``: :class:`InMemoryBatches` when it holds the stack in memory,
    else :class:`StreamingBatches`. Both have ``set_epoch``, ``len`` and iterate :class:`Batch` objects."""
    if dataset.in_memory:
        return InMemoryBatches(dataset, batch_size, seed=seed, rank=rank, world_size=world_size,
                               num_workers=num_workers)
    return StreamingBatches(dataset, batch_size, chunk_size=chunk_size, seed=seed, rank=rank,
                            world_size=world_size, num_workers=num_workers)
