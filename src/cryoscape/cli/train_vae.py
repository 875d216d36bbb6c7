"""``cryoscape train-vae``: train the heterogeneous VAE (image encoder + coordinate decoder) with known poses.

Options are the config fields (TrainConfig, DataConfig, ModelConfig); ``train-nn`` reuses this module's parts."""

from __future__ import annotations

import argparse

from cryoscape.cli import _help

NAME = "train-vae"
HELP = "train the heterogeneous VAE (latent z per particle, decoder V(k, z)) on particles with poses"
DESCRIPTION = _help.TRAIN_VAE_DESCRIPTION

#: (group title, config class name, fields shown in that group, VAE only).
_GROUPS = (
    ("training", "TrainConfig", ("num_epochs", "batch_size", "lr", "weight_decay", "beta", "beta_schedule",
                                 "loss_radius_px", "freq_march_epochs", "freq_march_start_px", "amp", "seed",
                                 "checkpoint_every", "log_interval", "volume_radius_px", "device"), False),
    ("poses", "TrainConfig", ("refine_poses", "pose_lr_px", "pose_prior_px", "pose_warmup_epochs"), False),
    ("images", "DataConfig", ("invert_data", "window", "window_r", "data_std_windowed", "lazy", "max_memory_gb",
                              "chunk_size", "num_workers"), False),
    ("encoder", "ModelConfig", ("zdim", "enc_dim", "enc_layers", "encoder_input", "enc_mask_radius_px"), True),
    ("decoder", "ModelConfig", ("dec_dim", "dec_layers", "pe_type", "pe_dim", "feat_sigma", "domain",
                                "seam_band_px", "first_layer_init", "activation"), False),
)
_VAE_ONLY = ("beta", "beta_schedule")


def _classes() -> dict[str, type]:
    from cryoscape.models.config import ModelConfig
    from cryoscape.training.config import DataConfig, TrainConfig

    return {"TrainConfig": TrainConfig, "DataConfig": DataConfig, "ModelConfig": ModelConfig}


def add_training_arguments(parser: argparse.ArgumentParser, *, heterogeneous: bool) -> None:
    """Options of train-vae (``heterogeneous``) or train-nn; dests are the config field names.

    Every config option defaults to None (= not given; the help shows the real default): a new run takes the
    config's default, a resumed run keeps its own value, and an option given is applied or refused.
    """
    from cryoscape.cli.common import add_particle_arguments
    from cryoscape.cli.options import add_config_options
    from cryoscape.training.config import default_lr

    parser.add_argument("particles", metavar="PARTICLES", nargs="?",
                        help="particle images: .mrcs/.mrc, RELION .star, cryoSPARC .cs or .txt list of stacks "
                        "(not needed with --resume)")
    parser.add_argument("-o", "--outdir", default=None,
                        help="run folder to write (default with --resume: the run resumed)")
    parser.add_argument("--resume", "--load", dest="resume", metavar="RUN_OR_WEIGHTS",
                        help="continue a run from its latest checkpoint (a run folder) or from a weights.N.pt "
                        "(see below)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run already in the output folder first (see below); default: refuse such "
                        "a folder")
    add_particle_arguments(parser, positional=False)
    parser.set_defaults(allow_overfocus=None)  # None = not given, as every config option
    classes = _classes()
    defaults = {"lr": default_lr(classes["ModelConfig"]().zdim if heterogeneous else 0)}
    for title, cls, names, vae_only in _GROUPS:
        if vae_only and not heterogeneous:
            continue
        group = parser.add_argument_group(title)
        shown = tuple(n for n in names if heterogeneous or n not in _VAE_ONLY)
        add_config_options(group, classes[cls], only=shown, defaults=defaults, unset_default=True)
        if title == "encoder":
            group.add_argument("--use-real", dest="encoder_input", action="store_const", const="real",
                               help="same as --encoder-input real (cryoDRGN name)")


def _given(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` given on the command line (name -> value; options left out are None)."""
    import dataclasses

    names = (f.name for f in dataclasses.fields(cls) if f.name not in ("model", "data"))
    return {name: value for name in names if (value := getattr(args, name, None)) is not None}


def config_from_args(args: argparse.Namespace, *, heterogeneous: bool):
    """The TrainConfig of the parsed options (options not given keep the config defaults); values checked."""
    classes = _classes()
    model = classes["ModelConfig"](**{**_given(classes["ModelConfig"], args),
                                      **({} if heterogeneous else {"zdim": 0})})
    data = classes["DataConfig"](**_given(classes["DataConfig"], args))
    config = classes["TrainConfig"](model=model, data=data, **_given(classes["TrainConfig"], args))
    return config.check_kind("vae" if heterogeneous else "homogeneous")


def run_training(args: argparse.Namespace, *, heterogeneous: bool) -> int:
    """Build the config from ``args`` (a new run) or the changes to the run being resumed, and train."""
    from cryoscape.cli.common import check_outputs, particle_inputs
    from cryoscape.errors import InputError
    from cryoscape.progress import is_secondary_rank
    from cryoscape.training.loop import fit

    if args.resume is None and args.particles is None:
        raise InputError("PARTICLES is required (unless --resume is given)",
                         fix="give a .mrcs/.star/.cs/.txt particle file")
    if args.resume is None and args.outdir is None:
        raise InputError("-o RUN is required for a new run", fix="give the run folder to write with -o")
    config = config_from_args(args, heterogeneous=heterogeneous)  # checks the values given
    check_outputs(inputs=particle_inputs(args), folders=[args.outdir])  # never replace an input
    changes = {name: value for cls in _classes().values() for name, value in _given(cls, args).items()}
    changes = dict(sorted(changes.items()))
    kind = "vae" if heterogeneous else "homogeneous"
    result = fit(None if args.resume else config, args.outdir, resume_from=args.resume, changes=changes,
                 overwrite=args.overwrite, model_kind=kind)
    if not is_secondary_rank():  # once per torchrun job
        print(f"trained {result.epoch} epochs; results in {result.run.path}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, heterogeneous=True)


def run(args: argparse.Namespace) -> int:
    return run_training(args, heterogeneous=True)
