"""``cryoscape view-config``: show a run's settings, data, epochs done, latest losses and provenance."""

from __future__ import annotations

import argparse

NAME = "view-config"
HELP = "show a run's settings, data, epochs done, latest losses and how it was trained"

DESCRIPTION = """\
Print what a run folder written by train-vae, train-nn or import-cryodrgn holds: the data it was trained on
(particles, poses, CTF, index selection, box, pixel size), its settings (config.yaml: model, optimisation,
image preparation), the epochs done (checkpoints weights.N.pt and their z.N.npz / reconstruct.N.mrc), the
latest losses, and one line per training invocation from provenance.yaml (start time, host, versions,
epochs, mean wall time per epoch, status, command line). cryoDRGN calls this command view_config.

examples:
  cryoscape view-config run/
  cryoscape view-config run/ 10              # (or --epoch 10) the settings stored in weights.10.pt and that
                                             # epoch's losses (default: config.yaml and the latest epoch)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.options import add_run

    add_run(parser, help="run folder (or one of its weights.N.pt)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.options import chosen_epoch
    from cryoscape.training.summary import run_summary

    print("\n".join(run_summary(args.run, chosen_epoch(args))))
    return 0
