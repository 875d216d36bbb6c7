"""TrainConfig ⇄ yaml, run-directory names, atomic checkpoint/latent files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml

from cryoscape.errors import InputError
from cryoscape.models.config import ModelConfig
from cryoscape.runs import RunDir, find_run, load_checkpoint_file, load_z_file
from cryoscape.training.config import DataConfig, TrainConfig, read_run_config, train_config_from_dict
from cryoscape.training.losses import beta_at, parse_beta_schedule


def test_config_yaml_round_trip_and_keys(tmp_path):
    config = TrainConfig(
        model=ModelConfig(zdim=3, enc_dim=32, pe_dim=5),
        data=DataConfig(particles="p.star", data_std=2.5, box_size=32),
        num_epochs=7,
        beta=0.5,
        loss_radius_px=10.0,
    )
    run = RunDir(tmp_path / "run")
    run.save_config(config)
    raw = yaml.safe_load(run.config_path.read_text())
    # yaml keys are exactly the dataclass field names (flag = field = key)
    assert set(raw) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(raw["model"]) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert raw["model"]["zdim"] == 3 and raw["num_epochs"] == 7
    assert read_run_config(run) == config


def test_unknown_yaml_key_is_an_input_error(tmp_path):
    run = RunDir(tmp_path)
    run.config_path.write_text("num_epochs: 3\nbogus: 1\n")
    with pytest.raises(InputError, match="bogus"):
        read_run_config(run)


def test_int_in_yaml_becomes_float():
    cfg = train_config_from_dict({"lr": 1, "data": {"window_r": 1}})
    assert isinstance(cfg.lr, float) and isinstance(cfg.data.window_r, float)


def test_learning_rate_default_depends_on_the_model_and_is_stored_as_a_number(tmp_path):
    from cryoscape.training.config import DEFAULT_LR, DEFAULT_LR_HOMOGENEOUS

    assert (DEFAULT_LR, DEFAULT_LR_HOMOGENEOUS) == (3e-4, 1e-4)
    assert TrainConfig(model=ModelConfig(zdim=8)).lr == DEFAULT_LR
    assert TrainConfig(model=ModelConfig(zdim=0)).lr == DEFAULT_LR_HOMOGENEOUS
    assert TrainConfig(model=ModelConfig(zdim=0), lr=5e-4).lr == 5e-4
    run = RunDir(tmp_path)
    run.save_config(TrainConfig(model=ModelConfig(zdim=2)))
    assert "lr: 0.0003" in run.config_path.read_text()  # a run keeps the rate it was made with
    # a config written with another rate (e.g. before the default changed) loads that rate
    assert train_config_from_dict({"lr": 1e-4, "model": {"zdim": 8}}).lr == 1e-4


def test_batch_size_default_depends_on_the_device_and_is_stored_as_a_number(tmp_path):
    from cryoscape.training.config import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_GPU

    assert (DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE_GPU) == (8, 16)
    config = TrainConfig(model=ModelConfig(zdim=2))
    assert config.batch_size is None  # resolved when training starts, by the device
    assert config.for_device("cpu").batch_size == 8
    assert config.for_device("cuda").batch_size == config.for_device("cuda:1").batch_size == 16
    assert TrainConfig(batch_size=32).for_device("cuda").batch_size == 32  # a given size is kept
    run = RunDir(tmp_path)
    run.save_config(config.for_device("cpu"))
    assert "batch_size: 8" in run.config_path.read_text()  # a run keeps the size it trained with


def test_learning_rate_flag_defaults_per_command():
    from cryoscape.cli.main import build_parser
    from cryoscape.cli.train_vae import config_from_args

    parser = build_parser()
    vae = config_from_args(parser.parse_args(["train-vae", "p.star", "-o", "r"]), heterogeneous=True)
    nn = config_from_args(parser.parse_args(["train-nn", "p.star", "-o", "r"]), heterogeneous=False)
    given = config_from_args(parser.parse_args(["train-vae", "p.star", "-o", "r", "--lr", "1e-4"]),
                             heterogeneous=True)
    assert (vae.lr, nn.lr, given.lr) == (3e-4, 1e-4, 1e-4)


def test_effective_beta_and_radius():
    assert TrainConfig(model=ModelConfig(zdim=8)).effective_beta() == pytest.approx(1 / 8)
    assert TrainConfig(model=ModelConfig(zdim=8), beta=2.0).effective_beta() == 2.0
    assert TrainConfig(model=ModelConfig(zdim=0)).effective_beta() == 0.0
    assert TrainConfig().loss_radius(32) == 16.0


def test_beta_schedules():
    assert beta_at(0.3, 2.0, "constant") == 2.0
    assert beta_at(1.0, 2.0, "linear:4") == pytest.approx(0.5)
    assert beta_at(9.0, 2.0, "linear:4") == 2.0
    assert beta_at(5.0, 2.0, "cyclic:4") == pytest.approx(1.0)  # a quarter into the second cycle
    assert beta_at(7.0, 2.0, "cyclic:4") == 2.0
    for bad in ("linear", "ramp:3", "linear:-1", "linear:x"):
        with pytest.raises(ValueError):
            parse_beta_schedule(bad)


def test_run_names_and_checkpoints(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.epochs() == [] and run.latest_epoch() is None
    state = {"model": {"w": torch.arange(3.0)}, "rng": {"reparam": torch.Generator().get_state()}}
    run.save_checkpoint(2, state)
    run.save_checkpoint(10, state)
    assert run.weights_path(2).name == "weights.2.pt"
    assert run.z_path(3).name == "z.3.npz" and run.volume_path(3).name == "reconstruct.3.mrc"
    assert run.analyze_dir(3).name == "analyze.3"
    assert run.epochs() == [2, 10] and run.latest_epoch() == 10
    # no temporary files are left behind
    assert sorted(p.name for p in run.path.iterdir()) == ["weights.10.pt", "weights.2.pt"]
    loaded = torch.load(run.weights_path(10), weights_only=True)
    assert loaded["epoch"] == 10 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert run.load_checkpoint()["epoch"] == 10
    with pytest.raises(InputError, match="epoch 5"):
        run.resolve_epoch(5)
    assert find_run(run.weights_path(2))[1] == 2
    assert find_run(run.path)[1] is None


def test_failed_write_leaves_no_file(tmp_path):
    run = RunDir(tmp_path)

    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises for an unpicklable object
        run.save_checkpoint(1, {"x": lambda: None})
    assert list(tmp_path.iterdir()) == []


def test_foreign_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "weights.1.pt"
    torch.save({"model": {}}, path)
    with pytest.raises(InputError, match="not a cryoscape checkpoint"):
        load_checkpoint_file(path)


def test_z_file_is_in_original_order(tmp_path):
    run = RunDir(tmp_path)
    indices = np.array([7, 2, 5])
    mean = np.array([[7.0], [2.0], [5.0]])
    run.save_z(1, mean, -mean, indices)
    z = load_z_file(run.z_path(1))
    np.testing.assert_array_equal(z.indices, [2, 5, 7])
    np.testing.assert_array_equal(z.mean[:, 0], [2.0, 5.0, 7.0])
    np.testing.assert_array_equal(z.logvar[:, 0], [-2.0, -5.0, -7.0])


def test_run_files_and_stale_temporaries(tmp_path):
    run = RunDir(tmp_path)
    for name in ("config.yaml", "run.log", "provenance.yaml", "weights.1.pt", "weights.3.pt", "z.3.npz",
                 "reconstruct.3.mrc", "notes.txt", "z.txt", ".weights.4.pt.ab_12x.tmp", ".z.2.npz.q1.tmp",
                 ".notes.txt.x.tmp"):
        (tmp_path / name).write_text("x")
    (tmp_path / "analyze.3").mkdir()
    assert run.holds_run()
    assert [p.name for p in run.run_files(after_epoch=1)] == ["analyze.3", "reconstruct.3.mrc", "weights.3.pt",
                                                              "z.3.npz"]
    assert [p.name for p in run.remove_stale_temporaries()] == [".weights.4.pt.ab_12x.tmp", ".z.2.npz.q1.tmp"]
    run.remove_run_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.x.tmp", "notes.txt", "z.txt"]
    assert not run.holds_run()
