"""``cryoscape export-cryodrgn``: poses and CTF as cryoDRGN pickles, for users who mix tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "export-cryodrgn"
HELP = "write poses and CTF as cryoDRGN pose.pkl / ctf.pkl (and the index subset as ind.pkl)"
DESCRIPTION = f"""\
Write the poses and CTF parameters of a dataset in cryoDRGN's pickle layout: <prefix>pose.pkl (rotations N×3×3,
translations N×2 as a fraction of the box) and <prefix>ctf.pkl (N×9: box, Å/px, defocus U, V (Å), angle (°), kV,
Cs (mm), amplitude contrast, phase shift (°)). As cryoDRGN expects, the pickles hold every particle of the source
in its order; with --ind the subset goes to <prefix>ind.pkl (0-based). Translations are divided by the box size
(not box+1).

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape export-cryodrgn particles.star -o cryodrgn/
  cryoscape export-cryodrgn J42_particles.cs --ind keep.txt -o cryodrgn/keep_
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-o", "--outdir-prefix", dest="out", required=True,
                        help="output prefix: a folder ending in / or a file-name prefix")


def run(args: argparse.Namespace) -> int:
    from cryoscape.data.particles import load_index, load_particles
    from cryoscape.errors import InputError
    from cryoscape.io.legacy import write_ctf_pickle, write_index, write_pose_pickle

    particles = load_particles(args.particles, poses=args.poses, ctf=args.ctf, datadir=args.datadir,
                               amplitude_contrast=args.amplitude_contrast)
    if particles.poses is None and particles.ctf is None:
        raise InputError("has neither poses nor CTF parameters to export", path=args.particles,
                         fix="give --poses and/or --ctf")
    prefix = args.out
    if prefix.endswith(("/", "\\")):
        Path(prefix).mkdir(parents=True, exist_ok=True)
    else:
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    written = []
    if particles.poses is not None:
        write_pose_pickle(f"{prefix}pose.pkl", particles.poses)
        written.append(f"{prefix}pose.pkl")
    if particles.ctf is not None:
        write_ctf_pickle(f"{prefix}ctf.pkl", particles.ctf)
        written.append(f"{prefix}ctf.pkl")
    if args.ind is not None:
        write_index(f"{prefix}ind.pkl", load_index(args.ind, len(particles)))
        written.append(f"{prefix}ind.pkl")
    for path in written:
        print(f"wrote {path} ({len(particles)} particles)")
    return 0
