"""Validate a particle selection: back-project it with half-maps, gold-standard FSC next to the whole set's.

This is the paper's check of a newly found state: a traditional voxel reconstruction of the particles assigned
to it must reach a sensible resolution on its own (two random halves agree), compared with the same
reconstruction of every particle.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


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
    out_dir : str
    """

    n_selected: int
    n_whole: int
    selected_fsc0143_angstrom: float
    selected_fsc05_angstrom: float
    whole_fsc0143_angstrom: float | None
    whole_fsc05_angstrom: float | None
    voxel_size_angstrom: float
    out_dir: str

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"selection ({self.n_selected} particles): gold-standard FSC 0.143 at "
               f"{self.selected_fsc0143_angstrom:.2f} Å, 0.5 at {self.selected_fsc05_angstrom:.2f} Å"]
        if self.whole_fsc0143_angstrom is not None:
            out.append(f"whole set ({self.n_whole} particles): gold-standard FSC 0.143 at "
                       f"{self.whole_fsc0143_angstrom:.2f} Å, 0.5 at {self.whole_fsc05_angstrom:.2f} Å")
        return out


def validate_selection(particles, positions: np.ndarray, out_dir: str | os.PathLike, config=None,
                       whole_set: bool = True, show_progress: bool = True) -> ValidationSummary:
    """Back-project ``particles[positions]`` (and all ``particles``) and write maps, half-maps and FSC plot.

    Parameters
    ----------
    particles : cryoscape.data.particles.ParticleSet
        The whole set (poses and CTF required).
    positions : ndarray (K,) int
        Positions of the selected particles in ``particles`` (not original indices).
    out_dir
        Receives ``map.mrc``, ``half1.mrc``, ``half2.mrc`` (the selection), ``fsc.csv``, ``fsc_whole.csv``,
        ``fsc.png`` (both curves) and ``validation.json``.
    config : cryoscape.reconstruct.backproject.BackprojectConfig or None
        Defaults of :class:`BackprojectConfig`.
    whole_set
        Also reconstruct every particle for comparison.

    Returns
    -------
    ValidationSummary
    """
    from cryoscape.errors import InputError
    from cryoscape.io.mrc import write_mrc
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject
    from cryoscape.reconstruct.fsc import plot_fsc, write_fsc_csv

    config = config or BackprojectConfig()
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size < 2:
        raise InputError(f"--validate needs at least 2 selected particles (got {positions.size})",
                         fix="select more particles")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    selected = backproject(particles.subset(positions), config, show_progress=show_progress)
    apix = selected.voxel_size_angstrom
    write_mrc(out / "map.mrc", selected.full, apix)
    write_mrc(out / "half1.mrc", selected.half1, apix)
    write_mrc(out / "half2.mrc", selected.half2, apix)
    write_fsc_csv(selected.fsc, out / "fsc.csv")
    curves = {f"selection ({positions.size})": selected.fsc}
    whole = None
    if whole_set:
        whole = backproject(particles, config, show_progress=show_progress)
        write_fsc_csv(whole.fsc, out / "fsc_whole.csv")
        curves[f"whole set ({len(particles)})"] = whole.fsc
    plot_fsc(curves, out / "fsc.png", title="gold-standard FSC (half-maps, unmasked)")
    summary = ValidationSummary(
        n_selected=int(positions.size), n_whole=len(particles),
        selected_fsc0143_angstrom=float(selected.fsc.resolution_angstrom(0.143)),
        selected_fsc05_angstrom=float(selected.fsc.resolution_angstrom(0.5)),
        whole_fsc0143_angstrom=None if whole is None else float(whole.fsc.resolution_angstrom(0.143)),
        whole_fsc05_angstrom=None if whole is None else float(whole.fsc.resolution_angstrom(0.5)),
        voxel_size_angstrom=float(apix), out_dir=str(out))
    (out / "validation.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary


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
