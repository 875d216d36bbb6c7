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

from cryoscape.configio import dataclass_from_mapping
from cryoscape.models.config import ModelConfig

# Defaults that differ from cryoDRGN are listed by the commands' --help (cli/train_vae.py).
#: Images per step when ``batch_size`` is not given: on a CPU (cryoDRGN's 8) and on a CUDA GPU, where the step at 8
#: images is bound by per-step overhead; 16 reached cryoDRGN's accuracy in the least time among 8, 16, 32, 64
#: and 128 (README, "Training on a GPU"; ``benchmarks/results/gpu_time_to_accuracy.json``).
DEFAULT_BATCH_SIZE = 8
DEFAULT_BATCH_SIZE_GPU = 16
#: Adam learning rate when ``lr`` is not given: a VAE (zdim > 0; cryoDRGN's default is 1e-4) and a homogeneous
#: model (train-nn, as cryoDRGN).
DEFAULT_LR = 3e-4
DEFAULT_LR_HOMOGENEOUS = 1e-4
#: ``data.data_std_windowed`` of configs that predate the field (their data_std came from windowed images).
LEGACY_DATA_STD_WINDOWED = True


def default_batch_size(device: str) -> int:
    """The batch size of a config without ``batch_size`` on ``device`` (a torch device type or name):
    :data:`DEFAULT_BATCH_SIZE_GPU` on CUDA, else :data:`DEFAULT_BATCH_SIZE`."""
    return DEFAULT_BATCH_SIZE_GPU if str(device).split(":")[0] == "cuda" else DEFAULT_BATCH_SIZE


def default_lr(zdim: int) -> float:
    """The learning rate of a config without ``lr``: :data:`DEFAULT_LR` for a VAE (zdim > 0), else
    :data:`DEFAULT_LR_HOMOGENEOUS`."""
    return DEFAULT_LR if int(zdim) > 0 else DEFAULT_LR_HOMOGENEOUS


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
        beside ``beta · kl / n_disc``: the KL weighs more than with the windowed estimate, exactly as in
        cryoDRGN's ``train_vae`` (same ``beta``, same 1/n_disc), and the decoder's targets have cryoDRGN's scale.
        The effect on accuracy is measured in ``benchmarks/results/vs_cryodrgn_fsc_gap_study.json``. Configs
        written before this field existed load with True (:data:`LEGACY_DATA_STD_WINDOWED`), the estimate they
        were trained with.
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
    invert_data: bool = False
    window: bool = True
    window_r: float = 0.85
    lazy: bool | None = None
    max_memory_gb: float = 4.0
    chunk_size: int = 1024
    num_workers: int = 0
    data_std_windowed: bool = False
    data_std: float | None = None
    box_size: int | None = None
    pixel_size_angstrom: float | None = None


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
        Images per optimisation step (``-b``; per process under torchrun). None (the default) resolves when
        training starts, by the device it runs on (:func:`default_batch_size`: 8 on CPU, 16 on a GPU), and a
        run's ``config.yaml`` keeps the number.
    lr : float or None
        Adam learning rate. None (the default) resolves, when the config is made, to :data:`DEFAULT_LR` (3e-4)
        for a VAE (``model.zdim > 0``) and :data:`DEFAULT_LR_HOMOGENEOUS` (1e-4, cryoDRGN's) for a homogeneous
        model, so a config always holds a number and a run's ``config.yaml`` keeps the rate it was trained
        with. cryoDRGN trains its VAE at 1e-4; at 3e-4 the latent of cryoscape's default pair decoder becomes
        informative in as few epochs as that of cryoDRGN's twice as costly Hartley decoder at 1e-4, and
        per-image FSC at equal epochs rises; cryoDRGN's decoder gains from 3e-4 as well
        (``benchmarks/results/time_to_accuracy.json``; README, "Time to accuracy").
    weight_decay : float
        Adam weight decay.
    beta : float or None
        KL weight; None means 1/zdim.
    beta_schedule : str
        ``constant``, ``linear:E`` or ``cyclic:E`` (see ``training.losses.beta_at``).
    loss_radius_px : float or None
        Radius (pixels of the Fourier lattice) of the disc the loss is computed on; None means D/2 (Nyquist, as
        cryoDRGN), the radius of the sphere maps are decoded in, so that no decoded voxel is left untrained
        (with D/2 - 1, 9 % of the sphere's voxels at D = 64 were never fitted; measured in
        ``benchmarks/trained_radius.py``).
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
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    num_epochs: int = 20
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    beta: float | None = None
    beta_schedule: str = "constant"
    loss_radius_px: float | None = None
    amp: bool | None = None
    precision: str | None = None
    seed: int = 0
    checkpoint_every: int = 1
    log_interval: int = 1000
    device: str = "auto"
    volume_radius_px: float | None = None
    freq_march_epochs: float = 0.0
    freq_march_start_px: float = 8.0

    def __post_init__(self) -> None:
        from cryoscape.errors import InputError

        if self.lr is None:
            object.__setattr__(self, "lr", default_lr(getattr(self.model, "zdim", 0)))
        if isinstance(self.freq_march_epochs, bool) or not self.freq_march_epochs >= 0:
            raise InputError(f"freq_march_epochs={self.freq_march_epochs!r} must be a number of epochs >= 0")
        if isinstance(self.freq_march_start_px, bool) or not self.freq_march_start_px > 0:
            raise InputError(f"freq_march_start_px={self.freq_march_start_px!r} must be a radius > 0 (pixels)")

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
