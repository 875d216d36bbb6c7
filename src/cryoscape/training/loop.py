"""Training loop: epochs, progress, checkpoints, latents, resume, run-folder protection, non-finite loss stop.

:func:`fit` trains the model described by a :class:`~cryoscape.training.config.TrainConfig` and writes the run
directory (``cryoscape.runs.RunDir``): ``config.yaml``, ``run.log``, ``provenance.yaml``, every
``checkpoint_every`` epochs (and after the last) ``weights.N.pt`` with model, optimizer and RNG state, then
``z.N.npz`` (heterogeneous) or ``reconstruct.N.mrc`` (homogeneous).

Run folders are protected: a new run refuses a folder that already holds one unless ``overwrite`` (which
deletes the old run's files), a lock (``RUN/.lock``) keeps a second training out while one runs, and a resume
from an epoch before the folder's latest refuses to replace the later checkpoints unless ``overwrite``.

Resume (:func:`resume_config`) starts from the configuration stored in the checkpoint and applies the run-control
changes asked for (:data:`RESUME_APPLIED`, each logged); a change of anything that defines the model or the data
(architecture, seed, particles, image preparation) is refused. Outputs missing next to a checkpoint (a kill
between ``weights.N.pt`` and ``z.N.npz``) are recomputed from it, and temporaries of killed writes are removed.

Reproducibility: model initialisation uses ``torch.manual_seed(seed)``, the batch order of epoch ``e`` depends
only on ``(seed, e)``, and the reparameterisation noise comes from a ``torch.Generator`` whose state is saved in
every checkpoint, so a run resumed from ``weights.N.pt`` continues exactly as an uninterrupted one (tested in
fp32). With bf16 autocast on CPU, reruns agree bit for bit when Intel MKL runs in its alignment-independent mode
(``MKL_CBWR=AUTO,STRICT``, which the ``cryoscape`` command sets, see ``cryoscape.cli._process``); a caller of
:func:`fit` from Python sets ``MKL_CBWR`` before importing torch to get the same.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cryoscape.data.dataset import (
    EpochSampler,
    HartleyDataset,
    ImagePrep,
    choose_in_memory,
    estimate_data_std,
)
from cryoscape.data.device_resident import training_batches
from cryoscape.data.normalization import scale_outliers
from cryoscape.data.particles import ParticleSet, load_particles
from cryoscape.data.streaming import epoch_batches
from cryoscape.errors import InputError, TrainingError
from cryoscape.models.precision import amp_helps, amp_policy
from cryoscape.runs import RunDir, find_run, load_checkpoint_file
from cryoscape.training import distributed
from cryoscape.training.config import DataConfig, TrainConfig, config_from_checkpoint, to_dict
from cryoscape.training.losses import beta_at, march_radius_px
from cryoscape.training.pose_refinement import PoseTable
from cryoscape.training.provenance import ProvenanceLog
from cryoscape.training.step import ReconstructionObjective, StepTotals, TrainStep, make_optimizer, restore_generator

log = logging.getLogger("cryoscape.training")

#: Options a resumed run may change (each change is logged); a change of any other field is refused.
RESUME_APPLIED = frozenset(
    {
        "num_epochs", "checkpoint_every", "log_interval", "device", "lr", "weight_decay", "batch_size", "beta",
        "beta_schedule", "amp", "loss_radius_px", "volume_radius_px", "freq_march_epochs", "freq_march_start_px",
        "pose_lr_px", "pose_prior_px", "pose_warmup_epochs", "num_workers", "lazy", "max_memory_gb", "chunk_size",
        "datadir",
    }
)
#: Data files of a run: stored as absolute paths, so that a run can be resumed from any working directory.
DATA_PATH_FIELDS = ("particles", "poses", "ctf", "ind", "datadir")
#: The reparameterisation noise of process ``rank`` is seeded with ``seed * RANK_SEED_STRIDE + rank``: distinct
#: streams for up to this many processes, and for different seeds.
RANK_SEED_STRIDE = 1000
#: Minimum batch size for encoding the latents written after a checkpoint (no gradients: larger is faster).
EVAL_MIN_BATCH_SIZE = 64


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` did.

    Attributes
    ----------
    run : RunDir
    config : TrainConfig
        The resolved configuration (data std, box and pixel size filled in).
    epoch : int
        Epochs completed (the last checkpoint written).
    epoch_losses : list of float
        Mean training loss of each epoch trained in this call.
    """

    run: RunDir
    config: TrainConfig
    epoch: int
    epoch_losses: list[float]


def open_particles(config: TrainConfig) -> ParticleSet:
    """The ParticleSet named by ``config.data`` (poses required; CTF used when present)."""
    d = config.data
    if d.particles is None:
        raise InputError("no particles given", fix="give PARTICLES (a .mrcs, .star, .cs or .txt)")
    return load_particles(
        d.particles, poses=d.poses, ctf=d.ctf, ind=d.ind, datadir=d.datadir,
        amplitude_contrast=d.amplitude_contrast, require_poses=True, allow_overfocus=d.allow_overfocus,
    )


