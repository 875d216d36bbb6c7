"""``cryoscape write-cs``: the selected records of a cryoSPARC .cs file, every field kept."""

from __future__ import annotations

import argparse

NAME = "write-cs"
HELP = "write the selected particles of a cryoSPARC .cs (all fields kept; importable into cryoSPARC)"
DESCRIPTION = """\
Write the records of CS listed in --ind (0-based particle indices, e.g. from `cryoscape select`) to a new .cs
file: a cryoSPARC particle file of the selected rows with every field (uid, blob/*, ctf/*, alignments*,
location/*, ...) and the same dtype, so it imports into cryoSPARC (Import Particle Stack, or as the particles
of an external job). Rows are written in file order.

Indices refer to rows of CS. `cryoscape downsample` keeps particle order, so indices from a run trained on a
downsampled stack apply to the original .cs unchanged (unless the downsample used --ind). Check it with
--check-against TRAINING_PARTICLES (same count; for a .cs the same uid and blob/idx whatever the stack path).
An existing output is never replaced unless --overwrite; --validate back-projects the selection (OUT_validate/).

--poses-from RUN writes the poses learned by `cryoscape abinit` or --refine-poses into alignments3D/pose and
alignments3D/shift (added when missing), every other field kept (see write-star --help).

examples:
  cryoscape write-cs J42_particles.cs --ind state_a.txt -o state_a.cs
  cryoscape write-cs J42_particles.cs --poses-from run_abinit/ -o J42_abinit.cs
  cryoscape write-cs J42_particles.cs --ind sel.pkl -o sel.cs --check-against J42_downsampled.cs
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cs", metavar="CS", help="original cryoSPARC particle .cs")
    parser.add_argument("--ind", help="0-based particle indices into CS (.txt, .npy or .pkl)")
    parser.add_argument("-o", "--out", required=True, help="output .cs")
    parser.add_argument("--check-against", metavar="PARTICLES",
                        help="the particles the run was trained on: check they are those of CS, in order")
    from cryoscape.cli._export import add_pose_arguments, add_validation_arguments

    add_pose_arguments(parser)
    add_validation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli._export import export_subset

    return export_subset(args, kind="cs")
