"""``cryoscape invert-contrast``: multiply a map or an image stack by -1."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import positive_int

NAME = "invert-contrast"
HELP = "multiply a map or a particle stack by -1 (white ⇄ black particles); streams large stacks"
DESCRIPTION = """\
Invert the contrast of a map (.mrc) or a stack of images (.mrcs, or an .mrc marked as an image stack), keeping
the voxel size. Stacks are processed in chunks with bounded memory. cryoscape's maps have protein positive and
RELION-extracted particles are white (protein bright); use this on data with the other convention.

examples:
  cryoscape invert-contrast map.mrc -o map_inverted.mrc
  cryoscape invert-contrast particles.mrcs -o particles_inverted.mrcs --chunk 2000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="MAP_OR_STACK", help="input .mrc map or .mrcs stack")
    parser.add_argument("-o", "--out", required=True, help="output file (.mrc or .mrcs)")
    parser.add_argument("--chunk", type=positive_int, default=1000, help="images per chunk for stacks (default 1000)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.cli.common import check_outputs
    from cryoscape.io.mrc import MrcStackReader, read_header, read_mrc, write_mrc
    from cryoscape.io.mrc_stream import MrcStackWriter
    from cryoscape.progress import progress
    from cryoscape.reconstruct.transforms import invert_contrast
    check_outputs(inputs=[args.input], files=[args.out])  # never replace an input
    header = read_header(args.input)
    is_stack = Path(args.input).suffix.lower() == ".mrcs" or header.is_image_stack
    if not is_stack:
        volume, _ = read_mrc(args.input)
        write_mrc(args.out, invert_contrast(volume), header.voxel_size_angstrom)
        print(f"wrote {args.out}")
        return 0
    reader = MrcStackReader(args.input)
    chunk = int(args.chunk)
    with MrcStackWriter(args.out, reader.n, reader.box_size, header.voxel_size_angstrom or 1.0) as writer:
        for start in progress(range(0, reader.n, chunk), desc="invert", unit="chunk"):
            stop = min(start + chunk, reader.n)
            writer.write(start, invert_contrast(reader.read(slice(start, stop))))
    reader.close()
    print(f"wrote {args.out}: {reader.n} images")
    return 0
