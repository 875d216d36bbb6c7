"""Pose refinement during training (``--refine-poses``): the correction table, its optimizer, the loop, resume,
the pose files and the export of the refined poses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cryoscape.errors import InputError
from cryoscape.geometry.rotations import axis_angle_to_matrix
from cryoscape.io.legacy import write_pose_pickle
from cryoscape.io.records import Poses
from cryoscape.models import ModelConfig
from cryoscape.reconstruct.pose_scoring import rotation_angle_deg
from cryoscape.runs import RunDir
from cryoscape.training import loop
from cryoscape.training.config import DataConfig, TrainConfig
from cryoscape.training.pose_files import load_run_poses
from cryoscape.training.pose_refinement import PoseTable, correction_rotations

from .synthetic import blob_volume, write_dataset

BOX = 32


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")


def _rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices of rotation vectors, by Rodrigues' formula (independent of the code under test)."""
    out = []
    for v in rotvec:
        theta = np.linalg.norm(v)
        k = v / theta
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        out.append(np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx)
    return np.stack(out)


def test_correction_rotation_is_the_rotation_by_the_edge_displacement():
    rng = np.random.default_rng(0)
    a_px = rng.normal(size=(5, 3)) * 2.0
    got = correction_rotations(torch.tensor(a_px, dtype=torch.float32), box_size=64).numpy()
    np.testing.assert_allclose(got, _rodrigues(a_px / 32.0), atol=1e-6)
    # a displacement of 1 px at the edge of a box of 64 is a rotation of 1/32 rad
    one = correction_rotations(torch.tensor([[0.0, 0.0, 1.0]]), box_size=64).numpy()
    assert rotation_angle_deg(one, np.eye(3)[None])[0] == pytest.approx(np.degrees(1 / 32), rel=1e-4)  # float32 arccos


def test_zero_corrections_give_the_input_poses_and_shifts_add():
    table = PoseTable(4, box_size=32, lr_px=0.1)
    rot = torch.tensor(axis_angle_to_matrix(np.random.default_rng(1).normal(size=(2, 3))), dtype=torch.float32)
    shifts = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    positions = torch.tensor([3, 0])
    r, s = table.apply(positions, rot, shifts)
    torch.testing.assert_close(r, rot, atol=1e-6, rtol=0)
    torch.testing.assert_close(s, shifts)
    table.correction_px[3, 3:] = torch.tensor([0.25, -1.0])
    _, s = table.apply(positions, rot, None)
    torch.testing.assert_close(s, torch.tensor([[0.25, -1.0], [0.0, 0.0]]))


def test_each_particle_has_its_own_adam_and_others_do_not_move():
    table = PoseTable(6, box_size=32, lr_px=0.5)
    rot = torch.eye(3).expand(2, 3, 3)
    positions = torch.tensor([1, 4])
    for step in range(3):
        r, s = table.apply(positions, rot, torch.zeros(2, 2), learn=True)
        # loss pulling particle 1's shifts towards +x and particle 4's towards -y, and a tilt
        loss = -s[0, 0] + s[1, 1] + r[:, 0, 2].sum()
        loss.backward()
        before = table.correction_px.clone()
        table.step()
        moved = (table.correction_px - before).abs()
        # Adam's first step of each coordinate is lr times the sign of its gradient
        if step == 0:
            assert table.correction_px[1, 3] == pytest.approx(0.5)
            assert table.correction_px[4, 4] == pytest.approx(-0.5)
        assert float(moved[[0, 2, 3, 5]].max()) == 0.0
    assert table.updates.tolist() == [0, 3, 0, 0, 3, 0]
    # with consistent gradients every step moves by lr (bias-corrected per particle)
    assert table.correction_px[1, 3] == pytest.approx(1.5, rel=1e-5)
    # a particle seen for the first time later still starts with a full step (its own count, not a shared one)
    r, s = table.apply(torch.tensor([2]), torch.eye(3)[None], torch.zeros(1, 2), learn=True)
    (-s[0, 0]).backward()
    table.step()
    assert table.correction_px[2, 3] == pytest.approx(0.5)


