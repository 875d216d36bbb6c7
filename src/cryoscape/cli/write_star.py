"""``cryoscape write-star``: the selected rows of a RELION STAR file, every column and optics group kept."""

from __future__ import annotations

import argparse

NAME = "write-star"
HELP = "write the selected particles of a RELION .star (all columns kept, optics table reduced to groups in use)"
DESCRIPTION = """\
Write the rows of STAR listed in --ind (0-based particle indices, e.g. from `cryoscape select`) to a new STAR
file for RELION. The output is a copy of the input with only the selected particle rows: every column
(micrograph names, coordinates, classes, CTF, poses, optics-group ids) keeps its exact text, comments and
`# version` lines stay, RELION 3.0 (one table) and 3.1/4/5 (data_optics + data_particles) inputs keep their
layout. The optics table is reduced to the groups the selected particles use, renumbered 1 … K in their
original order when some are dropped (RELION looks groups up by number; rlnOpticsGroupName is kept);
--all-optics-groups keeps the full table. Rows are written in file order.

Indices refer to rows of STAR. `cryoscape downsample` keeps particle order, so indices from a run trained on a
downsampled stack apply to the original full-size STAR unchanged (unless the downsample used --ind). Check it
with --check-against TRAINING_PARTICLES: the same number of particles and the same order (image numbers whatever
the stack file, micrograph names, coordinates, defocus, angles where both files have them).

An existing output is never replaced unless --overwrite. --validate back-projects the selected particles
(random half-maps, gold-standard FSC) next to the whole file (needs the images: --datadir when they moved),
writing OUT_validate/.

--poses-from RUN writes the poses learned by `cryoscape abinit` (RUN/abinit/poses.N.npz) or refined by
train-nn/train-vae --refine-poses (RUN/poses.N.npz, preferred when present), the last epoch or --epoch N,
into rlnAngleRot/Tilt/Psi and rlnOriginXAngst/YAngst (rlnOriginX/Y in pixels for RELION 3.0 files),
every other column kept, for the particles of the run (all rows of STAR unless the run used --ind; with --ind
here, only those). Shifts are converted through Å, so poses found on a downsampled stack apply to the original.

examples:
  cryoscape write-star particles.star --ind state_a.txt -o state_a.star
  cryoscape write-star particles.star --poses-from run_abinit/ -o particles_abinit.star
  cryoscape write-star Refine3D/job040/run_data.star --ind sel.txt -o sel.star --check-against particles.128.star
  cryoscape write-star particles.star --ind sel.pkl -o sel.star --validate --datadir /data/project
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("star", metavar="STAR", help="original RELION particle .star (3.0, 3.1, 4 or 5)")
    parser.add_argument("--ind", help="0-based particle indices into STAR (.txt, .npy or .pkl)")
    parser.add_argument("-o", "--out", required=True, help="output .star")
    parser.add_argument("--all-optics-groups", action="store_true",
                        help="keep every optics group (default: only those the selected particles use)")
    parser.add_argument("--check-against", metavar="PARTICLES",
                        help="the particles the run was trained on (e.g. a downsampled .star): check that they "
                             "are the particles of STAR in the same order")
    from cryoscape.cli._export import add_pose_arguments, add_validation_arguments

    add_pose_arguments(parser)
    add_validation_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli._export import export_subset

    return export_subset(args, kind="star")
