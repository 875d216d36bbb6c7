"""Commands on cryoDRGN 4.3.1 run folders as they are (no import step), and import-cryodrgn of every 4.3.1 model.

Every command writes where it writes for cryoscape's own runs (``analyze.N/``, ``traversals.N/``,
``landscape.N/`` inside the folder) and leaves each file cryoDRGN wrote byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import yaml

from cryoscape.analysis.api import TrainedRun
from cryoscape.cli.main import main
from cryoscape.io.mrc import read_mrc
from cryoscape.runs import RunDir


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


def _checksums(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(cryodrgn_runs_dir, tmp_path_factory):
    """A copy of the fixture folder, and the checksums of every file cryoDRGN wrote into it."""
    root = tmp_path_factory.mktemp("cryodrgn") / "runs"
    shutil.copytree(cryodrgn_runs_dir, root)
    return root, _checksums(root)


def _unchanged(runs):
    root, before = runs
    after = _checksums(root)
    assert {name: after.get(name) for name in before} == before


def _golden(path):
    vol, header = read_mrc(path)
    return vol, header.voxel_size_angstrom


def test_eval_vol_as_cryodrgn_users_write_it(runs, tmp_path):
    root, _ = runs
    for name in ("vae_fourier", "vae_hartley"):
        out = tmp_path / name
        assert main(["eval_vol", str(root / name / "weights.2.pkl"), "-c", str(root / name / "config.yaml"),
                     "--zfile", str(root / "z_eval.txt"), "-o", str(out), "--no-amp"]) == 0
        _, nn_voxel = _golden(root / "nn" / "reconstruct.2.mrc")
        for i in range(2):
            ours, voxel = _golden(out / f"vol_{i:03d}.mrc")
            golden, _ = _golden(root / name / "eval_vol" / f"vol_{i + 1:03d}.mrc")
            np.testing.assert_allclose(ours, golden, rtol=0, atol=2e-6 * np.abs(golden).max())
            assert voxel == pytest.approx(nn_voxel, rel=1e-6)  # cryoDRGN's own eval_vol writes 1.0
    for epoch in (1, 2):  # the homogeneous run: the folder and --epoch
        assert main(["eval-vol", str(root / "nn"), "--epoch", str(epoch), "-o", str(tmp_path / f"nn{epoch}.mrc"),
                     "--no-amp"]) == 0
        ours, voxel = _golden(tmp_path / f"nn{epoch}.mrc")
        golden, golden_voxel = _golden(root / "nn" / f"reconstruct.{epoch}.mrc")
        np.testing.assert_allclose(ours, golden, rtol=0, atol=2e-6 * np.abs(golden).max())
        assert voxel == pytest.approx(golden_voxel, rel=1e-6)
    _unchanged(runs)


def test_analysis_commands_on_a_folder_as_it_is(runs, capsys):
    root, _ = runs
    run = root / "vae_fourier"
    assert main(["analyze", str(run), "2", "--ksample", "4", "--pc", "1", "--n-per-pc", "2", "--skip-umap",
                 "--no-notebook"]) == 0
    summary = yaml.safe_load((run / "analyze.2" / "analysis.json").read_text())
    assert summary["epoch"] == 2 and summary["n_particles"] == 300
    assert sorted(p.name for p in (run / "analyze.2" / "kmeans4").glob("vol_*.mrc")) == [
        f"vol_{i:03d}.mrc" for i in range(1, 5)]
    assert (run / "analyze.2" / "report.html").is_file()
    assert main(["pc-traversal", str(run / "z.1.pkl"), "-n", "3", "--volumes"]) == 0  # cryoDRGN's z file
    assert len(list((run / "traversals.1" / "pc1").glob("vol_*.mrc"))) == 3
    assert main(["direct-traversal", str(run), "--anchors", "0", "100", "-n", "3"]) == 0
    assert np.loadtxt(run / "traversals.2" / "direct_0-100" / "z_values.txt").shape == (3, 2)
    assert main(["graph-traversal", str(run), "--kmeans", "4", "--anchors", "1", "4"]) == 0
    assert (run / "traversals.2" / "graph_k4_1-4" / "path_ind.txt").is_file()
    assert main(["analyze-landscape", str(run), "2", "--sketch-size", "20", "-M", "3", "--skip-umap", "-d",
                 "16"]) == 0
    assert len(np.loadtxt(run / "landscape.2" / "labels.txt")) == 300
    assert main(["select", str(run), "--kmeans", "4", "--clusters", "2", "--state", "1", "-o",
                 str(root.parent / "sel")]) == 0
    labels = np.loadtxt(run / "analyze.2" / "kmeans4" / "labels.txt")
    states = np.loadtxt(run / "landscape.2" / "labels.txt")
    np.testing.assert_array_equal(np.loadtxt(root.parent / "sel.txt", ndmin=1),
                                  np.flatnonzero((labels == 2) & (states == 1)))
    assert main(["report", str(run), "--epoch", "2"]) == 0
    assert "analyze.2/report.html" in capsys.readouterr().out
    _unchanged(runs)


def test_cryodrgn_own_analysis_is_not_touched(runs):
    root, _ = runs
    theirs = root / "vae_hartley" / "analyze.2"
    (theirs / "kmeans4").mkdir(parents=True)
    (theirs / "kmeans4" / "centers.txt").write_text("cryoDRGN's centres\n")
    assert main(["analyze", str(root / "vae_hartley"), "--ksample", "4", "--skip-vol", "--skip-umap",
                 "--no-notebook"]) == 0
    assert (theirs / "kmeans4" / "centers.txt").read_text() == "cryoDRGN's centres\n"
    assert sorted(p.name for p in theirs.rglob("*")) == ["centers.txt", "kmeans4"]
    ours = root / "vae_hartley" / "analyze.2.cryoscape"
    assert (ours / "analysis.json").is_file() and (ours / "kmeans4" / "centers.txt").is_file()
    assert TrainedRun.open(root / "vae_hartley").analyze_dir == ours  # select, report and traversals find it
    _unchanged(runs)


@pytest.mark.parametrize("name, weights, epoch", [
    ("vae_fourier", "weights.2.pkl", 2), ("vae_hartley", "weights.1.pkl", 1), ("nn", "weights.2.pkl", 2)])
def test_import_keeps_cryodrgn_epoch_numbers_and_maps(runs, tmp_path, name, weights, epoch):
    root, _ = runs
    out = tmp_path / "imported"
    assert main(["import-cryodrgn", str(root / name / "config.yaml"), str(root / name / weights), "-o",
                 str(out)]) == 0
    assert RunDir(out).epochs() == [epoch]
    run = TrainedRun.open(out, device="cpu")
    direct = TrainedRun.open(root / name / weights, device="cpu")
    z = np.loadtxt(root / "z_eval.txt") if name != "nn" else None
    ours = run.volumes(z, amp=False)
    np.testing.assert_array_equal(ours, direct.volumes(z, amp=False))  # import and direct read: one conversion
    if name == "nn":
        golden, voxel = _golden(root / "nn" / f"reconstruct.{epoch}.mrc")
        np.testing.assert_allclose(ours[0], golden, rtol=0, atol=2e-6 * np.abs(golden).max())
        assert run.voxel_size_angstrom() == pytest.approx(voxel, rel=1e-6)
    elif epoch == 2:
        for i in range(2):
            golden, _ = _golden(root / name / "eval_vol" / f"vol_{i + 1:03d}.mrc")
            np.testing.assert_allclose(ours[i], golden, rtol=0, atol=2e-6 * np.abs(golden).max())
    assert run.config.data.particles == str((root / "particles.mrcs").resolve())
    _unchanged(runs)


def test_tilt_series_config_is_refused_in_one_line(runs, tmp_path, capsys):
    root, _ = runs
    cfg = yaml.safe_load((root / "vae_fourier" / "config.yaml").read_text())
    cfg["model_args"]["encode_mode"] = "tilt"
    cfg["dataset_args"]["ntilts"] = 10
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["import-cryodrgn", str(tmp_path / "config.yaml"), str(root / "vae_fourier" / "weights.2.pkl"),
                 "-o", str(tmp_path / "out"), "--apix", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {tmp_path / 'config.yaml'}: cannot reproduce this cryoDRGN model exactly; "
                          "unsupported: encode_mode='tilt' (tilt-series encoder)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("section, key, value, expected", [
    ("model_args", "zdim", "x", "model_args.zdim is 'x', not an integer"),
    ("lattice_args", "D", 33.5, "lattice_args.D is 33.5, not an integer"),
    ("dataset_args", "norm", [0.0, "wide"], "dataset_args.norm is [0.0, 'wide'], not [mean, std]"),
    ("dataset_args", "window", "maybe", "dataset_args.window is 'maybe', not true or false"),
    ("model_args", "pe_type", 3, "model_args.pe_type is 3, not a name"),
])
def test_config_value_of_the_wrong_type_is_one_clear_line(cryodrgn_runs_dir, tmp_path, capsys, section, key, value,
                                                         expected):
    run = tmp_path / "run"
    shutil.copytree(cryodrgn_runs_dir / "vae_fourier", run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    for argv in (["eval-vol", str(run), "-z", "0", "0", "-o", str(tmp_path / "v.mrc")],
                 ["analyze", str(run)],
                 ["import-cryodrgn", str(run / "config.yaml"), str(run / "weights.2.pkl"), "-o", str(tmp_path / "i"),
                  "--apix", "5"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run / 'config.yaml'}: {expected}"), err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert not (run / "analyze.2").exists() and not (tmp_path / "v.mrc").exists()


def test_training_does_not_write_into_a_cryodrgn_folder(runs, capsys):
    root, _ = runs
    assert main(["train-vae", "--resume", str(root / "vae_fourier"), "-n", "3"]) == 2
    err = capsys.readouterr().err
    assert "not trained further" in err and "cryoscape import-cryodrgn" in err
    data = [str(root / "particles.mrcs"), "--poses", str(root / "pose.pkl"), "--ctf", str(root / "ctf.pkl")]
    assert main(["train-vae", *data, "--zdim", "2", "-n", "1", "-o", str(root / "vae_fourier"), "--overwrite"]) == 2
    assert "holds a cryoDRGN run (weights.N.pkl), whose files cryoscape never deletes" in capsys.readouterr().err
    assert main(["train-nn", *data, "-n", "1", "-o", str(root / "nn")]) == 2
    assert "holds a cryoDRGN run (weights.N.pkl), which cryoscape never overwrites" in capsys.readouterr().err
    _unchanged(runs)


def test_pixel_size_when_the_ctf_file_is_not_found(cryodrgn_runs_dir, tmp_path, capsys):
    run = tmp_path / "vae_fourier"
    shutil.copytree(cryodrgn_runs_dir / "vae_fourier", run)  # without the data of the folder above it
    assert TrainedRun.open(run).pixel_size_angstrom is None
    assert main(["pc-traversal", str(run), "-n", "2", "--volumes"]) == 2
    assert "the run has no pixel size (give --Apix" in capsys.readouterr().err
    assert main(["pc-traversal", str(run), "-n", "2", "--volumes", "--Apix", "5"]) == 0
    assert read_mrc(run / "traversals.2" / "pc1" / "vol_001.mrc")[1].voxel_size_angstrom == pytest.approx(5.0)
    assert main(["analyze", str(run), "1", "--epoch", "2", "--skip-vol"]) == 2
    assert "two epochs given: EPOCH 1 and --epoch 2" in capsys.readouterr().err

