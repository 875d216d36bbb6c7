"""Ab initio reconstruction of a homogeneous map and its poses by projection matching (no input poses).

One epoch alternates a pose search and a model update over all particles:

1. the current map (a voxel map) is projected on the search grid and every image is scored against every
   projection with its CTF (``reconstruct.pose_search``: global HEALPix × ψ × shift grid, then local levels);
   the best pose of each image is kept;
2. the map is re-made by Wiener back-projection (``reconstruct.backproject``) with the new poses, two random
   halves kept apart for a half-map FSC.

The scored frequencies march from ``k_start_px`` to ``k_end_px`` (lattice pixels) linearly over the epochs
(:meth:`AbinitConfig.k_max_at`), so early searches see only the low-resolution shape. The last ``local_epochs``
epochs refine each particle's pose from the previous epoch by local search only (the pose table is refined while
the map gains resolution), keeping at most :data:`LOCAL_KEEP` poses between levels. The first map is the
back-projection of the images at random rotations (seeded), a low-resolution blob whose anisotropic noise breaks
the symmetry. Each image is assigned its single best pose (hard
assignment); the map is therefore biased towards the reference at frequencies the data do not support, which
the half-map FSC (from the same assignment) does not reveal.

The hand of the result is arbitrary: the images determine the map only up to a mirror (``cryoscape flip-hand``).
Its orientation is arbitrary as well (a global rotation of map and poses explains the images equally).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from cryoscape.data.particles import ParticleSet
from cryoscape.errors import InputError
from cryoscape.geometry.rotations import random_rotations
from cryoscape.io.records import Poses
from cryoscape.reconstruct.backproject import BackprojectConfig, FourierAccumulator, backproject_chunk, half_split
from cryoscape.reconstruct.fsc import FSCCurve, fsc_curve
from cryoscape.reconstruct.pose_search import (
    PoseSearchConfig,
    Projector,
    lattice_points,
    make_grid_projections,
    search_cost,
    search_poses,
)

log = logging.getLogger(__name__)

#: Poses kept per image between the levels of a local (refinement) epoch.
LOCAL_KEEP = 2


@dataclass(frozen=True)
class AbinitConfig:
    """Options of ab initio projection matching.

    Attributes
    ----------
    num_epochs : int
        Epochs in all (search + back-projection each).
    local_epochs : int
        Of these, the last ones refine each pose locally from the previous epoch (no global search).
    k_start_px, k_end_px : float or None
        Frequency radius (Fourier lattice pixels) scored at the first and the last global epoch; None:
        ``max(4, D/10)`` and ``D/2 - 1``.
    search : PoseSearchConfig
        Grid, shift range and refinement levels of the search.
    regularization : float
        Wiener constant of the back-projection (relative to the mean weight).
    pad_factor : int
        Oversampling of the Fourier grid of the search references' back-projection (2, with the gridding
        correction, interpolates projections more accurately than 1). The output maps use the default
        back-projection (pad 1) whatever this is.
    cross_half_reference : bool
        Search the particles of each random half against the other half's map (:func:`run_epoch`; when the
        half-maps are given), so that no image is scored against a map it contributed to (a map holding an
        image favours that image's current pose); False: all against the full map, which has less noise
        (``benchmarks/abinit.py --cross-half`` compares them).
    fsc_weighting : bool
        Weight each shell of the search reference by ``sqrt(2 FSC / (1 + FSC))`` of the previous epoch's
        half-maps (:func:`fsc_weights`), so that the scores are not dominated by shells of noise.
    chunk_size : int
        Images read and searched at once.
    invert_contrast : bool
        Multiply images by -1 first (particles black on white).
    seed : int
        Seed of the first map's random rotations and of the half split.
    device : str
        Torch device of search and back-projection ("cpu", "cuda").
    """

    num_epochs: int = 10
    local_epochs: int = 5
    k_start_px: float | None = None
    k_end_px: float | None = None
    search: PoseSearchConfig = field(default_factory=PoseSearchConfig)
    regularization: float = 0.01
    pad_factor: int = 2
    cross_half_reference: bool = True
    fsc_weighting: bool = True
    chunk_size: int = 256
    invert_contrast: bool = False
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if int(self.num_epochs) < 1:
            raise InputError(f"num_epochs must be >= 1, got {self.num_epochs}")
        if not 0 <= int(self.local_epochs) < int(self.num_epochs):
            raise InputError(f"local_epochs must be in 0 .. num_epochs - 1, got {self.local_epochs}",
                             fix="at least one epoch must search globally")
        for name in ("k_start_px", "k_end_px"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{name} must be > 0, got {value}")

    def k_range(self, box_size: int) -> tuple[float, float]:
        """(start, end) frequency radius (lattice pixels) for images of ``box_size``."""
        end = float(self.k_end_px) if self.k_end_px is not None else box_size / 2 - 1
        end = min(end, box_size / 2 - 1)
        start = float(self.k_start_px) if self.k_start_px is not None else max(4.0, box_size / 10)
        return min(start, end), end

    def k_max_at(self, epoch: int, box_size: int) -> float:
        """Radius scored at ``epoch`` (1-based): linear from start (epoch 1) to end (epoch ``num_epochs - 2``),
        then the end radius for the last two epochs."""
        start, end = self.k_range(box_size)
        n_march = max(1, int(self.num_epochs) - 2)
        if epoch >= n_march:
            return end
        return start + (end - start) * (epoch - 1) / (n_march - 1)

    def is_local(self, epoch: int) -> bool:
        """Whether ``epoch`` (1-based) refines the previous poses locally instead of searching globally."""
        return epoch > int(self.num_epochs) - int(self.local_epochs)


@dataclass(frozen=True)
class EpochResult:
    """One epoch of :func:`run_epoch`.

    Attributes
    ----------
    poses : Poses
        The pose of every particle found this epoch (shifts in pixels of the particles' box).
    scores : ndarray, shape (N,), float64
        Score of each pose (normalised cross-correlation, ``reconstruct.pose_search``).
    volume, half1, half2 : ndarray, shape (D, D, D), float32
        The map back-projected with ``poses`` and its random half-maps (``reconstruct.backproject`` defaults:
        pad 1, no gridding correction, the most accurate map on noisy data).
    reference, reference_half1, reference_half2 : ndarray, shape (D, D, D), float32
        The same on the grid of ``AbinitConfig.pad_factor`` (gridding-corrected): the next epoch's search
        reference.
    fsc : FSCCurve
        Half-map FSC.
    k_max_px : float
        Frequency radius scored this epoch.
    cost : dict
        Multiply-adds per image per search level (``pose_search.search_cost``).
    """

    poses: Poses
    scores: np.ndarray
    volume: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    reference: np.ndarray
    reference_half1: np.ndarray
    reference_half2: np.ndarray
    fsc: FSCCurve
    k_max_px: float
    cost: dict


def check_particles(particles: ParticleSet) -> None:
    """Refuse inputs ab initio cannot use: no particles, no CTF, no pixel size."""
    if len(particles) == 0:
        raise InputError("the particle set is empty (0 particles)", fix="give a stack or an --ind with particles")
    if len(particles) < 2:
        raise InputError(f"ab initio needs at least 2 particles, got {len(particles)}")
    if particles.ctf is None:
        raise InputError("no CTF parameters found: ab initio reconstruction needs each particle's CTF",
                         fix="give a .star/.cs with CTF, or --ctf")


def _backproject_config(config: AbinitConfig) -> BackprojectConfig:
    return BackprojectConfig(regularization=config.regularization, chunk_size=config.chunk_size,
                             pad_factor=config.pad_factor, gridding_correction=config.pad_factor > 1,
                             seed=config.seed, invert_contrast=False, device=config.device)


def _accumulator(particles: ParticleSet, config: AbinitConfig) -> FourierAccumulator:
    return FourierAccumulator(particles.box_size, int(config.pad_factor), config.device)


def _read(particles: ParticleSet, positions: np.ndarray, config: AbinitConfig) -> np.ndarray:
    images = particles.read(positions)
    return -images if config.invert_contrast else images


def initial_map(particles: ParticleSet, config: AbinitConfig) -> np.ndarray:
    """The first map: Wiener back-projection of every image at a random rotation (seeded), no shift.

    Returns
    -------
    ndarray, shape (D, D, D), float32
    """
    check_particles(particles)
    n = len(particles)
    rotations = random_rotations(n, np.random.default_rng(config.seed))
    acc = _accumulator(particles, config)
    bp = _backproject_config(config)
    with torch.no_grad():
        for start in range(0, n, int(config.chunk_size)):
            pos = np.arange(start, min(n, start + int(config.chunk_size)))
            backproject_chunk((acc,), np.zeros(pos.size, dtype=np.int64), _read(particles, pos, config),
                              rotations[pos], np.zeros((pos.size, 2)), particles.ctf.subset(pos), bp)
    return acc.volume(config.regularization, config.pad_factor > 1)


def low_pass(volume: np.ndarray, k_max_px: float, shell_weights: np.ndarray | None = None) -> np.ndarray:
    """``volume`` with its Fourier components beyond radius ``k_max_px`` (lattice pixels) set to zero, and each
    shell ``round(|k|)`` multiplied by ``shell_weights[shell]`` when given (shells beyond the array: 0)."""
    d = volume.shape[0]
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(volume)))
    c = np.arange(d) - d // 2
    r2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    f[r2 > k_max_px ** 2] = 0
    if shell_weights is not None:
        shells = np.rint(np.sqrt(r2)).astype(np.int64)
        w = np.zeros(shells.max() + 1)
        w[: min(w.size, len(shell_weights))] = np.asarray(shell_weights)[: w.size]
        f = f * w[shells]
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(f))).real.astype(np.float32)


def fsc_weights(half1: np.ndarray, half2: np.ndarray) -> np.ndarray:
    """Per-shell weights ``sqrt(2 F / (1 + F))`` (F the half-map FSC, clipped to [0, 1]): the expected
    correlation of the full map with the truth, which damps the shells where the map is mostly noise.

    Returns
    -------
    ndarray, shape (D // 2 + 1,)
    """
    f = np.clip(fsc_curve(half1, half2, 1.0).fsc, 0.0, 1.0)
    w = np.sqrt(2 * f / (1 + f))
    w[0] = 1.0
    return w


def run_epoch(particles: ParticleSet, volume: np.ndarray, epoch: int, config: AbinitConfig,
              previous: Poses | None = None, on_chunk: Callable[[int], None] | None = None,
              local: bool | None = None, start_level: int | None = None,
              halves: tuple[np.ndarray, np.ndarray] | None = None) -> EpochResult:
    """One epoch: pose search of every particle against ``volume``, then back-projection with the new poses.

    Parameters
    ----------
    particles : ParticleSet
        Images with CTF (their own poses, if any, are not used).
    volume : ndarray, shape (D, D, D)
        The current search reference (the previous epoch's ``reference``, or :func:`initial_map`).
    epoch : int
        1-based epoch number (sets the frequency radius and whether the search is local).
    config : AbinitConfig
    previous : Poses, optional
        The previous epoch's poses (required for a local epoch).
    on_chunk : callable, optional
        Called with the number of images done after each chunk (progress).
    local : bool, optional
        Refine ``previous`` locally (True) or search globally (False); default :meth:`AbinitConfig.is_local`.
    start_level : int, optional
        A local search's first level refines at the step of grid level ``start_level + 1`` (default the finest
        level of the global search, ``base_level + refine_levels``).
    halves : (ndarray, ndarray), optional
        The previous epoch's half-maps. Given (and ``config.cross_half_reference``), the particles of each half
        are searched against the *other* half's map, so that no image is scored against a map it contributed
        to (the bias towards its current pose that stalls refinement at high frequency); else all against
        ``volume``.

    Returns
    -------
    EpochResult
    """
    check_particles(particles)
    n, d = len(particles), particles.box_size
    k_max = config.k_max_at(epoch, d)
    local = config.is_local(epoch) if local is None else bool(local)
    if local and previous is None:
        raise InputError(f"epoch {epoch} refines poses locally but no previous poses were given")
    search = config.search
    cross = halves is not None and config.cross_half_reference
    # reference of the particles of half 1 and of half 2
    refs = (halves[1], halves[0]) if cross else (volume,)
    weights = fsc_weights(*halves) if halves is not None and config.fsc_weighting else None
    projectors = [Projector(low_pass(v, k_max, weights), config.device) for v in refs]
    grids = [None if local else make_grid_projections(p, k_max, search) for p in projectors]
    half = half_split(n, config.seed)
    accs = tuple(_accumulator(particles, config) for _ in range(2))
    bp = _backproject_config(config)
    padded = int(config.pad_factor) > 1
    out_accs = tuple(FourierAccumulator(d, 1, config.device) for _ in range(2)) if padded else accs
    out_bp = BackprojectConfig(regularization=config.regularization, chunk_size=config.chunk_size, seed=config.seed,
                               device=config.device)
    rotations = np.zeros((n, 3, 3))
    shifts = np.zeros((n, 2))
    scores = np.zeros(n)
    finest = search.base_level + search.refine_levels if start_level is None else int(start_level)
    # a local epoch starts from one pose per image and keeps at most LOCAL_KEEP between its levels
    local_search_config = dataclasses.replace(search, keep_poses=min(search.keep_poses, LOCAL_KEEP))
    for start in range(0, n, int(config.chunk_size)):
        pos = np.arange(start, min(n, start + int(config.chunk_size)))
        images = _read(particles, pos, config)
        for which, projector in enumerate(projectors):
            sel = np.flatnonzero(half[pos] - 1 == which) if cross else np.arange(pos.size)
            if sel.size == 0:
                continue
            ctf = particles.ctf.subset(pos[sel])
            if local:
                found = search_poses(projector, images[sel], ctf, k_max, local_search_config,
                                     start_rotations=previous.rotations[pos[sel]],
                                     start_shifts_px=previous.shifts_px[pos[sel]], start_level=finest)
            else:
                found = search_poses(projector, images[sel], ctf, k_max, search, grid_projections=grids[which])
            p = pos[sel]
            rotations[p], shifts[p], scores[p] = found.rotations, found.shifts_px, found.scores
        with torch.no_grad():
            ctf = particles.ctf.subset(pos)
            backproject_chunk(accs, half[pos] - 1, images, rotations[pos], shifts[pos], ctf, bp)
            if padded:
                backproject_chunk(out_accs, half[pos] - 1, images, rotations[pos], shifts[pos], ctf, out_bp)
        if on_chunk is not None:
            on_chunk(pos.size)
    with torch.no_grad():
        ref1 = accs[0].volume(config.regularization, padded)
        ref2 = accs[1].volume(config.regularization, padded)
        accs[0].absorb(accs[1])
        ref = accs[0].volume(config.regularization, padded)
        if padded:
            half1 = out_accs[0].volume(config.regularization)
            half2 = out_accs[1].volume(config.regularization)
            out_accs[0].absorb(out_accs[1])
            full = out_accs[0].volume(config.regularization)
        else:
            half1, half2, full = ref1, ref2, ref
    apix = particles.pixel_size_angstrom or 1.0
    pts = lattice_points(d, k_max)
    cost = search_cost(local_search_config if local else search, pts.shape[0],
                       int(((pts ** 2).sum(1) <= search.global_radius(k_max) ** 2).sum()))
    if local:
        cost = {"global": 0.0, "local": cost["local"], "grid_rotations": 0.0, "global_shifts": 0.0}
    return EpochResult(poses=Poses(rotations, shifts, d), scores=scores, volume=full, half1=half1, half2=half2,
                       reference=ref, reference_half1=ref1, reference_half2=ref2,
                       fsc=fsc_curve(half1, half2, apix), k_max_px=k_max, cost=cost)


def refine_poses(particles: ParticleSet, poses: Poses, config: AbinitConfig, n_epochs: int,
                 start_level: int = 3, on_epoch: Callable[[int, EpochResult], None] | None = None) -> EpochResult:
    """Refine given poses: ``n_epochs`` times back-project with the current poses and search locally around them.

    The search scores up to ``config.k_range(D)[1]``; its first local level refines at the step of grid level
    ``start_level + 1`` (3.75° for 3) and each of ``config.search.refine_levels`` halves it; shifts start at
    steps of ``config.search.shift_step_px / 2``.

    Parameters
    ----------
    particles : ParticleSet
    poses : Poses
        Starting poses (shifts in pixels of the particles' box).
    config : AbinitConfig
    n_epochs : int
    start_level : int
    on_epoch : callable, optional
        Called with (epoch, result) after each epoch.

    Returns
    -------
    EpochResult
        The last epoch's.
    """
    check_particles(particles)
    if len(poses) != len(particles):
        raise InputError(f"{len(particles)} particles but {len(poses)} starting poses")
    result = None
    current = poses
    volume, halves = backproject_map(particles, poses, config, with_halves=True)
    last = int(config.num_epochs)
    for epoch in range(1, int(n_epochs) + 1):
        result = run_epoch(particles, volume, last, config, current, local=True, start_level=start_level,
                           halves=halves)
        volume, current = result.reference, result.poses
        halves = (result.reference_half1, result.reference_half2)
        if on_epoch is not None:
            on_epoch(epoch, result)
    return result


def backproject_map(particles: ParticleSet, poses: Poses, config: AbinitConfig, with_halves: bool = False):
    """Wiener back-projection (D, D, D) float32 of all particles with ``poses``; with ``with_halves`` also the
    random half-maps (the halves of :func:`run_epoch`): ``(full, (half1, half2))``."""
    n = len(particles)
    accs = tuple(_accumulator(particles, config) for _ in range(2))
    half = half_split(n, config.seed)
    bp = _backproject_config(config)
    with torch.no_grad():
        for start in range(0, n, int(config.chunk_size)):
            pos = np.arange(start, min(n, start + int(config.chunk_size)))
            backproject_chunk(accs, half[pos] - 1, _read(particles, pos, config),
                              poses.rotations[pos], poses.shifts_px[pos], particles.ctf.subset(pos), bp)
        gridding = config.pad_factor > 1
        halves = (accs[0].volume(config.regularization, gridding), accs[1].volume(config.regularization, gridding))
        accs[0].absorb(accs[1])
        full = accs[0].volume(config.regularization, config.pad_factor > 1)
    return (full, halves) if with_halves else full


def angular_step_deg(config: AbinitConfig) -> float:
    """Rotation step (degrees) of the finest search level."""
    return 60.0 / 2 ** (config.search.base_level + config.search.refine_levels)


def describe_cost(result: EpochResult) -> str:
    """One line: multiply-adds per image of the global search and of each local level."""
    c = result.cost
    return (f"k_max {result.k_max_px:.1f} px; per image: global {c['global'] / 1e6:.1f} M multiply-adds "
            f"({int(c['grid_rotations'])} rotations × {int(c['global_shifts'])} shifts), "
            f"local at most {c['local'] / 1e6:.2f} M per level")
