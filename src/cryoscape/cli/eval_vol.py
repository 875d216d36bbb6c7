"""``cryoscape eval-vol``: generate maps from a trained model at given latent coordinates."""

from __future__ import annotations

import argparse

from cryoscape.training.evaluation import MAX_MAPS_UNASKED

NAME = "eval-vol"
HELP = "generate 3-D maps from a trained run (at given z for a VAE; the map of a homogeneous run)"

DESCRIPTION = """\
Decode maps from a trained run (cryoscape train-vae / train-nn / import-cryodrgn). The decoder is evaluated
only inside the run's volume_radius_px (default D/2, the Nyquist sphere = the default loss radius, so maps
hold only trained frequencies) and on half of Fourier space (Hermitian symmetry), several maps per batch. Maps
are float32 .mrc (z, y, x) with the voxel size in the header: the run's pixel size x D / D' with --downsample
D'.

examples:
  cryoscape eval-vol run/ -z 0.5 -1.2 0 0 0 0 0 0 -o vol.mrc        # one map at one z (zdim 8)
  cryoscape eval-vol run/ 20 --zfile centers.txt -o maps/         # epoch 20 (or --epoch 20): maps/vol_000.mrc, ...
  cryoscape eval-vol run_nn/ -o map.mrc --downsample 64              # homogeneous run, 64^3 map
  cryoscape eval-vol run/ --zfile run/z.20.npz -o maps/ --flip       # every particle's mean z (large!)
  cryoscape eval-vol 00_vae/weights.50.pkl -c 00_vae/config.yaml --zfile z.txt -o maps/   # cryoDRGN run

A cryoDRGN run is read as it is (no import step): its folder (with --epoch N) or its weights.N.pkl, with the
config.yaml beside it or given by -c; the maps equal cryodrgn eval_vol's, with the voxel size from the run's
CTF pickle (or --apix) where cryoDRGN writes 1.

--zfile reads a .txt (one z per line), .npy, cryoDRGN .pkl or cryoscape z.N.npz (its means). More than
100 maps are refused unless --yes is given (the message says how many maps and how much disk they take).
--flip mirrors the map (reverses the z axis: fixes the hand), --invert multiplies by -1.
Differences from cryoDRGN: a cryoscape run folder replaces WEIGHTS -c CONFIG; epochs are 1-based (default: the
last); -o is a folder unless it ends in .mrc and a single map is made.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.options import add_device, add_map_output, add_run

    add_run(parser, help="run folder (or one of its weights.N.pt), or a cryoDRGN run folder or weights.N.pkl")
    parser.add_argument("-c", "--config", default=None,
                        help="config.yaml of cryoDRGN weights (default: the one beside them)")
    zs = parser.add_mutually_exclusive_group()
    zs.add_argument("-z", type=float, nargs="+", metavar="Z", help="one latent coordinate (zdim values)")
    zs.add_argument("--zfile", help="latent coordinates, one per row (.txt, .npy, .pkl or z.N.npz)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (or a .mrc file when a single map is made)")
    parser.add_argument("--prefix", default="vol_", help="file name prefix in the output folder (default vol_)")
    parser.add_argument("--yes", "-y", action="store_true",
                        help=f"allow more than {MAX_MAPS_UNASKED} maps (one per z: they can fill a disk)")
    add_map_output(parser)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="decode in bf16 (autocast; default: on GPUs and on CPUs with native bf16, else off); "
                        "maps agree with --no-amp to ~1%% of their range")
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.cli.options import chosen_epoch
    from cryoscape.training.evaluation import MapRequest, generate_maps

    request = MapRequest(run=args.run, output=args.output, epoch=chosen_epoch(args),
                         z=None if args.z is None else tuple(args.z), zfile=args.zfile, cryodrgn_config=args.config,
                         prefix=args.prefix, downsample=args.downsample, apix=args.apix, flip=args.flip,
                         invert=args.invert, batch_size=args.batch_size, amp=args.amp, device=args.device,
                         yes=args.yes)
    written = generate_maps(request, check_outputs=lambda inputs, files: check_outputs(inputs=inputs, files=files))
    if not written.pixel_size_known:
        print("warning: the run has no pixel size; wrote 1 Å/voxel (give --apix)")
    where = written.paths[0] if len(written.paths) == 1 else written.paths[0].parent
    print(f"wrote {len(written.paths)} map(s) of {written.box_size}^3 at {written.voxel_size_angstrom:.4g} Å/voxel "
          f"(epoch {written.epoch}) to {where}")
    return 0