def resolve_data(config: TrainConfig, particles: ParticleSet) -> TrainConfig:
    """Fill in box size, pixel size and the data std (estimated on a sample when not set)."""
    d = config.data
    box = particles.box_size
    if box % 2:
        raise InputError(
            f"box size {box} is odd",
            path=d.particles,
            fix="use an even box (cryoscape downsample can Fourier-crop to one)",
        )
    if d.box_size is not None and d.box_size != box:
        raise InputError(
            f"images have box {box} but the run was trained at box {d.box_size}",
            path=d.particles,
            fix="give the particles the run was trained on (or downsample them to that box)",
        )
    pixel = particles.pixel_size_angstrom if d.pixel_size_angstrom is None else d.pixel_size_angstrom
    std = d.data_std
    if std is None:
        # cryoDRGN's estimate by default: the std of the images before the window (DataConfig.data_std_windowed)
        prep = ImagePrep(box, invert=d.invert_data, window=d.window and d.data_std_windowed, window_r=d.window_r)
        std = estimate_data_std(particles, prep)
    data = dataclasses.replace(
        d, box_size=box, pixel_size_angstrom=None if pixel is None else float(pixel), data_std=float(std)
    )
    return dataclasses.replace(config, data=data)


def make_dataset(config: TrainConfig, particles: ParticleSet) -> HartleyDataset:
    """The dataset of a resolved configuration (in memory or lazy, by ``data.lazy`` and the size)."""
    d = config.data
    in_memory = choose_in_memory(particles, d.lazy, d.max_memory_gb)
    return HartleyDataset(
        particles,
        data_std=d.data_std,
        invert=d.invert_data,
        window=d.window,
        window_r=d.window_r,
        in_memory=in_memory,
        chunk_size=d.chunk_size,
    )


def use_amp(config: TrainConfig, device: torch.device) -> bool:
    """Whether inference (latents, eval-images) autocasts: not refused (``amp`` False), and the device has fast
    reduced precision."""
    if config.amp is False:
        return False
    helps = amp_helps(device)
    if not helps:
        log.info("this device has no fast reduced precision; training in fp32 (--amp has no effect)")
    return helps


def build_loss_module(config: TrainConfig) -> ReconstructionObjective:
    """Model (initialised with ``torch.manual_seed(config.seed)``) inside its :class:`ReconstructionObjective`."""
    from cryoscape.models import build_model

    box = int(config.data.box_size)
    torch.manual_seed(config.seed)
    model = build_model(config.model, box)
    return ReconstructionObjective(model, box, config.loss_radius(box))


def _check_batch(batch, config: TrainConfig) -> None:
    if batch.rotations is None:
        raise InputError(
            "training needs poses",
            path=config.data.particles,
            fix="give --poses (RELION .star, cryoSPARC .cs or cryoDRGN pose .pkl)",
        )


class _RunLog:
    """Attach ``run.log`` to the cryoscape loggers for the duration of a run (main process only)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.handler: logging.Handler | None = None

    def __enter__(self):
        if self.path is not None:
            self.handler = logging.FileHandler(self.path, mode="a")
            self.handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%Y-%m-%d %H:%M:%S"))
            root = logging.getLogger("cryoscape")
            root.addHandler(self.handler)
            if root.getEffectiveLevel() > logging.INFO:
                root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        if self.handler is not None:
            logging.getLogger("cryoscape").removeHandler(self.handler)
            self.handler.close()


def reparam_seed(seed: int, rank: int) -> int:
    """Seed of the reparameterisation-noise generator of process ``rank`` (see :data:`RANK_SEED_STRIDE`)."""
    return int(seed) * RANK_SEED_STRIDE + int(rank)


def with_absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with the data files (:data:`DATA_PATH_FIELDS`) as absolute paths (from the working folder)."""
    d = config.data
    changes = {
        name: os.path.abspath(os.path.expanduser(getattr(d, name)))
        for name in DATA_PATH_FIELDS
        if getattr(d, name) is not None
    }
    return dataclasses.replace(config, data=dataclasses.replace(d, **changes))


def _flag(name: str) -> str:
    return "PARTICLES" if name == "particles" else "--" + name.replace("_", "-")


def _section(config: TrainConfig, name: str) -> str:
    """Where option ``name`` lives: ``""`` (TrainConfig), ``"data"`` or ``"model"``; ValueError if unknown."""
    if name in {f.name for f in dataclasses.fields(DataConfig)}:
        return "data"
    if name in {f.name for f in dataclasses.fields(config.model)}:
        return "model"
    if name in {f.name for f in dataclasses.fields(TrainConfig)} - {"model", "data"}:
        return ""
    raise ValueError(f"unknown training option {name!r}")


def _same(name: str, new: Any, old: Any) -> bool:
    if name in DATA_PATH_FIELDS and new is not None and old is not None:
        return os.path.abspath(os.path.expanduser(str(new))) == os.path.abspath(str(old))
    if isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(new, bool):
        return float(new) == float(old)
    return new == old


