"""``cryoscape export-cryodrgn``: poses and CTF as cryoDRGN pickles, for users who mix tools.

Also answers to cryoDRGN's ``parse_pose_star``, ``parse_ctf_star``, ``parse_pose_csparc`` and
``parse_ctf_csparc`` (see :data:`ALIASES`): under those names only the poses or only the CTF are written, and
``-o`` may name the ``.pkl`` file as in cryoDRGN.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "export-cryodrgn"
ALIASES = ("parse_pose_star", "parse_ctf_star", "parse_pose_csparc", "parse_ctf_csparc")
HELP = "write poses and CTF as cryoDRGN pose.pkl / ctf.pkl (and the index subset as ind.pkl); needs no images"
DESCRIPTION = f"""\
Write the poses and CTF parameters of a dataset in cryoDRGN's pickle layout, into the folder -o: pose.pkl
(rotations N×3×3, translations N×2 as a fraction of the box) and ctf.pkl (N×9: box, Å/px, defocus U, V (Å),
angle (°), kV, Cs (mm), amplitude contrast, phase shift (°)). As cryoDRGN expects, the pickles hold every
particle of the source in its order; with --ind the subset goes to ind.pkl (0-based). Translations are divided
by the box size (not box+1). -o out and -o out/ both mean the folder out; --prefix adds a file-name prefix.

The images are not needed: a .star/.cs is exported from its metadata when its stacks are absent. The box then
comes from the optics table (rlnImageSize) or blob/shape; a RELION 3.0 star does not give it: pass -D. With -D
different from the file's box, the poses/CTF are rescaled to -D (the pixel size scales; translations as a
fraction of the box do not change). Nothing is written unless every file can be: a failure leaves no output.

