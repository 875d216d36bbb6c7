"""Training loop on tiny synthetic data: learning, separation, resume, NaN stop, latent order, maps, DDP."""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np
import pytest
import torch

from cryoscape.data.particles import load_particles
from cryoscape.errors import InputError, TrainingError
from cryoscape.io.mrc import read_mrc
from cryoscape.models import ModelConfig
from cryoscape.runs import RunDir
from cryoscape.training import loop
from cryoscape.training.config import DataConfig, TrainConfig, load_trained, read_run_config

from .synthetic import PIXEL_SIZE, blob_volume, write_dataset

BOX = 16


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def two_state(tmp_path_factory):
    v0 = blob_volume(BOX, [(0, 0, 0), (3, 0, 0)])
    v1 = blob_volume(BOX, [(0, 0, 0), (-3, 2, 0), (0, -3, 2)])
    return write_dataset(tmp_path_factory.mktemp("two_state"), [v0, v1], 300, noise_std=0.5, seed=4)


def small_config(syn, **changes) -> TrainConfig:
    model = changes.pop("model", ModelConfig(zdim=1, enc_dim=64, enc_layers=2, dec_dim=64, dec_layers=2))
    data = DataConfig(
        particles=str(syn.stack), poses=str(syn.poses), ctf=str(syn.ctf), ind=changes.pop("ind", None)
    )
    base = TrainConfig(model=model, data=data, num_epochs=3, batch_size=8, lr=1e-3, amp=False)
    return dataclasses.replace(base, **changes)


