"""train-vae, train-nn, eval-vol, eval-images and import-cryodrgn end to end on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.cli.main import build_parser, main
from cryoscape.io.mrc import read_mrc
from cryoscape.runs import RunDir, load_z_file
from cryoscape.training.config import read_run_config
from tests.training.synthetic import PIXEL_SIZE, two_blob_dataset

BOX = 16
SMALL = ["--enc-dim", "32", "--enc-layers", "1", "--dec-dim", "32", "--dec-layers", "1", "--lr", "1e-3"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return two_blob_dataset(tmp_path_factory.mktemp("cli"), BOX, 120, seed=2)


@pytest.fixture(scope="module")
def vae_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae") / "run"
    code = main(
        [
            "train-vae",
            str(data.stack),
            "--poses",
            str(data.poses),
            "--ctf",
            str(data.ctf),
            "--zdim",
            "2",
            "-n",
            "2",
            "-b",
            "16",
            "--seed",
            "3",
            *SMALL,
            "-o",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_help_states_the_differences_from_cryodrgn():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices
    text = sub["train-vae"].format_help()
    assert "--invert-data" in text and "--uninvert-data" in text
    assert "cryoDRGN inverts by default" in text
    for flag in (
        "--zdim",
        "-n",
        "-b",
        "--lr",
        "--beta",
        "--enc-dim",
        "--enc-layers",
        "--dec-dim",
        "--dec-layers",
        "--pe-type",
        "--pe-dim",
        "--domain",
        "--poses",
        "--ctf",
        "--ind",
        "--datadir",
        "--seed",
        "-o",
    ):
        assert f" {flag}" in text, flag
    nn_text = sub["train-nn"].format_help()
    assert "--dec-dim" in nn_text and "reconstruct.N.mrc" in nn_text
    assert "z.N.npz" not in nn_text and "latent" not in nn_text and "--zdim" not in nn_text
    for text in (sub["train-vae"].format_help(), nn_text):
        assert "--overwrite" in text and "DELETES" in text and "--resume RUN continues RUN" in text


def test_train_vae_writes_the_run(vae_run):
    run = RunDir(vae_run)
    assert run.epochs() == [1, 2]
    config = read_run_config(run)
    assert config.model.zdim == 2 and config.num_epochs == 2 and config.batch_size == 16 and config.seed == 3
    assert config.data.invert_data is False and config.data.box_size == BOX
    assert config.data.pixel_size_angstrom == pytest.approx(PIXEL_SIZE)
    z = run.load_z(2)
    assert z.mean.shape == (120, 2)
    assert "epoch 2/2" in run.log_path.read_text()


def test_resume_from_the_command_line(vae_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(vae_run, copy)
    assert main(["train-vae", "--resume", str(copy), "-n", "3", "-o", str(copy)]) == 0
    assert RunDir(copy).epochs() == [1, 2, 3]
    assert read_run_config(RunDir(copy)).num_epochs == 3


def test_eval_vol_maps_and_voxel_size(vae_run, tmp_path):
    out = tmp_path / "one.mrc"
    assert main(["eval-vol", str(vae_run), "-z", "0.1", "-0.2", "-o", str(out)]) == 0
    vol, header = read_mrc(out)
    assert vol.shape == (BOX,) * 3 and header.voxel_size_angstrom == pytest.approx(PIXEL_SIZE)
    # several z from a text file, downsampled: voxel size scales by D / D'
    np.savetxt(tmp_path / "z.txt", np.array([[0.1, -0.2], [1.0, 0.5], [-1, 0]]))
    assert (
        main(
            [
                "eval-vol",
                str(vae_run),
                "--epoch",
                "1",
                "--zfile",
                str(tmp_path / "z.txt"),
                "-o",
                str(tmp_path / "maps"),
                "--downsample",
                "8",
                "--flip",
                "-b",
                "2",
            ]
        )
        == 0
    )
    files = sorted((tmp_path / "maps").glob("vol_*.mrc"))
    assert [f.name for f in files] == ["vol_000.mrc", "vol_001.mrc", "vol_002.mrc"]
    small, header = read_mrc(files[0])
    assert small.shape == (8, 8, 8) and header.voxel_size_angstrom == pytest.approx(PIXEL_SIZE * 2)
    # --flip reverses the z axis and --invert negates (epoch 1 maps, same z)
    assert (
        main(
            [
                "eval-vol",
                str(vae_run),
                "--epoch",
                "1",
                "-z",
                "0.1",
                "-0.2",
                "-o",
                str(tmp_path / "a.mrc"),
                "--downsample",
                "8",
                "--invert",
            ]
        )
        == 0
    )
    plain, _ = read_mrc(tmp_path / "a.mrc")
    np.testing.assert_allclose(small, -plain[::-1], atol=1e-5)
    # a z.N.npz and a .npy file give the particles' means
    z = RunDir(vae_run).load_z(2)
    np.save(tmp_path / "z.npy", z.mean[:2])
    assert (
        main(["eval-vol", str(vae_run), "--zfile", str(tmp_path / "z.npy"), "-o", str(tmp_path / "m2")]) == 0
    )
    assert len(list((tmp_path / "m2").glob("*.mrc"))) == 2


def test_eval_vol_rejects_wrong_zdim(vae_run, tmp_path, capsys):
    assert main(["eval-vol", str(vae_run), "-z", "0.1", "-o", str(tmp_path / "x.mrc")]) == 2
    assert "zdim 2" in capsys.readouterr().err


def test_eval_images_encodes_in_original_order(vae_run, data, tmp_path):
    np.save(tmp_path / "ind.npy", np.array([30, 4, 17]))
    out = tmp_path / "enc.npz"
    assert (
        main(
            [
                "eval-images",
                str(vae_run),
                str(data.stack),
                "--poses",
                str(data.poses),
                "--ctf",
                str(data.ctf),
                "--ind",
                str(tmp_path / "ind.npy"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    enc = load_z_file(out)
    np.testing.assert_array_equal(enc.indices, [4, 17, 30])
    full = RunDir(vae_run).load_z(2)
    np.testing.assert_allclose(enc.mean, full.mean[[4, 17, 30]], rtol=1e-4, atol=1e-5)
    with np.load(out) as f:
        assert f["mse"].shape == (3,) and np.all(f["mse"] > 0)


def test_train_nn_writes_maps(data, tmp_path):
    out = tmp_path / "nn"
    assert (
        main(
            [
                "train-nn",
                str(data.stack),
                "--poses",
                str(data.poses),
                "--ctf",
                str(data.ctf),
                "-n",
                "1",
                "--dim",
                "16",
                "--layers",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    vol, header = read_mrc(out / "reconstruct.1.mrc")
    assert vol.shape == (BOX,) * 3 and header.voxel_size_angstrom == pytest.approx(PIXEL_SIZE)
    assert read_run_config(RunDir(out)).model.zdim == 0
    assert main(["eval-vol", str(out), "-o", str(tmp_path / "nn.mrc"), "--no-amp"]) == 0
    again, _ = read_mrc(tmp_path / "nn.mrc")
    np.testing.assert_allclose(again, vol, atol=1e-5)


def test_missing_particles_is_a_clean_error(tmp_path, capsys):
    assert main(["train-vae", "-o", str(tmp_path / "r")]) == 2
    assert "PARTICLES is required" in capsys.readouterr().err


def test_import_cryodrgn_fixture_then_eval_vol(fixtures_dir, tmp_path):
    out = tmp_path / "imported"
    assert (
        main(
            [
                "import-cryodrgn",
                str(fixtures_dir / "het_config.yaml"),
                str(fixtures_dir / "het_weights.pkl"),
                "-o",
                str(out),
                "--apix",
                "2.0",
            ]
        )
        == 0
    )
    run = RunDir(out)
    config = read_run_config(run)
    assert config.model.zdim == 8 and config.data.box_size == 64
    assert config.data.invert_data is False  # cryoDRGN's inverted data with its CTF sign = ours uninverted
    assert config.lr == 1e-4  # a continued cryoDRGN run keeps cryoDRGN's rate, not our VAE default
    assert (
        main(["eval-vol", str(out), "-z", *["0"] * 8, "-o", str(tmp_path / "v.mrc"), "--downsample", "32"])
        == 0
    )
    vol, header = read_mrc(tmp_path / "v.mrc")
    assert vol.shape == (32,) * 3 and header.voxel_size_angstrom == pytest.approx(4.0)
    assert np.isfinite(vol).all() and vol.std() > 0
