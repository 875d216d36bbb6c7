"""Validate a particle selection: back-project it with half-maps, gold-standard FSC next to the whole set's.

This is the paper's check of a newly found state: a traditional voxel reconstruction of the particles assigned
to it must reach a sensible resolution on its own (two random halves agree), compared with the same
reconstruction of every particle.

Compute, then write: :func:`validate_selection` returns a :class:`Validation` (maps and curves in memory, nothing
written); :func:`write_validation` writes its files atomically into a
:class:`ValidationLayout` and returns every path written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.reconstruct.outputs import ReconstructionFolder


@dataclass(frozen=True)
class ValidationLayout(ReconstructionFolder):
    """``NAME_validate/``: back-projection of a selection (``--validate`` of select, write-star, write-cs): the
    reconstruction folder of the selection plus ``fsc_whole.csv`` and ``validation.json``."""

    @classmethod
    def beside(cls, output: str | os.PathLike) -> ValidationLayout:
        """The folder next to an output file or base name: ``sel.star`` or ``sel`` → ``sel_validate/``."""
        output = Path(output)
        stem = output.stem if output.suffix.lower() in {".txt", ".pkl", ".star", ".cs"} else output.name
        return cls(output.with_name(stem + "_validate"))

    @property
    def fsc_whole_csv(self) -> Path:
        """``fsc_whole.csv``: FSC of the whole set's half-maps."""
        return self.root / "fsc_whole.csv"

    @property
    def summary(self) -> Path:
        """``validation.json``: particle counts and gold-standard resolutions."""
        return self.root / "validation.json"


@dataclass(frozen=True)
class ValidationSummary:
    """Gold-standard resolutions (Å) of a selection and of the whole set it was taken from.

    Attributes
    ----------
    n_selected, n_whole : int
    selected_fsc0143_angstrom, selected_fsc05_angstrom : float
    whole_fsc0143_angstrom, whole_fsc05_angstrom : float or None
        None when the whole set was not reconstructed.
    voxel_size_angstrom : float
    """

    n_selected: int
    n_whole: int
    selected_fsc0143_angstrom: float
    selected_fsc05_angstrom: float
    whole_fsc0143_angstrom: float | None
    whole_fsc05_angstrom: float | None
    voxel_size_angstrom: float

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"selection ({self.n_selected} particles): gold-standard FSC 0.143 at "
               f"{self.selected_fsc0143_angstrom:.2f} Å, 0.5 at {self.selected_fsc05_angstrom:.2f} Å"]
        if self.whole_fsc0143_angstrom is not None:
            out.append(f"whole set ({self.n_whole} particles): gold-standard FSC 0.143 at "
                       f"{self.whole_fsc0143_angstrom:.2f} Å, 0.5 at {self.whole_fsc05_angstrom:.2f} Å")
        return out


@dataclass(frozen=True)
class Validation:
    """Result of :func:`validate_selection` (nothing written yet).

    Attributes
    ----------
    summary : ValidationSummary
    selected : cryoscape.reconstruct.backproject.Reconstruction
        Map, half-maps and FSC of the selection.
    whole : Reconstruction or None
        The same for every particle of the set (None when not asked for).
    """

    summary: ValidationSummary
    selected: Any
    whole: Any | None


