"""``cryoscape mask``: the cryoDRGN paper's soft mask around a map."""

from __future__ import annotations

import argparse

NAME = "mask"
HELP = "soft mask around a map (threshold, dilation, cosine edge; the paper's mask by default)"
DESCRIPTION = """\
Make a soft real-space mask from a map: voxels at or above a threshold (default: half the 99.99th
percentile of the map) are grown by a distance (default 25 Å, a Euclidean ball around each voxel) and
surrounded by a raised- cosine edge (default 15 Å) falling from 1 to 0. Distances are in Å and converted
with the map's voxel size. This is the mask used for map-to-map FSC in the cryoDRGN paper.

examples:
  cryoscape mask consensus.mrc -o mask.mrc
  cryoscape mask vol.mrc -o mask.mrc --threshold 0.02 --dilate 10 --edge 6
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", metavar="MAP", help="input map (.mrc)")
    parser.add_argument("-o", "--out", required=True, help="output mask (.mrc)")
    parser.add_argument("--threshold", type=float,
                        help="absolute density threshold (default: FRACTION × the PERCENTILE-th "
                             "percentile)")
    parser.add_argument("--threshold-fraction", type=float, default=0.5, metavar="FRACTION",
                        help="fraction of the percentile used as threshold (default 0.5)")
    parser.add_argument("--percentile", type=float, default=99.99,
                        help="percentile of the map (default 99.99)")
    parser.add_argument("--dilate", type=float, default=25.0, help="dilation distance in Å (default 25)")
    parser.add_argument("--edge", type=float, default=15.0,
                        help="width of the cosine edge in Å (default 15)")
    parser.add_argument("--voxel-size", type=float, help="voxel size in Å (default: from the header)")


def check_values(args: argparse.Namespace) -> None:
    """Refuse values that would give a NaN or empty mask (before the map is read)."""
    import math

    from cryoscape.errors import InputError

    for flag, value in (("--dilate", args.dilate), ("--edge", args.edge)):
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"{flag} {value} must be a distance >= 0 in Å", fix=f"e.g. {flag} 10")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise InputError(f"--threshold {args.threshold} is not a finite number")
    if not (math.isfinite(args.threshold_fraction) and args.threshold_fraction > 0):
        raise InputError(f"--threshold-fraction {args.threshold_fraction} must be positive", fix="e.g. 0.5")
    if not 0 < args.percentile <= 100:
        raise InputError(f"--percentile {args.percentile} must be in (0, 100]", fix="e.g. 99.99")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.io.mrc import write_mrc
    from cryoscape.reconstruct.masks import MaskConfig, mask_threshold, soft_mask
    from cryoscape.reconstruct.volumes import read_map

    check_values(args)
    check_outputs(inputs=[args.map], files=[args.out])  # never replace an input
    volume, apix = read_map(args.map, args.voxel_size)
    config = MaskConfig(threshold=args.threshold, threshold_fraction=args.threshold_fraction,
                        percentile=args.percentile, dilate_angstrom=args.dilate, edge_angstrom=args.edge)
    mask = soft_mask(volume, apix, config)
    write_mrc(args.out, mask, apix)
    inside = float((mask > 0.5).mean())
    print(f"threshold {mask_threshold(volume, config):.4g}, dilation {args.dilate} Å, edge {args.edge} Å: "
          f"{100 * inside:.1f} % of the box inside (mask > 0.5); wrote {args.out}")
    return 0
