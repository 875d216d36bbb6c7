"""Run folders: refusal/overwrite, lock and stale lock, resume merging, missing outputs, stale temporaries,
full disk, provenance, resume from another working directory."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.runs import RunDir, RunLock
from cryoscape.training.config import read_run_config
from cryoscape.training.provenance import read_provenance

from .synthetic import two_blob_dataset

BOX = 16
TINY = ["--zdim", "1", "--enc-dim", "16", "--enc-layers", "1", "--dec-dim", "16", "--dec-layers", "1",
        "-b", "16", "--no-amp", "--lr", "1e-3"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return two_blob_dataset(tmp_path_factory.mktemp("runs"), BOX, 48, seed=5)


def particle_args(data) -> list[str]:
    return [str(data.stack), "--poses", str(data.poses), "--ctf", str(data.ctf)]


def train(data, out, *extra) -> int:
    return main(["train-vae", *particle_args(data), *TINY, "-o", str(out), *extra])


@pytest.fixture(scope="module")
def run2(data, tmp_path_factory):
    """A finished 2-epoch run (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("run2") / "run"
    assert train(data, out, "-n", "2") == 0
    return out


def copy_run(run2, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run2, dst)
    return dst


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_holding_a_run_is_refused(data, run2, tmp_path, capsys):
    run = copy_run(run2, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert train(data, run, "-n", "1") == 2
    err = capsys.readouterr().err
    assert "already holds a training run (weights.1..2.pt)" in err and "--resume" in err and "--overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before  # nothing touched
    # a folder with only a config.yaml (a run killed before its first checkpoint) is a run too
    only_config = tmp_path / "c"
    only_config.mkdir()
    shutil.copy(run / "config.yaml", only_config / "config.yaml")
    assert train(data, only_config, "-n", "1") == 2
    # unrelated files do not make a run
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert train(data, other, "-n", "1") == 0
    assert (other / "notes.txt").read_text() == "mine"


def test_overwrite_deletes_the_old_run_first(data, run2, tmp_path):
    run = copy_run(run2, tmp_path)
    (run / "analyze.2").mkdir()
    (run / "analyze.2" / "report.html").write_text("old")
    (run / "reconstruct.4.mrc").write_bytes(b"old")
    (run / "keep.txt").write_text("user file")
    assert train(data, run, "-n", "1", "--overwrite") == 0
    assert names(run) == ["config.yaml", "keep.txt", "provenance.yaml", "run.log", "weights.1.pt", "z.1.npz"]
    assert RunDir(run).epochs() == [1]
    assert "epoch 2/2" not in (run / "run.log").read_text()  # the old log went with the old run
    assert len(read_provenance(RunDir(run))) == 1


def test_a_live_lock_refuses_a_second_training(data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with RunDir(run).lock():  # held by this process through another open file: what a running training holds
        assert train(data, run, "-n", "1") == 2
        err = capsys.readouterr().err
        assert f"another training (pid {os.getpid()} on {socket.gethostname()}) is writing" in err
        assert not (run / "config.yaml").exists()
    assert not (run / ".lock").exists()  # released and removed
    assert train(data, run, "-n", "1") == 0
    assert not (run / ".lock").exists()


def test_a_stale_lock_is_taken_over_with_a_warning(data, tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(f"pid {dead.pid} on {socket.gethostname()}\n")
    with caplog.at_level("WARNING", logger="cryoscape"):
        assert train(data, run, "-n", "1") == 0
    assert f"stale lock {run / '.lock'} left by pid {dead.pid}" in caplog.text
    assert RunDir(run).epochs() == [1] and not (run / ".lock").exists()


def test_run_lock_directly(tmp_path):
    lock = RunLock(tmp_path / ".lock")
    with lock:
        assert (tmp_path / ".lock").read_text().strip() == f"pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(InputError, match="another training"):
            RunLock(tmp_path / ".lock").acquire()
    with RunLock(tmp_path / ".lock"):  # free again
        pass


def test_resume_alone_continues_in_place_and_logs_applied_changes(data, run2, tmp_path, monkeypatch):
    run = copy_run(run2, tmp_path)
    # PARTICLES naming the run's own stack (relative to the working folder) is accepted
    monkeypatch.chdir(data.stack.parent)
    assert main(["train-vae", data.stack.name, "--resume", str(run), "-n", "3", "--lr", "5e-4"]) == 0
    assert RunDir(run).epochs() == [1, 2, 3]
    config = read_run_config(RunDir(run))
    assert config.num_epochs == 3 and config.lr == 5e-4 and config.model.zdim == 1
    text = (run / "run.log").read_text()
    assert "resume: applying --lr: 0.001 -> 0.0005" in text and "resume: applying --num-epochs: 2 -> 3" in text
    # the optimizer really uses the new rate (not the one saved in the checkpoint's optimizer state)
    groups = RunDir(run).load_checkpoint(3)["optimizer"]["param_groups"]
    assert all(g["lr"] == 5e-4 for g in groups)
    records = read_provenance(RunDir(run))
    assert len(records) == 2 and records[1]["resumed_from"] == str((run / "weights.2.pt").resolve())
    assert [e["epoch"] for e in records[1]["epochs"]] == [3] and records[1]["status"] == "finished"
    assert records[1]["options"]["lr"] == 5e-4 and records[1]["start_epoch"] == 2


def test_resume_refuses_model_and_data_changes(data, run2, tmp_path, capsys):
    run = copy_run(run2, tmp_path)
    before = names(run)
    other = tmp_path / "other.mrcs"
    shutil.copy(data.stack, other)
    assert main(["train-vae", "--resume", str(run), "--zdim", "4", "--seed", "7", "--enc-dim", "16"]) == 2
    err = capsys.readouterr().err
    assert "--zdim 4 (the run has 1)" in err and "--seed 7 (the run has 0)" in err and "--enc-dim" not in err
    assert main(["train-vae", str(other), "--resume", str(run), "-n", "3"]) == 2
    assert "PARTICLES" in capsys.readouterr().err
    assert main(["train-nn", "--resume", str(run)]) == 2
    assert "use cryoscape train-vae --resume" in capsys.readouterr().err
    assert names(run) == before


def test_resume_works_from_any_working_directory(data, tmp_path, monkeypatch):
    # a run started with relative paths stores them absolute
    monkeypatch.chdir(data.stack.parent)
    run = tmp_path / "run"
    rel = ["particles.mrcs", "--poses", data.poses.name, "--ctf", data.ctf.name]
    assert main(["train-vae", *rel, *TINY, "-n", "1", "-o", str(run)]) == 0
    config = read_run_config(RunDir(run))
    assert config.data.particles == str(data.stack) and config.data.poses == str(data.poses)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train-vae", "--resume", str(run), "-n", "2"]) == 0
    assert RunDir(run).epochs() == [1, 2]


def test_resume_into_another_folder_and_from_an_earlier_epoch(data, run2, tmp_path, capsys):
    run = copy_run(run2, tmp_path)
    fork = tmp_path / "fork"
    assert main(["train-vae", "--resume", str(run / "weights.1.pt"), "-o", str(fork), "--lr", "1e-4"]) == 0
    assert RunDir(fork).epochs() == [2] and RunDir(run).epochs() == [1, 2]
    assert f"resuming from {run / 'weights.1.pt'} into {fork}" in (fork / "run.log").read_text()
    # into the run itself from epoch 1: epoch 2 would be replaced -> refused unless --overwrite
    assert main(["train-vae", "--resume", str(run / "weights.1.pt")]) == 2
    assert "would replace the later checkpoints weights.2.pt" in capsys.readouterr().err
    z2 = RunDir(run).load_z(2).mean
    assert main(["train-vae", "--resume", str(run / "weights.1.pt"), "--overwrite"]) == 0
    assert RunDir(run).epochs() == [1, 2]
    np.testing.assert_array_equal(RunDir(run).load_z(2).mean, z2)  # the same epoch 2 again (fp32, same seed)
    # into a folder holding another run: refused
    assert main(["train-vae", "--resume", str(run), "-o", str(fork), "-n", "3"]) == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_missing_output_and_stale_temporaries_are_repaired(data, run2, tmp_path, caplog):
    run = copy_run(run2, tmp_path)
    z2 = RunDir(run).load_z(2)
    (run / "z.2.npz").unlink()  # a kill between weights.2.pt and z.2.npz
    (run / ".weights.3.pt.abc123.tmp").write_bytes(b"partial")  # a kill during a checkpoint write
    (run / ".z.1.npz.k9x_q.tmp").write_bytes(b"partial")
    (run / ".notes.txt.tmp").write_text("not ours")
    with caplog.at_level("INFO", logger="cryoscape"):
        assert main(["train-vae", "--resume", str(run)]) == 0  # nothing to train, but z.2 is written
    assert "z.2.npz is missing: recomputing it from weights.2.pt" in caplog.text
    again = RunDir(run).load_z(2)
    np.testing.assert_array_equal(again.mean, z2.mean)
    np.testing.assert_array_equal(again.logvar, z2.logvar)
    assert not list(run.glob(".weights.*")) and not list(run.glob(".z.*"))
    assert (run / ".notes.txt.tmp").exists()


def test_full_disk_names_the_file_and_keeps_earlier_checkpoints(data, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    original = torch.save

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the checkpoint of epoch 2
            with open(f, "wb") as handle:
                handle.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    assert train(data, run, "-n", "3") == 2
    err = capsys.readouterr().err
    assert f"cannot write {run / 'weights.2.pt'}: No space left on device" in err
    assert "up to weights.1.pt) are intact" in err and f"--resume {run}" in err
    assert RunDir(run).epochs() == [1] and RunDir(run).load_checkpoint(1)["epoch"] == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")] and not (run / ".lock").exists()
    assert read_provenance(RunDir(run))[-1]["status"].startswith("stopped: TrainingError: cannot write")
    monkeypatch.setattr(torch, "save", original)
    assert main(["train-vae", "--resume", str(run)]) == 0
    assert RunDir(run).epochs() == [1, 2, 3]


def test_provenance_and_epoch_times(run2):
    records = read_provenance(RunDir(run2))
    assert len(records) == 1
    r = records[0]
    assert r["command"] == [str(a) for a in sys.argv]
    assert r["options"]["zdim"] == 1 and r["options"]["num_epochs"] == 2
    assert r["torch_version"] == str(torch.__version__) and r["host"] == socket.gethostname()
    assert r["status"] == "finished" and r["start_time"] <= r["end_time"]
    assert [e["epoch"] for e in r["epochs"]] == [1, 2] and all(e["seconds"] > 0 for e in r["epochs"])
    log = (run2 / "run.log").read_text()
    assert "epoch 1/2:" in log and " s, " in log  # per-epoch wall time in run.log too
    assert yaml.safe_load((run2 / "provenance.yaml").read_text()) == records


def test_new_run_needs_an_output_folder(data, capsys):
    assert main(["train-vae", *particle_args(data), "-n", "1"]) == 2
    assert "-o RUN is required" in capsys.readouterr().err
