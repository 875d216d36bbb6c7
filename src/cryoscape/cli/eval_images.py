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

    parser.add_argument("run", metavar="RUN", help="run folder (or one of its weights.N.pt)")
    add_particle_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="output .npz")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    parser.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=64,
        help="images per batch (default %(default)s)",
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast (default off: evaluation in fp32)",
    )
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run (default %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from cryoscape.cli.common import check_outputs, particle_inputs, particles_from_args
    from cryoscape.runs import find_run, save_latents
    from cryoscape.training.config import load_trained
    from cryoscape.training.distributed import choose_device
    from cryoscape.training.loop import evaluate, make_dataset, resolve_data, use_amp
    from cryoscape.training.step import ReconstructionObjective
    check_outputs(inputs=[args.run, *particle_inputs(args)], files=[args.output])  # never replace an input
    if args.batch_size < 1:
        from cryoscape.errors import InputError
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    run_dir, epoch = find_run(args.run)
    if args.epoch is not None:
        epoch = args.epoch
    device = choose_device(args.device)
    model, config, epoch = load_trained(run_dir, epoch, device=str(device))
    particles = particles_from_args(args, require_poses=True)
    # the run's preparation and normalisation; the pixel size of these particles
    data = dataclasses.replace(config.data, pixel_size_angstrom=None, lazy=None)
    config = resolve_data(dataclasses.replace(config, data=data), particles)
    dataset = make_dataset(config, particles)
    box = int(config.data.box_size)
    loss_module = ReconstructionObjective(model, box, config.loss_radius(box)).to(device)
    amp = use_amp(dataclasses.replace(config, amp=args.amp), device)
    mu, logvar, mse = evaluate(
        loss_module, dataset, batch_size=args.batch_size, amp=amp, device=device, beta=config.effective_beta()
    )
    n = len(particles)
    if mu is None:
        mu = logvar = np.zeros((n, 0), np.float32)
    kl = -0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=1)
    path = save_latents(
        args.output, mu, logvar, particles.indices, mse=mse.astype(np.float32), kl=kl.astype(np.float32)
    )
    print(
        f"encoded {n} images with epoch {epoch} of {run_dir.path}: mean mse {float(mse.mean()):.5g}; "
        f"wrote {path}"
    )
    return 0