def resume_config(
    saved: TrainConfig, changes: Mapping[str, Any], *, source: str | os.PathLike | None = None
) -> tuple[TrainConfig, list[str]]:
    """The configuration of a resumed run: the checkpoint's own, with the changes asked for that are allowed.

    This is the one place that decides what a resume may change.

    Parameters
    ----------
    saved : TrainConfig
        The configuration stored in the checkpoint being continued.
    changes : mapping of option name (config field name, e.g. ``lr``, ``zdim``, ``particles``) to value
        The options given explicitly (None values are ignored). Values equal to the saved ones are no change.
    source : path, optional
        The checkpoint, for error messages.

    Returns
    -------
    (TrainConfig, list of str)
        The merged configuration and one line per applied change (for the log).

    Raises
    ------
    InputError
        Listing every asked change that is not in :data:`RESUME_APPLIED` (architecture, zdim, seed, particles,
        poses, CTF, index selection, image preparation): they would make the checkpoint describe another model
        or another particle set.
    """
    top: dict[str, Any] = {}
    data: dict[str, Any] = {}
    notes: list[str] = []
    refused: list[str] = []
    for name, value in changes.items():
        if value is None:
            continue
        section = _section(saved, name)
        old = getattr(saved.data if section == "data" else saved.model if section == "model" else saved, name)
        if _same(name, value, old):
            continue
        if name not in RESUME_APPLIED:
            refused.append(f"{_flag(name)} {value} (the run has {old})")
            continue
        if name == "datadir":
            value = os.path.abspath(os.path.expanduser(str(value)))
        (data if section == "data" else top)[name] = value
        notes.append(f"{_flag(name)}: {old} -> {value}")
    if refused:
        raise InputError(
            "a resumed run keeps its model and data; cannot change " + "; ".join(refused),
            path=source,
            fix="resume without these options, or start a new run in another folder",
        )
    merged = dataclasses.replace(saved, data=dataclasses.replace(saved.data, **data), **top)
    return merged, notes


def config_differences(saved: TrainConfig, asked: TrainConfig) -> dict[str, Any]:
    """Fields (flat option names) whose non-None value in ``asked`` differs from ``saved``.

    Used when :func:`fit` is given a whole configuration to resume with: the fields that differ are the changes
    asked for (the resolved fields ``data_std``, ``box_size``, ``pixel_size_angstrom`` are None when not set).
    """
    found: dict[str, Any] = {}
    for new, old in ((asked, saved), (asked.data, saved.data), (asked.model, saved.model)):
        for f in dataclasses.fields(new):
            if f.name in ("model", "data"):
                continue
            value = getattr(new, f.name)
            if value is not None and not _same(f.name, value, getattr(old, f.name, None)):
                found[f.name] = value
    return found


@torch.no_grad()
def evaluate(
    loss_module: ReconstructionObjective,
    dataset: HartleyDataset,
    *,
    batch_size: int = 64,
    amp: bool = False,
    beta: float = 0.0,
    device: torch.device | str = "cpu",
    desc: str = "encoding",
    with_loss: bool = True,
    pose_table: PoseTable | None = None,
):
    """Posterior means/log-variances and per-image error of every particle (no sampling), with the poses
    corrected by ``pose_table`` when given (``--refine-poses``).

    Returns
    -------
    mu, logvar : ndarray (N, zdim) float32, or None for a homogeneous model
    mse : ndarray (N,) float32
        Mean squared error of each image against its reconstruction at ``z = mu``; NaN when ``with_loss`` is
        False (then only the encoder runs).
    """
    from cryoscape.progress import progress

    n = len(dataset)
    zdim = loss_module.zdim
    mu_all = np.zeros((n, zdim), np.float32) if zdim else None
    logvar_all = np.zeros((n, zdim), np.float32) if zdim else None
    mse_all = np.zeros(n, np.float32)
    was_training = loss_module.training
    loss_module.eval()
    sampler = EpochSampler(n, batch_size, shuffle=False)
    for positions in progress(sampler, total=len(sampler), desc=desc, unit="batch", leave=False):
        batch = dataset.get_batch(positions).to(device)
        rotations, shifts = batch.rotations, batch.shifts_px
        if pose_table is not None:
            rotations, shifts = pose_table.apply(batch.positions, rotations, shifts)
        parts = loss_module(
            batch.images,
            rotations,
            shifts,
            batch.ctf,
            beta=beta,
            sample=False,
            amp=amp,
            reduce=False,
            decode=with_loss,
        )
        mse_all[positions] = parts.mse.cpu().numpy()
        if zdim:
            mu_all[positions] = parts.mu.cpu().numpy()
            logvar_all[positions] = parts.logvar.cpu().numpy()
    loss_module.train(was_training)
    return mu_all, logvar_all, mse_all