def test_non_finite_gradients_change_nothing_and_the_prior_pulls_back():
    table = PoseTable(3, box_size=32, lr_px=0.5, prior_px=1.0)
    table.correction_px[0] = torch.tensor([0.0, 0.0, 0.0, 2.0, 0.0])
    _, s = table.apply(torch.tensor([0]), torch.eye(3)[None], torch.zeros(1, 2), learn=True)
    (s.sum() * float("nan")).backward()
    state = {k: v.clone() for k, v in table.state_dict().items()}
    table.step()
    for k, v in table.state_dict().items():
        torch.testing.assert_close(v, state[k], equal_nan=True)
    table.apply(torch.tensor([0]), torch.eye(3)[None], torch.zeros(1, 2), learn=True)
    prior = table.prior_nats()
    assert float(prior.detach()) == pytest.approx(0.5 * 2.0**2)
    prior.backward()
    table.step()
    assert float(table.correction_px[0, 3]) == pytest.approx(1.5)


def test_state_dict_round_trip_and_shape_check():
    table = PoseTable(5, box_size=32, lr_px=0.3)
    table.correction_px.normal_()
    table.updates[2] = 7
    other = PoseTable(5, box_size=32, lr_px=0.3)
    other.load_state_dict(table.state_dict())
    assert torch.equal(other.correction_px, table.correction_px) and torch.equal(other.updates, table.updates)
    with pytest.raises(ValueError, match="shape"):
        PoseTable(4, box_size=32, lr_px=0.3).load_state_dict(table.state_dict())


