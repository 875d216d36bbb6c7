"""``cryoscape downsample``: Fourier-crop particle images to a smaller box, streaming."""

from __future__ import annotations

import argparse
from pathlib import Path

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "downsample"
HELP = "Fourier-crop particle images to a smaller box (streaming; writes a matching .star for .star input)"
DESCRIPTION = f"""\
Downsample particle images by Fourier cropping (clipping the centred 2-D Fourier transform to the new box),
which keeps the signal below the new Nyquist frequency exactly and preserves pixel values (a constant image stays
the same constant). Images are processed in chunks with bounded memory. The new pixel size is
old × old_box / new_box and is written to the .mrcs header. When PARTICLES is a .star, a star with the same rows
pointing to the new stack (new pixel size and image size; RELION 3.0 pixel origins rescaled) is written next to
the output (-o out.mrcs → out.star), ready for `cryoscape train-vae out.star`.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape downsample particles.star -D 128 -o particles.128.mrcs
  cryoscape downsample J42_particles.cs --datadir /data/J42 -D 64 -o p64.mrcs --chunk 2000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, required=True,
                        help="new box size in pixels (even)")
    parser.add_argument("-o", "--out", required=True, help="output stack (.mrcs)")
    parser.add_argument("--out-star", help="output star (default: the output stack's name with .star)")
    parser.add_argument("--chunk", type=int, default=1000, help="images per chunk in memory (default 1000)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import particles_from_args
    from cryoscape.data.downsample import resample_stack, write_resampled_star
    from cryoscape.errors import InputError

    out = Path(args.out)
    if out.suffix.lower() not in {".mrcs", ".mrc"}:
        raise InputError(f"output must be an .mrcs stack, got '{out.suffix}'", path=out,
                         fix="name it e.g. particles.64.mrcs")
    particles = particles_from_args(args)
    old_box = particles.box_size
    resample_stack(particles, args.box_size, out, chunk_size=args.chunk)
    print(f"wrote {out}: {len(particles)} images, {old_box} → {args.box_size} px")
    if Path(args.particles).suffix.lower() == ".star":
        star_out = Path(args.out_star) if args.out_star else out.with_suffix(".star")
        write_resampled_star(args.particles, star_out, out, particles.indices, old_box, args.box_size)
        print(f"wrote {star_out}")
    return 0
