"""``cryoscape train-nn``: train a homogeneous coordinate decoder (one map) on particles with poses."""

from __future__ import annotations

import argparse

from cryoscape.cli.train_vae import DIFFERENCES, add_training_arguments, run_training

NAME = "train-nn"
HELP = "train a homogeneous neural map V(k) (decoder only) on particles with poses and CTF"

DESCRIPTION = f"""\
Train a coordinate MLP V(k) returning the Hartley transform of one 3-D map, from particle images with known
poses and CTF (the homogeneous mode of cryoDRGN). Writes RUN/config.yaml, run.log, and every
--checkpoint-every epochs weights.N.pt and reconstruct.N.mrc (the map, with the voxel size in its header).

examples:
  cryoscape train-nn particles.star -n 20 -o run_nn/
  cryoscape train-nn particles.mrcs --poses pose.pkl --ctf ctf.pkl --dec-dim 512 -o run_nn/
  cryoscape train-nn --resume run_nn/ -n 40 -o run_nn/

{DIFFERENCES.replace("--enc-dim/--dec-dim default 256", "--dec-dim (alias --dim) default 256")}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, heterogeneous=False)


def run(args: argparse.Namespace) -> int:
    return run_training(args, heterogeneous=False)
