"""Frequency marching: the schedule, the inner-disc loss, the option, and bit-identical resume."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryoscape.errors import InputError
from cryoscape.models import ModelConfig, build_model
from cryoscape.runs import RunDir
from cryoscape.training import loop
from cryoscape.training.config import DataConfig, TrainConfig, read_run_config
from cryoscape.training.losses import march_radius_px
from cryoscape.training.step import ReconstructionObjective

from .synthetic import blob_volume, write_dataset

BOX = 16


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


def test_march_radius_schedule():
    assert march_radius_px(0.0, 4.0, 8.0, 2.0) == 4.0
    assert march_radius_px(1.0, 4.0, 8.0, 2.0) == 6.0
    assert march_radius_px(0.5, 4.0, 8.0, 2.0) == 5.0
    assert march_radius_px(2.0, 4.0, 8.0, 2.0) == 8.0
    assert march_radius_px(7.0, 4.0, 8.0, 2.0) == 8.0
    assert march_radius_px(0.0, 4.0, 8.0, 0.0) == 8.0  # off
    assert march_radius_px(0.0, 12.0, 8.0, 2.0) == 8.0  # a start beyond the end: never above the loss radius


def _batch(box, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn((n, box, box), generator=g)
    q, _ = torch.linalg.qr(torch.randn((n, 3, 3), generator=g, dtype=torch.float64))
    rotations = (q * torch.sign(torch.linalg.det(q))[:, None, None]).float()
    shifts = torch.randn((n, 2), generator=g)
    return images, rotations, shifts


@pytest.mark.parametrize("zdim", [0, 2])
def test_inner_disc_loss_equals_the_loss_of_a_smaller_loss_radius(zdim):
    torch.manual_seed(0)
    model = build_model(ModelConfig(zdim=zdim, enc_dim=16, enc_layers=1, dec_dim=16, dec_layers=1), BOX)
    full = ReconstructionObjective(model, BOX, BOX / 2)
    small = ReconstructionObjective(model, BOX, 5.0)
    images, rotations, shifts = _batch(BOX, 4)
    full.set_active_radius_px(5.0)
    assert full.n_active_disc == small.n_disc < full.n_disc
    a = full(images, rotations, shifts, None, beta=0.5, sample=False, reduce=False)
    b = small(images, rotations, shifts, None, beta=0.5, sample=False, reduce=False)
    torch.testing.assert_close(a.mse, b.mse, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-6, atol=1e-7)
    if zdim:  # the encoder saw its own (whole) disc either way
        torch.testing.assert_close(a.mu, b.mu, rtol=0, atol=0)
    full.set_active_radius_px(None)
    c = full(images, rotations, shifts, None, beta=0.5, sample=False, reduce=False)
    assert full.active is None and not torch.allclose(c.mse, a.mse)
    full.set_active_radius_px(BOX)  # beyond the loss radius: the whole disc
    assert full.active is None and full.n_active_disc == full.n_disc


def test_option_is_validated_and_reaches_the_cli():
    with pytest.raises(InputError):
        TrainConfig(freq_march_epochs=-1.0)
    with pytest.raises(InputError):
        TrainConfig(freq_march_start_px=0.0)
    from cryoscape.cli import train_vae

    parser = __import__("argparse").ArgumentParser()
    train_vae.add_arguments(parser)
    args = parser.parse_args(["p.star", "-o", "out", "--freq-march-epochs", "1.5", "--freq-march-start-px", "6"])
    assert args.freq_march_epochs == 1.5 and args.freq_march_start_px == 6.0


@pytest.fixture(scope="module")
def two_state(tmp_path_factory):
    v0 = blob_volume(BOX, [(0, 0, 0), (3, 0, 0)])
    v1 = blob_volume(BOX, [(0, 0, 0), (-3, 2, 0), (0, -3, 2)])
    return write_dataset(tmp_path_factory.mktemp("two_state_march"), [v0, v1], 96, noise_std=0.5, seed=4)


def test_marching_run_resumes_bit_identically_and_differs_from_no_marching(two_state, tmp_path):
    data = DataConfig(particles=str(two_state.stack), poses=str(two_state.poses), ctf=str(two_state.ctf))
    config = TrainConfig(model=ModelConfig(zdim=1, enc_dim=32, enc_layers=1, dec_dim=32, dec_layers=1),
                         data=data, num_epochs=3, batch_size=8, lr=1e-3, amp=False,
                         freq_march_epochs=2.5, freq_march_start_px=3.0)
    loop.fit(config, tmp_path / "a")
    loop.fit(dataclasses.replace(config, num_epochs=1), tmp_path / "b")
    loop.fit(config, tmp_path / "b", resume_from=tmp_path / "b")
    a, b = RunDir(tmp_path / "a").load_checkpoint(3), RunDir(tmp_path / "b").load_checkpoint(3)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    np.testing.assert_array_equal(RunDir(tmp_path / "a").load_z(3).mean, RunDir(tmp_path / "b").load_z(3).mean)
    assert read_run_config(RunDir(tmp_path / "a")).freq_march_epochs == 2.5  # stored in config.yaml
    loop.fit(dataclasses.replace(config, freq_march_epochs=0.0), tmp_path / "c")
    c = RunDir(tmp_path / "c").load_checkpoint(3)
    assert not torch.equal(a["model"]["decoder.output.weight"], c["model"]["decoder.output.weight"])
