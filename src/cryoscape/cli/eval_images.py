"""``cryoscape eval-images``: encode particles with a trained model and report each image's loss."""

from __future__ import annotations

import argparse

NAME = "eval-images"
HELP = "encode a particle stack with a trained run: latent mean/log-variance and per-image loss"

DESCRIPTION = """\
Encode particles (with poses and CTF) with a trained cryoscape run, preparing the images exactly as in
training (the run's contrast, window and normalisation). Writes an .npz with, per particle in original index
order: mean and logvar (zdim), indices (0-based in the original stack), mse (error of the image against its
reconstruction at z = mean, in normalised units) and kl. For a homogeneous run only indices and mse are
meaningful.

examples:
  cryoscape eval-images run/ particles.star -o run/z_eval.npz
  cryoscape eval-images run/ particles.mrcs --poses pose.pkl --ctf ctf.pkl --epoch 10 -o z10.npz
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.common import add_particle_arguments
    from cryoscape.cli.options import add_device, add_run

    add_run(parser, help="run folder (or one of its weights.N.pt)", positional_epoch=False)
    add_particle_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="output .npz")
    parser.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=64,
                        help="images per batch (default %(default)s)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="bf16 autocast (default off: evaluation in fp32)")
    add_device(parser, what="run")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs, particle_inputs, particles_from_args
    from cryoscape.training.evaluation import encode_particles, write_encoding

    check_outputs(inputs=[args.run, *particle_inputs(args)], files=[args.output])  # never replace an input
    particles = particles_from_args(args, require_poses=True)
    encoding = encode_particles(args.run, particles, epoch=args.epoch, batch_size=args.batch_size, amp=args.amp,
                                device=args.device)
    path = write_encoding(encoding, args.output)
    print(f"encoded {len(particles)} images with epoch {encoding.epoch} of {encoding.run_path}: mean mse "
          f"{float(encoding.mse.mean()):.5g}; wrote {path}")
    return 0