def write_outputs(
    run: RunDir,
    epoch: int,
    loss_module: ReconstructionObjective,
    dataset: HartleyDataset,
    config: TrainConfig,
    device: torch.device,
    pose_table: PoseTable | None = None,
) -> Path:
    """After checkpointing: ``z.N.npz`` (heterogeneous) or ``reconstruct.N.mrc`` (homogeneous); returns its path.
    With ``pose_table`` (``--refine-poses``) first ``poses.N.npz``, the corrected poses, and the latents are
    encoded with them.

    All are computed in fp32 whatever ``config.amp``, so they depend only on the weights and the data.
    """
    if pose_table is not None:
        write_refined_poses(run, epoch, pose_table, dataset, config)
    if loss_module.zdim > 0:
        mu, logvar, _ = evaluate(
            loss_module,
            dataset,
            batch_size=max(EVAL_MIN_BATCH_SIZE, config.batch_size),
            amp=False,
            device=device,
            with_loss=False,
            pose_table=pose_table,
        )
        path = run.save_z(epoch, mu, logvar, dataset.particles.indices)
    else:
        from cryoscape.io.mrc import write_mrc

        decoder = loss_module.model.decoder
        was_training = decoder.training
        decoder.eval()
        vol = decoder.eval_volume(None, radius_px=config.volume_radius_px, scale=config.data.data_std)
        vol = vol.cpu().numpy()
        decoder.train(was_training)
        path = run.volume_path(epoch)
        write_mrc(path, vol, voxel_size_angstrom=config.data.pixel_size_angstrom)
    log.info("wrote %s", path)
    return path


def write_refined_poses(run: RunDir, epoch: int, pose_table: PoseTable, dataset: HartleyDataset,
                        config: TrainConfig) -> Path:
    """``poses.N.npz``: the input poses of the dataset's particles with ``pose_table``'s corrections."""
    from cryoscape.training.pose_files import save_pose_file

    particles = dataset.particles
    path = run.poses_path(epoch)
    save_pose_file(path, pose_table.corrected(particles.poses), None, particles.indices,
                   float(config.data.pixel_size_angstrom), config.loss_radius(int(config.data.box_size)))
    log.info("wrote %s", path)
    return path


def make_pose_table(config: TrainConfig, dataset: HartleyDataset, state, ctx) -> PoseTable | None:
    """The pose corrections of a run with ``refine_poses`` (restored from ``state`` when resuming), else None."""
    if not config.refine_poses:
        return None
    if ctx.world_size > 1:
        raise InputError("--refine-poses runs in one process for now (each process would refine its own share "
                         "of the poses)", fix="train without torchrun, or without --refine-poses")
    if state is not None and "poses" not in state:
        raise InputError("the checkpoint has no pose corrections", fix="resume without --refine-poses")
    return restore_pose_table(config, len(dataset), state, ctx.device)


def restore_pose_table(config: TrainConfig, n: int, state, device) -> PoseTable:
    """A pose table for ``n`` particles with ``config``'s settings, holding ``state["poses"]`` when given."""
    table = PoseTable(n, int(config.data.box_size), config.pose_lr_px, config.pose_prior_px, device=device)
    if state is not None:
        table.load_state_dict(state["poses"])
    return table


def output_path(run: RunDir, epoch: int, heterogeneous: bool) -> Path:
    """The file :func:`write_outputs` writes after checkpoint ``epoch``."""
    return run.z_path(epoch) if heterogeneous else run.volume_path(epoch)


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"reparam": generator.get_state(), "torch": torch.get_rng_state()}


def _disk_error(run: RunDir, path: Path, exc: OSError, epoch: int) -> TrainingError:
    earlier = [e for e in run.epochs() if e < epoch]
    kept = (
        f"the checkpoints written before (up to {run.weights_path(earlier[-1]).name}) are intact"
        if earlier
        else "no earlier checkpoint was written"
    )
    if path != run.weights_path(epoch) and run.weights_path(epoch).is_file():
        kept = f"{run.weights_path(epoch).name} is complete and {kept}; a resume writes the missing file"
    return TrainingError(
        f"cannot write {path}: {exc.strerror or exc}; {kept} (free disk space, then continue with "
        f"--resume {run.path})"
    )


@dataclass
class _EpochTotals:
    """Sums over the images of an epoch (this process): loss x images, mse x images, kl x images, images."""

    loss: float = 0.0
    mse: float = 0.0
    kl: float = 0.0
    images: float = 0.0

    def summed(self, ctx: distributed.DistContext) -> _EpochTotals:
        """The totals of all processes."""
        values = torch.tensor([self.loss, self.mse, self.kl, self.images], dtype=torch.float64)
        return _EpochTotals(*distributed.all_reduce_sum(values.to(ctx.device), ctx).cpu().tolist())


def fit(
    config: TrainConfig | None,
    out_dir: str | os.PathLike | None = None,
    *,
    particles: ParticleSet | None = None,
    resume_from: str | os.PathLike | None = None,
    changes: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    model_kind: str | None = None,
    command: Sequence[str] | None = None,
) -> FitResult:
    """Train and write the run directory.

    Parameters
    ----------
    config : TrainConfig or None
        The run. When resuming it may be None (give ``changes``); a configuration given instead is compared
        with the checkpoint's and the differing fields are the changes asked for (:func:`config_differences`).
    out_dir : path, optional
        Run directory (created). Default when resuming: the folder of ``resume_from``.
    particles : ParticleSet, optional
        Use these particles instead of opening ``config.data`` (tests, notebooks).
    resume_from : path, optional
        A run directory (its latest checkpoint) or a ``weights.N.pt`` to continue from.
    changes : mapping, optional
        Options given explicitly for a resume (see :func:`resume_config`).
    overwrite : bool
        Delete the files of a run already in ``out_dir`` first (``config.yaml``, ``run.log``,
        ``provenance.yaml``, ``weights.*``, ``z.*``, ``reconstruct.*``, ``analyze.*``); when resuming in place
        from an earlier epoch, delete those of the later epochs. Without it such a folder is refused.
    model_kind : {"vae", "homogeneous"}, optional
        When resuming, refuse a checkpoint of the other kind.
    command : sequence of str, optional
        Command line recorded in ``provenance.yaml`` (default ``sys.argv``).

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad input, a folder holding another run, a folder locked by another training, a refused resume change.
    TrainingError
        On a non-finite loss (naming the epoch and batch) or a failed checkpoint write (naming the file); the
        checkpoints already written are kept.
    """
    if config is None and resume_from is None:
        raise ValueError("fit needs a config unless it resumes a run")
    device = config.device if config is not None and resume_from is None else (changes or {}).get("device")
    ctx = distributed.init_distributed(device or (config.device if config is not None else "auto"))
    try:
        return _fit(config, out_dir, particles, resume_from, ctx, changes, overwrite, model_kind, command)
    finally:
        distributed.shutdown(ctx)


