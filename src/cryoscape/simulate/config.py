"""Configuration of a simulated dataset: one frozen dataclass (field = CLI flag = yaml key) and presets.

A field left at ``None`` takes the source's natural value (see :class:`SimulationConfig`). Presets are partial
dictionaries of fields; :func:`preset_config` applies overrides on top of a preset.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from cryoscape.errors import InputError

BUILTIN_SOURCES = ("hinge", "assembly")
ATOMIC_MODEL_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".cif.gz")
MAP_SUFFIXES = (".mrc", ".map")
COORDINATE_SAMPLINGS = ("uniform", "cooperative", "noncontiguous")
ASSEMBLY_SUBUNITS = ("core", "A", "B", "C")
DEFAULT_BOX = 64


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated dataset; the same seed and config give the same files.

    Attributes
    ----------
    source : str
        ``hinge`` (continuous two-domain motion), ``assembly`` (discrete subunit states), a PDB/mmCIF
        atomic model (``.pdb``, ``.cif``, ...) or a density map (``.mrc``/``.map``).
    n_particles : int
        Number of images.
    box_size : int or None
        Simulation box (even, pixels). None: 64, or the box of the input map.
    pixel_size_angstrom : float or None
        Pixel size at ``box_size`` (Å). None: the molecule's diameter fills 60 % of the box (built-ins, atomic
        models); the map's voxel size for a map.
    resolution_angstrom : float or None
        Resolution of the Gaussian (pseudo-)atoms, sigma = 0.225 * resolution (Å), as ChimeraX ``molmap``.
        None: 3 pixels.
    snr : float
        Signal-to-noise ratio: variance of the noiseless images (after CTF, whole box, whole dataset) over the
        variance of the white Gaussian noise, at ``box_size``. ``inf`` for noiseless images.
    ctf : bool
        Apply a CTF (RELION model) to every image.
    defocus_min_angstrom, defocus_max_angstrom : float
        Range of the uniform defocus U (Å, positive = underfocus).
    astigmatism_max_angstrom : float
        Defocus V = U − uniform(0, this) (Å); the astigmatism angle is uniform in [0, 180) degrees.
    voltage_kv, cs_mm, amplitude_contrast : float
        Microscope parameters.
    bfactor_angstrom2 : float
        CTF B-factor envelope exp(−B s²/4) (Å²).
    ctf_field_factor : int
        Side of the field the CTF is applied on, in boxes. 1 (default): on the box's own Fourier grid, i.e. a
        circular convolution on the D-pixel box (as cryoDRGN's simulator does). 2 or more: the projection is
        placed in a field ``factor × D`` pixels wide, convolved with the CTF there and cropped back to D, as
        extraction from a micrograph does (linear convolution, the delocalised signal that leaves the box is
        lost and none wraps around).
    max_shift_px : float
        In-plane shifts uniform in [−max, max] pixels (of ``box_size``) on each axis.
    downsample_box : int or None
        Fourier-crop the noisy images to this even box (the star's pixel size and shifts follow).
    coordinate_sampling : str
        Distribution of the hinge coordinate in [0, 1]: ``uniform``, ``cooperative`` (three modes) or
        ``noncontiguous`` (three intervals with gaps).
    hinge_angles_deg : tuple of 2 floats
        Hinge angle (degrees) at coordinate 0 and 1.
    assembly_states : tuple of str
        States of ``assembly``, each ``+``-joined subunits among core, A, B, C (e.g. ``core+A``).
    assembly_proportions : tuple of float
        Relative frequency of each state (normalised).
    n_gt_volumes : int
        Ground-truth volumes written along the continuous coordinate (evenly spaced in [0, 1]).
    seed : int
        Seed of every random draw.
    chunk_size : int
        Images computed at once (memory bound; does not change the result).
    """

    source: str = "hinge"
    n_particles: int = 1000
    box_size: int | None = None
    pixel_size_angstrom: float | None = None
    resolution_angstrom: float | None = None
    snr: float = 0.1
    ctf: bool = True
    defocus_min_angstrom: float = 10000.0
    defocus_max_angstrom: float = 25000.0
    astigmatism_max_angstrom: float = 500.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    bfactor_angstrom2: float = 50.0
    ctf_field_factor: int = 1
    max_shift_px: float = 0.0
    downsample_box: int | None = None
    coordinate_sampling: str = "uniform"
    hinge_angles_deg: tuple[float, float] = (0.0, 60.0)
    assembly_states: tuple[str, ...] = ("core", "core+A", "core+A+B")
    assembly_proportions: tuple[float, ...] = (0.3, 0.3, 0.4)
    n_gt_volumes: int = 10
    seed: int = 0
    chunk_size: int = 256

    def __post_init__(self) -> None:
        for name in ("hinge_angles_deg", "assembly_states", "assembly_proportions"):
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

    # ------------------------------------------------------------------ kinds of source
    @property
    def source_kind(self) -> str:
        """``hinge``, ``assembly``, ``atomic_model`` or ``map``."""
        if self.source in BUILTIN_SOURCES:
            return self.source
        lower = self.source.lower()
        if lower.endswith(ATOMIC_MODEL_SUFFIXES):
            return "atomic_model"
        if lower.endswith(MAP_SUFFIXES):
            return "map"
        return "unknown"

    def validate(self) -> SimulationConfig:
        """Check every value; raise :class:`InputError` naming the bad one. Returns ``self``."""
        kind = self.source_kind
        if kind == "unknown":
            raise InputError(f"unknown source {self.source!r}", fix="use hinge, assembly, a .pdb/.cif atomic "
                             "model or a .mrc map")
        if kind in ("atomic_model", "map") and not Path(self.source).is_file():
            raise InputError("file not found", path=self.source, fix="give an existing atomic model or map")
        if self.n_particles < 1:
            raise InputError(f"n_particles = {self.n_particles} must be at least 1")
        if self.box_size is not None and (self.box_size < 8 or self.box_size % 2):
            raise InputError(f"box_size = {self.box_size} must be even and at least 8",
                             fix="e.g. --box-size 64")
        if self.downsample_box is not None:
            if self.downsample_box < 4 or self.downsample_box % 2:
                raise InputError(f"downsample_box = {self.downsample_box} must be even and at least 4")
            if self.box_size is not None and self.downsample_box >= self.box_size:
                raise InputError(f"downsample_box = {self.downsample_box} must be smaller than box_size = "
                                 f"{self.box_size}", fix="omit --downsample-box to keep the full box")
        for name in ("pixel_size_angstrom", "resolution_angstrom"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InputError(f"{name} = {value} must be a positive number")
        if not self.snr > 0:
            raise InputError(f"snr = {self.snr} must be positive", fix="use inf for noiseless images")
        if self.defocus_min_angstrom > self.defocus_max_angstrom or self.astigmatism_max_angstrom < 0:
            raise InputError(f"defocus range [{self.defocus_min_angstrom}, {self.defocus_max_angstrom}] Å "
                             f"with astigmatism {self.astigmatism_max_angstrom} Å is invalid")
        if not 0 <= self.amplitude_contrast < 1:
            raise InputError(f"amplitude_contrast = {self.amplitude_contrast} must be in [0, 1)")
        if int(self.ctf_field_factor) != self.ctf_field_factor or self.ctf_field_factor < 1:
            raise InputError(f"ctf_field_factor = {self.ctf_field_factor} must be an integer >= 1",
                             fix="1 = CTF on the box grid, 2 = on a field twice the box (micrograph-like)")
        if self.max_shift_px < 0:
            raise InputError(f"max_shift_px = {self.max_shift_px} must be >= 0")
        if self.coordinate_sampling not in COORDINATE_SAMPLINGS:
            raise InputError(f"unknown coordinate_sampling {self.coordinate_sampling!r}",
                             fix=f"use one of {', '.join(COORDINATE_SAMPLINGS)}")
        if len(self.hinge_angles_deg) != 2:
            raise InputError(f"hinge_angles_deg = {self.hinge_angles_deg} needs two angles (start, end)")
        if len(self.assembly_states) != len(self.assembly_proportions):
            raise InputError(f"{len(self.assembly_states)} assembly_states but "
                             f"{len(self.assembly_proportions)} "
                             "assembly_proportions", fix="give one proportion per state")
        if any(p < 0 for p in self.assembly_proportions) or sum(self.assembly_proportions) <= 0:
            raise InputError(f"assembly_proportions = {self.assembly_proportions} must be >= 0 with a "
                             "positive sum")
        for state in self.assembly_states:
            parts = state.split("+")
            if not parts or any(p not in ASSEMBLY_SUBUNITS for p in parts) or len(set(parts)) != len(parts):
                raise InputError(f"assembly state {state!r} is not a '+'-joined set of subunits",
                                 fix=f"use subunits among {', '.join(ASSEMBLY_SUBUNITS)}, e.g. core+A")
        if self.n_gt_volumes < 1 or self.chunk_size < 1:
            raise InputError("n_gt_volumes and chunk_size must be at least 1")
        return self

    # ------------------------------------------------------------------ yaml
    def to_dict(self) -> dict[str, Any]:
        """Plain types (tuples as lists), suitable for yaml."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str | os.PathLike | None = None) -> SimulationConfig:
        """Build from a dictionary of fields; unknown keys raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown simulation setting(s) {', '.join(unknown)}", path=path,
                             fix=f"valid keys: {', '.join(sorted(known))}")
        return cls(**values)

    def save_yaml(self, path: str | os.PathLike) -> Path:
        """Write the config as yaml (keys = field names)."""
        import yaml

        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load_yaml(cls, path: str | os.PathLike) -> SimulationConfig:
        """Read a config written by :meth:`save_yaml` (or by hand)."""
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read the simulation config: {exc}", path=path) from exc
        if not isinstance(values, dict):
            raise InputError("a simulation config must be a mapping of settings", path=path)
        return cls.from_dict(values, path=path)