def _knn_state_accuracy(z: np.ndarray, states: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour classification accuracy of the states from z (chance ≈ 0.5).

    A 1-D latent may fold (one state in the middle, the other on both sides), so a single threshold is not
    the criterion; neighbours in z sharing the state is.
    """
    dist = np.linalg.norm(z[:, None, :] - z[None, :, :], axis=-1)
    np.fill_diagonal(dist, np.inf)
    neighbours = np.argsort(dist, axis=1)[:, :k]
    return float(np.mean((states[neighbours].mean(axis=1) > 0.5) == states))


@pytest.mark.parametrize("domain", ["hartley", "hartley_full"])
def test_vae_learns_and_separates_two_states(two_state, tmp_path, domain):
    model = ModelConfig(zdim=1, enc_dim=64, enc_layers=2, dec_dim=64, dec_layers=2, domain=domain)
    result = loop.fit(small_config(two_state, num_epochs=20, model=model), tmp_path / "run")
    losses = result.epoch_losses
    assert losses[-1] < 0.6 * losses[0]
    z = RunDir(tmp_path / "run").load_z()
    assert z.mean.shape == (300, 1) and z.logvar.shape == (300, 1)
    np.testing.assert_array_equal(z.indices, np.arange(300))
    acc = _knn_state_accuracy(z.mean, two_state.states)
    assert acc > 0.9, acc
    # the same criterion on a latent that knows nothing is at chance
    shuffled = np.random.default_rng(0).permutation(two_state.states)
    assert _knn_state_accuracy(z.mean, shuffled) < 0.65
    assert (tmp_path / "run" / "run.log").read_text().count("epoch 20/20") == 1
    assert read_run_config(RunDir(tmp_path / "run")).data.data_std == result.config.data.data_std > 0


def test_resume_equals_uninterrupted(two_state, tmp_path):
    config = small_config(two_state, num_epochs=3, checkpoint_every=2)
    loop.fit(config, tmp_path / "a")
    assert RunDir(tmp_path / "a").epochs() == [2, 3]
    loop.fit(dataclasses.replace(config, num_epochs=2), tmp_path / "b")
    loop.fit(config, tmp_path / "b", resume_from=tmp_path / "b")
    a, b = RunDir(tmp_path / "a").load_checkpoint(3), RunDir(tmp_path / "b").load_checkpoint(3)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    np.testing.assert_array_equal(
        RunDir(tmp_path / "a").load_z(3).mean, RunDir(tmp_path / "b").load_z(3).mean
    )


def test_same_seed_same_result_other_seed_differs(two_state, tmp_path):
    config = small_config(two_state, num_epochs=1)
    loop.fit(config, tmp_path / "a")
    loop.fit(config, tmp_path / "b")
    loop.fit(dataclasses.replace(config, seed=1), tmp_path / "c")
    za, zb, zc = (RunDir(tmp_path / x).load_z(1).mean for x in "abc")
    np.testing.assert_array_equal(za, zb)
    assert not np.allclose(za, zc)


def test_nan_loss_stops_and_keeps_the_checkpoint(two_state, tmp_path, monkeypatch):
    original = loop.ReconstructionObjective.forward
    calls = {"n": 0}
    batches_per_epoch = 300 // 8 + 1

    def poisoned(self, *args, **kwargs):
        parts = original(self, *args, **kwargs)
        calls["n"] += 1 if self.training else 0
        if self.training and calls["n"] == batches_per_epoch + 3:  # epoch 2, batch 3
            return dataclasses.replace(parts, loss=parts.loss * float("nan"))
        return parts

    monkeypatch.setattr(loop.ReconstructionObjective, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"epoch 2, batch 3 .*weights\.1\.pt"):
        loop.fit(small_config(two_state, num_epochs=3), tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.epochs() == [1]
    assert run.load_checkpoint(1)["epoch"] == 1


def test_latents_follow_original_indices_with_ind(two_state, tmp_path):
    ind = np.array([250, 3, 77, 12, 140, 99, 5, 201, 64, 33, 180, 7])
    np.save(tmp_path / "ind.npy", ind)
    result = loop.fit(small_config(two_state, num_epochs=1, ind=str(tmp_path / "ind.npy")), tmp_path / "run")
    z = RunDir(tmp_path / "run").load_z(1)
    np.testing.assert_array_equal(z.indices, np.sort(ind))
    # independently: encode particle 250 alone and find it on the row of original index 250
    from cryoscape.training.step import ReconstructionObjective

    model, config, _ = load_trained(RunDir(tmp_path / "run"), 1)
    single = load_particles(two_state.stack, poses=two_state.poses, ctf=two_state.ctf, ind=np.array([250]))
    dataset = loop.make_dataset(config, single)
    mu, _, _ = loop.evaluate(ReconstructionObjective(model, BOX, config.loss_radius(BOX)), dataset)
    row = int(np.flatnonzero(z.indices == 250)[0])
    np.testing.assert_allclose(z.mean[row], mu[0], rtol=1e-5, atol=1e-6)
    assert result.config.data.ind == str(tmp_path / "ind.npy")


def test_homogeneous_run_writes_maps(two_state, tmp_path):
    config = small_config(two_state, model=ModelConfig(zdim=0, dec_dim=32, dec_layers=2), num_epochs=2)
    result = loop.fit(config, tmp_path / "nn")
    assert result.epoch_losses[1] < result.epoch_losses[0]
    vol, header = read_mrc(tmp_path / "nn" / "reconstruct.2.mrc")
    assert vol.shape == (BOX, BOX, BOX) and vol.dtype == np.float32
    assert header.voxel_size_angstrom == pytest.approx(PIXEL_SIZE)
    assert not (tmp_path / "nn" / "z.2.npz").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        CRYOSCAPE_NO_PROGRESS="1",
        OMP_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    loop.fit(config, out)


def test_two_gloo_processes_equal_one_process_with_double_batch(two_state, tmp_path):
    """DDP averages the gradients of the two shards: the same step as one process on the union batch."""
    base = small_config(
        two_state, model=ModelConfig(zdim=0, dec_dim=32, dec_layers=1), num_epochs=1, ind=None
    )
    sub = load_particles(two_state.stack, poses=two_state.poses, ctf=two_state.ctf, ind=np.arange(64))
    np.save(tmp_path / "ind.npy", np.arange(64))
    base = dataclasses.replace(base, data=dataclasses.replace(base.data, ind=str(tmp_path / "ind.npy")))
    assert len(sub) == 64
    loop.fit(dataclasses.replace(base, batch_size=8), tmp_path / "one")
    torch.multiprocessing.spawn(
        _ddp_worker,
        args=(2, _free_port(), dataclasses.replace(base, batch_size=4), str(tmp_path / "two")),
        nprocs=2,
        join=True,
    )
    one, two = RunDir(tmp_path / "one").load_checkpoint(1), RunDir(tmp_path / "two").load_checkpoint(1)
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-4, atol=1e-5)


def test_resume_config_applies_run_control_and_refuses_the_rest(two_state):
    saved = loop.with_absolute_paths(small_config(two_state, num_epochs=3))
    merged, notes = loop.resume_config(
        saved, {"num_epochs": 5, "lr": 1e-4, "num_workers": 2, "zdim": 1, "particles": str(two_state.stack),
                "seed": None}
    )
    assert (merged.num_epochs, merged.lr, merged.data.num_workers) == (5, 1e-4, 2)
    assert merged.model == saved.model and merged.seed == saved.seed
    assert notes == ["--num-epochs: 3 -> 5", "--lr: 0.001 -> 0.0001", "--num-workers: 0 -> 2"]
    with pytest.raises(InputError) as info:
        loop.resume_config(saved, {"zdim": 3, "dec_dim": 32, "ind": "other.txt", "lr": 1e-5})
    message = str(info.value)
    assert "--zdim 3 (the run has 1)" in message and "--dec-dim 32 (the run has 64)" in message
    assert "--ind other.txt" in message and "--lr" not in message
    # a whole configuration given for a resume: its differing fields are the changes asked for
    asked = dataclasses.replace(small_config(two_state, num_epochs=4), lr=2e-3)
    assert loop.config_differences(saved, asked) == {"num_epochs": 4, "lr": 2e-3}


def test_relative_data_paths_are_stored_absolute(two_state, tmp_path, monkeypatch):
    monkeypatch.chdir(two_state.stack.parent)
    config = dataclasses.replace(
        small_config(two_state, num_epochs=1),
        data=DataConfig(particles=two_state.stack.name, poses=two_state.poses.name, ctf=two_state.ctf.name),
    )
    result = loop.fit(config, tmp_path / "run")
    assert result.config.data.particles == str(two_state.stack)
    assert read_run_config(RunDir(tmp_path / "run")).data.ctf == str(two_state.ctf)