@dataclass(frozen=True)
class _Start:
    """Where training starts: the checkpoint's state (None for a new run) and its path."""

    state: dict[str, Any] | None
    checkpoint: Path | None
    notes: list[str]
    options: dict[str, Any]


def _resolve_start(config, resume_from, changes, model_kind) -> tuple[TrainConfig, _Start]:
    if resume_from is None:
        options = dict(changes) if changes else {}
        return with_absolute_paths(config), _Start(None, None, [], options)
    run_in, epoch_in = find_run(resume_from)
    if not run_in.writable:
        raise InputError(
            "a cryoDRGN run folder is read as it is, not trained further", path=run_in.path,
            fix=f"import it first (cryoscape import-cryodrgn {run_in.config_path} "
            f"{run_in.path}/weights.N.pkl -o NEW/), then train-vae --resume NEW/")
    epoch_in = run_in.resolve_epoch(epoch_in)
    ckpt_path = run_in.weights_path(epoch_in)
    state = load_checkpoint_file(ckpt_path)
    saved = config_from_checkpoint(state, ckpt_path)
    kind = "vae" if saved.model.zdim > 0 else "homogeneous"
    if model_kind is not None and model_kind != kind:
        other = "cryoscape train-vae" if kind == "vae" else "cryoscape train-nn"
        raise InputError(f"the run to resume is {'a VAE' if kind == 'vae' else 'homogeneous'}", path=ckpt_path,
                         fix=f"use {other} --resume")
    if changes is None:
        changes = config_differences(saved, config) if config is not None else {}
    merged, notes = resume_config(saved, changes, source=ckpt_path)
    return merged, _Start(state, ckpt_path, notes, dict(changes))


def _later_epochs(run: RunDir, start: _Start) -> list[int] | None:
    """Epochs after the resumed one when resuming in ``run`` itself; None when ``run`` is a new folder."""
    if start.checkpoint is None or start.checkpoint.parent.resolve() != run.path.resolve():
        return None
    epoch = int(start.state["epoch"])
    return [e for e in run.epochs() if e > epoch]


def _check_folder(run: RunDir, start: _Start, overwrite: bool) -> None:
    """Refuse a folder holding another run, or later epochs of the run resumed, unless ``overwrite``."""
    if overwrite:
        return
    later = _later_epochs(run, start)
    if later is None and run.holds_cryodrgn_run():
        raise InputError("the folder holds a cryoDRGN run (weights.N.pkl), which cryoscape never overwrites",
                         path=run.path, fix="give another -o")
    if later is None and run.holds_run():
        raise InputError(
            f"the folder already holds a training run ({run.held_files_text()})",
            path=run.path,
            fix=f"continue it with --resume {run.path}, start over with --overwrite (deletes its files), or "
            "give another -o",
        )
    if later:
        raise InputError(
            f"resuming from epoch {int(start.state['epoch'])} would replace the later checkpoints "
            f"{', '.join(run.weights_path(e).name for e in later)}",
            path=run.path,
            fix=f"resume from the latest (--resume {run.path}), continue into another folder with -o, or add "
            "--overwrite to delete the later epochs",
        )


def _prepare_folder(run: RunDir, start: _Start, overwrite: bool) -> None:
    """Check (:func:`_check_folder`) and clear the folder as asked; delete temporaries of killed writes."""
    _check_folder(run, start, overwrite)
    later = _later_epochs(run, start)
    if later is None and run.holds_run():
        removed = run.remove_run_files()
        log.warning("--overwrite: removed %d file(s) of the previous run in %s", len(removed), run.path)
    elif later:
        epoch = int(start.state["epoch"])
        removed = run.remove_run_files(after_epoch=epoch)
        log.warning("--overwrite: removed %d file(s) of epochs after %d", len(removed), epoch)
    for stale in run.remove_stale_temporaries():
        log.warning("removed %s (left by an interrupted write)", stale)


def _agree(error: BaseException | None, ctx: distributed.DistContext) -> None:
    """Raise ``error`` of the main process on every process (each waits for the others)."""
    if not distributed.all_true(error is None, ctx):
        if error is not None:
            raise error
        raise TrainingError("the main process could not prepare the run folder (see its error)")


