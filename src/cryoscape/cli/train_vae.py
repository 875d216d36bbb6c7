"""``cryoscape train-vae``: train the heterogeneous VAE (image encoder + coordinate decoder) with known poses.

The options shared with ``train-nn`` are defined here (:func:`add_training_arguments`,
:func:`config_from_args`, :func:`run_training`); ``cli/train_nn.py`` reuses them.
"""

from __future__ import annotations

import argparse

NAME = "train-vae"
HELP = "train the heterogeneous VAE (latent z per particle, decoder V(k, z)) on particles with poses"

DIFFERENCES = """\
differences from cryoDRGN (same option names otherwise):
  contrast     images are used as they are (RELION CTF sign: protein white, as RELION/cryoSPARC write them);
               cryoDRGN inverts by default (its CTF has the opposite sign). --invert-data inverts;
               --uninvert-data is accepted and is our default.
  network      --enc-dim/--dec-dim default 256 (cryoDRGN 1024). --domain hartley (default; cryoDRGN's
               default is fourier) evaluates the network once per Hermitian pair (H(k), H(-k)): half of
               cryoDRGN's Hartley cost per image. --domain hartley_full is cryoDRGN's --domain hartley decoder
               (one value, evaluated at k and -k): twice our default's cost per image; its latent tends to
               organise in fewer epochs (measured figures: benchmarks/results/vs_cryodrgn*.json).
  batch        -b defaults to 8 on a CPU, as cryoDRGN's, and to 16 on a GPU, where it reaches cryoDRGN's
               accuracy soonest (larger batches run more images/s but learn less per epoch).
  seed         --seed defaults to 0, so a run is reproducible (cryoDRGN draws a random seed).
  lr           --lr defaults to 3e-4 for train-vae (cryoDRGN 1e-4): the default decoder's latent then organises
               in as few epochs as cryoDRGN's Hartley decoder's at 1e-4. train-nn keeps 1e-4.
  precision    automatic: bf16 autocast on GPUs of compute capability >= 8.0 (fp16 with loss scaling on older
               ones); on a CPU the faster of bf16 and fp32 for this model and batch, timed at the start of
               the run and cached per machine (--amp / --no-amp force one); fp32 weights and loss; the choice
               is kept in config.yaml (precision) for resumes. cryoDRGN uses AMP on GPUs only. Reruns and
               resumes with the same seed
               are bit-identical on the same machine (cryoscape runs Intel MKL in its alignment-independent
               mode, MKL_CBWR=AUTO,STRICT, unless MKL_CBWR is set).
  poses/CTF    read straight from a .star/.cs PARTICLES file (no parse step); --poses/--ctf also take .pkl.
  files        RUN/weights.N.pt, z.N.npz (mean, logvar, indices) with N = epochs completed (1, 2, ...);
               cryoDRGN numbers weights.N.pkl/z.N.pkl from 0. Resume with --resume RUN (cryoDRGN: --load).
  loss disc    radius D/2 lattice pixels (--loss-radius-px), the radius maps are decoded to; cryoDRGN: D/2."""

RUN_FOLDER = """\
run folder:
  A folder that already holds a run (config.yaml or weights.N.pt) is refused unless --resume continues it or
  --overwrite DELETES that run's config.yaml, run.log, provenance.yaml, weights.*.pt, z.*.npz,
  reconstruct.*.mrc and analyze.*/ first (other files are left alone). While training, RUN/.lock keeps a
  second training out of the folder; a lock left by a killed process is taken over with a warning.
  RUN/provenance.yaml records each invocation: command line, versions, host, start time, per-epoch wall time
  and loss (cryoscape view-config RUN shows it).

resume:
  --resume RUN continues RUN from its latest checkpoint, in RUN (-o not needed; -o OTHER continues into the
  empty folder OTHER). --resume RUN/weights.N.pt continues from epoch N; in RUN this needs --overwrite when
  later epochs exist (they are deleted). The run keeps its settings; these options may be given to change
  them, and each change is logged: -n, --checkpoint-every, --log-interval, --device, --lr, --wd, -b, --beta,
  --beta-schedule, --amp/--no-amp, --loss-radius-px, --volume-radius-px, --num-workers, --lazy,
  --max-memory-gb, --chunk-size, --datadir. Any other option (architecture, --zdim, --seed, PARTICLES,
  --poses, --ctf, --ind, image preparation) must match the run's, or the resume is refused. Outputs missing
  next to a checkpoint (a kill between weights.N.pt and z.N.npz) are recomputed from it."""

