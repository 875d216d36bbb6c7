"""``cryoscape train-nn``: train a homogeneous coordinate decoder (one map) on particles with poses."""

from __future__ import annotations

import argparse

from cryoscape.cli import _help
from cryoscape.cli.train_vae import add_training_arguments, run_training

NAME = "train-nn"
HELP = "train a homogeneous neural map V(k) (decoder only) on particles with poses and CTF"
DESCRIPTION = _help.TRAIN_NN_DESCRIPTION


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, heterogeneous=False)


def run(args: argparse.Namespace) -> int:
    return run_training(args, heterogeneous=False)