def _fit(config, out_dir, particles, resume_from, ctx, changes, overwrite, model_kind, command) -> FitResult:
    config, start = _resolve_start(config, resume_from, changes, model_kind)
    config = config.for_device(ctx.device.type)  # a batch size not given: the device's default
    run = RunDir(Path(out_dir) if out_dir is not None else start.checkpoint.parent)
    error: BaseException | None = None
    if ctx.is_main:
        try:  # refuse early, before the data are read (checked again under the lock)
            _check_folder(run, start, overwrite)
        except InputError as exc:
            error = exc
    _agree(error, ctx)
    if particles is None:
        particles = open_particles(config)
    config = resolve_data(config, particles)
    lock = None
    error = None
    if ctx.is_main:
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            lock = run.lock().acquire()
            _prepare_folder(run, start, overwrite)
            run.save_config(config)
        except BaseException as exc:  # re-raised below, after every process agrees to stop
            error = exc
    try:
        _agree(error, ctx)
        with _RunLog(run.log_path if ctx.is_main else None):
            if start.checkpoint is not None and ctx.is_main:
                where = "" if start.checkpoint.parent.resolve() == run.path.resolve() else f" into {run.path}"
                log.info("resuming from %s%s", start.checkpoint, where)
                for note in start.notes:
                    log.info("resume: applying %s", note)
            provenance = None
            if ctx.is_main:
                provenance = ProvenanceLog(
                    run,
                    command=command,
                    options=start.options,
                    resumed_from=None if start.checkpoint is None else str(start.checkpoint.resolve()),
                    start_epoch=0 if start.state is None else int(start.state["epoch"]),
                )
            try:
                result = _train(config, run, particles, start.state, ctx, provenance)
            except BaseException as exc:
                if provenance is not None:
                    provenance.finish(f"stopped: {type(exc).__name__}: {exc}".splitlines()[0])
                raise
            if provenance is not None:
                provenance.finish()
            return result
    finally:
        if lock is not None:
            lock.release()


def _outlying_images(batch, particles: ParticleSet) -> list[int]:
    """Original indices of the batch's images whose scale is outlying (``normalization.scale_outliers``)."""
    mean_squares = batch.images.detach().cpu().double().pow(2).flatten(1).mean(dim=1).numpy()
    positions = batch.positions.cpu().numpy()[scale_outliers(mean_squares)]
    return [int(i) for i in np.asarray(particles.indices)[positions]]


def _nonfinite_error(run: RunDir, dataset, check: StepTotals, batch, epoch: int, b: int,
                     n_batches: int) -> TrainingError:
    """The error of a non-finite loss: its first step on this process (``check``, else step ``b``), the last good
    checkpoint, and the particles of that step's batch with outlying values."""
    step, value = b, check.first_bad_loss
    if check.first_bad_step is not None and check.first_bad_step != b and check.first_bad_positions is not None:
        step, batch = check.first_bad_step, dataset.get_batch(check.first_bad_positions.cpu().numpy())
    last = run.latest_epoch()
    kept = f"the last good checkpoint is {run.weights_path(last)}" if last else "no checkpoint yet"
    log.error("non-finite loss at epoch %d, batch %d", epoch + 1, step + 1)
    suspects = _outlying_images(batch, dataset.particles)
    advice = (
        f"particle(s) {', '.join(map(str, suspects))} (0-based) have non-finite or outlying pixel "
        "values: leave them out with --ind" if suspects else "try a lower --lr or check the images"
    )
    return TrainingError(
        f"non-finite loss ({value}) at epoch {epoch + 1}, batch {step + 1} of {n_batches}; stopped ({kept}; {advice})"
    )


def _training_precision(config: TrainConfig, state, loss_module: ReconstructionObjective, dataset, ctx):
    """(config with ``precision`` decided, its AmpPolicy): the run's stored precision, or the choice of
    ``training.precision_choice`` (a CPU run with ``amp`` auto times its own step in each precision)."""
    from cryoscape.training import precision_choice as pc

    device = ctx.device
    saved = None if state is None else (state.get("config") or {})
    amp_changed = saved is not None and saved.get("amp", True) != config.amp
    usable = config.precision is not None and not (config.precision == "fp16" and device.type == "cpu")
    if usable and not amp_changed:
        choice = pc.PrecisionChoice(config.precision, "the run's own" if saved is not None else "as given", {})
    else:
        legacy = saved is not None and not amp_changed and "precision" not in saved
        measure = key = None
        if device.type == "cpu" and config.amp is None and not legacy and ctx.world_size == 1:
            batch = dataset.get_batch(np.arange(min(int(config.batch_size), len(dataset)))).to(device)

            def measure(name: str) -> float:
                return pc.time_steps(loss_module, batch, name, device)

            key = pc.cache_key({**to_dict(config.model), "box": config.data.box_size,
                                "loss_radius": config.loss_radius(int(config.data.box_size))}, config.batch_size)
        choice = pc.choose_precision(config.amp, device, legacy=legacy, measure=measure, key=key)
        config = dataclasses.replace(config, precision=choice.precision)
    if ctx.is_main:
        log.info("precision: %s (%s)", choice.precision, choice.reason)
    return config, amp_policy(device, choice.precision)


