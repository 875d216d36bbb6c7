"""The one config deserialiser: types checked and converted, errors name the file, the key, the value and the
expected type; ModelConfig and TrainConfig (config.yaml, checkpoints) both go through it."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from cryoscape.configio import dataclass_from_mapping, describe_type
from cryoscape.errors import InputError
from cryoscape.models.config import ModelConfig
from cryoscape.runs import RunDir
from cryoscape.training.config import (
    TrainConfig,
    config_from_checkpoint,
    read_run_config,
    to_dict,
    train_config_from_dict,
)


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 1
    angles_deg: tuple[float, float] = (0.0, 1.0)
    states: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    mode: Literal["a", "b"] = "a"
    scale: float | None = None
    flag: bool = False
    names: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.scale is not None and self.scale < 0:
            raise ValueError(f"scale must be >= 0, got {self.scale}")


def test_round_trip_of_the_run_config():
    config = TrainConfig(model=ModelConfig(zdim=3, pe_dim=5), num_epochs=7, beta=0.5, loss_radius_px=10.0)
    assert train_config_from_dict(to_dict(config)) == config
    assert ModelConfig.from_dict(config.model.to_dict()) == config.model


def test_conversions_of_what_yaml_gives():
    cfg = train_config_from_dict({"lr": 1, "beta": "1e-4", "num_epochs": 3.0, "data": {"window_r": 1}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.beta == 1e-4  # PyYAML reads 1e-4 (no dot) as a string
    assert cfg.num_epochs == 3 and isinstance(cfg.num_epochs, int)
    assert isinstance(cfg.data.window_r, float)
    out = dataclass_from_mapping(Outer, {"inner": {"angles_deg": [10, 20], "states": ["x", "y"]}, "mode": "b",
                                         "names": ["p"]})
    assert out.inner.angles_deg == (10.0, 20.0) and out.inner.states == ("x", "y") and out.mode == "b"
    assert out.names == ["p"]


@pytest.mark.parametrize(
    "values, key, shown, expected",
    [
        ({"model": {"zdim": "eight"}}, "model.zdim", "'eight'", "an integer"),
        ({"lr": [1]}, "lr", "[1]", "a number"),
        ({"num_epochs": 2.5}, "num_epochs", "2.5", "an integer"),
        ({"amp": 1}, "amp", "1", "true or false"),
        ({"beta": "high"}, "beta", "'high'", "a number or null"),
        ({"data": {"particles": 5}}, "data.particles", "5", "a text string or null"),
        ({"num_epochs": None}, "num_epochs", "None", "an integer"),
        ({"model": 3}, "model", "3", "a mapping of settings"),
    ],
)
def test_wrong_types_name_the_key_the_value_and_the_type(values, key, shown, expected):
    with pytest.raises(InputError) as info:
        train_config_from_dict(values, path="run/config.yaml")
    text = str(info.value)
    assert text.startswith("run/config.yaml: ")
    assert f"setting {key}: {shown} is not {expected}" in text


def test_unknown_keys_and_invalid_values():
    with pytest.raises(InputError, match=r"unknown setting\(s\) model\.qdim .*known model settings: .*zdim"):
        train_config_from_dict({"model": {"qdim": 8}})
    with pytest.raises(InputError, match=r"unknown setting\(s\) bogus"):
        train_config_from_dict({"bogus": 1})
    # the dataclass's own checks: InputError gets the file, ValueError becomes an InputError
    with pytest.raises(InputError, match=r"^c\.yaml: pe_type must be one of gaussian, .*, got 'x'"):
        ModelConfig.from_dict({"pe_type": "x"}, path="c.yaml")
    with pytest.raises(InputError, match=r"^c\.yaml: invalid Outer settings: scale must be >= 0"):
        dataclass_from_mapping(Outer, {"scale": -1}, path="c.yaml")
    with pytest.raises(InputError, match=r"mode: 'c' is not one of 'a', 'b'"):
        dataclass_from_mapping(Outer, {"mode": "c"})
    with pytest.raises(InputError, match=r"inner\.angles_deg: \[1\] is not a list of 2 values"):
        dataclass_from_mapping(Outer, {"inner": {"angles_deg": [1]}})
    with pytest.raises(InputError, match=r"settings Outer must be a mapping \(key: value\), got \[1, 2\]"):
        dataclass_from_mapping(Outer, [1, 2])


def test_describe_type():
    assert describe_type(int | None) == "an integer or null"
    assert describe_type(tuple[float, ...]) == "a list"


def test_run_config_and_checkpoint_errors_name_their_file(tmp_path):
    run = RunDir(tmp_path)
    run.config_path.write_text("num_epochs: 3\nmodel:\n  zdim: eight\n")
    with pytest.raises(InputError) as info:
        read_run_config(run)
    assert str(run.config_path) in str(info.value) and "model.zdim: 'eight' is not an integer" in str(info.value)
    state = {"config": {**to_dict(TrainConfig()), "lr": [1]}}
    with pytest.raises(InputError) as info:
        config_from_checkpoint(state, tmp_path / "weights.3.pt")
    assert "weights.3.pt" in str(info.value) and "lr: [1] is not a number" in str(info.value)
