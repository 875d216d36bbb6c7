"""Tiny trained runs shared by the analysis tests (made once per test session, through the real commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryoscape.cli.main import main

N_PARTICLES = 400
BOX = 32


def _cryoscape(*args: str) -> None:
    status = main(list(args))
    assert status == 0, f"cryoscape {' '.join(args)} exited {status}"


@pytest.fixture(scope="session")
def hinge_dataset(tmp_path_factory) -> Path:
    """A small hinge dataset (32 px, SNR 1, CTF): folder with particles.star, ground_truth.csv, gt_volumes/."""
    out = tmp_path_factory.mktemp("analysis_data") / "hinge"
    _cryoscape("simulate", "--preset", "hinge-64", "-n", str(N_PARTICLES), "--box-size", str(BOX), "--snr", "1",
               "--seed", "3", "-o", str(out))
    return out


def _train(dataset: Path, out: Path, zdim: int, epochs: int, extra: tuple[str, ...] = ()) -> Path:
    _cryoscape("train-vae", str(dataset / "particles.star"), "--zdim", str(zdim), "-n", str(epochs),
               "--enc-dim", "32", "--enc-layers", "2", "--dec-dim", "32", "--dec-layers", "2", "-b", "16",
               "--lr", "1e-3", "--no-amp", "--seed", "1", "-o", str(out), *extra)
    return out


@pytest.fixture(scope="session")
def trained_run(hinge_dataset, tmp_path_factory) -> Path:
    """A zdim-2 VAE run (2 epochs) on :func:`hinge_dataset`: RUN/weights.{1,2}.pt, z.{1,2}.npz, config.yaml."""
    return _train(hinge_dataset, tmp_path_factory.mktemp("analysis_runs") / "z2", zdim=2, epochs=2)


@pytest.fixture(scope="session")
def trained_run_1d(hinge_dataset, tmp_path_factory) -> Path:
    """A zdim-1 VAE run (2 epochs) on :func:`hinge_dataset`."""
    return _train(hinge_dataset, tmp_path_factory.mktemp("analysis_runs") / "z1", zdim=1, epochs=2)


@pytest.fixture(scope="session")
def trained_subset_run(hinge_dataset, tmp_path_factory) -> Path:
    """A zdim-2 run trained on the particle subset 1, 3, 5, … (``--ind``), 1 epoch."""
    ind = tmp_path_factory.mktemp("analysis_ind") / "odd.txt"
    ind.write_text("\n".join(str(i) for i in range(1, N_PARTICLES, 2)) + "\n")
    return _train(hinge_dataset, tmp_path_factory.mktemp("analysis_runs") / "odd", zdim=2, epochs=1,
                  extra=("--ind", str(ind)))
