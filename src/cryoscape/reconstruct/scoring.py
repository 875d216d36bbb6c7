"""Per-image FSC against ground truth: how well a generative model reproduces each particle's true map.

For a subset of particles, the map generated from each particle's latent ``z_i`` is compared with the true
map of that particle (from the simulator's ground-truth table) by FSC; the curves, their area under the
curve and the resolutions at 0.5 and 0.143 are returned per image (the cryoDRGN paper's per-image FSC).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.reconstruct.fsc import fsc_curve


@dataclass(frozen=True)
class PerImageFSC:
    """Per-image FSC scores.

    Attributes
    ----------
    positions : ndarray, shape (n,), int64
        Positions (rows of ``latents``) of the scored particles.
    frequency_per_angstrom : ndarray, shape (S,)
    fsc : ndarray, shape (n, S)
        FSC curve of each scored particle (generated vs true map).
    auc : ndarray, shape (n,)
        Area under each curve over normalised frequency (1 = identical, see ``FSCCurve.area_under_curve``).
    resolution_05_angstrom, resolution_0143_angstrom : ndarray, shape (n,)
        Resolution at FSC 0.5 and 0.143 (Nyquist when not crossed, inf when below at the first shell).
    """

    positions: np.ndarray
    frequency_per_angstrom: np.ndarray
    fsc: np.ndarray
    auc: np.ndarray
    resolution_05_angstrom: np.ndarray
    resolution_0143_angstrom: np.ndarray

    def summary(self) -> dict[str, float]:
        """Mean and median AUC and median resolutions over the scored images."""
        return {
            "n_images": float(len(self.positions)),
            "auc_mean": float(np.mean(self.auc)),
            "auc_median": float(np.median(self.auc)),
            "resolution_05_median_angstrom": float(np.median(self.resolution_05_angstrom)),
            "resolution_0143_median_angstrom": float(np.median(self.resolution_0143_angstrom)),
        }


def _as_numpy(maps) -> np.ndarray:
    if hasattr(maps, "detach"):  # torch tensor
        maps = maps.detach().cpu().numpy()
    return np.asarray(maps, dtype=np.float32)


def choose_positions(n_total: int, n_images: int | None, seed: int = 0) -> np.ndarray:
    """``n_images`` distinct positions out of ``n_total`` drawn at random (seeded), sorted; all when
    None."""
    if n_images is None or n_images >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n_images < 1:
        raise InputError(f"number of images to score must be >= 1, got {n_images}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=int(n_images), replace=False)).astype(np.int64)


def per_image_fsc(
    generate: Callable[[np.ndarray], np.ndarray],
    latents: np.ndarray,
    true_map: Callable[[int], np.ndarray],
    voxel_size_angstrom: float,
    *,
    positions: np.ndarray | None = None,
    n_images: int | None = 100,
    seed: int = 0,
    batch_size: int = 1,
    mask: np.ndarray | None = None,
) -> PerImageFSC:
    """FSC of the generated map against the true map, image by image.

    Parameters
    ----------
    generate
        ``z (B, zdim) -> maps (B, D, D, D)`` (numpy or torch; a (D, D, D) map is accepted for B = 1).
    latents : ndarray, shape (N, zdim)
        Latent of every particle (e.g. the encoder means), in particle order.
    true_map
        ``position -> (D, D, D)`` true map of the particle at that row of ``latents`` (see
        :func:`ground_truth_maps`).
    voxel_size_angstrom
        Voxel size of the maps (Å).
    positions : ndarray of int, optional
        Rows of ``latents`` to score; default: ``n_images`` chosen at random (seeded).
    n_images
        Number of images to score when ``positions`` is not given (None: all).
    seed
        Seed of that random choice.
    batch_size
        Latents passed to ``generate`` at a time.
    mask : ndarray, shape (D, D, D), optional
        Real-space mask applied to both maps before the FSC.

    Returns
    -------
    PerImageFSC
    """
    latents = np.asarray(latents)
    if latents.ndim == 1:
        latents = latents[:, None]
    if positions is None:
        positions = choose_positions(latents.shape[0], n_images, seed)
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= latents.shape[0]):
        raise InputError(f"positions must lie in [0, {latents.shape[0]}), "
                         f"got {positions.min()}..{positions.max()}")
    curves = []
    for start in range(0, len(positions), max(1, int(batch_size))):
        batch = positions[start:start + max(1, int(batch_size))]
        maps = _as_numpy(generate(latents[batch]))
        if maps.ndim == 3:
            maps = maps[None]
        if maps.shape[0] != len(batch):
            raise ValueError(f"generate returned {maps.shape[0]} maps for {len(batch)} latents")
        for pos, generated in zip(batch, maps):
            truth = np.asarray(true_map(int(pos)), dtype=np.float32)
            curves.append(fsc_curve(generated, truth, voxel_size_angstrom, mask=mask))
    return _collect(positions, curves)


def _collect(positions: np.ndarray, curves: list) -> PerImageFSC:
    """:class:`PerImageFSC` from the FSC curves of the particles at ``positions``."""
    if not curves:
        raise InputError("no images to score")
    return PerImageFSC(
        positions=positions,
        frequency_per_angstrom=curves[0].frequency_per_angstrom,
        fsc=np.stack([c.fsc for c in curves]),
        auc=np.array([c.area_under_curve() for c in curves]),
        resolution_05_angstrom=np.array([c.resolution_angstrom(0.5) for c in curves]),
        resolution_0143_angstrom=np.array([c.resolution_angstrom(0.143) for c in curves]),
    )


def per_image_fsc_of_maps(maps: Sequence[np.ndarray | str | os.PathLike], positions: np.ndarray,
                          true_map: Callable[[int], np.ndarray], voxel_size_angstrom: float, *,
                          match_sign: bool = False, mask: np.ndarray | None = None) -> PerImageFSC:
    """Per-image FSC of maps made elsewhere (e.g. by another program), one per scored particle.

    Parameters
    ----------
    maps : sequence of arrays (D, D, D) or .mrc paths
        ``maps[i]`` is the map generated for the particle at ``positions[i]``.
    positions : ndarray, shape (n,), int
        Particle positions (rows of the ground-truth table) of the maps.
    true_map
        ``position -> (D, D, D)`` true map (:func:`truth_from_table`, :func:`ground_truth_maps`).
    voxel_size_angstrom : float
    match_sign : bool
        Negate the maps when their summed correlation with the truths is negative (for programs whose maps
        have protein negative); one decision for all maps.
    mask : ndarray, shape (D, D, D), optional

    Returns
    -------
    PerImageFSC
    """
    positions = np.asarray(positions, dtype=np.int64)
    if len(maps) != len(positions):
        raise InputError(f"{len(maps)} maps for {len(positions)} positions")
    loaded = []
    for m in maps:
        if isinstance(m, (str, os.PathLike, Path)):
            from cryoscape.io.mrc import read_mrc

            m, _ = read_mrc(m)
        loaded.append(np.asarray(m, dtype=np.float32))
    if match_sign:
        total = sum(float(np.vdot(m, true_map(int(p)))) for m, p in zip(loaded, positions))
        if total < 0:
            loaded = [-m for m in loaded]
    curves = [fsc_curve(m, np.asarray(true_map(int(p)), dtype=np.float32), voxel_size_angstrom, mask=mask)
              for m, p in zip(loaded, positions)]
    return _collect(positions, curves)


def ground_truth_maps(states: np.ndarray, volumes: Sequence[np.ndarray | str | os.PathLike]
                      ) -> Callable[[int], np.ndarray]:
    """A ``position -> true map`` lookup from per-particle state indices and one map per state.

    Parameters
    ----------
    states : ndarray, shape (N,), int
        State index of every particle (e.g. the ``state`` column of the simulator's ``ground_truth.csv``,
        in the rows order of the particle set).
    volumes : sequence of arrays (D, D, D) or .mrc paths
        Map of each state (index = state). Paths are read on first use and kept.

    Returns
    -------
    callable
        ``true_map(position) -> (D, D, D) float32``.
    """
    states = np.asarray(states, dtype=np.int64)
    if states.size and (states.min() < 0 or states.max() >= len(volumes)):
        raise InputError(f"state indices span {states.min()}..{states.max()} "
                         f"but {len(volumes)} maps were given")
    cache: dict[int, np.ndarray] = {}

    def true_map(position: int) -> np.ndarray:
        state = int(states[position])
        if state not in cache:
            vol = volumes[state]
            if isinstance(vol, (str, os.PathLike, Path)):
                from cryoscape.io.mrc import read_mrc

                vol, _ = read_mrc(vol)
            cache[state] = np.asarray(vol, dtype=np.float32)
        return cache[state]

    return true_map



def truth_from_table(volume_of: Callable[[int, float | None], np.ndarray], states: np.ndarray,
                     coordinates: np.ndarray | None = None) -> Callable[[int], np.ndarray]:
    """A ``position -> true map`` lookup from a ground-truth table and a renderer of true maps.

    Parameters
    ----------
    volume_of
        ``(state, coordinate or None) -> (D, D, D)`` true map, e.g. the simulator's
        ``GroundTruthVolumes(SimulationConfig.load_yaml("sim/config.yaml"))``.
    states : ndarray, shape (N,), int
        State of the particle at each position (``ground_truth.csv`` column ``state``, rows selected by the
        particle set's ``indices`` when a subset is used).
    coordinates : ndarray, shape (N,), optional
        Continuous coordinate of each particle (``coordinate`` column); NaN or None for discrete states.

    Returns
    -------
    callable
        ``true_map(position) -> (D, D, D) float32``; maps of discrete states are rendered once and kept.
    """
    states = np.asarray(states, dtype=np.int64)
    coords = None if coordinates is None else np.asarray(coordinates, dtype=np.float64)
    cache: dict[int, np.ndarray] = {}

    def true_map(position: int) -> np.ndarray:
        state = int(states[position])
        coordinate = None if coords is None or not np.isfinite(coords[position]) else float(coords[position])
        if coordinate is None and state in cache:
            return cache[state]
        vol = np.asarray(volume_of(state, coordinate), dtype=np.float32)
        if coordinate is None:
            cache[state] = vol
        return vol

    return true_map
