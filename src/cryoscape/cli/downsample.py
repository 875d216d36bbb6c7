"""``cryoscape downsample``: Fourier-crop particle images (streaming) or a 3-D map to a smaller box."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "downsample"
HELP = "Fourier-crop particle images (streaming; writes a matching .star for .star input) or a map to a smaller box"
DESCRIPTION = f"""\
Downsample particle images by Fourier cropping (clipping the centred 2-D Fourier transform to the new box),
which keeps the signal below the new Nyquist frequency exactly and preserves pixel values (a constant image stays
the same constant). Images are processed in chunks with bounded memory (about --chunk images, also while the
header statistics are computed). The new pixel size is old × old_box / new_box and is written to the .mrcs
header. When PARTICLES is a .star, a star with the same rows pointing to the new stack (new pixel size and image
size; RELION 3.0 pixel origins rescaled) is written next to the output (-o out.mrcs → out.star), ready for
`cryoscape train-vae out.star`.

A map (a cubic .mrc not marked as an image stack; --is-vol / --is-stack to say so explicitly) is resampled in
3-D the same way (-o out.mrc), with the voxel size updated: use it to bring two maps to one box before `fsc`.

-D must be even and at most {1024}; a box larger than the input is refused unless --upsample (Fourier padding:
interpolation, no new information). On an error nothing is left behind (the outputs are written to temporary
files and renamed when complete).

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape downsample particles.star -D 128 -o particles.128.mrcs
  cryoscape downsample J42_particles.cs --datadir /data/J42 -D 64 -o p64.mrcs --chunk 2000
  cryoscape downsample map.mrc -D 64 -o map.64.mrc

Differences from cryoDRGN: --chunk (or -b, as in cryoDRGN) is the number of images held in memory; cryoDRGN's --chunk
(split the output into several stacks) has no equivalent: one .mrcs is written. --max-threads is ignored.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, required=True,
                        help="new box size in pixels (even, at most 1024)")
    parser.add_argument("-o", "--out", required=True, help="output file: a stack (.mrcs) or, for a map, a .mrc")
    parser.add_argument("--out-star", help="output star (default: the output stack's name with .star)")
    parser.add_argument("--chunk", "-b", "--batch-size", dest="chunk", type=int, default=1000,
                        help="images per batch held in memory (default 1000; -b as in cryoDRGN downsample)")
    parser.add_argument("--upsample", action="store_true",
                        help="allow -D larger than the input box (Fourier padding)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--is-vol", dest="is_vol", action="store_true", default=None,
                      help="PARTICLES is a map (default: decided from the file name and header)")
    kind.add_argument("--is-stack", dest="is_vol", action="store_false",
                      help="PARTICLES is a stack of images even if it is a cube")
    parser.add_argument("--max-threads", type=int, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from cryoscape.cli.common import check_outputs, particle_inputs, particles_from_args
    from cryoscape.data import downsample as ds
    from cryoscape.errors import InputError

    if args.max_threads is not None:
        print("note: --max-threads is ignored (numpy decides its threads; set OMP_NUM_THREADS)", file=sys.stderr)
    if args.chunk < 1:
        raise InputError(f"--chunk must be at least 1, got {args.chunk}")
    if ds.is_map_input(args.particles, args.is_vol):
        out = ds.check_output_name(args.out, {".mrc", ".map"}, "map.64.mrc")
        check_outputs(inputs=[args.particles], files=[out])  # never replace an input
        if any(getattr(args, name) is not None for name in ("poses", "ctf", "ind")):
            raise InputError("--poses/--ctf/--ind apply to particle stacks, not to a map", path=args.particles)
        old_box, old_voxel, new_voxel = ds.resample_map_file(args.particles, out, args.box_size,
                                                             upsample=args.upsample)
        before = f"{old_voxel:.4g}" if old_voxel else "unknown (1 assumed)"
        print(f"wrote {out}: map {old_box}³ → {args.box_size}³ voxels, voxel size {before} → {new_voxel:.4g} Å")
        return 0
    out = ds.check_output_name(args.out, {".mrcs", ".mrc"}, "particles.64.mrcs")
    particles = particles_from_args(args)
    ds.check_new_box(particles.box_size, args.box_size, upsample=args.upsample,
                     chunk_size=min(args.chunk, len(particles)), path=args.particles)
    star_in = Path(args.particles).suffix.lower() == ".star"
    star_out = (Path(args.out_star) if args.out_star else out.with_suffix(".star")) if star_in else None
    check_outputs(inputs=particle_inputs(args, particles), files=[out, star_out])  # never replace an input
    written = ds.resample_particles(particles, args.particles, args.box_size, out, star_out, chunk_size=args.chunk)
    print(f"wrote {out}: {len(particles)} images, {particles.box_size} → {args.box_size} px")
    if len(written) > 1:
        print(f"wrote {written[1]} ({len(particles)} particles)")
    return 0
