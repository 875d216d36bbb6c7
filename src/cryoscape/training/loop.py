"""Training loop: epochs, progress, checkpoints, latents, resume, non-finite loss stop.

:func:`fit` trains the model described by a :class:`~cryoscape.training.config.TrainConfig` and writes the run
directory (``cryoscape.runs.RunDir``): ``config.yaml``, ``run.log``, every ``checkpoint_every`` epochs (and
after the last) ``weights.N.pt`` with model, optimizer and RNG state, ``z.N.npz`` (heterogeneous) or
``reconstruct.N.mrc`` (homogeneous). Given the seed, an fp32 run on CPU (``amp`` off) is reproducible bit for
bit, and a run resumed from ``weights.N.pt`` ends with the same weights as an uninterrupted one (tested). With
bf16 autocast on CPU (the default where the CPU has native bf16) reruns agree bit for bit when Intel MKL runs in
its alignment-independent mode (``MKL_CBWR=AUTO,STRICT``, which the ``cryoscape`` command sets, see
``cryoscape.cli._process``): 6 of 6 1-epoch runs of the same 5,000 images identical, against 4 of 6 without
it (max |Δz| 0.15). A caller of :func:`fit` from Python sets ``MKL_CBWR`` before importing torch to get
the same. Model initialisation uses
``torch.manual_seed(seed)``, the batch order of epoch ``e`` depends only on ``(seed, e)``, and the
reparameterisation noise comes from a ``torch.Generator`` whose state is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoscape.data.dataset import (
    EpochSampler,
    HartleyDataset,
    ImagePrep,
    choose_in_memory,
    estimate_data_std,
    make_loader,
)
from cryoscape.data.particles import ParticleSet, load_particles
from cryoscape.errors import InputError, TrainingError
from cryoscape.models.precision import amp_helps
from cryoscape.runs import RunDir, find_run, load_checkpoint_file
from cryoscape.training import distributed
from cryoscape.training.config import TrainConfig, config_from_checkpoint, to_dict
from cryoscape.training.losses import beta_at
from cryoscape.training.step import SliceLoss

log = logging.getLogger("cryoscape.training")

#: Fields a resumed run may change (everything else comes from the checkpoint).
RESUME_OVERRIDES = ("num_epochs", "checkpoint_every", "log_interval", "device")


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
        amplitude_contrast=d.amplitude_contrast, require_poses=True,
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
        prep = ImagePrep(box, invert=d.invert_data, window=d.window, window_r=d.window_r)
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
    """Whether to autocast: asked for, and the device has fast reduced precision."""
    if not config.amp:
        return False
    helps = amp_helps(device)
    if not helps:
        log.info("this device has no fast reduced precision; training in fp32 (--amp has no effect)")
    return helps


def build_loss_module(config: TrainConfig) -> SliceLoss:
    """Model (initialised with ``torch.manual_seed(config.seed)``) inside its :class:`SliceLoss`."""
    from cryoscape.models import build_model

    box = int(config.data.box_size)
    torch.manual_seed(config.seed)
    model = build_model(config.model, box)
    return SliceLoss(model, box, config.loss_radius(box))


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


def merge_resume_config(saved: TrainConfig, asked: TrainConfig | None) -> TrainConfig:
    """The saved configuration with the run-control fields (:data:`RESUME_OVERRIDES`) of ``asked``."""
    if asked is None:
        return saved
    changes = {name: getattr(asked, name) for name in RESUME_OVERRIDES}
    data = dataclasses.replace(
        saved.data, num_workers=asked.data.num_workers, datadir=asked.data.datadir or saved.data.datadir
    )
    return dataclasses.replace(saved, data=data, **changes)


@torch.no_grad()
def evaluate(
    loss_module: SliceLoss,
    dataset: HartleyDataset,
    *,
    batch_size: int = 64,
    amp: bool = False,
    beta: float = 0.0,
    device: torch.device | str = "cpu",
    desc: str = "encoding",
    with_loss: bool = True,
):
    """Posterior means/log-variances and per-image error of every particle (no sampling).

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
        parts = loss_module(
            batch.images,
            batch.rotations,
            batch.shifts_px,
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
    loss_module: SliceLoss,
    dataset: HartleyDataset,
    config: TrainConfig,
    device: torch.device,
    amp: bool,
) -> None:
    """After checkpointing: ``z.N.npz`` (heterogeneous) or ``reconstruct.N.mrc`` (homogeneous)."""
    del amp  # outputs are computed in fp32
    if loss_module.zdim > 0:
        # encoded in fp32 (cheap: the encoder and one decoder pass), so z files do not depend on --amp
        mu, logvar, _ = evaluate(
            loss_module,
            dataset,
            batch_size=max(64, config.batch_size),
            amp=False,
            device=device,
            with_loss=False,
        )
        path = run.save_z(epoch, mu, logvar, dataset.particles.indices)
        log.info("wrote %s", path)
    else:
        from cryoscape.io.mrc import write_mrc

        decoder = loss_module.model.decoder
        was_training = decoder.training
        decoder.eval()
        vol = decoder.eval_volume(None, radius_px=config.volume_radius_px, scale=config.data.data_std)
        vol = vol.cpu().numpy()
        decoder.train(was_training)
        write_mrc(run.volume_path(epoch), vol, voxel_size_angstrom=config.data.pixel_size_angstrom)
        log.info("wrote %s", run.volume_path(epoch))


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"reparam": generator.get_state(), "torch": torch.get_rng_state()}


