"""``cryoscape simulate`` end to end, presets with overrides, and user errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.simulate.config import PRESETS, SimulationConfig, preset_config


def test_preset_values_and_overrides() -> None:
    cfg = preset_config("hinge-64", n_particles=2000)
    assert (cfg.source, cfg.box_size, cfg.n_particles, cfg.snr, cfg.ctf) == ("hinge", 64, 2000, 0.1, True)
    assert preset_config("assembly-64").assembly_states == ("core", "core+A", "core+A+B")
    assert preset_config("tiny-32").box_size == 32 and preset_config("tiny-32").n_particles == 1000
    assert set(PRESETS) == {"tiny-32", "hinge-64", "assembly-64"}
    with pytest.raises(InputError, match="unknown preset"):
        preset_config("huge-512")
    with pytest.raises(InputError, match="unknown simulation setting"):
        preset_config("tiny-32", box=12)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"box_size": 31}, "box_size = 31 must be even"),
        ({"downsample_box": 64, "box_size": 32}, "must be smaller"),
        ({"snr": 0.0}, "snr"),
        ({"coordinate_sampling": "bimodal"}, "coordinate_sampling"),
        ({"assembly_states": ("core", "core+Z"), "assembly_proportions": (1, 1)}, "core\\+Z"),
        ({"assembly_states": ("core",), "assembly_proportions": (0.5, 0.5)}, "one proportion per state"),
        ({"source": "nothing"}, "unknown source"),
    ],
)
def test_bad_settings_are_input_errors(overrides, message) -> None:
    with pytest.raises(InputError, match=message):
        preset_config(None, **overrides).validate()


def test_cli_end_to_end(tmp_path, capsys) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", "--preset", "tiny-32", "-n", "50", "-o", str(out), "--no-progress"]) == 0
    from cryoscape.io.stacks import open_images

    images = open_images(out / "particles.star")
    assert len(images) == 50 and images.box_size == 32
    truth = pd.read_csv(out / "ground_truth.csv")
    assert len(truth) == 50 and truth["coordinate"].between(0, 1).all()
    assert len(list((out / "gt_volumes").glob("*.mrc"))) == 10
    cfg = SimulationConfig.load_yaml(out / "config.yaml")
    assert cfg == preset_config("tiny-32", n_particles=50)
    # reload the config and override one flag: same poses, other noise level
    out2 = tmp_path / "sim2"
    assert main(["simulate", "--config", str(out / "config.yaml"), "--snr", "inf", "-o", str(out2),
                 "--no-progress"]) == 0
    a = pd.read_csv(out / "ground_truth.csv")
    b = pd.read_csv(out2 / "ground_truth.csv")
    assert np.allclose(a[["rot_deg", "tilt_deg", "psi_deg"]], b[["rot_deg", "tilt_deg", "psi_deg"]])


def test_cli_flags_override_preset(tmp_path) -> None:
    out = tmp_path / "asm"
    assert main(["simulate", "--preset", "assembly-64", "-n", "20", "--box-size", "24",
                 "--downsample-box", "16",
                 "--assembly-states", "core", "core+B", "--assembly-proportions", "1", "3", "--no-ctf",
                 "-o", str(out), "--no-progress"]) == 0
    cfg = SimulationConfig.load_yaml(out / "config.yaml")
    assert (cfg.n_particles, cfg.box_size, cfg.downsample_box, cfg.ctf) == (20, 24, 16, False)
    assert cfg.assembly_states == ("core", "core+B") and cfg.assembly_proportions == (1.0, 3.0)
    truth = pd.read_csv(out / "ground_truth.csv")
    assert set(truth["state_name"]) <= {"core", "core+B"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--source", "missing.pdb"], "missing.pdb: file not found"),
        (["--box-size", "33"], "box_size = 33 must be even"),
    ],
)
def test_cli_bad_input_message(tmp_path, capsys, argv, message) -> None:
    assert main(["simulate", *argv, "-o", str(tmp_path / "x"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
