"""SIGKILL ``train-vae`` at several points, resume, and get exactly the files of an uninterrupted run.

Every invocation runs the ``train-vae`` command in a child process forked from the test (so that torch is not
imported again each time: the whole test takes seconds); each kill is a real SIGKILL of that process:
1. inside the write of ``weights.2.pt``, right after its temporary file is complete (before the rename);
2. right after ``weights.2.pt`` is in place, before ``z.2.npz`` is written;
3. right after the temporary file of ``z.3.npz`` is complete (before the rename);
4. from outside, by the test, as soon as a temporary checkpoint file ``.weights.3.pt.*.tmp`` appears.
Kills 1-3 are sent by the child to itself from wrappers of the write functions, at points that do not depend
on timing; kill 4 lands wherever the process is when the test sees the file.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

from cryoscape.runs import RunDir, load_checkpoint_file

from .synthetic import two_blob_dataset

BOX = 16
EPOCHS = 3
TINY = ["--zdim", "1", "--enc-dim", "16", "--enc-layers", "1", "--dec-dim", "16", "--dec-layers", "1",
        "-b", "16", "--no-amp", "--lr", "1e-3", "--seed", "2"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(kill_at: str) -> None:
    """In the child: wrap a write function so that the process SIGKILLs itself at ``kill_at``."""
    import cryoscape.training.loop as loop

    kind, _, epoch = kill_at.partition(":")
    if kind == "weights_tmp":
        original_save = torch.save

        def save(obj, f, *args, **kwargs):
            original_save(obj, f, *args, **kwargs)
            if os.path.basename(str(f)).startswith(f".weights.{epoch}.pt."):
                _die()

        torch.save = save
    elif kind == "before_z":
        original_outputs = loop.write_outputs

        def write_outputs(run, e, *args, **kwargs):
            if e == int(epoch):
                _die()
            return original_outputs(run, e, *args, **kwargs)

        loop.write_outputs = write_outputs
    elif kind == "z_tmp":
        original_savez = np.savez

        def savez(file, *args, **kwargs):
            original_savez(file, *args, **kwargs)
            file.flush()
            if os.path.basename(getattr(file, "name", "")).startswith(f".z.{epoch}.npz."):
                _die()

        np.savez = savez
    elif kind:
        raise ValueError(kill_at)


def _start(argv: list[str], log_path: Path, kill_at: str = "") -> int:
    """Fork a child running ``cryoscape <argv>`` (its cryoscape log in ``log_path``); returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child never returns into pytest
        torch.set_num_threads(1)
        handler = logging.FileHandler(log_path)
        logger = logging.getLogger("cryoscape")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        _install_kill(kill_at)
        from cryoscape.cli.main import main

        code = main(argv)
    except BaseException:
        with open(log_path, "a") as handle:
            handle.write(traceback.format_exc())
    finally:
        os._exit(code)


def _wait(pid: int) -> int:
    """Exit code of the child, or minus the signal that ended it."""
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _run(argv: list[str], log_path: Path, kill_at: str = "") -> tuple[int, str]:
    code = _wait(_start(argv, log_path, kill_at))
    return code, log_path.read_text() if log_path.exists() else ""


def _kill_when_file_appears(argv: list[str], log_path: Path, folder: Path, pattern: str) -> int:
    """Start the command and SIGKILL it as soon as a file matching ``pattern`` appears in ``folder``."""
    pid = _start(argv, log_path)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if any(folder.glob(pattern)):
                os.kill(pid, signal.SIGKILL)
                break
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                pytest.fail("the command ended before the file appeared")
            time.sleep(0.0005)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    return _wait(pid)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return two_blob_dataset(tmp_path_factory.mktemp("kill"), BOX, 48, seed=6)


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint_file(a), load_checkpoint_file(b)
    assert sa["epoch"] == sb["epoch"]
    for key in sa["model"]:
        assert torch.equal(sa["model"][key], sb["model"][key]), (a.name, key)
    for pid, state in sa["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb["optimizer"]["state"][pid][name])), (
                a.name, pid, name)
    assert torch.equal(sa["rng"]["reparam"], sb["rng"]["reparam"]) and torch.equal(sa["rng"]["torch"],
                                                                                 sb["rng"]["torch"])


def test_kill_and_resume_gives_the_uninterrupted_run(data, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")
    # import once here what every child would otherwise import again (the optimizer pulls in torch._dynamo)
    from cryoscape.cli.main import build_parser

    build_parser()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    particles = [str(data.stack), "--poses", str(data.poses), "--ctf", str(data.ctf)]
    ref, run, logs = tmp_path / "ref", tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    code, log = _run(["train-vae", *particles, *TINY, "-n", str(EPOCHS), "-o", str(ref)], logs / "ref.log")
    assert code == 0, log

    killed = -signal.SIGKILL
    # 1. inside the write of weights.2.pt: its temporary is left, weights.2.pt is not there
    code, log = _run(["train-vae", *particles, *TINY, "-n", str(EPOCHS), "-o", str(run)], logs / "1.log",
                     kill_at="weights_tmp:2")
    assert code == killed, log
    assert list(run.glob(".weights.2.pt.*.tmp")) and RunDir(run).epochs() == [1]
    assert (run / ".lock").exists()
    # 2. resume; killed after weights.2.pt, before z.2.npz (the stale lock and temporary are cleaned up)
    code, log = _run(["train-vae", "--resume", str(run)], logs / "2.log", kill_at="before_z:2")
    assert code == killed, log
    assert "taking over the stale lock" in log and "left by an interrupted write" in log
    assert RunDir(run).epochs() == [1, 2] and not (run / "z.2.npz").exists()
    assert not list(run.glob(".weights.2.pt.*.tmp"))
    # 3. resume (z.2 is recomputed first); killed with the temporary of z.3.npz complete
    code, log = _run(["train-vae", "--resume", str(run)], logs / "3.log", kill_at="z_tmp:3")
    assert code == killed, log
    assert "z.2.npz is missing: recomputing it from weights.2.pt" in log
    assert RunDir(run).epochs() == [1, 2, 3] and not (run / "z.3.npz").exists()
    assert list(run.glob(".z.3.npz.*.tmp"))
    # 4. start over from weights.2.pt (drops epoch 3), killed from outside when the epoch-3 temporary appears
    code = _kill_when_file_appears(["train-vae", "--resume", str(run / "weights.2.pt"), "--overwrite"],
                                   logs / "4.log", run, ".weights.3.pt.*.tmp")
    assert code == killed
    # 5. resume to the end (if kill 4 came after weights.3.pt, "nothing to train" still writes z.3.npz)
    code, log = _run(["train-vae", "--resume", str(run)], logs / "5.log")
    assert code == 0, log

    assert RunDir(run).epochs() == RunDir(ref).epochs() == [1, 2, 3]
    for epoch in range(1, EPOCHS + 1):
        _assert_same_checkpoint(ref / f"weights.{epoch}.pt", run / f"weights.{epoch}.pt")
        za, zb = RunDir(ref).load_z(epoch), RunDir(run).load_z(epoch)
        np.testing.assert_array_equal(za.mean, zb.mean)
        np.testing.assert_array_equal(za.logvar, zb.logvar)
        np.testing.assert_array_equal(za.indices, zb.indices)
    leftovers = [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name == ".lock"]
    assert leftovers == []