def _band_error(epoch: int, b: int) -> TrainingError:
    """The error of a seam-band bound that was too small (``TrainStep`` found an overflow by batch ``b``)."""
    return TrainingError(
        f"internal error: a batch up to epoch {epoch + 1}, batch {b + 1} had more seam-band points than its "
        "host-side bound, so that epoch is not saved (the last checkpoint is intact; please report this; "
        "--resume on the CPU, which counts the band on the device, avoids it)"
    )


def _write_missing_outputs(
    run: RunDir, loss_module: ReconstructionObjective, dataset: HartleyDataset, config: TrainConfig, device, state
) -> None:
    """Outputs missing next to a checkpoint of ``run`` (a kill between the two writes), recomputed from it."""
    hetero = loss_module.zdim > 0
    missing = [e for e in run.epochs() if not output_path(run, e, hetero).exists()]
    if not missing:
        return
    current = {k: v.detach().clone() for k, v in loss_module.model.state_dict().items()}
    try:
        for epoch in missing:
            ckpt = state if state is not None and int(state["epoch"]) == epoch else run.load_checkpoint(epoch)
            loss_module.model.load_state_dict(ckpt["model"])
            saved = config_from_checkpoint(ckpt, run.weights_path(epoch))
            log.info("%s is missing: recomputing it from %s", output_path(run, epoch, hetero).name,
                     run.weights_path(epoch).name)
            # --refine-poses: the corrections of that checkpoint
            table = restore_pose_table(saved, len(dataset), ckpt, device) if "poses" in ckpt else None
            try:
                write_outputs(run, epoch, loss_module, dataset, saved, device, table)
            except OSError as exc:
                raise _disk_error(run, output_path(run, epoch, hetero), exc, epoch) from exc
    finally:
        loss_module.model.load_state_dict(current)


