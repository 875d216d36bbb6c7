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

from cryoscape.configio import dataclass_from_mapping, option
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

    source: str = option("hinge", help="hinge, assembly, an atomic model (.pdb/.cif) or a map (.mrc) [hinge]")
    n_particles: int = option(1000, flags=("-n",), help="number of images [1000]")
    box_size: int | None = option(None, help="simulation box, even (pixels) [64, or the map's box]")
    pixel_size_angstrom: float | None = option(
        None, help="pixel size (Å) [molecule fills 60%% of the box; the map's]")
    resolution_angstrom: float | None = option(
        None, help="Gaussian atom resolution, sigma = 0.225 × it (Å) [3 pixels]")
    snr: float = option(0.1, help="signal-to-noise ratio; inf for noiseless [0.1]")
    ctf: bool = option(True, negative="--no-ctf", help="apply the CTF [yes]")
    defocus_min_angstrom: float = option(10000.0, help="smallest defocus U (Å) [10000]")
    defocus_max_angstrom: float = option(25000.0, help="largest defocus U (Å) [25000]")
    astigmatism_max_angstrom: float = option(500.0, help="defocus V = U − uniform(0, this) (Å) [500]")
    voltage_kv: float = option(300.0, help="voltage (kV) [300]")
    cs_mm: float = option(2.7, help="spherical aberration (mm) [2.7]")
    amplitude_contrast: float = option(0.1, help="amplitude contrast [0.1]")
    bfactor_angstrom2: float = option(50.0, help="CTF B-factor envelope (Å²) [50]")
    ctf_field_factor: int = option(1, help="apply the CTF on a field this many boxes wide, then crop (2 = like "
                                           "extraction from a micrograph; 1 = circular on the box) [1]")
    max_shift_px: float = option(0.0, help="in-plane shifts uniform in ±this (pixels of --box-size) [0]")
    downsample_box: int | None = option(None, help="Fourier-crop the images to this even box [no crop]")
    coordinate_sampling: str = option("uniform", choices=COORDINATE_SAMPLINGS,
                                      help="hinge coordinate law: uniform, cooperative, noncontiguous [uniform]")
    hinge_angles_deg: tuple[float, float] = option((0.0, 60.0), help="hinge angle at coordinate 0 and 1 "
                                                                     "(degrees) [0 60]")
    assembly_states: tuple[str, ...] = option(("core", "core+A", "core+A+B"),
                                              help="states, '+'-joined subunits core, A, B, C [core core+A core+A+B]")
    assembly_proportions: tuple[float, ...] = option((0.3, 0.3, 0.4),
                                                     help="relative frequency of each state [0.3 0.3 0.4]")
    n_gt_volumes: int = option(10, help="ground-truth maps along the continuous coordinate [10]")
    seed: int = option(0, help="random seed [0]")
    chunk_size: int = option(256, help="images computed at once (memory only) [256]")

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
        return self._check_physics()

    def _check_physics(self) -> SimulationConfig:
        """Refuse physical parameters that would give NaN images or an unreadable star; returns ``self``."""
        positive = ("voltage_kv", "defocus_min_angstrom", "defocus_max_angstrom")
        finite = ("cs_mm", "bfactor_angstrom2", "max_shift_px", "astigmatism_max_angstrom", "amplitude_contrast")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"--{name.replace('_', '-')} {value} must be a positive number",
                                 fix="defocus is positive for underfocus; voltage e.g. 300")
        for name in finite:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise InputError(f"--{name.replace('_', '-')} {value} is not a finite number")
        if self.astigmatism_max_angstrom >= self.defocus_min_angstrom:
            raise InputError(f"--astigmatism-max-angstrom {self.astigmatism_max_angstrom:g} would give defocus V "
                             f"<= 0 (smallest defocus U {self.defocus_min_angstrom:g} Å)",
                             fix="keep the astigmatism below the smallest defocus")
        if not all(math.isfinite(a) for a in self.hinge_angles_deg):
            raise InputError(f"--hinge-angles-deg {list(self.hinge_angles_deg)} must be finite")
        if not all(math.isfinite(p) for p in self.assembly_proportions):
            raise InputError(f"--assembly-proportions {list(self.assembly_proportions)} must be finite")
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
        """Build from a dictionary of fields (a yaml file's, ``path``); an unknown key or a value of the wrong type
        raises :class:`InputError` naming ``path``, the key, the value and the expected type."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown simulation setting(s) {', '.join(unknown)}", path=path,
                             fix=f"valid keys: {', '.join(sorted(known))}")
        return dataclass_from_mapping(cls, values, path=path)

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


def config_from_options(config_path: str | os.PathLike | None = None, preset: str | None = None,
                        **overrides: Any) -> SimulationConfig:
    """The config of ``simulate``: a yaml file (``config_path``) or a preset (or the defaults), then
    ``overrides``; every value checked (:meth:`SimulationConfig.validate`)."""
    if config_path and preset:
        raise InputError("give either --config or --preset, not both")
    if config_path:
        return with_overrides(SimulationConfig.load_yaml(config_path), **overrides).validate()
    return preset_config(preset, **overrides).validate()
