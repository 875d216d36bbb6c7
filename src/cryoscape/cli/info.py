"""``cryoscape info``: what a particle dataset (or a map) holds and whether its parts fit together."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "info"
HELP = "summarise a particle dataset (count, box, pixel size, defocus, poses/CTF, where images are) or a map"
DESCRIPTION = f"""\
Summarise particles: count, box size, pixel size per optics group, defocus range, whether poses and CTF are
present and consistent with the images, and where the images are found. Reads only the headers and metadata
(plus up to 200 images for the pixel statistics and the contrast check).

A .star or .cs works without its images: when the stacks are not found, info says so (and where it looked)
and reports what the metadata give; the box and pixel size then come from the optics table / blob fields, or
from -D and --apix. A map (a cubic .mrc, not marked as an image stack) is described as a map: box, voxel size
and min/max/mean/rms.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape info particles.star
  cryoscape info particles.cs --datadir /data/J42
  cryoscape info stack.mrcs --poses pose.pkl --ctf ctf.pkl --ind keep.txt
  cryoscape info old_relion30.star -D 300          # RELION 3.0 star, images elsewhere: give the box
  cryoscape info map.mrc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, default=None,
                        help="box size of the images (pixels) when neither the images nor the metadata give it")
    parser.add_argument("--apix", "--Apix", dest="apix", type=float, default=None,
                        help="pixel size (Å) when neither the images nor the metadata give it")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--is-vol", dest="is_vol", action="store_true", default=None,
                      help="treat an .mrc as a map (default: decided from the file name and header)")
    kind.add_argument("--is-stack", dest="is_vol", action="store_false",
                      help="treat an .mrc as a stack of particle images")


def run(args: argparse.Namespace) -> int:
    from cryoscape.data.particle_metadata import load_particle_metadata
    from cryoscape.data.summary import is_map_file, summarise, summarise_map

    if is_map_file(args.particles, args.is_vol):
        from cryoscape.io.mrc import read_mrc

        data, header = read_mrc(args.particles)
        print("\n".join(summarise_map(args.particles, data, header)))
        return 0
    meta = load_particle_metadata(args.particles, poses=args.poses, ctf=args.ctf, ind=args.ind,
                                  datadir=args.datadir, amplitude_contrast=args.amplitude_contrast,
                                  box_size=args.box_size, pixel_size_angstrom=args.apix,
                                  allow_overfocus=getattr(args, "allow_overfocus", False), strict=False)
    print("\n".join(summarise(meta)))
    return 0
