"""Frozen configuration of a training run (flag = field = yaml key).

A run's ``config.yaml`` is exactly :class:`TrainConfig` as nested mappings: ``model`` (the models layer's
``ModelConfig``), ``data`` (:class:`DataConfig`) and the optimisation fields at the top level. Every field
whose name is not marked *resolved* has a command-line flag of the same name with dashes (``num_epochs`` ↔
``--num-epochs``/``-n``, ``model.zdim`` ↔ ``--zdim``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryoscape.configio import check_choice, check_range, dataclass_from_mapping, option
from cryoscape.errors import InputError
from cryoscape.models.config import ModelConfig

# Defaults that differ from cryoDRGN are listed by the commands' --help (cli/train_vae.py); why each default was
# chosen: docs/decisions.md.
#: Images per step when ``batch_size`` is not given: on a CPU (cryoDRGN's 8) and on a CUDA GPU.
DEFAULT_BATCH_SIZE = 8
DEFAULT_BATCH_SIZE_GPU = 16
#: Adam learning rate when ``lr`` is not given: a VAE (zdim > 0; cryoDRGN's default is 1e-4) and a homogeneous
#: model (train-nn, as cryoDRGN).
DEFAULT_LR = 3e-4
DEFAULT_LR_HOMOGENEOUS = 1e-4
#: ``data.data_std_windowed`` of configs that predate the field (their data_std came from windowed images).
LEGACY_DATA_STD_WINDOWED = True
#: Where training runs: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
DEVICES = ("auto", "cpu", "cuda")
#: Kinds of model a training command builds (``vae``: zdim >= 1; ``homogeneous``: zdim 0).
MODEL_KINDS = ("vae", "homogeneous")


def default_batch_size(device: str) -> int:
    """The batch size of a config without ``batch_size`` on ``device`` (a torch device type or name):
    :data:`DEFAULT_BATCH_SIZE_GPU` on CUDA, else :data:`DEFAULT_BATCH_SIZE`."""
    return DEFAULT_BATCH_SIZE_GPU if str(device).split(":")[0] == "cuda" else DEFAULT_BATCH_SIZE


def default_lr(zdim: int) -> float:
    """The learning rate of a config without ``lr``: :data:`DEFAULT_LR` for a VAE (zdim > 0), else
    :data:`DEFAULT_LR_HOMOGENEOUS`."""
    return DEFAULT_LR if int(zdim) > 0 else DEFAULT_LR_HOMOGENEOUS


def check_beta_schedule(schedule: str) -> None:
    """Raise InputError unless ``schedule`` is ``constant``, ``linear:E`` or ``cyclic:E`` with E > 0 epochs."""
    fix = "give beta_schedule constant, linear:E or cyclic:E (E epochs > 0)"
    kind, sep, arg = str(schedule).partition(":")
    if schedule == "constant":
        return
    if kind not in ("linear", "cyclic") or not sep:
        raise InputError(f"beta_schedule must be constant, linear:E or cyclic:E, got {schedule!r}", fix=fix)
    try:
        period = float(arg)
    except ValueError:
        raise InputError(f"beta_schedule period must be a number of epochs, got {arg!r}", fix=fix) from None
    if not period > 0:
        raise InputError(f"beta_schedule period must be positive, got {arg!r}", fix=fix)


@dataclass(frozen=True)
class DataConfig:
    """Where the particles come from and how images are prepared.

    Attributes
    ----------
    particles, poses, ctf, ind, datadir : str or None
        The standard particle options (see ``cryoscape.data.particles.load_particles``).
    amplitude_contrast : float or None
        Amplitude contrast for a RELION 3.0 star without ``rlnAmplitudeContrast`` (the file's value wins).
    allow_overfocus : bool
        Accept CTF defocus ≤ 0 (overfocus data); without it such values are refused as bad metadata.
    invert_data : bool
        Multiply images by -1. Off by default: with RELION's CTF sign, RELION/cryoSPARC particles (white
        protein) need no inversion. cryoDRGN inverts by default because its CTF has the opposite sign.
    window : bool
        Multiply images by a soft circular real-space window before the transform.
    window_r : float
        Inner radius of the window as a fraction of the half box (cosine edge from there to 0.99).
    lazy : bool or None
        Stream images from disk (True), load the stack into memory (False), or decide by size
        (None: in memory when the Hartley stack fits in ``max_memory_gb``).
    max_memory_gb : float
        Memory budget for the in-memory mode (GiB).
    chunk_size : int
        Largest number of consecutive images per chunk when streaming (chunks are visited in random order and
        shuffled together four at a time; smaller at large boxes so that four fit in 128 MiB:
        ``data.streaming``).
    num_workers : int
        Worker processes reading and transforming images (0: in the training process when in memory, one
        worker when streaming).
    data_std_windowed : bool
        Estimate ``data_std`` on the windowed images (True) or on the images before the window (False, the
        default, cryoDRGN's estimate). The window removes part of the power of a noisy image, so with the default
        the normalised training data have a mean square below 1 and the data term ``mse`` is that much smaller
        beside ``beta · kl / n_disc``: the KL weighs as in cryoDRGN's ``train_vae`` (same ``beta``, same
        1/n_disc), and the decoder's targets have cryoDRGN's scale. Configs written before this field existed
        load with True (:data:`LEGACY_DATA_STD_WINDOWED`), the estimate they were trained with.
    data_std : float or None
        *Resolved*: standard deviation of the Hartley values used to normalise the data (estimated on a
        sample at the start of training, see ``data_std_windowed``; stored so evaluation uses the same value).
    box_size : int or None
        *Resolved*: box size of the images (pixels).
    pixel_size_angstrom : float or None
        *Resolved*: pixel size (Å) of the images.
    """

    particles: str | None = None
    poses: str | None = None
    ctf: str | None = None
    ind: str | None = None
    datadir: str | None = None
    amplitude_contrast: float | None = None
    allow_overfocus: bool = False
    invert_data: bool = option(False, negative="--uninvert-data",
                               help="multiply images by -1 (default: no; RELION CTF sign, white particles)")
    window: bool = option(True, negative="--no-window", help="soft circular real-space window (default on)")
    window_r: float = option(0.85, help="window inner radius, fraction of D/2 (default %(default)s)")
    lazy: bool | None = option(None, help="stream images from disk (default: in memory when they fit in "
                                          "--max-memory-gb)")
    max_memory_gb: float = option(4.0, help="memory for holding the images (default %(default)s GiB)")
    chunk_size: int = option(1024, help="largest run of consecutive images per shuffling chunk when streaming "
                                        "(default %(default)s)")
    num_workers: int = option(0, help="data loading processes (default 0: one worker when streaming, none in "
                                      "memory)")
    data_std_windowed: bool = option(
        False, negative="--no-data-std-windowed",
        help="normalise by the std of the windowed images instead of the images before the window (default off: "
             "cryoDRGN's normalisation, which sets the weight of the KL term as cryoDRGN does)")
    data_std: float | None = None
    box_size: int | None = None
    pixel_size_angstrom: float | None = None

    def __post_init__(self) -> None:
        check_range(self.window_r, "window_r", minimum=0, maximum=1)
        check_range(self.max_memory_gb, "max_memory_gb", minimum=0, exclusive_minimum=True)
        check_range(self.chunk_size, "chunk_size", minimum=1)
        check_range(self.num_workers, "num_workers", minimum=0)
        check_range(self.amplitude_contrast, "amplitude_contrast", minimum=0, maximum=1)
        check_range(self.data_std, "data_std", minimum=0, exclusive_minimum=True)
        check_range(self.pixel_size_angstrom, "pixel_size_angstrom", minimum=0, exclusive_minimum=True)
        check_range(self.box_size, "box_size", minimum=2)
        if self.box_size is not None and self.box_size % 2:
            raise InputError(f"box_size must be even, got {self.box_size}", fix="crop or pad the images to an even box")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Attributes
    ----------
    model : ModelConfig
        Architecture (encoder, decoder, latent dimension; ``zdim = 0`` for a homogeneous decoder).
    data : DataConfig
        Particles and image preparation.
    num_epochs : int
        Epochs to train (``-n``).
    batch_size : int or None
        Images per optimisation step (``-b``; per process under torchrun), at least 1. None (the default)
        resolves when training starts, by the device it runs on (:func:`default_batch_size`: 8 on CPU, 16 on a
        GPU), and a run's ``config.yaml`` keeps the number.
    lr : float or None
        Adam learning rate. None (the default) resolves, when the config is made, to :data:`DEFAULT_LR` (3e-4)
        for a VAE (``model.zdim > 0``) and :data:`DEFAULT_LR_HOMOGENEOUS` (1e-4, cryoDRGN's) for a homogeneous
        model, so a config always holds a number and a run's ``config.yaml`` keeps the rate it was trained
        with (why 3e-4: docs/decisions.md).
    weight_decay : float
        Adam weight decay.
    beta : float or None
        KL weight; None means 1/zdim.
    beta_schedule : str
        ``constant``, ``linear:E`` or ``cyclic:E`` (see ``training.losses.beta_at``).
    loss_radius_px : float or None
        Radius (pixels of the Fourier lattice) of the disc the loss is computed on; None means D/2 (Nyquist, as
        cryoDRGN), the radius of the sphere maps are decoded in, so that every decoded voxel is trained.
    amp : bool or None
        Mixed precision (weights and loss stay fp32). None ("auto", the default): on a GPU bf16 (fp16 with loss
        scaling before compute capability 8.0); on a CPU the faster of bf16 autocast and fp32, timed on the
        run's own model and first batch at its start and cached per machine (``training.precision_choice``).
        True forces the reduced precision, False fp32. Reruns with the same seed are bit-identical on the same
        machine in fp32 and, with ``MKL_CBWR=AUTO,STRICT`` (set by the ``cryoscape`` command), in bf16 (see
        training.loop).
    precision : str or None
        *Resolved*: the precision the run trains in (``fp32``, ``bf16`` or ``fp16``), decided from ``amp`` when
        it starts and kept by a resumed run (unless ``--amp``/``--no-amp`` is given again).
    seed : int
        Seed of model initialisation, shuffling and reparameterisation noise.
    checkpoint_every : int
        Write ``weights.N.pt`` (and ``z.N.npz`` / ``reconstruct.N.mrc``) every this many epochs (and at the
        end).
    log_interval : int
        Images between progress lines in ``run.log``.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    volume_radius_px : float or None
        Frequency radius (pixels) inside which maps are decoded (``reconstruct.N.mrc``, eval-vol); None means
        D/2 (the Nyquist sphere, the default loss radius: the map holds exactly the trained frequencies). Runs
        imported from cryoDRGN Hartley models use ``.inf`` (cryoDRGN fills the whole cube).
    freq_march_epochs : float
        Frequency marching: over the first this many epochs the loss disc grows linearly in radius from
        ``freq_march_start_px`` to the loss radius (the encoder always sees its whole disc), so early steps fit
        the low frequencies and cost about (r / R)² of a full step; 0 (default) trains on the whole disc from
        the start. The radius is a function of the epoch fraction only (``training.losses.march_radius_px``),
        so a resumed run is bit-identical.
    freq_march_start_px : float
        Loss radius (lattice pixels) at the start of frequency marching.
    refine_poses : bool
        Learn a correction of every particle's input rotation and shift with the model
        (``training.pose_refinement``); the corrected poses are written as ``poses.N.npz`` beside each
        checkpoint (``write-star/write-cs --poses-from RUN``).
    pose_lr_px : float
        Step size of the per-particle Adam of the pose corrections, pixels (rotations: the movement of a point at
        the edge of the box).
    pose_prior_px : float or None
        Standard deviation (pixels) of a Gaussian prior tying each coordinate of a pose correction to zero (the
        input pose); None: no prior.
    pose_warmup_epochs : int
        Epochs trained on the input poses before their corrections are learned (the model must first know the
        map: the gradients of a random model say nothing about the poses).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    num_epochs: int = option(20, flags=("-n",), help="epochs to train (default %(default)s; with --resume: the run's)")
    batch_size: int | None = option(
        None, flags=("-b",), help=f"images per step per process (default {DEFAULT_BATCH_SIZE} on a CPU, "
                                  f"{DEFAULT_BATCH_SIZE_GPU} on a GPU; with --resume: the run's)")
    lr: float | None = option(None, help="Adam learning rate (default %(default)s; cryoDRGN 1e-4)")
    weight_decay: float = option(0.0, flags=("--wd",), help="Adam weight decay (default %(default)s)")
    beta: float | None = option(None, help="KL weight (default 1/zdim)")
    beta_schedule: str = option("constant", help="constant, linear:E (ramp over E epochs) or cyclic:E (default "
                                                 "%(default)s)")
    loss_radius_px: float | None = option(
        None, help="radius of the Fourier disc of the loss, lattice pixels (default D/2, = the map radius)")
    amp: bool | None = option(
        None, negative="--no-amp",
        help="--amp: reduced precision (bf16 autocast; fp16 on GPUs older than Ampere), --no-amp: fp32; default "
             "auto: bf16 on a GPU, and on a CPU the faster of bf16 and fp32, timed on this run's model and batch "
             "at its start (cached per machine)")
    precision: str | None = None
    seed: int = option(0, help="random seed (default %(default)s)")
    checkpoint_every: int = option(1, flags=("--checkpoint",),
                                   help="write weights every N epochs and after the last (default %(default)s)")
    log_interval: int = option(1000, help="images between run.log progress lines (default %(default)s)")
    device: str = option("auto", choices=DEVICES, help="where to train (default %(default)s: CUDA when available)")
    volume_radius_px: float | None = option(
        None, help="frequency radius of generated maps, pixels (default D/2: Nyquist, = the trained radius)")
    freq_march_epochs: float = option(
        0.0, help="frequency marching: grow the loss disc from --freq-march-start-px to the loss radius over the "
                  "first E epochs (cheaper early steps; default %(default)s = off)")
    freq_march_start_px: float = option(
        8.0, help="loss radius (lattice pixels) where frequency marching starts (default %(default)s)")
    refine_poses: bool = option(
        False, help="learn a correction of every particle's rotation and shift, starting from the input poses "
                    "(written as poses.N.npz beside each checkpoint; write-star --poses-from RUN exports them)")
    pose_lr_px: float = option(
        0.2, help="with --refine-poses: step size of the pose corrections, pixels (rotations: at the box edge; "
                  "default %(default)s)")
    pose_prior_px: float | None = option(
        None, help="with --refine-poses: standard deviation (pixels) of a Gaussian prior tying each pose to its "
                   "input value (default: none)")
    pose_warmup_epochs: int = option(
        1, help="with --refine-poses: epochs trained on the input poses before they are refined (default "
                "%(default)s)")

    def __post_init__(self) -> None:
        if self.lr is None:
            object.__setattr__(self, "lr", default_lr(getattr(self.model, "zdim", 0)))
        check_range(self.num_epochs, "num_epochs", minimum=1)
        check_range(self.batch_size, "batch_size", minimum=1)
        check_range(self.lr, "lr", minimum=0, exclusive_minimum=True)
        check_range(self.weight_decay, "weight_decay", minimum=0)
        check_range(self.beta, "beta", minimum=0)
        check_beta_schedule(self.beta_schedule)
        check_range(self.loss_radius_px, "loss_radius_px", minimum=0, exclusive_minimum=True)
        check_choice(self.device, DEVICES, "device")
        check_range(self.checkpoint_every, "checkpoint_every", minimum=1)
        check_range(self.log_interval, "log_interval", minimum=1)
        check_range(self.volume_radius_px, "volume_radius_px", minimum=0, exclusive_minimum=True)
        if isinstance(self.freq_march_epochs, bool):
            raise InputError(f"freq_march_epochs must be a number of epochs, got {self.freq_march_epochs!r}")
        check_range(self.freq_march_epochs, "freq_march_epochs", minimum=0)
        if isinstance(self.freq_march_start_px, bool):
            raise InputError(f"freq_march_start_px must be a radius in pixels, got {self.freq_march_start_px!r}")
        check_range(self.freq_march_start_px, "freq_march_start_px", minimum=0, exclusive_minimum=True)
        check_range(self.pose_lr_px, "pose_lr_px", minimum=0, exclusive_minimum=True)
        check_range(self.pose_prior_px, "pose_prior_px", minimum=0, exclusive_minimum=True)
        check_range(self.pose_warmup_epochs, "pose_warmup_epochs", minimum=0)

    def check_kind(self, model_kind: str) -> TrainConfig:
        """Refuse a config that does not build ``model_kind`` (one of :data:`MODEL_KINDS`); returns ``self``."""
        check_choice(model_kind, MODEL_KINDS, "model kind")
        if model_kind == "vae" and self.model.zdim < 1:
            raise InputError(f"zdim must be at least 1 for a VAE (train-vae), got {self.model.zdim}",
                             fix="use cryoscape train-nn for a homogeneous reconstruction")
        if model_kind == "homogeneous" and self.model.zdim != 0:
            raise InputError(f"zdim must be 0 for a homogeneous model (train-nn), got {self.model.zdim}",
                             fix="use cryoscape train-vae for a VAE")
        return self

    def for_device(self, device: str) -> TrainConfig:
        """This config with the device-dependent defaults resolved (``batch_size``, :func:`default_batch_size`)."""
        if self.batch_size is not None:
            return self
        return dataclasses.replace(self, batch_size=default_batch_size(device))

    def effective_beta(self) -> float:
        """The KL weight: ``beta`` or 1/zdim (0 for a homogeneous model)."""
        zdim = int(getattr(self.model, "zdim", 0))
        if zdim == 0:
            return 0.0
        return float(self.beta) if self.beta is not None else 1.0 / zdim

    def loss_radius(self, box_size: int) -> float:
        """Loss radius in pixels of the lattice for ``box_size`` (default D/2, the map sphere's radius)."""
        return float(self.loss_radius_px) if self.loss_radius_px is not None else box_size / 2


def to_dict(config: Any) -> dict[str, Any]:
    """A nested dataclass as plain nested dicts (yaml- and ``torch.load(weights_only=True)``-safe)."""
    return dataclasses.asdict(config)


def train_config_from_dict(values: Mapping[str, Any], path: str | os.PathLike | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from the nested mapping of a ``config.yaml`` or a checkpoint.

    Unknown keys and values of the wrong type raise :class:`~cryoscape.errors.InputError` naming ``path``, the
    key, the value and the expected type (:func:`cryoscape.configio.dataclass_from_mapping`). A ``data``
    section without ``data_std_windowed`` was written before the field existed and gets
    :data:`LEGACY_DATA_STD_WINDOWED`.
    """
    data = values.get("data") if isinstance(values, Mapping) else None
    if isinstance(data, Mapping) and "data_std_windowed" not in data:
        values = {**values, "data": {**data, "data_std_windowed": LEGACY_DATA_STD_WINDOWED}}
    return dataclass_from_mapping(TrainConfig, values, path=path)


def read_run_config(run: Any) -> TrainConfig:
    """The TrainConfig of a run directory (``cryoscape.runs.RunDir``) from its ``config.yaml``."""
    from cryoscape.errors import InputError

    try:
        return train_config_from_dict(run.load_config_dict(), path=run.config_path)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"cannot read the run configuration: {exc}",
            path=run.config_path,
            fix="restore the config.yaml written by training",
        ) from None


def config_from_checkpoint(state: dict[str, Any], path: Any) -> TrainConfig:
    """The TrainConfig stored in a checkpoint dictionary."""
    from cryoscape.errors import InputError

    try:
        return train_config_from_dict(state["config"], path=path)
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"the checkpoint's configuration is unreadable: {exc}", path=path) from None


def load_trained(run: Any, epoch: int | None = None, device: str = "cpu"):
    """(model, TrainConfig, epoch) of a run directory's checkpoint (``runs.load_model`` + the config)."""
    from cryoscape.runs import load_model

    model, values, epoch = load_model(run, epoch, device=device)
    return model, config_from_checkpoint({"config": values}, run.weights_path(epoch)), epoch
