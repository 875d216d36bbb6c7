"""Multi-process training with torchrun + DistributedDataParallel (gloo on CPU, NCCL on GPU).

The training loop always goes through these functions; with one process they do nothing (no process group,
no DDP wrapper), so the single-process run and a distributed run share one code path. Under ``torchrun``
(``WORLD_SIZE`` > 1 in the environment) :func:`init_distributed` joins the process group, each process reads
its shard of every global batch (``data.dataset.EpochSampler``), DDP averages the gradients, and rank 0 writes
the run directory.

Example::

    torchrun --nproc_per_node 4 -m cryoscape.cli.main train-vae particles.star --zdim 8 -o run/
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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
    return DistributedDataParallel(module, device_ids=device_ids)


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
