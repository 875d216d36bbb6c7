"""Multi-process training with torchrun + DistributedDataParallel (gloo on CPU, NCCL on GPU).

The training loop always goes through these functions; with one process they do nothing (no process group,
no DDP wrapper), so the single-process run and a distributed run share one code path. Under ``torchrun``
(``WORLD_SIZE`` > 1 in the environment) :func:`init_distributed` joins the process group, each process reads
its shard of every global batch (``data.dataset.EpochSampler``), DDP averages the gradients, and rank 0 writes
the run directory.

What makes W processes at batch B/W train like one process at batch B:

- the gradient is that of the mean loss over the *global* batch, also when the shards differ in size (the last
  batch of an epoch): each process weights its shard's mean loss by :func:`shard_loss_weight` before DDP
  averages (:func:`step_agreement` gives the global image count, in the all-reduce that also checks that every
  process's loss is finite);
- the models hold no batch statistics (no BatchNorm), so no SyncBatchNorm is needed; DDP broadcasts the
  parameters of rank 0 when it wraps the model, and the buffers are constants (not re-broadcast each step);
- each process draws its own reparameterisation noise (seeded by seed and rank); every checkpoint stores the
  noise-generator state of every process (:func:`gather_generator_states`), so a run resumed under ``torchrun``
  with the same number of processes continues as the uninterrupted one (:func:`resumed_generator_state`).

The noise of image i depends on which process draws it, so runs at different process counts agree in
distribution (same accuracy), not bit for bit; with the noise off (homogeneous models) they agree to rounding.

Example::

    torchrun --standalone --nproc-per-node 4 -m cryoscape.cli.main train-vae particles.star --zdim 8 -o run/

Several nodes under a scheduler (SLURM): ``docs/multinode.md``.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist

from cryoscape.errors import InputError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands.

    Attributes
    ----------
    rank, world_size, local_rank : int
    device : torch.device
        The device this process trains on.
    initialized : bool
        Whether this module created a process group (to be destroyed by :func:`shutdown`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and logs."""
        return self.rank == 0


def choose_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA (``cuda:local_rank``) when available, else CPU; ``cpu``/``cuda`` as asked."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).split(":")[0] == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is available here", fix="use --device cpu or auto")
    if device == "cuda":
        return torch.device("cuda", local_rank)
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown --device {device!r}", fix="use auto, cpu, cuda or cuda:N") from None


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; otherwise a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(device=choose_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = choose_device(device, local_rank)
    initialized = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        initialized = True
    return DistContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=dev, initialized=initialized
    )


def wrap_model(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DDP around ``module`` when several processes train; ``module`` itself otherwise."""
    if ctx.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # the buffers (lattice indices, encoding frequencies) are constants: synced once, not before every forward
    no_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
        else {"broadcast_buffers": False}
    )
    return DistributedDataParallel(module, device_ids=device_ids, **no_sync)


def step_agreement(finite: bool, n_images: int, ctx: DistContext) -> tuple[bool, int]:
    """One all-reduce per step: (whether the loss is finite on every process, images in the global batch).

    Parameters
    ----------
    finite : bool
        Whether this process's loss is finite.
    n_images : int
        Images in this process's shard of the batch.
    """
    if ctx.world_size == 1:
        return bool(finite), int(n_images)
    t = torch.tensor([0.0 if finite else 1.0, float(n_images)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    bad, total = t.cpu().tolist()
    return bad == 0, round(total)


def shard_loss_weight(n_local: int, n_global: int, ctx: DistContext) -> float:
    """Factor for this process's mean loss so that DDP's gradient average is the global batch mean's gradient.

    DDP averages gradients over the W processes: ``(1/W) Σ_r w_r ∇mean_r``. With ``w_r = W n_r / N`` this is
    ``Σ_r (n_r / N) ∇mean_r``, the gradient of the mean over all N images of the global batch (1 when the shards
    are equal, and with one process).
    """
    if ctx.world_size == 1 or n_global <= 0:
        return 1.0
    return ctx.world_size * float(n_local) / float(n_global)


def gather_generator_states(generator: torch.Generator, ctx: DistContext) -> list[torch.Tensor]:
    """The state of ``generator`` on every process, in rank order (every process must call this)."""
    state = generator.get_state()
    if ctx.world_size == 1:
        return [state]
    states: list[torch.Tensor | None] = [None] * ctx.world_size
    dist.all_gather_object(states, state)
    return [torch.as_tensor(s) for s in states]


def resumed_generator_state(rng: dict, ctx: DistContext) -> torch.Tensor | None:
    """This process's noise-generator state from a checkpoint's ``rng`` entry, or None to seed afresh.

    ``rng["reparam_ranks"]`` (one state per process, from :func:`gather_generator_states`) gives process r its
    own state when the run had more than r processes; checkpoints without it hold only rank 0's state
    (``rng["reparam"]``). A process with no saved state of its own returns None: the caller seeds it with
    :func:`resume_seed` rather than copying another process's stream.
    """
    states = rng.get("reparam_ranks")
    if states is not None and ctx.rank < len(states):
        return torch.as_tensor(states[ctx.rank])
    if ctx.rank == 0:
        return rng["reparam"]
    return None


def resume_seed(seed: int, rank: int, epoch: int) -> int:
    """A fresh noise seed for process ``rank`` resuming after ``epoch`` (distinct per seed, rank and epoch)."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(epoch), 0x5EED]).generate_state(1)[0])


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``values`` over processes (a copy; unchanged with one process)."""
    out = values.detach().clone()
    if ctx.world_size > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_true(flag: bool, ctx: DistContext) -> bool:
    """True when ``flag`` holds on every process."""
    if ctx.world_size == 1:
        return bool(flag)
    t = torch.tensor([0.0 if flag else 1.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return bool(t.item() == 0)


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op with one)."""
    if ctx.world_size > 1:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.initialized and dist.is_initialized():
        dist.destroy_process_group()