cryoDRGN names: parse_pose_star / parse_pose_csparc write only pose.pkl, parse_ctf_star / parse_ctf_csparc only
ctf.pkl, and under those names -o may be the .pkl file itself (cryoscape parse_pose_star p.star -o pose.pkl -D 300
runs as in cryoDRGN). -w is the amplitude contrast; --kv, --cs, --ps override the voltage (kV), spherical
aberration (mm) and phase shift (°) of every particle; --png (cryoDRGN's CTF plot) is not supported.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape export-cryodrgn particles.star -o cryodrgn/
  cryoscape export-cryodrgn J42_particles.cs --ind keep.txt -o cryodrgn --prefix keep_
  cryoscape export-cryodrgn cryosparc_P12_J24_001_particles.cs -o j24     # images not needed
  cryoscape parse_pose_star relion30.star -D 300 -o pose.pkl               # the cryoDRGN command line
"""

#: Which records each command name writes.
_WRITES = {"pose": ("poses",), "ctf": ("ctf",)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-o", "--outdir", "--out", dest="out", required=True,
                        help="output folder (created); under the parse_* names also a .pkl file")
    parser.add_argument("--prefix", default="", help="file-name prefix inside the folder (default: none)")
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, default=None,
                        help="box size of the images (pixels): needed for a RELION 3.0 star without its images")
    parser.add_argument("--apix", "--Apix", dest="apix", type=float, default=None,
                        help="pixel size (Å) when the file does not give it")
    group = parser.add_argument_group("CTF overrides (cryoDRGN parse_ctf_* options)")
    group.add_argument("-w", dest="amplitude_contrast", type=float, metavar="W",
                       help="amplitude contrast, when the file lacks it (same as --amplitude-contrast)")
    group.add_argument("--kv", type=float, default=None, help="override the voltage (kV) of every particle")
    group.add_argument("--cs", type=float, default=None, help="override Cs (mm) of every particle")
    group.add_argument("--ps", type=float, default=None, help="override the phase shift (°) of every particle")
    group.add_argument("--png", default=None, help=argparse.SUPPRESS)


def _what_to_write(command: str | None) -> tuple[bool, bool]:
    """(poses, ctf) written under the command name used."""
    name = (command or NAME).replace("-", "_")
    if name.startswith("parse_pose"):
        return True, False
    if name.startswith("parse_ctf"):
        return False, True
    return True, True


def output_paths(out: str, prefix: str, command: str | None, poses: bool, ctf: bool, ind: bool
                 ) -> tuple[Path, dict[str, Path]]:
    """The output folder and ``{"pose"/"ctf"/"ind": path}`` for ``-o out`` (a folder; or a .pkl under parse_*)."""
    from cryoscape.errors import InputError

    target = Path(out)
    single = (command or NAME).startswith("parse_")
    if target.suffix.lower() == ".pkl":
        if not single:
            raise InputError("export-cryodrgn writes pose.pkl and ctf.pkl into a folder: -o names the folder",
                             path=target, fix=f"give -o {target.with_suffix('')}/ (or use parse_pose_star/"
                             "parse_ctf_star to write one .pkl)")
        if ind:
            raise InputError("with --ind, ind.pkl is written too: -o must be a folder", path=target,
                             fix=f"give -o {target.parent}/")
        kind = "pose" if poses else "ctf"
        return target.parent, {kind: target}
    paths = {}
    if poses:
        paths["pose"] = target / f"{prefix}pose.pkl"
    if ctf:
        paths["ctf"] = target / f"{prefix}ctf.pkl"
    if ind:
        paths["ind"] = target / f"{prefix}ind.pkl"
    return target, paths


def _override_ctf(ctf, args: argparse.Namespace):
    import dataclasses

    import numpy as np

    changes = {}
    for option, name in (("kv", "voltage_kv"), ("cs", "cs_mm"), ("ps", "phase_shift_deg")):
        value = getattr(args, option)
        if value is not None:
            changes[name] = np.full(len(ctf), float(value))
    return dataclasses.replace(ctf, **changes) if changes else ctf


def write_all(paths: dict[str, Path], records: dict[str, object]) -> None:
    """Write every record, or nothing: all files go to a temporary folder first and are moved at the end."""
    import os
    import shutil
    import tempfile

    from cryoscape.io.legacy import write_ctf_pickle, write_index, write_pose_pickle

    writers = {"pose": write_pose_pickle, "ctf": write_ctf_pickle, "ind": write_index}
    folders = sorted({p.parent for p in paths.values()})
    created = [f for f in folders if not f.exists()]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-cryodrgn.", dir=folders[0]))
    try:
        staged = {}
        for kind in paths:
            staged[kind] = writers[kind](staging / f"{kind}.pkl", records[kind])
        for kind, path in paths.items():
            os.replace(staged[kind], path)
    except BaseException:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import sys

    from cryoscape.data.particle_metadata import load_particle_metadata
    from cryoscape.data.particles import load_index
    from cryoscape.errors import InputError

    command = getattr(args, "command", None)
    want_poses, want_ctf = _what_to_write(command)
    if args.png is not None:
        print("note: --png is ignored (cryoscape does not plot the CTF here)", file=sys.stderr)
    meta = load_particle_metadata(args.particles, poses=args.poses if want_poses else None,
                                  ctf=args.ctf if want_ctf else None, datadir=args.datadir,
                                  amplitude_contrast=args.amplitude_contrast, box_size=args.box_size,
                                  pixel_size_angstrom=args.apix,
                                  allow_overfocus=getattr(args, "allow_overfocus", False))
    poses = meta.poses if want_poses else None
    ctf = meta.ctf if want_ctf else None
    if meta.box_size is None and ((want_poses and poses is None) or (want_ctf and ctf is None)):
        raise InputError("the box size is unknown (a RELION 3.0 star does not store it and the images were not "
                         "found)", path=args.particles, fix="pass -D <box in pixels>")
    if want_poses and poses is None:
        raise InputError(f"no poses: {meta.notes.get('poses', 'none found')}", path=args.particles,
                         fix="give --poses with a .star, .cs or cryoDRGN pose .pkl")
    if want_ctf and ctf is None:
        raise InputError(f"no CTF parameters: {meta.notes.get('CTF', 'none found')}", path=args.particles,
                         fix="give --ctf, or --apix / -w when a value is missing")
    if args.box_size is not None:
        if poses is not None and poses.box_size != args.box_size:
            poses = poses.rescaled(args.box_size)
        if ctf is not None and ctf.box_size != args.box_size:
            ctf = ctf.rescaled(args.box_size)
    if ctf is not None:
        ctf = _override_ctf(ctf, args)
    index = None if args.ind is None else load_index(args.ind, meta.n_source)
    _, paths = output_paths(args.out, args.prefix, command, poses is not None, ctf is not None,
                            index is not None)
    if not meta.has_images:
        print(f"note: images not found ({meta.images_problem}): exported from the metadata alone",
              file=sys.stderr)
    from cryoscape.cli.common import check_outputs, particle_inputs
    check_outputs(inputs=particle_inputs(args), files=paths.values())  # never replace an input
    write_all(paths, {"pose": poses, "ctf": ctf, "ind": index})
    n = meta.n_source
    for kind, path in paths.items():
        count = f"{len(index)} of {n} particles" if kind == "ind" else f"{n} particles"
        print(f"wrote {path} ({count})")
    return 0