def fit(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    particles: ParticleSet | None = None,
    resume_from: str | os.PathLike | None = None,
) -> FitResult:
    """Train and write the run directory.

    Parameters
    ----------
    config : TrainConfig
        The run (ignored except for :data:`RESUME_OVERRIDES` when resuming).
    out_dir : path
        Run directory (created; a resumed run may use the same one).
    particles : ParticleSet, optional
        Use these particles instead of opening ``config.data`` (tests, notebooks).
    resume_from : path, optional
        A run directory (its latest checkpoint) or a ``weights.N.pt`` to continue from.

    Returns
    -------
    FitResult

    Raises
    ------
    TrainingError
        On a non-finite loss (naming the epoch and batch); the checkpoints already written are kept.
    """
    ctx = distributed.init_distributed(config.device)
    try:
        return _fit(config, Path(out_dir), particles, resume_from, ctx)
    finally:
        distributed.shutdown(ctx)


def _fit(
    config: TrainConfig, out: Path, particles: ParticleSet | None, resume_from, ctx: distributed.DistContext
) -> FitResult:
    state = None
    if resume_from is not None:
        run_in, epoch_in = find_run(resume_from)
        epoch_in = run_in.resolve_epoch(epoch_in)
        ckpt_path = run_in.weights_path(epoch_in)
        state = load_checkpoint_file(ckpt_path)
        config = merge_resume_config(config_from_checkpoint(state, ckpt_path), config)
    if particles is None:
        particles = open_particles(config)
    config = resolve_data(config, particles)
    run = RunDir(out)
    if ctx.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
    distributed.barrier(ctx)

    with _RunLog(run.log_path if ctx.is_main else None):
        return _train(config, run, particles, state, ctx)


def _train(config: TrainConfig, run: RunDir, particles: ParticleSet, state, ctx) -> FitResult:
    from cryoscape.progress import progress

    device = ctx.device
    amp = use_amp(config, device)
    dataset = make_dataset(config, particles)
    loss_module = build_loss_module(config).to(device)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed * 1000 + ctx.rank)
    start_epoch = 0
    if state is not None:
        loss_module.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"]["reparam"])
        torch.set_rng_state(state["rng"]["torch"])
        start_epoch = int(state["epoch"])
    if start_epoch >= config.num_epochs:
        log.info(
            "the run already has %d epochs (asked for %d); nothing to train", start_epoch, config.num_epochs
        )
        return FitResult(run, config, start_epoch, [])
    ddp_module = distributed.wrap_model(loss_module, ctx)

    sampler = EpochSampler(
        len(dataset),
        config.batch_size,
        shuffle=True,
        chunk_size=None if dataset.in_memory else config.data.chunk_size,
        seed=config.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    loader = make_loader(dataset, sampler, num_workers=config.data.num_workers)
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
            "bf16 autocast" if amp else "fp32",
            start_epoch + 1,
            config.num_epochs,
        )
    epoch_losses: list[float] = []
    loss_module.train()
    for epoch in range(start_epoch, config.num_epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        sums = torch.zeros(4, dtype=torch.float64)  # loss*n, mse*n, kl*n, n
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
            parts = ddp_module(
                batch.images,
                batch.rotations,
                batch.shifts_px,
                batch.ctf,
                beta=b_beta,
                generator=generator,
                sample=True,
                amp=amp,
            )
            finite = bool(torch.isfinite(parts.loss).item())
            if not distributed.all_true(finite, ctx):
                last = run.latest_epoch()
                kept = (
                    f"the last good checkpoint is {run.weights_path(last)}" if last else "no checkpoint yet"
                )
                if bar is not None:
                    bar.close()
                log.error("non-finite loss at epoch %d, batch %d", epoch + 1, b + 1)
                raise TrainingError(
                    f"non-finite loss ({parts.loss.item()}) at epoch {epoch + 1}, batch {b + 1} "
                    f"of {n_batches}; stopped ({kept}; try a lower --lr or check the images)"
                )
            optimizer.zero_grad(set_to_none=True)
            parts.loss.backward()
            optimizer.step()
            k = batch.images.shape[0]
            sums += torch.tensor(
                [parts.loss.item() * k, parts.mse.item() * k, parts.kl.item() * k, k], dtype=torch.float64
            )
            seen_since_log += k
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums[0].item() / sums[3].item():.4g}", refresh=False)
            if ctx.is_main and seen_since_log >= config.log_interval:
                seen_since_log = 0
                log.debug(
                    "epoch %d batch %d/%d: running loss %.6g",
                    epoch + 1,
                    b + 1,
                    n_batches,
                    sums[0].item() / sums[3].item(),
                )
        if bar is not None:
            bar.close()
        totals = distributed.all_reduce_sum(sums.to(device), ctx).cpu()
        n = totals[3].item()
        mean_loss, mean_mse, mean_kl = (totals[:3] / n).tolist()
        epoch_losses.append(mean_loss)
        done = epoch + 1
        if ctx.is_main:
            msg = f"epoch {done}/{config.num_epochs}: loss {mean_loss:.6g}, mse {mean_mse:.6g}"
            if loss_module.zdim:
                msg += f", kl {mean_kl:.4g}, beta {b_beta:.4g}"
            log.info(
                "%s (%.1f s, %.0f images/s)",
                msg,
                time.perf_counter() - t0,
                n / max(time.perf_counter() - t0, 1e-9),
            )
        if done % config.checkpoint_every == 0 or done == config.num_epochs:
            if ctx.is_main:
                payload = {
                    "model": loss_module.model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": _rng_state(generator),
                    "config": to_dict(config),
                    "train_loss": mean_loss,
                }
                path = run.save_checkpoint(done, payload)
                log.info("wrote %s", path)
                write_outputs(run, done, loss_module, dataset, config, device, amp)
            distributed.barrier(ctx)
        if not math.isfinite(mean_loss):  # pragma: no cover - caught per batch above
            raise TrainingError(f"non-finite mean loss in epoch {done}")
    return FitResult(run, config, config.num_epochs, epoch_losses)
