"""``cryoscape direct-traversal``: straight lines in latent space between anchors."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "direct-traversal"
HELP = "latent points (and maps) on straight lines between anchor particles"

DESCRIPTION = """\
Interpolates linearly between the latent means of the anchors, in order (-n points per segment, the joints
once; --loop returns to the first anchor). Writes RUN/traversals.<epoch>/direct_<a>-<b>…/: z_values.txt (one z
per line) and series.json; with --volumes also vol_001.mrc …, montage.png (rows labelled with the segment and
the fraction along it) and direct_<a>-<b>.cxc. A straight line may cross regions without particles;
graph-traversal stays on the data. More than 100 maps need --yes.

examples:
  cryoscape direct-traversal run/ --anchors 120 5021 --volumes                # particle indices (0-based)
  cryoscape direct-traversal run/ --kmeans 20 --anchors 3 7 12 --loop -n 6 --volumes
  cryoscape direct-traversal 00_vae/z.50.pkl --anchors 120 5021     # a cryoDRGN run as it is

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder);
--kmeans K takes cluster ids (1-based, as analyze shows them); maps are made directly with --volumes.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.traversals import DirectTraversalConfig

    _traversal.add_arguments(parser, DirectTraversalConfig)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.traversals import DirectTraversalConfig, direct_traversal
    from cryoscape.cli.options import config_from_args

    config = config_from_args(DirectTraversalConfig, args)
    run_ = _traversal.open_run(args)
    _traversal.write(args, run_, [direct_traversal(run_, config)])
    return 0