DESCRIPTION = f"""\
Train a VAE for heterogeneous reconstruction with known poses and CTF (the cryoDRGN method): an encoder
maps each particle image to a latent distribution q(z|x), a coordinate MLP V(k, z) returns the Hartley
transform of the 3-D map at frequency k; images are modelled as CTF x central slice, shifted. Writes
RUN/config.yaml, run.log, provenance.yaml, weights.N.pt and z.N.npz (latent mean/log-variance, original
particle order) every --checkpoint-every epochs.

examples:
  cryoscape train-vae particles.star --zdim 8 -n 25 -o run/
  cryoscape train-vae particles.mrcs --poses pose.pkl --ctf ctf.pkl --zdim 8 --ind keep.pkl -o run/
  cryoscape train-vae --resume run/ -n 50                 # continue run/ to 50 epochs
  cryoscape train-vae --resume run/weights.10.pt --lr 3e-5 -o run_lowlr/   # branch from epoch 10
  torchrun --nproc_per_node 4 -m cryoscape.cli.main train-vae particles.star --zdim 8 -o run/

{RUN_FOLDER}

{DIFFERENCES}
"""


def add_training_arguments(parser: argparse.ArgumentParser, *, heterogeneous: bool) -> None:
    """Options of train-vae (``heterogeneous``) or train-nn; dests equal the config field names."""
    from cryoscape.cli.common import add_particle_arguments
    from cryoscape.models.config import DOMAINS, FIRST_LAYER_INITS, ModelConfig
    from cryoscape.training.config import (
        DEFAULT_BATCH_SIZE,
        DEFAULT_BATCH_SIZE_GPU,
        DataConfig,
        TrainConfig,
        default_lr,
    )

    t, m, d = TrainConfig(), ModelConfig(), DataConfig()
    parser.add_argument(
        "particles",
        metavar="PARTICLES",
        nargs="?",
        help="particle images: .mrcs/.mrc, RELION .star, cryoSPARC .cs or .txt list of stacks "
        "(not needed with --resume)",
    )
    parser.add_argument(
        "-o", "--outdir", default=None, help="run folder to write (default with --resume: the run resumed)"
    )
    parser.add_argument(
        "--resume",
        "--load",
        dest="resume",
        metavar="RUN_OR_WEIGHTS",
        help="continue a run from its latest checkpoint (a run folder) or from a weights.N.pt (see below)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in the output folder first (see below); default: refuse such a folder",
    )
    add_particle_arguments(parser, positional=False)

    g = parser.add_argument_group("training")
    g.add_argument(
        "-n",
        "--num-epochs",
        dest="num_epochs",
        type=int,
        default=None,
        help=f"epochs to train (default {t.num_epochs}; with --resume: the run's)",
    )
    g.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=int,
        default=None,
        help=f"images per step per process (default {DEFAULT_BATCH_SIZE} on a CPU, {DEFAULT_BATCH_SIZE_GPU} on a GPU; "
        "with --resume: the run's)",
    )
    lr = default_lr(m.zdim if heterogeneous else 0)
    g.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {lr:g}; cryoDRGN 1e-4)")
    g.add_argument(
        "--wd",
        "--weight-decay",
        dest="weight_decay",
        type=float,
        default=t.weight_decay,
        help="Adam weight decay (default %(default)s)",
    )
    if heterogeneous:
        g.add_argument("--beta", type=float, default=None, help="KL weight (default 1/zdim)")
        g.add_argument(
            "--beta-schedule",
            dest="beta_schedule",
            default=t.beta_schedule,
            help="constant, linear:E (ramp over E epochs) or cyclic:E (default %(default)s)",
        )
    g.add_argument(
        "--loss-radius-px",
        dest="loss_radius_px",
        type=float,
        default=None,
        help="radius of the Fourier disc of the loss, lattice pixels (default D/2, = the map radius)",
    )
    g.add_argument(
        "--freq-march-epochs",
        dest="freq_march_epochs",
        type=float,
        default=t.freq_march_epochs,
        help="frequency marching: grow the loss disc from --freq-march-start-px to the loss radius over the "
        "first E epochs (cheaper early steps; default %(default)s = off)",
    )
    g.add_argument(
        "--freq-march-start-px",
        dest="freq_march_start_px",
        type=float,
        default=t.freq_march_start_px,
        help="loss radius (lattice pixels) where frequency marching starts (default %(default)s)",
    )
    g.add_argument(
        "--amp",
        dest="amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--amp: reduced precision (bf16 autocast; fp16 on GPUs older than Ampere), --no-amp: fp32; default "
        "auto: bf16 on a GPU, and on a CPU the faster of bf16 and fp32, timed on this run's model and batch "
        "at its start (cached per machine)",
    )
    g.add_argument("--seed", type=int, default=t.seed, help="random seed (default %(default)s)")
    g.add_argument(
        "--checkpoint-every",
        "--checkpoint",
        dest="checkpoint_every",
        type=int,
        default=None,
        help=f"write weights every N epochs and after the last (default {t.checkpoint_every})",
    )
    g.add_argument(
        "--log-interval",
        dest="log_interval",
        type=int,
        default=None,
        help=f"images between run.log progress lines (default {t.log_interval})",
    )
    g.add_argument(
        "--volume-radius-px",
        dest="volume_radius_px",
        type=float,
        default=None,
        help="frequency radius of generated maps, pixels (default D/2: Nyquist, = the trained radius)",
    )
    g.add_argument(
        "--device",
        default=t.device,
        choices=("auto", "cpu", "cuda"),
        help="where to train (default %(default)s: CUDA when available)",
    )

    g = parser.add_argument_group("images")
    g.add_argument(
        "--invert-data",
        dest="invert_data",
        action="store_true",
        default=d.invert_data,
        help="multiply images by -1 (default: no; RELION CTF sign, white particles)",
    )
    g.add_argument(
        "--uninvert-data",
        dest="invert_data",
        action="store_false",
        help="do not invert (the default; accepted for cryoDRGN compatibility)",
    )
    g.add_argument(
        "--window",
        dest="window",
        action=argparse.BooleanOptionalAction,
        default=d.window,
        help="soft circular real-space window (default on)",
    )
    g.add_argument(
        "--window-r",
        dest="window_r",
        type=float,
        default=d.window_r,
        help="window inner radius, fraction of D/2 (default %(default)s)",
    )
    g.add_argument(
        "--data-std-windowed",
        dest="data_std_windowed",
        action=argparse.BooleanOptionalAction,
        default=d.data_std_windowed,
        help="normalise by the std of the windowed images instead of the images before the window (default "
        "off: cryoDRGN's normalisation, which sets the weight of the KL term as cryoDRGN does)",
    )
    g.add_argument(
        "--lazy",
        dest="lazy",
        action="store_const",
        const=True,
        default=d.lazy,
        help="stream images from disk (default: in memory when they fit in --max-memory-gb)",
    )
    g.add_argument(
        "--max-memory-gb",
        dest="max_memory_gb",
        type=float,
        default=d.max_memory_gb,
        help="memory for holding the images (default %(default)s GiB)",
    )
    g.add_argument(
        "--chunk-size",
        dest="chunk_size",
        type=int,
        default=d.chunk_size,
        help="largest run of consecutive images per shuffling chunk when streaming (default %(default)s)",
    )
    g.add_argument(
        "--num-workers",
        dest="num_workers",
        type=int,
        default=d.num_workers,
        help="data loading processes (default 0: one worker when streaming, none in memory)",
    )

    if heterogeneous:
        g = parser.add_argument_group("encoder")
        g.add_argument("--zdim", type=int, default=m.zdim, help="latent dimension (default %(default)s)")
        g.add_argument(
            "--enc-dim",
            dest="enc_dim",
            type=int,
            default=m.enc_dim,
            help="encoder width (default %(default)s)",
        )
        g.add_argument(
            "--enc-layers",
            dest="enc_layers",
            type=int,
            default=m.enc_layers,
            help="encoder hidden layers (default %(default)s)",
        )
        g.add_argument(
            "--encoder-input",
            dest="encoder_input",
            choices=("hartley", "real"),
            default=m.encoder_input,
            help="encoder sees the CTF-sign-flipped Hartley image or the real image (default %(default)s)",
        )
        g.add_argument(
            "--use-real",
            dest="encoder_input",
            action="store_const",
            const="real",
            help="same as --encoder-input real (cryoDRGN name)",
        )
        g.add_argument(
            "--enc-mask-radius-px",
            "--enc-mask",
            dest="enc_mask_radius_px",
            type=float,
            default=m.enc_mask_radius_px,
            help="radius of the encoder's input disc (default D/2 - 1)",
        )

    g = parser.add_argument_group("decoder")
    g.add_argument(
        "--dec-dim",
        "--dim",
        dest="dec_dim",
        type=int,
        default=m.dec_dim,
        help="decoder width (default %(default)s)",
    )
    g.add_argument(
        "--dec-layers",
        "--layers",
        dest="dec_layers",
        type=int,
        default=m.dec_layers,
        help="decoder hidden layers (default %(default)s)",
    )
    g.add_argument(
        "--pe-type",
        dest="pe_type",
        default=m.pe_type,
        choices=("gaussian", "geom_ft", "geom_lowf", "none"),
        help="positional encoding (default %(default)s)",
    )
    g.add_argument(
        "--pe-dim",
        dest="pe_dim",
        type=int,
        default=m.pe_dim,
        help="frequencies of the positional encoding (default D/2)",
    )
    g.add_argument(
        "--feat-sigma",
        dest="feat_sigma",
        type=float,
        default=m.feat_sigma,
        help="scale of the gaussian positional encoding (default %(default)s)",
    )
    g.add_argument(
        "--domain",
        choices=DOMAINS,
        default=m.domain,
        help="decoder output: hartley = pair (H(k), H(-k)) per evaluation on half the frequencies, "
             "fastest per image; hartley_full = cryoDRGN's Hartley decoder (one value, evaluated at k and -k: "
             f"2x the cost per image{', the latent tends to organise in fewer epochs' if heterogeneous else ''}); "
             "fourier = (Re, Im) on half the frequencies, cryoDRGN's Fourier decoder (default %(default)s)",
    )
    g.add_argument(
        "--seam-band-px",
        dest="seam_band_px",
        type=float,
        default=m.seam_band_px,
        help="hartley/fourier: blend the two half-spaces linearly within this many frequency pixels of the "
             "kz = 0 plane, so the map's transform has no jump there; 0 = cryoDRGN's hard switch "
             "(default %(default)s)",
    )
    g.add_argument(
        "--first-layer-init",
        dest="first_layer_init",
        default=m.first_layer_init,
        choices=FIRST_LAYER_INITS,
        help="initial weights of the decoder's first layer: joint = one Linear over [encoded k, z] as cryoDRGN "
             "(a small initial z projection); separate = each part with its own fan-in (a large one); auto = "
             "joint, except separate for a hartley/fourier decoder with zdim 1 (default %(default)s)",
    )
    g.add_argument(
        "--activation",
        default=m.activation,
        choices=("relu", "leaky_relu", "gelu", "silu", "tanh"),
        help="activation (default %(default)s)",
    )
    _defaults_to_none(parser)


