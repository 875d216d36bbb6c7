"""``cryoscape import-cryodrgn``: turn a trained cryoDRGN model into a cryoscape run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "import-cryodrgn"
HELP = (
    "import a trained cryoDRGN model (config.yaml + weights) as a cryoscape run (for eval-vol, eval-images)"
)

DESCRIPTION = """\
Read a cryoDRGN run's config.yaml (or config.pkl) and a checkpoint weights.N.pkl (cryoDRGN train_vae or
train_nn), build the equivalent cryoscape model and write a run folder with config.yaml and weights.<epoch>.pt,
so that it can be trained further (train-vae --resume), maps generated with cryoscape eval-vol (the same maps as
cryodrgn eval_vol) and particles encoded with cryoscape eval-images. Settings cryoscape cannot reproduce
(e.g. a tilt-series encoder, encode_mode: tilt) are all listed in one error.

To analyse a cryoDRGN run no import is needed: analyze, pc-traversal, graph-traversal, direct-traversal,
analyze-landscape, select, report and eval-vol read a cryoDRGN run folder as it is (cryoscape analyze 00_vae/ 49).

examples:
  cryoscape import-cryodrgn 00_vae/config.yaml 00_vae/weights.50.pkl -o imported/ --apix 1.7
  cryoscape eval-vol imported/ -z 0 0 0 0 0 0 0 0 -o vol.mrc

Contrast: cryoDRGN's CTF has the opposite sign to RELION's, which cryoscape uses, so a cryoDRGN model trained
on inverted images (its default) corresponds to cryoscape's default of no inversion; the run's invert_data is
set accordingly. Epochs: the imported epoch is the number of epochs the checkpoint was trained for, cryoDRGN 4's
own number (weights.50.pkl -> weights.50.pt); cryoDRGN before version 4 counted from 0 (weights.49.pkl, the 50th
epoch -> weights.50.pt).

Pixel size: cryoDRGN's config does not store it. Without --apix it is taken from the run's CTF pickle
(dataset_args.ctf, found as given or next to the config; rescaled from the CTF's box to the model's box); if
that file is not found the import is refused (maps need a true voxel size).

The output folder must not hold a run already, unless --overwrite (which deletes that run's config.yaml,
run.log, provenance.yaml, weights.*, z.*, reconstruct.* and analyze.* first).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="cryoDRGN config.yaml (or config.pkl)")
    parser.add_argument("weights", metavar="WEIGHTS", help="cryoDRGN checkpoint weights.N.pkl")
    parser.add_argument("-o", "--outdir", required=True, help="run folder to create")
    parser.add_argument(
        "--apix",
        "--Apix",
        dest="apix",
        type=float,
        default=None,
        help="pixel size of the training images in Å (default: from the run's CTF pickle, if found)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the output folder (default: refuse)"
    )
    parser.add_argument(
        "--epoch",
        type=int,
        default=None,
        help="epoch number to give the checkpoint (default: the epochs it was trained for, see above)",
    )


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.cryodrgn_run import (
        cryodrgn_train_config,
        epochs_completed,
        pixel_size_from_config,
        read_cryodrgn_config,
        read_cryodrgn_weights,
    )
    from cryoscape.errors import InputError
    from cryoscape.models.cryodrgn_compat import import_cryodrgn
    from cryoscape.runs import RunDir
    from cryoscape.training.config import to_dict
    from cryoscape.training.provenance import ProvenanceLog

    check_outputs(inputs=[args.config, args.weights], folders=[args.outdir],
                  files=[Path(args.outdir) / "config.yaml"])  # never replace an input
    if args.epoch is not None and args.epoch < 1:
        raise InputError(f"--epoch must be at least 1, got {args.epoch}", fix="epochs are counted from 1")
    if args.apix is not None and not args.apix > 0:
        raise InputError(f"--apix must be positive, got {args.apix}")
    run_dir = RunDir(args.outdir)
    if run_dir.holds_run() and not args.overwrite:
        raise InputError("the folder already holds a run", path=run_dir.path,
                         fix="give another -o, or --overwrite to replace it")
    cfg = read_cryodrgn_config(args.config)
    state = read_cryodrgn_weights(args.weights)
    imported = import_cryodrgn(cfg, state, source=str(args.weights), config_source=str(args.config))
    apix = args.apix
    if apix is None:
        apix = pixel_size_from_config(cfg, args.config, imported.box_size)
        if apix is None:
            ctf = (cfg.get("dataset_args") or {}).get("ctf")
            why = f"its CTF pickle {ctf} was not found" if ctf else "the run has no CTF file"
            raise InputError(
                f"the pixel size is unknown (cryoDRGN's config does not store it and {why})",
                path=args.config,
                fix="give --apix (Å per pixel of the training images)",
            )
        print(f"pixel size {apix:.4g} Å from the run's CTF file")
    config = cryodrgn_train_config(cfg, imported, Path(args.config).parent, apix)
    epoch = int(args.epoch) if args.epoch is not None else epochs_completed(cfg, state, args.weights)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    with run_dir.lock():
        if args.overwrite:
            run_dir.remove_run_files()
        run_dir.save_config(config)
        run_dir.save_checkpoint(
            epoch,
            {
                "model": imported.model.state_dict(),
                "config": to_dict(config),
                "imported_from": str(Path(args.weights).resolve()),
            },
        )
        record = ProvenanceLog(run_dir, options={"config": str(Path(args.config).resolve()),
                                                 "weights": str(Path(args.weights).resolve()),
                                                 "epoch": epoch, "apix": apix}, start_epoch=epoch)
        record.finish("imported from cryoDRGN")
    kind = f"VAE (zdim {imported.config.zdim})" if imported.config.zdim else "homogeneous model"
    print(f"imported a cryoDRGN {kind}, box {imported.box_size}, as {run_dir.weights_path(epoch)}")
    return 0
