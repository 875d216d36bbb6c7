"""view-config on a trained run; import-cryodrgn pixel size, config/weights mismatch, --epoch and folder checks."""

from __future__ import annotations

import pytest
import yaml

from cryoscape.cli.main import main
from cryoscape.runs import RunDir
from cryoscape.training.config import read_run_config
from tests.training.synthetic import PIXEL_SIZE, blob_volume, write_dataset

BOX = 16


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    syn = write_dataset(tmp_path_factory.mktemp("vc"), [blob_volume(BOX, [(0, 0, 0), (3, 0, 0)])], 32,
                        noise_std=0.3, seed=3)
    out = tmp_path_factory.mktemp("vc_run") / "run"
    args = ["train-vae", str(syn.stack), "--poses", str(syn.poses), "--ctf", str(syn.ctf), "--zdim", "2",
            "--enc-dim", "16", "--enc-layers", "1", "--dec-dim", "16", "--dec-layers", "1", "--no-amp", "-b", "16"]
    assert main([*args, "-n", "1", "-o", str(out)]) == 0
    assert main(["train-vae", "--resume", str(out), "-n", "2", "--lr", "5e-4"]) == 0  # default 3e-4 -> 5e-4
    return out, syn


def test_view_config_shows_data_settings_epochs_losses_and_invocations(run, capsys):
    out, syn = run
    assert main(["view-config", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kind: VAE (zdim 2)" in text
    assert f"particles: {syn.stack}" in text and f"poses: {syn.poses}" in text
    assert f"box {BOX} px, {PIXEL_SIZE:.4g} Å/px" in text
    assert "lr: 0.0005" in text and "zdim: 2" in text
    assert "epochs done: 2 (checkpoints: 1, 2)" in text
    records = yaml.safe_load((out / "provenance.yaml").read_text())
    loss2 = records[1]["epochs"][0]["loss"]
    assert f"losses of epoch 2: loss {loss2:.6g}" in text
    assert "1. start " in text and "2. resume " in text and text.count("; finished") == 2


def test_view_config_of_one_epoch_and_out_of_range(run, capsys):
    out, _ = run
    assert main(["view-config", str(out / "weights.1.pt")]) == 0
    text = capsys.readouterr().out
    assert "settings (weights.1.pt)" in text and "lr: 0.0005" not in text and "lr: 0.0003" in text
    records = yaml.safe_load((out / "provenance.yaml").read_text())
    assert f"losses of epoch 1: loss {records[0]['epochs'][0]['loss']:.6g}" in text
    assert main(["view-config", str(out), "--epoch", "5"]) == 2
    assert "no checkpoint for epoch 5 (found 1, 2)" in capsys.readouterr().err
    assert main(["view_config", str(out), "--epoch", "0"]) == 2  # the cryoDRGN spelling is accepted too


def _import(fixtures_dir, out, *extra, config=None):
    return main(["import-cryodrgn", str(config or fixtures_dir / "het_config.yaml"),
                 str(fixtures_dir / "het_weights.pkl"), "-o", str(out), *extra])


def test_import_without_apix_refuses_or_reads_the_ctf_pickle(fixtures_dir, tmp_path, capsys):
    # the fixture config names no CTF file: refused, never a silent 1 Å
    assert _import(fixtures_dir, tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "pixel size is unknown" in err and "--apix" in err
    assert not (tmp_path / "a" / "config.yaml").exists()
    # with the run's CTF pickle (box 30, 1 Å/px), the pixel size is rescaled to the model's box 64
    cfg = yaml.safe_load((fixtures_dir / "het_config.yaml").read_text())
    cfg["dataset_args"]["ctf"] = str(fixtures_dir / "test_ctf.pkl")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert _import(fixtures_dir, tmp_path / "b", config=tmp_path / "config.yaml") == 0
    assert read_run_config(RunDir(tmp_path / "b")).data.pixel_size_angstrom == pytest.approx(30 / 64)


def test_import_config_not_matching_the_weights_is_a_clean_error(fixtures_dir, tmp_path, capsys):
    cfg = yaml.safe_load((fixtures_dir / "het_config.yaml").read_text())
    for key, value, expected in (("qdim", 16, "encoder input layer is (8, 3207) in the weights but (16, 3207)"),
                                 ("pdim", 16, "decoder first layer"),
                                 ("pe_type", "geom_lowf", "the config says pe_type=geom_lowf")):
        bad = {**cfg, "model_args": {**cfg["model_args"], key: value}}
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
        assert _import(fixtures_dir, tmp_path / key, "--apix", "2", config=tmp_path / "bad.yaml") == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "weights do not match the config" in err and expected in err, err
        assert "Traceback" not in err


def test_import_epoch_and_existing_folder(fixtures_dir, tmp_path, capsys):
    assert _import(fixtures_dir, tmp_path / "r", "--apix", "2", "--epoch", "0") == 2
    assert "--epoch must be at least 1" in capsys.readouterr().err
    assert _import(fixtures_dir, tmp_path / "r", "--apix", "2", "--epoch", "7") == 0
    assert RunDir(tmp_path / "r").epochs() == [7]
    record = yaml.safe_load((tmp_path / "r" / "provenance.yaml").read_text())[-1]
    assert record["status"] == "imported from cryoDRGN" and record["command"]
    assert record["options"]["weights"].endswith("het_weights.pkl") and record["options"]["epoch"] == 7
    assert _import(fixtures_dir, tmp_path / "r", "--apix", "2") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _import(fixtures_dir, tmp_path / "r", "--apix", "3", "--overwrite") == 0
    assert RunDir(tmp_path / "r").epochs() == [1]  # the old weights.7.pt went with the old run
    assert read_run_config(RunDir(tmp_path / "r")).data.pixel_size_angstrom == 3.0
