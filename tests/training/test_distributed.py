"""Two gloo processes on CPU against one process: one step's gradients, and resume under torchrun.

The workers are forked processes with the environment torchrun would set (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``), each with one thread.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np
import pytest
import torch

from cryoscape.data.particles import load_particles
from cryoscape.models import ModelConfig
from cryoscape.runs import RunDir
from cryoscape.training import distributed, loop
from cryoscape.training.config import DataConfig, TrainConfig, load_trained
from cryoscape.training.step import ReconstructionObjective

from .synthetic import two_blob_dataset

BOX = 16
#: Images of the global batch in the gradient test: odd, so the two shards differ in size (3 and 2).
GLOBAL_BATCH = 5


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return two_blob_dataset(tmp_path_factory.mktemp("ddp"), BOX, 27, seed=2)


def _config(syn, **changes) -> TrainConfig:
    model = ModelConfig(zdim=2, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1)
    data = DataConfig(particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf))
    base = TrainConfig(model=model, data=data, num_epochs=1, batch_size=GLOBAL_BATCH, lr=1e-3, amp=False)
    return dataclasses.replace(base, **changes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(worker, args: tuple) -> None:
    """Two worker processes, forked (no re-import of torch: seconds instead of tens of seconds)."""
    torch.multiprocessing.start_processes(worker, args=args, nprocs=2, join=True, start_method="fork")


def _as_rank(rank: int, world: int, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
        LOCAL_RANK=str(rank), CRYOSCAPE_NO_PROGRESS="1", OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)


def _one_step_gradients(config: TrainConfig, positions: np.ndarray, ctx, weighted: bool) -> dict[str, torch.Tensor]:
    """Gradients of one training step on ``positions`` (this process's shard), as the training loop takes it."""
    particles = load_particles(config.data.particles, poses=config.data.poses, ctf=config.data.ctf)
    dataset = loop.make_dataset(config, particles)
    loss_module: ReconstructionObjective = loop.build_loss_module(config)
    module = distributed.wrap_model(loss_module, ctx)
    batch = dataset.get_batch(list(positions))
    parts = module(batch.images, batch.rotations, batch.shifts_px, batch.ctf, beta=0.5, sample=False)
    finite, n_global = distributed.step_agreement(bool(torch.isfinite(parts.loss)), len(positions), ctx)
    assert finite and n_global == GLOBAL_BATCH
    weight = distributed.shard_loss_weight(len(positions), n_global, ctx) if weighted else 1.0
    (parts.loss * weight).backward()
    return {name: p.grad.detach().clone() for name, p in loss_module.named_parameters()}


def _gradient_worker(rank: int, world: int, port: int, config: TrainConfig, out: str) -> None:
    _as_rank(rank, world, port)
    ctx = distributed.init_distributed("cpu")
    try:
        shard = np.array_split(np.arange(GLOBAL_BATCH), world)[rank]
        grads = {
            "weighted": _one_step_gradients(config, shard, ctx, weighted=True),
            "plain_average": _one_step_gradients(config, shard, ctx, weighted=False),
        }
        if rank == 0:
            torch.save(grads, out)
    finally:
        distributed.shutdown(ctx)


def test_one_step_gradients_of_two_unequal_shards_equal_one_process(data, tmp_path):
    """VAE (encoder + decoder + KL), CTF and shifts, shards of 3 and 2 images: DDP's gradient equals the
    single-process gradient of the 5-image batch mean; the plain DDP average of the two shard means does not."""
    particles = load_particles(data.stack, poses=data.poses, ctf=data.ctf)
    config = loop.resolve_data(loop.with_absolute_paths(_config(data)), particles)
    single = _one_step_gradients(config, np.arange(GLOBAL_BATCH), distributed.DistContext(), weighted=True)
    out = tmp_path / "grads.pt"
    _start(_gradient_worker, (2, _free_port(), config, str(out)))
    two = torch.load(out, weights_only=True)
    assert set(two["weighted"]) == set(single) and any(n.startswith("model.encoder") for n in single)
    for name, grad in single.items():
        torch.testing.assert_close(two["weighted"][name], grad, rtol=1e-4, atol=1e-7)
    # without the shard weights the average of the two shard means is another gradient (the test can fail)
    worst = max(
        float((two["plain_average"][n] - g).abs().max() / g.abs().max().clamp_min(1e-12)) for n, g in single.items()
    )
    assert worst > 1e-2


def _fit_worker(rank: int, world: int, port: int, config: TrainConfig, out: str, resume: bool) -> None:
    _as_rank(rank, world, port)
    if resume:
        loop.fit(None, out, resume_from=out, changes={"num_epochs": config.num_epochs})
    else:
        loop.fit(config, out)


def _spawn_fit(config: TrainConfig, out, resume: bool = False) -> None:
    _start(_fit_worker, (2, _free_port(), config, str(out), resume))


def test_resume_under_two_processes_continues_the_uninterrupted_run(data, tmp_path):
    """2 epochs in one go vs 1 epoch then a resume, both with 2 processes (each drawing its own noise, with a
    last global batch split 2/1): the same weights, and rank 0's z file in original particle order."""
    config = _config(data, batch_size=2, num_epochs=2)  # 27 images: 6 global batches of 4, then 3 (2 + 1)
    _spawn_fit(config, tmp_path / "straight")
    _spawn_fit(dataclasses.replace(config, num_epochs=1), tmp_path / "resumed")
    _spawn_fit(config, tmp_path / "resumed", resume=True)
    a = RunDir(tmp_path / "straight").load_checkpoint(2)
    b = RunDir(tmp_path / "resumed").load_checkpoint(2)
    assert len(a["rng"]["reparam_ranks"]) == 2
    assert not torch.equal(a["rng"]["reparam_ranks"][0], a["rng"]["reparam_ranks"][1])
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0)
    # the latents written by rank 0 cover every particle, in original order, and match the final weights
    z = RunDir(tmp_path / "straight").load_z(2)
    np.testing.assert_array_equal(z.indices, np.arange(27))
    model, trained, _ = load_trained(RunDir(tmp_path / "straight"), 2)
    one = load_particles(data.stack, poses=data.poses, ctf=data.ctf, ind=np.array([19]))
    mu, _, _ = loop.evaluate(ReconstructionObjective(model, BOX, trained.loss_radius(BOX)), loop.make_dataset(
        trained, one))
    np.testing.assert_allclose(z.mean[19], mu[0], rtol=1e-5, atol=1e-6)


