"""Poses, CTF and an index subset of a dataset as cryoDRGN pickles (``cryoscape export-cryodrgn``).

:func:`cryodrgn_records` reads the metadata (no images needed) and returns :class:`CryoDRGNRecords`;
:func:`export_paths` names the files; :func:`write_records` writes all of them or none.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError

#: cryoDRGN's names of the export: ``parse_pose_*`` write only the poses, ``parse_ctf_*`` only the CTF.
CRYODRGN_PARSE_COMMANDS = ("parse_pose_star", "parse_ctf_star", "parse_pose_csparc", "parse_ctf_csparc")


@dataclass(frozen=True)
class CryoDRGNRecords:
    """What is exported: poses and CTF (None when not asked for), the 0-based index subset (or None), the number
    of particles of the source and, when the images were not found, why (the export used the metadata alone)."""

    poses: Any
    ctf: Any
    index: np.ndarray | None
    n_source: int
    images_problem: str | None


def records_wanted(command: str | None) -> tuple[bool, bool]:
    """(poses, ctf) written under the command name used (``parse_pose_*``: poses only, ``parse_ctf_*``: CTF)."""
    name = (command or "").replace("-", "_")
    if name.startswith("parse_pose"):
        return True, False
    if name.startswith("parse_ctf"):
        return False, True
    return True, True


def cryodrgn_records(particles: str | os.PathLike, *, poses_wanted: bool = True, ctf_wanted: bool = True,
                     poses: str | None = None, ctf: str | None = None, ind: str | None = None,
                     datadir: str | None = None, amplitude_contrast: float | None = None,
                     box_size: int | None = None, pixel_size_angstrom: float | None = None,
                     allow_overfocus: bool = False, voltage_kv: float | None = None, cs_mm: float | None = None,
                     phase_shift_deg: float | None = None) -> CryoDRGNRecords:
    """The records of a dataset to export; ``box_size`` different from the file's rescales poses and CTF to it, and
    ``voltage_kv``/``cs_mm``/``phase_shift_deg`` replace those values of every particle.

    Raises
    ------
    InputError
        The box size is unknown (a RELION 3.0 star without its images: give ``box_size``), or poses / CTF asked for
        are not found.
    """
    from cryoscape.data.particle_metadata import load_particle_metadata
    from cryoscape.data.particles import load_index

    meta = load_particle_metadata(particles, poses=poses if poses_wanted else None,
                                  ctf=ctf if ctf_wanted else None, datadir=datadir,
                                  amplitude_contrast=amplitude_contrast, box_size=box_size,
                                  pixel_size_angstrom=pixel_size_angstrom, allow_overfocus=allow_overfocus)
    pose_rec = meta.poses if poses_wanted else None
    ctf_rec = meta.ctf if ctf_wanted else None
    if meta.box_size is None and ((poses_wanted and pose_rec is None) or (ctf_wanted and ctf_rec is None)):
        raise InputError("the box size is unknown (a RELION 3.0 star does not store it and the images were not "
                         "found)", path=particles, fix="pass -D <box in pixels>")
    if poses_wanted and pose_rec is None:
        raise InputError(f"no poses: {meta.notes.get('poses', 'none found')}", path=particles,
                         fix="give --poses with a .star, .cs or cryoDRGN pose .pkl")
    if ctf_wanted and ctf_rec is None:
        raise InputError(f"no CTF parameters: {meta.notes.get('CTF', 'none found')}", path=particles,
                         fix="give --ctf, or --apix / -w when a value is missing")
    if box_size is not None:
        pose_rec = pose_rec.rescaled(box_size) if pose_rec is not None and pose_rec.box_size != box_size else pose_rec
        ctf_rec = ctf_rec.rescaled(box_size) if ctf_rec is not None and ctf_rec.box_size != box_size else ctf_rec
    if ctf_rec is not None:
        changes = {name: np.full(len(ctf_rec), float(value)) for name, value in
                   (("voltage_kv", voltage_kv), ("cs_mm", cs_mm), ("phase_shift_deg", phase_shift_deg))
                   if value is not None}
        ctf_rec = dataclasses.replace(ctf_rec, **changes) if changes else ctf_rec
    index = None if ind is None else load_index(ind, meta.n_source)
    return CryoDRGNRecords(pose_rec, ctf_rec, index, meta.n_source,
                           None if meta.has_images else str(meta.images_problem))


def export_paths(out: str | os.PathLike, prefix: str, records: CryoDRGNRecords, *, single_file_ok: bool = False
                 ) -> dict[str, Path]:
    """``{"pose"/"ctf"/"ind": path}`` for ``out``: a folder (``prefix`` + pose.pkl, ctf.pkl, ind.pkl), or the .pkl
    itself when ``single_file_ok`` (cryoDRGN's parse_* commands) and one record is written."""
    target = Path(out)
    if target.suffix.lower() == ".pkl":
        if not single_file_ok:
            raise InputError("export-cryodrgn writes pose.pkl and ctf.pkl into a folder: -o names the folder",
                             path=target, fix=f"give -o {target.with_suffix('')}/ (or use parse_pose_star/"
                             "parse_ctf_star to write one .pkl)")
        if records.index is not None:
            raise InputError("with --ind, ind.pkl is written too: -o must be a folder", path=target,
                             fix=f"give -o {target.parent}/")
        return {"pose" if records.poses is not None else "ctf": target}
    wanted = {"pose": records.poses, "ctf": records.ctf, "ind": records.index}
    return {kind: target / f"{prefix}{kind}.pkl" for kind, value in wanted.items() if value is not None}


def write_records(paths: dict[str, Path], records: CryoDRGNRecords) -> list[Path]:
    """Write every record, or nothing: the files go to a temporary folder first and are moved at the end (folders
    created here are removed on failure). Returns the paths written."""
    import shutil
    import tempfile

    from cryoscape.io.legacy import write_ctf_pickle, write_index, write_pose_pickle

    writers = {"pose": (write_pose_pickle, records.poses), "ctf": (write_ctf_pickle, records.ctf),
               "ind": (write_index, records.index)}
    folders = sorted({p.parent for p in paths.values()})
    created = [f for f in folders if not f.exists()]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-cryodrgn.", dir=folders[0]))
    try:
        staged = {kind: writers[kind][0](staging / f"{kind}.pkl", writers[kind][1]) for kind in paths}
        for kind, path in paths.items():
            os.replace(staged[kind], path)
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return list(paths.values())
