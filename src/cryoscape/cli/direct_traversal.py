"""``cryoscape direct-traversal``: straight lines in latent space between anchors."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "direct-traversal"
HELP = "latent points (and maps) on straight lines between anchor particles"

DESCRIPTION = """\
Interpolates linearly between the latent means of the anchors, in order (-n points per segment, the joints
once; --loop returns to the first anchor). Writes RUN/traversals.<epoch>/direct_<a>-<b>…/z_values.txt (one z
per line); with --volumes also vol_001.mrc …, montage.png and direct_<a>-<b>.cxc. A straight line may cross
regions without particles; graph-traversal stays on the data.

examples:
  cryoscape direct-traversal run/ --anchors 120 5021 --volumes                # particle indices (0-based)
  cryoscape direct-traversal run/ --kmeans 20 --anchors 3 7 12 --loop -n 6 --volumes
  cryoscape direct-traversal 00_vae/z.50.pkl --anchors 120 5021     # a cryoDRGN run as it is

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder);
--kmeans K takes cluster ids (1-based, as analyze shows them); maps are made directly with --volumes.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _traversal.add_run_arguments(parser)
    _traversal.add_anchor_arguments(parser)
    parser.add_argument("-n", dest="n_points", type=int, default=10,
                        help="points per segment, both ends included (default %(default)s)")
    parser.add_argument("--loop", action="store_true", help="go back from the last anchor to the first")


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.trajectories import anchor_rows, direct_points

    run_ = _traversal.open_run(args)
    rows, _, _ = anchor_rows(run_, args.anchors, kmeans=args.kmeans, analyze_dir=args.analyze_dir)
    points = direct_points(run_.z[rows], n_points=args.n_points, loop=args.loop)
    tag = "-".join(str(a) for a in args.anchors) + ("-loop" if args.loop else "")
    name = f"direct_k{args.kmeans}_{tag}" if args.kmeans is not None else f"direct_{tag}"
    out = _traversal.output_dir(args, run_, name)
    _traversal.write(args, run_, points, out, title=f"{run_.path.name}: direct {tag}")
    return 0