def _config_fields() -> set[str]:
    import dataclasses

    from cryoscape.models.config import ModelConfig
    from cryoscape.training.config import DataConfig, TrainConfig

    return {f.name for cls in (TrainConfig, DataConfig, ModelConfig) for f in dataclasses.fields(cls)}


def _defaults_to_none(parser: argparse.ArgumentParser) -> None:
    """Options that are config fields default to None (= not given); the help keeps the real default.

    An option left None takes the config default for a new run and the run's own value on ``--resume``, so
    an explicitly given option is always seen (and applied or refused) and never confused with a default.
    """
    fields = _config_fields()
    for action in parser._actions:
        if action.dest in fields and action.default is not None:
            if action.help:
                action.help = action.help.replace("%(default)s", str(action.default))
            action.default = None


def given_options(args: argparse.Namespace) -> dict:
    """The config-field options given on the command line (name -> value)."""
    resolved = {"data_std", "box_size", "pixel_size_angstrom"}
    return {
        name: value
        for name in sorted(_config_fields() - resolved - {"model", "data"})
        if (value := getattr(args, name, None)) is not None
    }


def _pick(cls, args: argparse.Namespace, **fixed):
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if f.name in fixed:
            values[f.name] = fixed[f.name]
        elif hasattr(args, f.name) and getattr(args, f.name) is not None:
            values[f.name] = getattr(args, f.name)
    return cls(**values)