PRESETS: dict[str, dict[str, Any]] = {
    "tiny-32": {"source": "hinge", "box_size": 32, "n_particles": 1000, "snr": 10.0, "ctf": True,
                "bfactor_angstrom2": 0.0, "max_shift_px": 0.0},
    "hinge-64": {"source": "hinge", "box_size": 64, "n_particles": 20000, "snr": 0.1, "ctf": True,
                 "max_shift_px": 3.0},
    "assembly-64": {"source": "assembly", "box_size": 64, "n_particles": 20000, "snr": 0.1, "ctf": True,
                    "max_shift_px": 3.0, "assembly_states": ("core", "core+A", "core+A+B"),
                    "assembly_proportions": (0.3, 0.3, 0.4)},
}


def preset_config(name: str | None = None, **overrides: Any) -> SimulationConfig:
    """The config of a preset (or the defaults when ``name`` is None) with ``overrides`` applied.

    Raises
    ------
    InputError
        For an unknown preset or setting.
    """
    values: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}", fix=f"use one of {', '.join(PRESETS)}")
        values.update(PRESETS[name])
    values.update(overrides)
    return SimulationConfig.from_dict(values)


def with_overrides(config: SimulationConfig, **overrides: Any) -> SimulationConfig:
    """``config`` with some fields replaced (unknown names raise :class:`InputError`)."""
    known = {f.name for f in fields(SimulationConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown simulation setting(s) {', '.join(unknown)}")
    return replace(config, **overrides)
