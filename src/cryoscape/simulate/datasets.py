"""Ground-truth densities: the procedural built-ins (``hinge``, ``assembly``) and user maps/atomic models.

Every source answers three questions, all at the simulation box (``box_size``, ``pixel_size_angstrom``):

* ``sample_labels(n, rng)`` — per-particle state index (int) and continuous coordinate (float in [0, 1],
  NaN for discrete sources);
* ``projections_ft(rotations, states, coordinates)`` — centred 2-D DFTs of the noiseless projections;
* ``volume(state, coordinate, box_size=None)`` — the real-space ground-truth map (optionally Fourier-cropped).

The built-ins are clouds of Gaussian pseudo-atoms drawn once from a fixed generator (the molecule never
depends on ``--seed``), projected analytically (see :mod:`cryoscape.simulate.project`), so the hinge
coordinate of each particle is used exactly, not quantised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cryoscape.errors import InputError
from cryoscape.simulate import project
from cryoscape.simulate.atoms import SIGMA_PER_RESOLUTION, fill_pixel_size, molmap, read_atomic_model
from cryoscape.simulate.config import DEFAULT_BOX, SimulationConfig

MOLECULE_SEED = 20210128  # fixed: the built-in molecules are the same for every dataset
DEFAULT_RESOLUTION_PX = 3.0


# ----------------------------------------------------------------------------------------------
# pseudo-molecules
def _blob(rng: np.random.Generator, n: int, centre: tuple[float, float, float],
          semi_axes: tuple[float, float, float]) -> np.ndarray:
    """``n`` points uniform in an ellipsoid (Å), (n, 3)."""
    points = []
    count = 0
    while count < n:
        trial = rng.uniform(-1, 1, size=(4 * n, 3))
        trial = trial[(trial**2).sum(-1) <= 1]
        points.append(trial)
        count += len(trial)
    return np.concatenate(points)[:n] * np.asarray(semi_axes) + np.asarray(centre)


def _axis_angle(axis: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about a unit axis by angles (...) (right-handed, Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.asarray(angle_rad, dtype=np.float64)[..., None, None]
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@dataclass(frozen=True)
class PseudoMolecule:
    """Gaussian pseudo-atoms grouped into domains/subunits (Å, relative to the molecule's fixed centre).

    Attributes
    ----------
    coords_angstrom : ndarray (M, 3)
    peaks : ndarray (M,)
        Peak density of each pseudo-atom.
    groups : ndarray (M,) int
        Domain or subunit index of each pseudo-atom.
    group_names : tuple of str
    """

    coords_angstrom: np.ndarray
    peaks: np.ndarray
    groups: np.ndarray
    group_names: tuple[str, ...]


def _build(parts: list[tuple[str, list[tuple[int, tuple, tuple]]]]) -> PseudoMolecule:
    rng = np.random.default_rng(MOLECULE_SEED)
    coords, peaks, groups = [], [], []
    for g, (_, blobs) in enumerate(parts):
        for n, centre, axes in blobs:
            coords.append(_blob(rng, n, centre, axes))
            peaks.append(rng.uniform(0.6, 1.4, n))
            groups.append(np.full(n, g))
    return PseudoMolecule(np.concatenate(coords), np.concatenate(peaks), np.concatenate(groups),
                          tuple(name for name, _ in parts))


def hinge_molecule() -> PseudoMolecule:
    """Two domains: a fixed body (group 0) with a knob, and an arm (group 1) that rotates about the hinge."""
    return _build([
        ("body", [(170, (-22.0, 0.0, 0.0), (26.0, 18.0, 15.0)), (25, (-30.0, 17.0, 9.0), (7.0, 7.0, 7.0))]),
        ("arm", [(100, (22.0, 0.0, 0.0), (19.0, 11.0, 11.0)), (18, (33.0, -7.0, 9.0), (6.0, 6.0, 6.0))]),
    ])


HINGE_PIVOT_ANGSTROM = np.array([1.0, 0.0, 0.0])
HINGE_AXIS = np.array([0.25, 0.35, 1.0])


def hinge_coordinates(molecule: PseudoMolecule, angles_deg: np.ndarray) -> np.ndarray:
    """Pseudo-atom positions (B, M, 3) in Å, the arm rotated by ``angles_deg`` (B,) about the hinge axis."""
    rot = _axis_angle(HINGE_AXIS, np.deg2rad(np.asarray(angles_deg, dtype=np.float64)))  # (B, 3, 3)
    arm = molecule.groups == 1
    coords = np.broadcast_to(molecule.coords_angstrom, rot.shape[:-2] + molecule.coords_angstrom.shape).copy()
    moved = (molecule.coords_angstrom[arm] - HINGE_PIVOT_ANGSTROM) @ np.swapaxes(rot, -1, -2)
    coords[..., arm, :] = moved + HINGE_PIVOT_ANGSTROM
    return coords


def assembly_molecule() -> PseudoMolecule:
    """A core with three peripheral subunits A, B, C (groups 0..3)."""
    return _build([
        ("core", [(220, (0.0, 0.0, 0.0), (24.0, 20.0, 17.0)), (20, (-8.0, -14.0, 16.0), (6.0, 6.0, 6.0))]),
        ("A", [(90, (4.0, 31.0, 2.0), (17.0, 10.0, 13.0))]),
        ("B", [(70, (30.0, -12.0, 6.0), (11.0, 13.0, 10.0))]),
        ("C", [(45, (-28.0, -13.0, -7.0), (9.0, 9.0, 9.0))]),
    ])


# ------------------------------------------------------------------------------------------ coordinate laws
COOPERATIVE_MODES = ((0.15, 0.06, 0.3), (0.5, 0.06, 0.4), (0.85, 0.06, 0.3))  # (centre, sd, weight)
NONCONTIGUOUS_INTERVALS = ((0.0, 0.25), (0.4, 0.6), (0.75, 1.0))


def sample_coordinates(n: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """Continuous coordinates (n,) in [0, 1]: ``uniform``, ``cooperative`` (3 Gaussian modes, truncated) or
    ``noncontiguous`` (uniform on three intervals separated by gaps)."""
    if sampling == "uniform":
        return rng.uniform(0.0, 1.0, n)
    if sampling == "cooperative":
        centres, sds, weights = (np.array(v) for v in zip(*COOPERATIVE_MODES))
        mode = rng.choice(len(centres), size=n, p=weights / weights.sum())
        values = rng.normal(centres[mode], sds[mode])
        bad = (values < 0) | (values > 1)
        while bad.any():
            values[bad] = rng.normal(centres[mode[bad]], sds[mode[bad]])
            bad = (values < 0) | (values > 1)
        return values
    if sampling == "noncontiguous":
        lo, hi = (np.array(v) for v in zip(*NONCONTIGUOUS_INTERVALS))
        widths = hi - lo
        piece = rng.choice(len(lo), size=n, p=widths / widths.sum())
        return lo[piece] + widths[piece] * rng.uniform(0.0, 1.0, n)
    raise InputError(f"unknown coordinate_sampling {sampling!r}")


# ---------------------------------------------------------------------------------------------- sources
@dataclass
class DensitySource:
    """Base class: a ground-truth density at ``box_size`` and ``pixel_size_angstrom``."""

    box_size: int
    pixel_size_angstrom: float
    state_names: tuple[str, ...]
    continuous: bool

    def sample_labels(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """States (n,) int64 and coordinates (n,) float64 (NaN when discrete)."""
        return np.zeros(n, dtype=np.int64), np.full(n, np.nan)

    def projections_ft(self, rotations: torch.Tensor, states: np.ndarray,
                       coordinates: np.ndarray) -> torch.Tensor:
        """Centred 2-D DFTs (B, D, D) complex128 of the noiseless projections."""
        raise NotImplementedError

    def volume(self, state: int = 0, coordinate: float | None = None,
               box_size: int | None = None) -> np.ndarray:
        """Real-space ground truth (d, d, d) float32, Fourier-cropped to ``box_size`` (values preserved)."""
        raise NotImplementedError


@dataclass
class PseudoAtomSource(DensitySource):
    """Built-in pseudo-molecule; states mask subunits, the coordinate moves the hinge arm."""

    molecule: PseudoMolecule = field(default=None)  # type: ignore[assignment]
    centre_angstrom: np.ndarray = field(default=None)  # type: ignore[assignment]
    sigma_angstrom: float = 1.0
    state_groups: tuple[tuple[int, ...], ...] = ((0,),)
    state_proportions: tuple[float, ...] = (1.0,)
    hinge_angles_deg: tuple[float, float] | None = None
    coordinate_sampling: str = "uniform"

    def sample_labels(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.continuous:
            return np.zeros(n, dtype=np.int64), sample_coordinates(n, self.coordinate_sampling, rng)
        p = np.asarray(self.state_proportions, dtype=np.float64)
        states = rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int64)
        return states, np.full(n, np.nan)

    def hinge_angle_deg(self, coordinates: np.ndarray) -> np.ndarray:
        """Hinge angle (degrees) of coordinates in [0, 1] (linear between the two configured angles)."""
        a0, a1 = self.hinge_angles_deg or (0.0, 0.0)
        return a0 + np.asarray(coordinates, dtype=np.float64) * (a1 - a0)

    def _atoms(self, states: np.ndarray, coordinates: np.ndarray, pixel_size: float) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
        """Positions (B, M, 3) in pixels of ``pixel_size`` from the centre, and peaks (B, M)."""
        mol = self.molecule
        if self.continuous:
            coords = hinge_coordinates(mol, self.hinge_angle_deg(coordinates))
        else:
            coords = np.broadcast_to(mol.coords_angstrom, (len(states), *mol.coords_angstrom.shape))
        positions = (coords - self.centre_angstrom) / pixel_size
        present = np.zeros((len(self.state_groups), len(mol.group_names)), dtype=np.float64)
        for s, groups in enumerate(self.state_groups):
            present[s, list(groups)] = 1.0
        peaks = mol.peaks[None, :] * present[np.asarray(states)][:, mol.groups]
        return torch.as_tensor(positions), torch.as_tensor(peaks)

    def projections_ft(self, rotations: torch.Tensor, states: np.ndarray,
                       coordinates: np.ndarray) -> torch.Tensor:
        positions, peaks = self._atoms(states, coordinates, self.pixel_size_angstrom)
        sigma_px = self.sigma_angstrom / self.pixel_size_angstrom
        return project.gaussian_projections_ft(positions, peaks, sigma_px, rotations, self.box_size)

    def volume(self, state: int = 0, coordinate: float | None = None,
               box_size: int | None = None) -> np.ndarray:
        box = self.box_size if box_size is None else int(box_size)
        pixel = self.pixel_size_angstrom * self.box_size / box
        if self.continuous:
            if coordinate is None or not np.isfinite(coordinate):
                raise InputError("the hinge ground truth needs a coordinate in [0, 1]")
        elif not 0 <= state < len(self.state_groups):
            raise InputError(f"state {state} is not one of the {len(self.state_groups)} states")
        coords = np.array([coordinate if coordinate is not None else 0.0])
        positions, peaks = self._atoms(np.array([state]), coords, pixel)
        return project.gaussian_volume(positions[0], peaks[0], self.sigma_angstrom / pixel, box)


@dataclass
class VolumeSource(DensitySource):
    """One map (from a file or an atomic model); projected by Fourier slicing of the 2x padded map."""

    map_volume: np.ndarray = field(default=None)  # type: ignore[assignment]
    _padded_ft: torch.Tensor | None = field(default=None, repr=False)

    def projections_ft(self, rotations: torch.Tensor, states: np.ndarray,
                       coordinates: np.ndarray) -> torch.Tensor:
        if self._padded_ft is None:
            self._padded_ft = project.padded_volume_ft(self.map_volume)
        return project.volume_projections_ft(self._padded_ft, rotations, self.box_size)

    def volume(self, state: int = 0, coordinate: float | None = None,
               box_size: int | None = None) -> np.ndarray:
        if state != 0:
            raise InputError(f"state {state}: a map source has a single state 0")
        box = self.box_size if box_size is None else int(box_size)
        return project.fourier_crop_volume(self.map_volume, box)


def _resolution(config: SimulationConfig, pixel: float) -> float:
    if config.resolution_angstrom is not None:
        return config.resolution_angstrom
    return DEFAULT_RESOLUTION_PX * pixel


def _pseudo_source(config: SimulationConfig) -> PseudoAtomSource:
    box = config.box_size or DEFAULT_BOX
    if config.source == "hinge":
        mol = hinge_molecule()
        mid = hinge_coordinates(mol, np.array([np.mean(config.hinge_angles_deg)]))[0]
        centre = (mid * mol.peaks[:, None]).sum(0) / mol.peaks.sum()
        sweep = hinge_coordinates(mol, np.linspace(*config.hinge_angles_deg, 13)).reshape(-1, 3)
        names, groups, proportions, continuous = ("hinge",), ((0, 1),), (1.0,), True
    else:
        mol = assembly_molecule()
        centre = (mol.coords_angstrom * mol.peaks[:, None]).sum(0) / mol.peaks.sum()
        sweep = mol.coords_angstrom
        names = tuple(config.assembly_states)
        groups = tuple(tuple(mol.group_names.index(p) for p in s.split("+")) for s in names)
        proportions, continuous = tuple(config.assembly_proportions), False
    pixel = config.pixel_size_angstrom or fill_pixel_size(sweep, centre, box)
    return PseudoAtomSource(box_size=box, pixel_size_angstrom=pixel, state_names=names, continuous=continuous,
                            molecule=mol, centre_angstrom=centre,
                            sigma_angstrom=SIGMA_PER_RESOLUTION * _resolution(config, pixel),
                            state_groups=groups, state_proportions=proportions,
                            hinge_angles_deg=tuple(config.hinge_angles_deg) if continuous else None,
                            coordinate_sampling=config.coordinate_sampling)


def _map_source(config: SimulationConfig) -> VolumeSource:
    from cryoscape.io.mrc import read_mrc

    volume, header = read_mrc(config.source)
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or len(set(volume.shape)) != 1 or volume.shape[0] % 2:
        raise InputError(f"the map has shape {volume.shape}; a cubic map with an even side is needed",
                         path=config.source, fix="resample the map to an even cube")
    box = volume.shape[0]
    if config.box_size is not None and config.box_size != box:
        raise InputError(f"box_size = {config.box_size} differs from the map's box {box}", path=config.source,
                         fix="omit --box-size, or use --downsample-box for smaller images")
    pixel = config.pixel_size_angstrom or float(header.voxel_size_angstrom or 0.0)
    if not pixel > 0:
        raise InputError("the map header has no voxel size", path=config.source,
                         fix="give --pixel-size-angstrom")
    return VolumeSource(box_size=box, pixel_size_angstrom=pixel, state_names=("map",), continuous=False,
                        map_volume=volume)


def _atomic_source(config: SimulationConfig) -> VolumeSource:
    model = read_atomic_model(config.source)
    box = config.box_size or DEFAULT_BOX
    centre = model.centre_of_mass()
    pixel = config.pixel_size_angstrom or fill_pixel_size(model.coords_angstrom, centre, box)
    volume = molmap(model.coords_angstrom, model.atomic_numbers, box, pixel, _resolution(config, pixel),
                    centre_angstrom=centre)
    return VolumeSource(box_size=box, pixel_size_angstrom=pixel, state_names=("model",), continuous=False,
                        map_volume=volume)


def build_source(config: SimulationConfig) -> DensitySource:
    """The density source of a (validated) config."""
    kind = config.source_kind
    if kind in ("hinge", "assembly"):
        return _pseudo_source(config)
    if kind == "map":
        return _map_source(config)
    if kind == "atomic_model":
        return _atomic_source(config)
    raise InputError(f"unknown source {config.source!r}", fix="use hinge, assembly, a .pdb/.cif or a .mrc")


__all__ = [
    "DensitySource", "PseudoAtomSource", "VolumeSource", "PseudoMolecule", "build_source", "hinge_molecule",
    "assembly_molecule", "hinge_coordinates", "sample_coordinates",
]