def config_from_args(args: argparse.Namespace, *, heterogeneous: bool):
    """The TrainConfig of the parsed options (fields taken by name; unset options keep the defaults)."""
    from cryoscape.errors import InputError
    from cryoscape.models.config import ModelConfig
    from cryoscape.training.config import DataConfig, TrainConfig
    from cryoscape.training.losses import parse_beta_schedule

    model = _pick(ModelConfig, args) if heterogeneous else _pick(ModelConfig, args, zdim=0)
    data = _pick(DataConfig, args, data_std=None, box_size=None, pixel_size_angstrom=None)
    config = _pick(TrainConfig, args, model=model, data=data)
    try:
        parse_beta_schedule(config.beta_schedule)
    except ValueError as exc:
        raise InputError(str(exc), fix="use --beta-schedule constant, linear:E or cyclic:E") from None
    for name in ("num_epochs", "batch_size", "checkpoint_every", "log_interval", "chunk_size"):
        obj = config.data if name == "chunk_size" else config
        if getattr(obj, name) is not None and getattr(obj, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(obj, name)}")
    if config.data.num_workers < 0:
        raise InputError(f"--num-workers must be >= 0, got {config.data.num_workers}",
                         fix="0 reads in the main process")
    if not config.lr > 0:
        raise InputError(f"--lr must be positive, got {config.lr}")
    if heterogeneous and model.zdim < 1:
        raise InputError(
            f"--zdim must be at least 1 for train-vae, got {model.zdim}",
            fix="use cryoscape train-nn for a homogeneous reconstruction",
        )
    return config


