"""Batches of normalised Hartley images with poses and CTF, for training and evaluation.

A :class:`HartleyDataset` wraps a :class:`~cryoscape.data.particles.ParticleSet`. For each batch of positions
it reads the images (lazily from a memory-mapped stack, or from an in-memory copy when the stack fits the
memory budget), optionally inverts them and multiplies them by a soft circular real-space window, takes the
centred Hartley transform (``geometry.fourier.ht2_center``) and divides by the dataset's standard deviation of
Hartley values (estimated once on a sample, robust to outlier images: :mod:`cryoscape.data.normalization`,
re-exported here as :func:`estimate_data_std`; stored in the run configuration so that evaluation normalises
the same way).

:class:`EpochSampler` produces the batches of one epoch: a random permutation (in-memory data) or
contiguous-chunk shuffling (chunks of consecutive particles in random order, shuffled within each chunk),
sharded across processes under ``torchrun``. The order depends only on the seed and the epoch, so a resumed run
sees the same batches as an uninterrupted one. Training on lazy data streams through
:mod:`cryoscape.data.streaming` (chunk shuffling within bounded windows, prepared in worker processes); lazy
reads here (evaluation) release the stack's memory maps after each batch, so the file's pages do not stay
resident.

Contrast: images are used as they are (RELION CTF sign, white particles); ``invert=True`` multiplies them by
-1 (what cryoDRGN does by default, because its CTF has the opposite sign).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cryoscape.data.ctf_batch import CTFBatch
from cryoscape.data.memory import FLOAT32_BYTES, in_memory_bytes, prep_chunk_images
from cryoscape.data.normalization import estimate_data_std
from cryoscape.data.particles import ParticleSet

log = logging.getLogger(__name__)

__all__ = ["Batch", "EpochSampler", "HartleyDataset", "ImagePrep", "choose_in_memory", "estimate_data_std",
           "in_memory_bytes", "make_loader", "soft_window"]

#: Third word of the batch-order seed ``(seed, epoch, key)``: keeps the shuffling stream apart from any
#: other random stream seeded with the same run seed. Changing it changes every run's batch order.
SHUFFLE_STREAM_KEY = 0x5EED
#: Default inner radius of the soft real-space window (fraction of D/2), as ``DataConfig.window_r``.
WINDOW_INNER_FRACTION = 0.85
#: Outer radius of the window, where it reaches 0 (fraction of D/2).
WINDOW_OUTER_FRACTION = 0.99

@dataclass(frozen=True)
class Batch:
    """One batch of particles.

    Attributes
    ----------
    positions : torch.Tensor, shape (B,), int64
        Positions in the ParticleSet (not original indices; those are ``particles.indices[positions]``).
    images : torch.Tensor, shape (B, D, D), float32
        Centred Hartley transforms of the prepared images, divided by the dataset std.
    rotations : torch.Tensor, shape (B, 3, 3), float32, or None
        RELION rotation matrices (lattice point ``k`` maps to ``k @ R``).
    shifts_px : torch.Tensor, shape (B, 2), float32, or None
        Shifts (x, y) in pixels; translating the image by ``+shift`` centres the particle.
    ctf : CTFBatch or None
        CTF parameters, each (B,) float32.
    positions_host : numpy.ndarray, shape (B,), int64, or None
        The positions on the host, wherever the tensors are (so that per-batch host work, such as the seam-band
        bound of ``training.step``, needs no read from the device).
    """

    positions: torch.Tensor
    images: torch.Tensor
    rotations: torch.Tensor | None
    shifts_px: torch.Tensor | None
    ctf: CTFBatch | None
    positions_host: np.ndarray | None = None

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device``."""

        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            move(self.positions),
            move(self.images),
            move(self.rotations),
            move(self.shifts_px),
            move(self.ctf),
            self.positions_host,
        )


