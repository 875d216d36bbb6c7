"""``cryoscape import-cryodrgn``: turn a trained cryoDRGN model into a cryoscape run directory."""

from __future__ import annotations

import argparse

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
    parser.add_argument("--apix", "--Apix", dest="apix", type=float, default=None,
                        help="pixel size of the training images in Å (default: from the run's CTF pickle, if found)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in the output folder (default: refuse)")
    parser.add_argument("--epoch", type=int, default=None,
                        help="epoch number to give the checkpoint (default: the epochs it was trained for, see above)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.cryodrgn_run import import_cryodrgn_run
    from cryoscape.runs import RunDir

    check_outputs(inputs=[args.config, args.weights], folders=[args.outdir],
                  files=[RunDir(args.outdir).config_path])  # never replace an input
    result = import_cryodrgn_run(args.config, args.weights, args.outdir, apix=args.apix, epoch=args.epoch,
                                 overwrite=args.overwrite)
    if result.pixel_size_from_ctf:
        print(f"pixel size {result.pixel_size_angstrom:.4g} Å from the run's CTF file")
    kind = f"VAE (zdim {result.zdim})" if result.zdim else "homogeneous model"
    print(f"imported a cryoDRGN {kind}, box {result.box_size}, as {result.weights_path}")
    return 0