def run_training(args: argparse.Namespace, *, heterogeneous: bool) -> int:
    """Build the config from ``args`` (a new run) or the changes to the run being resumed, and train."""
    from cryoscape.errors import InputError
    from cryoscape.training.loop import fit

    if args.resume is None and args.particles is None:
        raise InputError(
            "PARTICLES is required (unless --resume is given)",
            fix="give a .mrcs/.star/.cs/.txt particle file",
        )
    if args.resume is None and args.outdir is None:
        raise InputError("-o RUN is required for a new run", fix="give the run folder to write with -o")
    config = config_from_args(args, heterogeneous=heterogeneous)  # also checks the values given
    from cryoscape.cli.common import check_outputs, particle_inputs
    check_outputs(inputs=particle_inputs(args), folders=[args.outdir])  # never replace an input
    changes = given_options(args)
    kind = "vae" if heterogeneous else "homogeneous"
    if args.resume is not None:
        result = fit(None, args.outdir, resume_from=args.resume, changes=changes, overwrite=args.overwrite,
                     model_kind=kind)
    else:
        result = fit(config, args.outdir, changes=changes, overwrite=args.overwrite, model_kind=kind)
    from cryoscape.progress import is_secondary_rank

    if not is_secondary_rank():  # once per torchrun job
        print(f"trained {result.epoch} epochs; results in {result.run.path}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, heterogeneous=True)


def run(args: argparse.Namespace) -> int:
    return run_training(args, heterogeneous=True)
