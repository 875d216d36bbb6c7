"""``cryoscape pc-traversal``: latent points (and maps) along principal components of the encodings."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "pc-traversal"
HELP = "latent points and maps along principal components of the latent encodings"

DESCRIPTION = """\
Evenly spaced points along one or more principal components (PCs) of the latent means of a trained run, from
the 5th to the 95th percentile of the data on that PC (--lim), the other PC coordinates at the mean. For each PC
writes RUN/traversals.<epoch>/pc<i>/z_values.txt (one z per line); with --volumes also the maps vol_001.mrc …
(first point = 001), montage.png (slices and projections of every map) and pc<i>.cxc (ChimeraX movie).

examples:
  cryoscape pc-traversal run/ --volumes                       # PC1, 10 maps
  cryoscape pc-traversal run/ --pc 1 2 -n 20 --volumes -d 64  # PC1 and PC2, 20 maps each, 64^3
  cryoscape pc-traversal run/ --lim 2 98 --use-percentile-spacing
  chimerax run/traversals.25/pc1/pc1.cxc                      # play the series
  cryoscape pc-traversal 00_vae/z.50.pkl --volumes            # a cryoDRGN run as it is (its z file or folder)

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder); PCs
are 1-based (--pc, also --dim); maps are made directly with --volumes (no separate eval_vol step); -o is a
folder (with several PCs, a subfolder each).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _traversal.add_run_arguments(parser)
    parser.add_argument("--pc", "--dim", dest="pc", type=int, nargs="+", default=[1], metavar="I",
                        help="principal component(s), 1-based (default 1)")
    parser.add_argument("-n", dest="n_points", type=int, default=10, help="points per PC (default %(default)s)")
    parser.add_argument("--lim", type=float, nargs=2, default=(5.0, 95.0), metavar=("LOW", "HIGH"),
                        help="end points as percentiles of the data on the PC (default 5 95)")
    parser.add_argument("--use-percentile-spacing", dest="percentile_spacing", action="store_true",
                        help="points at evenly spaced percentiles (denser where the data are)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.analysis.trajectories import pc_points

    run_ = _traversal.open_run(args)
    z = run_.z
    for pc in args.pc:
        points, coords = pc_points(z, pc=pc, n_points=args.n_points, low_percentile=args.lim[0],
                                   high_percentile=args.lim[1], percentile_spacing=args.percentile_spacing)
        name = f"pc{pc}"
        if args.outdir and len(args.pc) > 1:
            out = Path(args.outdir) / name
        else:
            out = _traversal.output_dir(args, run_, name)
        labels = [f"PC{pc} {c:.3g}" for c in coords]
        _traversal.write(args, run_, points, out, title=f"{run_.path.name} epoch {run_.epoch}: PC{pc}",
                         labels=labels)
    return 0