def validate_selection(particles, positions: np.ndarray, config=None, whole_set: bool = True,
                       show_progress: bool = True) -> Validation:
    """Back-project ``particles[positions]`` (and all ``particles``) with random half-maps.

    Parameters
    ----------
    particles : cryoscape.data.particles.ParticleSet
        The whole set (poses and CTF required).
    positions : ndarray (K,) int
        Positions of the selected particles in ``particles`` (not original indices).
    config : cryoscape.reconstruct.backproject.BackprojectConfig or None
        Defaults of :class:`BackprojectConfig`.
    whole_set
        Also reconstruct every particle for comparison.
    show_progress
        Progress bars on stderr.

    Returns
    -------
    Validation
    """
    from cryoscape.errors import InputError
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject

    config = config or BackprojectConfig()
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size < 2:
        raise InputError(f"--validate needs at least 2 selected particles (got {positions.size})",
                         fix="select more particles")
    selected = backproject(particles.subset(positions), config, show_progress=show_progress)
    whole = backproject(particles, config, show_progress=show_progress) if whole_set else None
    summary = ValidationSummary(
        n_selected=int(positions.size), n_whole=len(particles),
        selected_fsc0143_angstrom=float(selected.fsc.resolution_angstrom(0.143)),
        selected_fsc05_angstrom=float(selected.fsc.resolution_angstrom(0.5)),
        whole_fsc0143_angstrom=None if whole is None else float(whole.fsc.resolution_angstrom(0.143)),
        whole_fsc05_angstrom=None if whole is None else float(whole.fsc.resolution_angstrom(0.5)),
        voxel_size_angstrom=float(selected.voxel_size_angstrom))
    return Validation(summary=summary, selected=selected, whole=whole)


def write_validation(result: Validation, layout: ValidationLayout | str | os.PathLike) -> list[Path]:
    """Write ``map.mrc``, ``half1.mrc``, ``half2.mrc``, ``fsc.csv`` (and ``fsc_whole.csv``), ``fsc.png`` and
    ``validation.json`` into ``layout`` (a folder, created), each atomically; returns every path written."""
    from cryoscape.io.atomic import atomic_open
    from cryoscape.io.mrc import write_mrc
    from cryoscape.plotting.fsc import plot_fsc
    from cryoscape.reconstruct.fsc import write_fsc_csv

    out = layout if isinstance(layout, ValidationLayout) else ValidationLayout(Path(layout))
    out.root.mkdir(parents=True, exist_ok=True)
    selected, whole, summary = result.selected, result.whole, result.summary
    apix = summary.voxel_size_angstrom
    written = []
    for path, volume in ((out.map, selected.full), (out.half_map(1), selected.half1), (out.half_map(2),
                                                                                       selected.half2)):
        write_mrc(path, volume, apix)
        written.append(path)
    curves = {f"selection ({summary.n_selected})": (selected.fsc, out.fsc_csv)}
    if whole is not None:
        curves[f"whole set ({summary.n_whole})"] = (whole.fsc, out.fsc_whole_csv)
    for curve, path in curves.values():
        with atomic_open(path, "w") as handle:
            write_fsc_csv(curve, handle)
        written.append(path)
    plot_fsc({label: curve for label, (curve, _) in curves.items()}, out.fsc_png,
             title="gold-standard FSC (half-maps, unmasked)")
    written.append(out.fsc_png)
    with atomic_open(out.summary, "w") as handle:
        handle.write(json.dumps({**asdict(summary), "out_dir": str(out.root)}, indent=2) + "\n")
    written.append(out.summary)
    return written


def run_particles(run, datadir: str | os.PathLike | None = None):
    """The whole particle set a :class:`~cryoscape.analysis.api.TrainedRun` was trained on (with its ``--ind``).

    ``datadir`` overrides the run's data folder (stacks moved since training).
    """
    from cryoscape.analysis.api import resolve_run_path
    from cryoscape.data.particles import load_particles

    data = run.config.data
    return load_particles(run.particles_path, poses=resolve_run_path(data.poses, run.path),
                          ctf=resolve_run_path(data.ctf, run.path), ind=resolve_run_path(data.ind, run.path),
                          datadir=datadir or resolve_run_path(data.datadir, run.path),
                          amplitude_contrast=data.amplitude_contrast, require_poses=True, require_ctf=True)


def run_positions(particles, original_indices: np.ndarray) -> np.ndarray:
    """Positions in ``particles`` (the set of :func:`run_particles`) of 0-based original particle indices."""
    return np.searchsorted(particles.indices, np.asarray(original_indices, dtype=np.int64))
