"""``cryoscape train-nn``: train a homogeneous coordinate decoder (one map) on particles with poses."""

from __future__ import annotations

import argparse

from cryoscape.cli.train_vae import RUN_FOLDER, add_training_arguments, run_training

NAME = "train-nn"
HELP = "train a homogeneous neural map V(k) (decoder only) on particles with poses and CTF"

DIFFERENCES = """\
differences from cryoDRGN train_nn (same option names otherwise):
  contrast     images are used as they are (RELION CTF sign: protein white, as RELION/cryoSPARC write them);
               cryoDRGN inverts by default (its CTF has the opposite sign). --invert-data inverts;
               --uninvert-data is accepted and is our default.
  network      --dec-dim (alias --dim) default 256, --dec-layers (alias --layers). --domain hartley (default)
               evaluates the network once per Hermitian pair (H(k), H(-k)); --domain hartley_full is
               cryoDRGN's Hartley decoder (one value, evaluated at k and -k); --domain fourier is cryoDRGN's
               Fourier decoder.
  seed         --seed defaults to 0, so a run is reproducible (cryoDRGN draws a random seed).
  precision    --amp (default on): bf16 autocast on CPUs with native bf16 and on GPUs, fp32 weights and loss.
  poses/CTF    read straight from a .star/.cs PARTICLES file (no parse step); --poses/--ctf also take .pkl.
  files        RUN/weights.N.pt and reconstruct.N.mrc with N = epochs completed (1, 2, ...); cryoDRGN numbers
               weights.N.pkl/reconstruct.N.mrc from 0. Resume with --resume RUN (cryoDRGN: --load).
  loss disc    radius D/2 - 1 lattice pixels (--loss-radius-px); cryoDRGN uses D/2 on its (D+1) lattice."""

DESCRIPTION = f"""\
Train a coordinate MLP V(k) returning the Hartley transform of one 3-D map, from particle images with known
poses and CTF (the homogeneous mode of cryoDRGN). Writes RUN/config.yaml, run.log, provenance.yaml, and every
--checkpoint-every epochs weights.N.pt and reconstruct.N.mrc (the map, with the voxel size in its header).
Accuracy against a voxel back-projection: benchmarks/results/accuracy_homogeneous.json.

examples:
  cryoscape train-nn particles.star -n 20 -o run_nn/
  cryoscape train-nn particles.mrcs --poses pose.pkl --ctf ctf.pkl --dec-dim 512 -o run_nn/
  cryoscape train-nn --resume run_nn/ -n 40                 # continue run_nn/ to 40 epochs
  cryoscape train-nn particles.star -n 20 -o run_nn/ --overwrite   # start run_nn/ over

{RUN_FOLDER.replace("weights.N.pt and z.N.npz", "weights.N.pt and reconstruct.N.mrc").replace("--zdim, ", "")}

{DIFFERENCES}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, heterogeneous=False)


def run(args: argparse.Namespace) -> int:
    return run_training(args, heterogeneous=False)