def _train(
    config: TrainConfig, run: RunDir, particles: ParticleSet, state, ctx, provenance: ProvenanceLog | None
) -> FitResult:
    from cryoscape.progress import progress

    device = ctx.device
    dataset = make_dataset(config, particles)
    loss_module = build_loss_module(config).to(device)
    optimizer = make_optimizer(loss_module.parameters(), config.lr, config.weight_decay, device)  # fused on CUDA
    generator = torch.Generator(device=device)
    generator.manual_seed(reparam_seed(config.seed, ctx.rank))
    start_epoch = 0
    if state is not None:
        loss_module.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # the checkpoint's values are replaced by the (merged) config's
            group["lr"] = config.lr
            group["weight_decay"] = config.weight_decay
        own = distributed.resumed_generator_state(state["rng"], ctx)  # this process's own noise stream
        fresh = distributed.resume_seed(config.seed, ctx.rank, int(state["epoch"]))
        if own is None or not restore_generator(generator, own, fresh):  # none saved, or saved on another device
            generator.manual_seed(fresh)
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch = int(state["epoch"])
    config, policy = _training_precision(config, state, loss_module, dataset, ctx)
    pose_table = make_pose_table(config, dataset, state, ctx)
    if ctx.is_main:
        run.save_config(config)  # with the precision decided
        _write_missing_outputs(run, loss_module, dataset, config, device, state)
    distributed.barrier(ctx)
    if start_epoch >= config.num_epochs:
        log.info(
            "the run already has %d epochs (asked for %d); nothing to train", start_epoch, config.num_epochs
        )
        return FitResult(run, config, start_epoch, [])
    ddp_module = distributed.wrap_model(loss_module, ctx)
    # on CUDA the seam band's size is bounded on the host from the rotations, so a step never waits for the GPU
    # (not with --refine-poses: the corrected rotations are known on the device only)
    host_rotations = (particles.poses.rotations if device.type == "cuda" and particles.poses is not None
                      and pose_table is None else None)
    stepper = TrainStep(ddp_module, optimizer, policy, device, sync_images=config.log_interval,
                        host_rotations=host_rotations, pose_table=pose_table)
    stepper.load_state_dict(None if state is None else state.get("scaler"))  # fp16 loss scale of the run resumed

    sampler = loader = epoch_batches(  # in memory: a permutation; lazy: streamed by windows (data.streaming)
        dataset,
        config.batch_size,
        chunk_size=config.data.chunk_size,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        num_workers=config.data.num_workers,
    )
    sampler = loader = training_batches(loader, dataset, device)  # CUDA: resident in fp16, or pinned async copies
    beta = config.effective_beta()
    n_batches = len(sampler)
    if ctx.is_main:
        log.info(
            "training %s: %d particles, box %d, %s, batch %d x %d process(es), %s, epochs %d..%d",
            "VAE" if loss_module.zdim else "homogeneous decoder",
            len(dataset),
            config.data.box_size,
            "in memory" if dataset.in_memory else "streamed from disk",
            config.batch_size,
            ctx.world_size,
            f"{policy.name} autocast" if policy.enabled else "fp32",
            start_epoch + 1,
            config.num_epochs,
        )
    epoch_losses: list[float] = []
    loss_module.train()
    for epoch in range(start_epoch, config.num_epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        stepper.reset()
        stepper.learn_poses = pose_table is not None and epoch >= config.pose_warmup_epochs
        bar = (
            progress(total=n_batches, desc=f"epoch {epoch + 1}/{config.num_epochs}", unit="batch")
            if ctx.is_main
            else None
        )
        seen_since_log = 0
        for b, batch in enumerate(loader):
            if b == 0:
                _check_batch(batch, config)
            batch = batch.to(device)
            b_beta = beta_at(epoch + b / n_batches, beta, config.beta_schedule) if beta else 0.0
            if config.freq_march_epochs > 0:  # frequency marching: this batch's loss disc (TrainConfig)
                loss_module.set_active_radius_px(march_radius_px(
                    epoch + b / n_batches, config.freq_march_start_px, config.loss_radius(loss_module.box_size),
                    config.freq_march_epochs))
            parts = stepper.forward(batch, b_beta, generator)  # no host read: see training.step.TrainStep
            check = stepper.sync() if stepper.due() else None  # each step on CPU, each log interval on CUDA
            if check is not None and check.band_overflow:
                raise _band_error(epoch, b)
            finite, n_global = distributed.step_agreement(check is None or check.finite, batch.images.shape[0], ctx)
            if not finite:
                if bar is not None:
                    bar.close()
                raise _nonfinite_error(run, dataset, check or stepper.sync(), batch, epoch, b, n_batches)
            weight = distributed.shard_loss_weight(batch.images.shape[0], n_global, ctx)  # 1 unless shards differ
            stepper.backward_step(parts, weight)
            seen_since_log += batch.images.shape[0]
            if bar is not None:
                bar.update(1)
                if check is not None:
                    bar.set_postfix(loss=f"{check.loss / check.images:.4g}", refresh=False)
            if ctx.is_main and check is not None and seen_since_log >= config.log_interval:
                seen_since_log = 0
                log.debug(
                    "epoch %d batch %d/%d: running loss %.6g", epoch + 1, b + 1, n_batches, check.loss / check.images
                )
        if bar is not None:
            bar.close()
        loss_module.set_active_radius_px(None)  # latents and maps of the checkpoint use the whole disc
        end = stepper.sync()  # the epoch's sums; on CUDA also the steps since the last check
        if end.band_overflow:
            raise _band_error(epoch, n_batches - 1)
        if not distributed.all_true(end.finite, ctx):
            raise _nonfinite_error(run, dataset, end, batch, epoch, b, n_batches)
        totals = _EpochTotals(end.loss, end.mse, end.kl, end.images).summed(ctx)
        mean_loss = totals.loss / totals.images
        mean_mse = totals.mse / totals.images
        mean_kl = totals.kl / totals.images
        epoch_losses.append(mean_loss)
        done = epoch + 1
        seconds = time.perf_counter() - t0
        if ctx.is_main:
            msg = f"epoch {done}/{config.num_epochs}: loss {mean_loss:.6g}, mse {mean_mse:.6g}"
            if loss_module.zdim:
                msg += f", kl {mean_kl:.4g}, beta {b_beta:.4g}"
            log.info("%s (%.1f s, %.0f images/s)", msg, seconds, totals.images / max(seconds, 1e-9))
        if done % config.checkpoint_every == 0 or done == config.num_epochs:
            error = None
            reparam_ranks = distributed.gather_generator_states(generator, ctx)  # on every process
            if ctx.is_main:
                error = _checkpoint(run, done, loss_module, optimizer, generator, dataset, config, mean_loss, device,
                                    reparam_ranks, scaler_state=stepper.state_dict(), pose_table=pose_table)
            if not distributed.all_true(error is None, ctx):
                raise error if error is not None else TrainingError("the main process failed to checkpoint")
        if provenance is not None:
            extra = {"mse": mean_mse, "kl": mean_kl} if loss_module.zdim else {"mse": mean_mse}
            provenance.epoch_done(done, seconds, mean_loss, **extra)
    return FitResult(run, config, config.num_epochs, epoch_losses)


def _checkpoint(
    run, epoch, loss_module, optimizer, generator, dataset, config, mean_loss, device, reparam_ranks=None,
    scaler_state=None, pose_table=None,
) -> TrainingError | None:
    """Write ``weights.<epoch>.pt``, then its output; a failed write is returned as a TrainingError.

    ``reparam_ranks``: the noise-generator state of every process (``distributed.gather_generator_states``).
    """
    payload = {
        "model": loss_module.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {**_rng_state(generator), "reparam_ranks": list(reparam_ranks or [generator.get_state()])},
        "config": to_dict(config),
        "train_loss": mean_loss,
        **({"scaler": scaler_state} if scaler_state else {}),  # fp16 GradScaler (training.step.TrainStep)
        **({"poses": pose_table.state_dict()} if pose_table is not None else {}),  # --refine-poses
    }
    path = run.weights_path(epoch)
    try:
        run.save_checkpoint(epoch, payload)
        log.info("wrote %s", path)
        path = output_path(run, epoch, loss_module.zdim > 0)
        write_outputs(run, epoch, loss_module, dataset, config, device, pose_table)
    except OSError as exc:
        log.error("cannot write %s: %s", path, exc)
        return _disk_error(run, path, exc, epoch)
    return None

