"""``cryoscape abinit`` and ``write-star/write-cs --poses-from`` through the real command line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cryoscape.cli.main import main
from cryoscape.geometry.rotations import random_rotations
from cryoscape.io.cs import write_cs
from cryoscape.io.metadata import read_poses
from cryoscape.io.pose_export import rotation_vectors, write_cs_poses
from cryoscape.io.star import read_star, write_star
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import run_simulation
from cryoscape.training.pose_files import load_run_poses

FAST = ["-n", "3", "--local-epochs", "1", "--grid-level", "0", "--refine-levels", "2", "--keep-poses", "2",
        "--max-shift-px", "1", "--shift-step-px", "1", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """60 noise-free images, box 16, with CTF (RELION 3.1 star)."""
    out = tmp_path_factory.mktemp("abinit_cli")
    cfg = preset_config("tiny-32", box_size=16, n_particles=60, snr=float("inf"), max_shift_px=1.0,
                        hinge_angles_deg=(30.0, 30.0))
    run_simulation(cfg, out / "sim", show_progress=False)
    return out / "sim" / "particles.star"


@pytest.fixture(scope="module")
def run(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("abinit_run") / "run"
    assert main(["abinit", str(sim), "-o", str(out), "--train-epochs", "1", *FAST]) == 0
    return out


def test_abinit_writes_a_training_run_and_pose_files(run, tmp_path):
    assert (run / "weights.1.pt").is_file() and (run / "reconstruct.1.mrc").is_file()
    for epoch in (1, 2, 3):
        assert (run / "abinit" / f"poses.{epoch}.npz").is_file() and (run / "abinit" / f"map.{epoch}.mrc").is_file()
    assert len((run / "abinit" / "log.txt").read_text().splitlines()) == 3
    poses = load_run_poses(run)
    assert poses.epoch == 3 and poses.rotations.shape == (60, 3, 3)
    np.testing.assert_array_equal(poses.indices, np.arange(60))
    # later commands read the folder as a train-nn run
    assert main(["eval-vol", str(run), "-o", str(tmp_path / "vol.mrc")]) == 0


def test_resume_after_a_kill_gives_the_same_poses(run, sim, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("poses.3.npz", "map.3.mrc", "poses.pkl"):  # killed during epoch 3, before the training stage
        (copy / "abinit" / name).unlink()
    for p in copy.iterdir():
        if p.is_file():
            p.unlink()
    assert main(["abinit", str(sim), "-o", str(copy), "--train-epochs", "0", *FAST]) == 0
    a = load_run_poses(run, 3)
    b = load_run_poses(copy, 3)
    np.testing.assert_allclose(b.rotations, a.rotations, atol=1e-6)
    np.testing.assert_allclose(b.shifts_px, a.shifts_px, atol=1e-6)
    # other settings in the same folder are refused with one line
    assert main(["abinit", str(sim), "-o", str(copy), *FAST, "--seed", "3"]) == 2


def test_write_star_poses_from_run(run, sim, tmp_path, capsys):
    out = tmp_path / "abinit.star"
    assert main(["write-star", str(sim), "--poses-from", str(run), "--epoch", "2", "-o", str(out)]) == 0
    learned = load_run_poses(run, 2)
    written = read_poses(out)
    np.testing.assert_allclose(written.rotations, learned.rotations, atol=1e-9)
    np.testing.assert_allclose(written.shifts_px, learned.shifts_px, atol=1e-9)
    before, after = read_star(sim), read_star(out)
    assert list(after.particles.columns) == list(before.particles.columns)
    for column in ("rlnImageName", "rlnDefocusU", "rlnDefocusV", "rlnOpticsGroup"):
        assert after.particles[column].tolist() == before.particles[column].tolist()
    assert main(["write-star", str(sim), "--poses-from", str(run), "--epoch", "9", "-o",
                 str(tmp_path / "x.star")]) == 2
    assert "no poses for epoch 9" in capsys.readouterr().err


def test_write_cs_poses_round_trip(tmp_path):
    n = 5
    dtype = [("uid", "<u8"), ("blob/path", "S20"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
             ("blob/psize_A", "<f4"), ("ctf/df1_A", "<f4")]
    array = np.zeros(n, dtype=dtype)
    array["uid"] = np.arange(n) + 100
    array["blob/shape"] = 32
    array["blob/psize_A"] = 1.5
    array["ctf/df1_A"] = np.linspace(1e4, 2e4, n)
    src = tmp_path / "p.cs"
    write_cs(src, array)
    rot = random_rotations(3, np.random.default_rng(0))
    shifts_a = np.array([[1.5, -3.0], [0.0, 0.75], [3.0, 3.0]])
    assert write_cs_poses(src, tmp_path / "o.cs", rot, shifts_a, np.array([4, 0, 2])) == 3
    poses = read_poses(tmp_path / "o.cs")
    np.testing.assert_allclose(poses.rotations, rot[[1, 2, 0]], atol=1e-6)
    np.testing.assert_allclose(poses.shifts_px, shifts_a[[1, 2, 0]] / 1.5, atol=1e-6)
    out = np.load(tmp_path / "o.cs")
    assert out["uid"].tolist() == [100, 102, 104]
    np.testing.assert_allclose(out["ctf/df1_A"], array["ctf/df1_A"][[0, 2, 4]])
    assert np.abs(rotation_vectors(np.eye(3)[None])).max() == 0


def test_bad_inputs_give_one_error_line(sim, tmp_path, capsys):
    stack = sim.with_name("particles.mrcs")
    assert main(["abinit", str(stack), "-o", str(tmp_path / "r1"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CTF" in err[0]
    star = read_star(sim)
    empty = tmp_path / "empty.star"
    write_star(empty, star.particles.iloc[:0], star.optics)
    assert main(["abinit", str(empty), "-o", str(tmp_path / "r2"), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_refine_input_poses_starts_from_the_input_poses(sim, tmp_path):
    out = tmp_path / "refined"
    assert main(["abinit", str(sim), "-o", str(out), "--refine-input-poses", "-n", "1", "--train-epochs", "0",
                 "--grid-level", "1", "--no-progress", "--device", "cpu"]) == 0
    refined = load_run_poses(out)
    true = read_poses(sim)
    # started from the true poses, a local search stays near them (an ab initio run would be anywhere)
    from cryoscape.reconstruct.pose_scoring import rotation_angle_deg

    assert np.median(rotation_angle_deg(refined.rotations, true.rotations)) < 10.0
    assert "local search" in (out / "abinit" / "log.txt").read_text()
    stack = sim.with_name("particles.mrcs")
    assert main(["abinit", str(stack), "--ctf", str(sim), "-o", str(tmp_path / "r"), "--refine-input-poses",
                 "-n", "1", "--train-epochs", "0", "--no-progress"]) == 2
