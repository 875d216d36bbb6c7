"""``cryoscape pc-traversal``: latent points (and maps) along principal components of the encodings."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "pc-traversal"
HELP = "latent points and maps along principal components of the latent encodings"

DESCRIPTION = """\
Evenly spaced points along one or more principal components (PCs) of the latent means of a trained run, from
the 5th to the 95th percentile of the data on that PC (--lim), the other PC coordinates at the mean. For each PC
writes RUN/traversals.<epoch>/pc<i>/: z_values.txt (one z per line) and series.json (the PC values); with
--volumes also the maps vol_001.mrc … (first point = 001), montage.png (slices and projections of the maps, rows
labelled with their PC value; at most 20 rows, evenly spaced) and pc<i>.cxc (ChimeraX movie). --pc must lie
between 1 and the latent dimension; more than 100 maps need --yes.

examples:
  cryoscape pc-traversal run/ --volumes                       # PC1, 10 maps
  cryoscape pc-traversal run/ 25 --pc 1 2 -n 20 --volumes -d 64  # epoch 25, PC1 and PC2, 20 maps each, 64^3
  cryoscape pc-traversal run/ --lim 2 98 --use-percentile-spacing
  chimerax run/traversals.25/pc1/pc1.cxc                      # play the series
  cryoscape pc-traversal 00_vae/z.50.pkl --volumes            # a cryoDRGN run as it is (its z file or folder)

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder); PCs
are 1-based (--pc, also --dim); maps are made directly with --volumes (no separate eval_vol step); -o is a
folder (with several PCs, a subfolder each).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.traversals import PcTraversalConfig

    _traversal.add_arguments(parser, PcTraversalConfig)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.traversals import PcTraversalConfig, pc_traversals
    from cryoscape.cli.options import config_from_args

    config = config_from_args(PcTraversalConfig, args)
    run_ = _traversal.open_run(args)
    _traversal.write(args, run_, pc_traversals(run_, config))
    return 0