@pytest.fixture(scope="module")
def perturbed(tmp_path_factory):
    """A one-state set (box 32, 400 particles, noise std 0.1) and its poses perturbed by 5° and 1.5 px."""
    folder = tmp_path_factory.mktemp("refine")
    s = BOX / 16
    volume = blob_volume(BOX, [(0, 0, 0), (3 * s, 0, 0), (-2 * s, 3 * s, s), (0, -2 * s, 3 * s),
                               (s, s, -3 * s)], sigma_px=1.6 * s)
    syn = write_dataset(folder, [volume], 400, noise_std=0.1, seed=3, max_shift_px=1.5)
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(400, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angle = rng.uniform(0, 2 * np.pi, 400)
    true = syn.pose_rec
    start = Poses(axis_angle_to_matrix(axes * np.radians(5.0)) @ true.rotations,
                  true.shifts_px + 1.5 * np.stack([np.cos(angle), np.sin(angle)], 1), BOX)
    write_pose_pickle(folder / "start.pkl", start)
    write_pose_pickle(folder / "start_rotations.pkl", Poses(start.rotations, true.shifts_px, BOX))
    return syn, folder / "start.pkl"


def _config(perturbed, **changes) -> TrainConfig:
    syn, start = perturbed
    data = DataConfig(particles=str(syn.stack), poses=str(start), ctf=str(syn.ctf))
    base = TrainConfig(model=ModelConfig(zdim=0, dec_dim=96, dec_layers=3), data=data, num_epochs=8, batch_size=8,
                       lr=1e-3, amp=False, refine_poses=True, pose_warmup_epochs=1)
    return dataclasses.replace(base, **changes)


def _errors(run, epoch, true: Poses) -> tuple[float, float]:
    found = load_run_poses(run, epoch)
    rot = rotation_angle_deg(found.rotations, true.rotations[found.indices])
    shift = np.linalg.norm(found.shifts_px - true.shifts_px[found.indices], axis=1)
    return float(np.median(rot)), float(np.median(shift))


def test_refinement_reduces_a_known_perturbation(perturbed, tmp_path):
    syn, start = perturbed
    result = loop.fit(_config(perturbed), tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert run.pose_epochs() == list(range(1, 9)) and (tmp_path / "run" / "reconstruct.8.mrc").is_file()
    rot0, shift0 = _errors(run.path, 1, syn.pose_rec)  # warm-up: the input poses
    assert rot0 == pytest.approx(5.0, abs=0.01) and shift0 == pytest.approx(1.5, abs=0.01)
    rot, shift = _errors(run.path, 8, syn.pose_rec)
    # measured: the shifts come back first (1.5 -> 0.3 px), the rotations stay near 5° at this small box
    assert shift < 0.5 * shift0 and rot < 1.05 * rot0, (rot, shift)
    assert result.config.refine_poses and run.load_checkpoint(8)["poses"]["updates"].max() == 7
    # rotations alone perturbed: they come back (measured about 5° -> 3.1° after 7 epochs of refinement)
    rotations_only = dataclasses.replace(_config(perturbed).data, poses=str(start.with_name("start_rotations.pkl")))
    loop.fit(_config(perturbed, data=rotations_only), tmp_path / "rot")
    rot0, _ = _errors(tmp_path / "rot", 1, syn.pose_rec)
    rot, shift = _errors(tmp_path / "rot", 8, syn.pose_rec)
    assert rot < 0.8 * rot0 and shift < 1.0, (rot, shift)


def test_resume_with_refined_poses_is_bit_identical(perturbed, tmp_path):
    config = _config(perturbed, num_epochs=3, pose_warmup_epochs=1, model=ModelConfig(zdim=0, dec_dim=32,
                                                                                      dec_layers=2))
    loop.fit(config, tmp_path / "a")
    loop.fit(dataclasses.replace(config, num_epochs=2), tmp_path / "b")
    loop.fit(config, tmp_path / "b", resume_from=tmp_path / "b")
    a, b = RunDir(tmp_path / "a").load_checkpoint(3), RunDir(tmp_path / "b").load_checkpoint(3)
    for key, value in a["poses"].items():
        assert torch.equal(value, b["poses"][key]), key
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    pa, pb = load_run_poses(tmp_path / "a", 3), load_run_poses(tmp_path / "b", 3)
    np.testing.assert_array_equal(pa.rotations, pb.rotations)
    # turning refinement on or off in a resumed run is refused (the checkpoint would not match)
    with pytest.raises(InputError, match="refine"):
        loop.fit(None, tmp_path / "b", resume_from=tmp_path / "b",
                 changes={"refine_poses": False, "num_epochs": 4})


def test_vae_encodes_with_refined_poses_and_runs_without_refinement_have_no_pose_files(perturbed, tmp_path):
    config = _config(perturbed, num_epochs=2, pose_warmup_epochs=1,
                     model=ModelConfig(zdim=1, enc_dim=32, enc_layers=1, dec_dim=32, dec_layers=1))
    loop.fit(config, tmp_path / "vae")
    assert RunDir(tmp_path / "vae").pose_epochs() == [1, 2] and (tmp_path / "vae" / "z.2.npz").is_file()
    loop.fit(dataclasses.replace(config, refine_poses=False, num_epochs=1), tmp_path / "plain")
    assert RunDir(tmp_path / "plain").pose_epochs() == []
    with pytest.raises(InputError, match="no poses"):
        load_run_poses(tmp_path / "plain")


def test_train_nn_refine_poses_then_write_star_poses_from(tmp_path, capsys):
    """Through the command line: a RELION star in, train-nn --refine-poses, write-star --poses-from RUN."""
    from cryoscape.cli.main import main
    from cryoscape.io.metadata import read_poses
    from cryoscape.io.star import read_star
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.simulator import run_simulation

    cfg = preset_config("tiny-32", box_size=16, n_particles=40, snr=float("inf"), max_shift_px=1.0,
                        hinge_angles_deg=(30.0, 30.0))
    run_simulation(cfg, tmp_path / "sim", show_progress=False)
    star = tmp_path / "sim" / "particles.star"
    run = tmp_path / "run"
    assert main(["train-nn", str(star), "-o", str(run), "-n", "2", "--refine-poses", "--pose-warmup-epochs", "1",
                 "--dec-dim", "16", "--dec-layers", "1", "--device", "cpu", "--no-progress"]) == 0
    assert RunDir(run).pose_epochs() == [1, 2]
    out = tmp_path / "refined.star"
    assert main(["write-star", str(star), "--poses-from", str(run), "-o", str(out)]) == 0
    assert "epoch 2" in capsys.readouterr().out
    found, written = load_run_poses(run), read_poses(out)
    assert rotation_angle_deg(written.rotations, found.rotations).max() < 0.05  # float32 matrices, star text
    np.testing.assert_allclose(written.shifts_px, found.shifts_px, atol=1e-4)
    # every other column is kept
    before, after = read_star(star).particles, read_star(out).particles
    np.testing.assert_array_equal(before["rlnDefocusU"].to_numpy(), after["rlnDefocusU"].to_numpy())
    # the refinement moved the poses away from the input ones (the network learned something to move them by)
    assert rotation_angle_deg(found.rotations, read_poses(star).rotations).max() > 0


def test_bad_pose_settings_are_refused_with_the_field_named(perturbed):
    from cryoscape.training.distributed import DistContext

    for field, value in (("pose_lr_px", 0.0), ("pose_prior_px", -1.0), ("pose_warmup_epochs", -1)):
        with pytest.raises(InputError, match=field):
            _config(perturbed, **{field: value})
    # several processes would each refine their own share of the table: refused up front
    with pytest.raises(InputError, match="one process"):
        loop.make_pose_table(_config(perturbed), [0] * 10, None, DistContext(world_size=2))
