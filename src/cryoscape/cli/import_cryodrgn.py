"""``cryoscape import-cryodrgn``: turn a trained cryoDRGN model into a cryoscape run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "import-cryodrgn"
#: Learning rate recorded for an imported run: cryoDRGN's default (its config.yaml does not store the rate).
CRYODRGN_LR = 1e-4
HELP = (
    "import a trained cryoDRGN model (config.yaml + weights) as a cryoscape run (for eval-vol, eval-images)"
)

DESCRIPTION = """\
Read a cryoDRGN run's config.yaml (or config.pkl) and a checkpoint weights.N.pkl, build the equivalent
cryoscape model and write a run folder with config.yaml and weights.<epoch>.pt, so that maps can be generated
with cryoscape eval-vol (same maps as cryodrgn eval_vol) and particles encoded with cryoscape eval-images.
Settings cryoscape does not support are all listed in one error.

examples:
  cryoscape import-cryodrgn 00_vae/config.yaml 00_vae/weights.49.pkl -o imported/ --apix 1.7
  cryoscape eval-vol imported/ -z 0 0 0 0 0 0 0 0 -o vol.mrc

Contrast: cryoDRGN's CTF has the opposite sign to RELION's, which cryoscape uses, so a cryoDRGN model trained
on inverted images (its default) corresponds to cryoscape's default of no inversion; the run's invert_data is
set accordingly. The imported epoch is cryoDRGN's 0-based epoch + 1 (weights.49.pkl -> weights.50.pt).

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
        help="epoch number to give the checkpoint (default: cryoDRGN's epoch + 1, else 1)",
    )


def read_cryodrgn_config(path: str | Path) -> dict:
    """A cryoDRGN config as a mapping (yaml, or a pickle read with the restricted loader)."""
    import yaml

    from cryoscape.errors import InputError
    from cryoscape.io.legacy import load_pickle

    path = Path(path)
    if not path.is_file():
        raise InputError("cryoDRGN config not found", path=path, fix="give the run's config.yaml")
    if path.suffix.lower() == ".pkl":
        cfg = load_pickle(path)
    else:
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"not a readable yaml file ({str(exc).splitlines()[0]})", path=path) from None
    if not isinstance(cfg, dict) or "model_args" not in cfg or "lattice_args" not in cfg:
        raise InputError(
            "not a cryoDRGN config (no model_args/lattice_args)",
            path=path,
            fix="give the config.yaml written by cryodrgn train_vae/train_nn",
        )
    return cfg


def read_cryodrgn_weights(path: str | Path) -> dict:
    """A cryoDRGN checkpoint, read with ``torch.load(weights_only=True)`` (no code can run)."""
    import torch

    from cryoscape.errors import InputError
    from cryoscape.models.cryodrgn_compat import cryodrgn_checkpoint_safe_globals

    path = Path(path)
    if not path.is_file():
        raise InputError("cryoDRGN weights not found", path=path, fix="give the run's weights.N.pkl")
    try:
        with torch.serialization.safe_globals(cryodrgn_checkpoint_safe_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"cannot read the checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            path=path,
            fix="give a cryoDRGN weights.N.pkl",
        ) from None
    if not isinstance(state, dict):
        raise InputError("not a cryoDRGN checkpoint", path=path)
    return state


def pixel_size_from_config(cfg: dict, config_path: str | Path, box: int) -> float | None:
    """Pixel size (Å) of the model's box from the cryoDRGN run's CTF pickle (or an Apix entry); None if absent.

    The CTF pickle's pixel size is that of its own box (column 0); it is rescaled to ``box``.
    """
    import numpy as np

    from cryoscape.errors import InputError
    from cryoscape.io.legacy import read_ctf_pickle

    dataset_args = cfg.get("dataset_args") or {}
    for key in ("Apix", "apix", "pixel_size_angstrom"):
        value = dataset_args.get(key, cfg.get(key))
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    ctf = dataset_args.get("ctf")
    if not isinstance(ctf, str) or not ctf:
        return None
    candidates = [Path(ctf)] if Path(ctf).is_absolute() else [Path(ctf), Path(config_path).parent / ctf,
                                                              Path(config_path).parent / Path(ctf).name]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return None
    params = read_ctf_pickle(found, allow_overfocus=True)
    sizes = np.unique(np.asarray(params.pixel_size_angstrom, dtype=np.float64))
    if sizes.size != 1 or not sizes[0] > 0:
        raise InputError(f"the CTF pickle holds {sizes.size} pixel sizes", path=found, fix="give --apix")
    return float(sizes[0]) * params.box_size / box


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.errors import InputError
    from cryoscape.models.cryodrgn_compat import import_cryodrgn
    from cryoscape.runs import RunDir
    from cryoscape.training.config import DataConfig, TrainConfig, to_dict
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
    imported = import_cryodrgn(cfg, state, source=str(args.weights))
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
    dataset_args = cfg.get("dataset_args") or {}
    data = DataConfig(
        particles=dataset_args.get("particles"),
        ctf=dataset_args.get("ctf"),
        poses=dataset_args.get("poses"),
        ind=dataset_args.get("ind") if isinstance(dataset_args.get("ind"), str) else None,
        datadir=dataset_args.get("datadir"),
        invert_data=not imported.invert_data,  # cryoDRGN's CTF sign is the opposite of ours
        window=imported.window,
        window_r=imported.window_r,
        data_std=imported.data_std,
        box_size=imported.box_size,
        pixel_size_angstrom=apix,
    )
    config = TrainConfig(
        model=imported.config,
        data=data,
        seed=int(cfg.get("seed") or 0),
        lr=CRYODRGN_LR,  # cryoDRGN's config does not record the rate; its default, for a continued run
        volume_radius_px=imported.volume_radius_px,
    )
    if args.epoch is not None:
        epoch = int(args.epoch)
    elif isinstance(state.get("epoch"), int):
        epoch = int(state["epoch"]) + 1
    else:
        epoch = 1
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
