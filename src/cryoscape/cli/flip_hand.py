"""``cryoscape flip-hand``: mirror a map (invert its handedness)."""

from __future__ import annotations

import argparse

NAME = "flip-hand"
HELP = "mirror a map through the plane z = D/2 (inverts the handedness; the centre stays fixed)"
DESCRIPTION = """\
Mirror a map along z about its centre voxel (D/2): out[z] = in[(D - z) mod D]. Use it when a reconstruction
came out with the wrong hand (poses from an ab initio run can converge to the mirror image).

examples:
  cryoscape flip-hand map.mrc -o map_flipped.mrc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", metavar="MAP", help="input map (.mrc)")
    parser.add_argument("-o", "--out", required=True, help="output map (.mrc)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.io.mrc import read_mrc, write_mrc
    from cryoscape.reconstruct.transforms import flip_hand
    check_outputs(inputs=[args.map], files=[args.out])  # never replace an input
    volume, header = read_mrc(args.map)
    write_mrc(args.out, flip_hand(volume), header.voxel_size_angstrom)
    print(f"wrote {args.out}")
    return 0