def soft_window(
    box_size: int,
    inner_fraction: float = WINDOW_INNER_FRACTION,
    outer_fraction: float = WINDOW_OUTER_FRACTION,
) -> np.ndarray:
    """A circular real-space window: 1 inside, a cosine fall to 0 between two radii.

    Parameters
    ----------
    box_size : int
        D (pixels).
    inner_fraction, outer_fraction : float
        Radii where the edge starts and ends, as fractions of D/2 (distance from the centre pixel D//2).

    Returns
    -------
    ndarray, shape (D, D), float32
    """
    if not 0 < inner_fraction < outer_fraction:
        raise ValueError(
            f"window radii must satisfy 0 < inner < outer, got {inner_fraction}, {outer_fraction}"
        )
    coords = (np.arange(box_size) - box_size // 2) / (box_size / 2)
    r = np.hypot(coords[None, :], coords[:, None])
    t = np.clip((r - inner_fraction) / (outer_fraction - inner_fraction), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


class ImagePrep:
    """Real image → prepared centred Hartley transform (not yet normalised).

    Parameters
    ----------
    box_size : int
    invert : bool
        Multiply images by -1.
    window : bool
        Multiply by :func:`soft_window`.
    window_r : float
        Inner radius fraction of the window.
    """

    def __init__(
        self,
        box_size: int,
        *,
        invert: bool = False,
        window: bool = True,
        window_r: float = WINDOW_INNER_FRACTION,
    ):
        self.box_size = int(box_size)
        self.invert = bool(invert)
        self.window = torch.from_numpy(soft_window(box_size, window_r)) if window else None

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Prepare images (k, D, D) → Hartley transforms (k, D, D) float32 (torch)."""
        from cryoscape.geometry.fourier import ht2_center

        x = torch.as_tensor(np.asarray(images, dtype=np.float32)) if not torch.is_tensor(images) else images
        x = x.to(torch.float32)
        if self.invert:
            x = -x
        if self.window is not None:
            x = x * self.window
        return ht2_center(x).to(torch.float32)


def choose_in_memory(particles: ParticleSet, lazy: bool | None, max_memory_gb: float) -> bool:
    """Whether to hold the prepared stack in memory: forced by ``lazy``, else when :func:`in_memory_bytes`
    fits in ``max_memory_gb`` GiB."""
    if lazy is not None:
        return not lazy
    return in_memory_bytes(len(particles), particles.box_size) <= max_memory_gb * 2**30


class HartleyDataset(torch.utils.data.Dataset):
    """Normalised Hartley images of a ParticleSet, fetched a batch at a time.

    Parameters
    ----------
    particles : ParticleSet
    data_std : float
        Divide the Hartley values by this (see :func:`estimate_data_std`).
    invert, window, window_r
        Image preparation (see :class:`ImagePrep`).
    in_memory : bool
        Read and transform the whole set once and keep it (float32, N·D²·4 bytes; the peak of loading is
        ``data.memory.in_memory_bytes``).
    chunk_size : int
        At most this many images are read per call when loading into memory (chunks are also bounded in bytes,
        ``data.memory.prep_chunk_images``).
    """

    def __init__(
        self,
        particles: ParticleSet,
        *,
        data_std: float,
        invert: bool = False,
        window: bool = True,
        window_r: float = WINDOW_INNER_FRACTION,
        in_memory: bool = False,
        chunk_size: int = 1024,
    ):
        self.particles = particles
        self.data_std = float(data_std)
        self.prep = ImagePrep(particles.box_size, invert=invert, window=window, window_r=window_r)
        poses, ctf = particles.poses, particles.ctf
        self._rotations = None if poses is None else torch.from_numpy(poses.rotations.astype(np.float32))
        self._shifts = None if poses is None else torch.from_numpy(poses.shifts_px.astype(np.float32))
        self._ctf = None if ctf is None else CTFBatch.from_params(ctf)
        self._cache: torch.Tensor | None = None
        if in_memory:
            self._cache = self._load_all(chunk_size)

    @property
    def in_memory(self) -> bool:
        return self._cache is not None

    def __len__(self) -> int:
        return len(self.particles)

    def _load_all(self, chunk_size: int) -> torch.Tensor:
        """Read and prepare every image into one (N, D, D) float32 tensor, a bounded chunk at a time.

        The source's memory maps are released after each chunk (``ImageSource.close``), so the pages of the
        stack file read so far are not kept mapped (resident) next to the prepared copy.
        """
        from cryoscape.progress import progress

        n, d = len(self.particles), self.particles.box_size
        step = prep_chunk_images(d, chunk_size)
        release = getattr(self.particles.images, "close", None)
        out = torch.empty((n, d, d), dtype=torch.float32)
        for start in progress(range(0, n, step), total=math.ceil(n / step), desc="loading images", unit="chunk",
                              leave=False):
            stop = min(start + step, n)
            out[start:stop] = self.prep(self.particles.read(np.arange(start, stop)))
            if release is not None:
                release()
        log.info("loaded %d images (%.2f GiB) into memory", n, out.numel() * FLOAT32_BYTES / 2**30)
        return out

    def hartley(self, positions: np.ndarray) -> torch.Tensor:
        """Normalised Hartley images at ``positions``, shape (k, D, D) float32."""
        positions = np.asarray(positions, dtype=np.int64)
        if self._cache is not None:
            ht = self._cache[torch.from_numpy(positions)]
        else:
            ht = self.prep(self.particles.read(positions))
            release = getattr(self.particles.images, "close", None)
            if release is not None:
                release()  # mapped pages of the file read so far would otherwise count as resident
        return ht / self.data_std

    def get_batch(self, positions: np.ndarray | list[int]) -> Batch:
        """The :class:`Batch` at ``positions`` of the ParticleSet."""
        pos = np.asarray(positions, dtype=np.int64)
        return self.batch_with_images(pos, self.hartley(pos))

    def batch_with_images(self, positions: np.ndarray, images: torch.Tensor) -> Batch:
        """The :class:`Batch` at ``positions`` with its normalised Hartley ``images`` (k, D, D) already made
        (by :meth:`hartley`, or by a streaming worker, ``data.streaming``)."""
        host = np.asarray(positions, dtype=np.int64)
        index = torch.from_numpy(host)

        def pick(t):
            return None if t is None else t[index]

        return Batch(index, images, pick(self._rotations), pick(self._shifts), pick(self._ctf), host)

    # torch DataLoader with a batch sampler calls __getitems__ with the list of positions of a batch
    def __getitems__(self, positions: list[int]) -> Batch:
        return self.get_batch(positions)

    def __getitem__(self, position: int) -> Batch:
        return self.get_batch([position])


class EpochSampler:
    """Batches of positions for one epoch; deterministic given (seed, epoch); sharded across processes.

    Parameters
    ----------
    n : int
        Number of particles.
    batch_size : int
        Images per batch *per process*.
    shuffle : bool
        Random order (otherwise 0..n-1 in order).
    chunk_size : int or None
        None: a full random permutation. Otherwise contiguous-chunk shuffling: consecutive chunks of
        ``chunk_size`` particles are visited in random order, and the particles inside each chunk in random
        order (streaming reads of a memory-mapped stack).
    seed : int
    rank, world_size : int
        This process's share: each global batch of ``batch_size * world_size`` positions is split into
        ``world_size`` consecutive parts. With several processes a last global batch with fewer than
        ``world_size`` images is dropped (every process must take the same number of steps).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        chunk_size: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.chunk_size = chunk_size
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` produces."""
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """All n positions in this epoch's order (the same on every process)."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, SHUFFLE_STREAM_KEY]))
        if self.chunk_size is None or self.chunk_size >= self.n:
            return rng.permutation(self.n).astype(np.int64)
        starts = np.arange(0, self.n, self.chunk_size)
        parts = []
        for start in rng.permutation(starts):
            chunk = np.arange(start, min(start + self.chunk_size, self.n), dtype=np.int64)
            parts.append(rng.permutation(chunk))
        return np.concatenate(parts)

    def _global_batches(self) -> list[np.ndarray]:
        step = self.batch_size * self.world_size
        order = self.order()
        batches = [order[i : i + step] for i in range(0, self.n, step)]
        if self.world_size > 1 and batches and batches[-1].size < self.world_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self._global_batches():
            if self.world_size == 1:
                yield batch
            else:
                yield np.array_split(batch, self.world_size)[self.rank]

    def __len__(self) -> int:
        step = self.batch_size * self.world_size
        count = math.ceil(self.n / step)
        if self.world_size > 1 and self.n % step and self.n % step < self.world_size:
            count -= 1
        return count


def _identity(batch: Batch) -> Batch:
    return batch


def make_loader(dataset: HartleyDataset, sampler: EpochSampler, num_workers: int = 0):
    """A torch DataLoader yielding :class:`Batch` objects in the sampler's order."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=_identity,
        num_workers=num_workers,
        persistent_workers=False,
    )