def test_resumed_noise_state_per_rank_and_fallbacks():
    """Each rank resumes its own saved stream; a rank the checkpoint has no state for gets a fresh seed (None),
    never another rank's stream; a checkpoint written before per-rank states keeps rank 0's."""
    states = [torch.Generator().manual_seed(s).get_state() for s in (1, 2)]
    rng = {"reparam": states[0], "reparam_ranks": states}
    ctx = [distributed.DistContext(rank=r, world_size=3) for r in range(3)]
    assert torch.equal(distributed.resumed_generator_state(rng, ctx[1]), states[1])
    assert distributed.resumed_generator_state(rng, ctx[2]) is None
    assert torch.equal(distributed.resumed_generator_state({"reparam": states[0]}, ctx[0]), states[0])
    assert distributed.resumed_generator_state({"reparam": states[0]}, ctx[1]) is None
    seeds = {distributed.resume_seed(0, r, e) for r in range(3) for e in range(3)}
    assert len(seeds) == 9
    # the shard weights make DDP's average of shard means the global mean: shards of 3 and 2 images
    w = [distributed.shard_loss_weight(n, 5, distributed.DistContext(rank=r, world_size=2)) for r, n in
         enumerate((3, 2))]
    assert w == pytest.approx([1.2, 0.8])
    assert distributed.shard_loss_weight(4, 4, distributed.DistContext()) == 1.0
