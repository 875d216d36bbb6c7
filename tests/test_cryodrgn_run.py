"""cryoDRGN 4.3.1 run folders read as they are (and imported): maps, latents and epochs against what cryoDRGN wrote.

The goldens are cryoDRGN's own outputs in ../shared/fixtures/cryodrgn-4.3.1-runs (see its README):
``eval_vol/vol_00{1,2}.mrc`` = ``cryodrgn eval_vol weights.2.pkl --zfile z_eval.txt`` (voxel size 1.0, cryoDRGN's
default without --Apix), ``nn/reconstruct.N.mrc`` = the map train_nn wrote after epoch N (voxel size from the
CTF), ``z.N.pkl`` = the latent means then log-variances.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

from cryoscape.analysis.api import TrainedRun
from cryoscape.cryodrgn_run import CryoDRGNRunDir, epochs_completed
from cryoscape.errors import InputError
from cryoscape.io.legacy import RestrictedUnpickler, write_index
from cryoscape.io.mrc import read_mrc
from cryoscape.runs import RunDir, find_run

VAES = ("vae_fourier", "vae_hartley")


def _pickled_pair(path):
    """The two arrays pickled one after the other in cryoDRGN's z.N.pkl (read here without load_pickles)."""
    with open(path, "rb") as handle:
        first = RestrictedUnpickler(handle).load()
        second = RestrictedUnpickler(handle).load()
        assert handle.read() == b""
    return first, second


def _close(ours, golden):
    assert ours.shape == golden.shape
    np.testing.assert_allclose(ours, golden, rtol=0, atol=2e-6 * np.abs(golden).max())


@pytest.fixture
def folder(cryodrgn_runs_dir, tmp_path):
    """A copy of the fixture folder (runs are opened where they may be changed in a test)."""
    shutil.copytree(cryodrgn_runs_dir, tmp_path / "runs")
    return tmp_path / "runs"


@pytest.mark.parametrize("name", VAES)
def test_vae_folder_as_it_is_gives_cryodrgn_eval_vol_maps(cryodrgn_runs_dir, name):
    run = TrainedRun.open(cryodrgn_runs_dir / name, device="cpu")
    assert isinstance(run.run_dir, CryoDRGNRunDir)
    assert run.epoch == 2 and run.zdim == 2 and run.box_size == 32  # weights.2.pkl: cryoDRGN's last epoch
    z = np.loadtxt(cryodrgn_runs_dir / "z_eval.txt")
    maps = run.volumes(z, amp=False)
    for i, ours in enumerate(maps):
        golden, header = read_mrc(cryodrgn_runs_dir / name / "eval_vol" / f"vol_{i + 1:03d}.mrc")
        assert header.voxel_size_angstrom == 1.0  # cryoDRGN's default: it does not know the pixel size
        _close(ours, golden)
    assert np.abs(maps[0] - maps[1]).max() > 1e-2 * np.abs(maps[0]).max()  # z is used
    # the pixel size cryoDRGN's own train_nn derived from the same CTF pickle (found in the folder above)
    _, nn_header = read_mrc(cryodrgn_runs_dir / "nn" / "reconstruct.2.mrc")
    assert run.voxel_size_angstrom() == pytest.approx(nn_header.voxel_size_angstrom, rel=1e-6)


@pytest.mark.parametrize("epoch", [1, 2])
def test_nn_folder_as_it_is_gives_the_maps_train_nn_wrote(cryodrgn_runs_dir, epoch):
    run = TrainedRun.open(cryodrgn_runs_dir / "nn" / f"weights.{epoch}.pkl", device="cpu")
    assert run.epoch == epoch and run.zdim == 0
    golden, header = read_mrc(cryodrgn_runs_dir / "nn" / f"reconstruct.{epoch}.mrc")
    _close(run.volumes(None, amp=False)[0], golden)
    assert run.voxel_size_angstrom() == pytest.approx(header.voxel_size_angstrom, rel=1e-6)


@pytest.mark.parametrize("name", VAES)
def test_latents_are_the_pickled_means_then_log_variances(cryodrgn_runs_dir, name):
    for epoch in (1, 2):
        mean, logvar = _pickled_pair(cryodrgn_runs_dir / name / f"z.{epoch}.pkl")
        run = TrainedRun.open(cryodrgn_runs_dir / name / f"z.{epoch}.pkl", device="cpu")
        assert run.epoch == epoch
        np.testing.assert_array_equal(run.z, mean)
        np.testing.assert_array_equal(run.logvar, logvar)
        np.testing.assert_array_equal(run.indices, np.arange(300))
        assert not np.array_equal(mean, logvar)


def test_latents_of_an_index_subset_come_in_original_particle_order(folder):
    run_folder = folder / "vae_fourier"
    rng = np.random.default_rng(0)
    ind = rng.permutation(1000)[:300]  # cryoDRGN trained on these particles, in this order
    write_index(folder / "ind300.pkl", ind)
    cfg = yaml.safe_load((run_folder / "config.yaml").read_text())
    cfg["dataset_args"]["ind"] = "ind300.pkl"  # found in the folder above the run, where training started
    (run_folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    mean, logvar = _pickled_pair(run_folder / "z.2.pkl")
    run = TrainedRun.open(run_folder, device="cpu")
    order = np.argsort(ind)
    np.testing.assert_array_equal(run.indices, ind[order])
    np.testing.assert_array_equal(run.z, mean[order])
    np.testing.assert_array_equal(run.logvar, logvar[order])
    assert run.config.data.ind == str((folder / "ind300.pkl").resolve())
    (folder / "ind300.pkl").unlink()
    with pytest.raises(InputError, match=r"index file ind300\.pkl, which was not found"):
        _ = TrainedRun.open(run_folder, device="cpu").z


def test_epochs_and_names_of_a_folder(cryodrgn_runs_dir):
    run_dir, epoch = find_run(cryodrgn_runs_dir / "vae_hartley")
    assert isinstance(run_dir, CryoDRGNRunDir) and epoch is None
    assert run_dir.epochs() == [1, 2] and run_dir.latest_epoch() == 2
    assert run_dir.analyze_dir(2) == cryodrgn_runs_dir / "vae_hartley" / "analyze.2"
    assert find_run(cryodrgn_runs_dir / "vae_hartley" / "z.1.pkl")[1] == 1
    assert find_run(cryodrgn_runs_dir / "nn" / "weights.2.pkl")[1] == 2
    with pytest.raises(InputError, match=r"no checkpoint for epoch 3 \(found 1, 2\)"):
        TrainedRun.open(cryodrgn_runs_dir / "nn", epoch=3)
    with pytest.raises(InputError, match="no latent space"):
        _ = TrainedRun.open(cryodrgn_runs_dir / "nn").z


def test_cryodrgn_results_in_analyze_n_are_left_alone(folder):
    run_dir = CryoDRGNRunDir(folder / "vae_fourier")
    assert run_dir.analyze_dir(2).name == "analyze.2" and run_dir.landscape_dir(2).name == "landscape.2"
    (folder / "vae_fourier" / "analyze.2").mkdir()
    assert run_dir.analyze_dir(2).name == "analyze.2"  # empty: cryoscape may write there
    (folder / "vae_fourier" / "analyze.2" / "umap.pkl").write_bytes(b"cryoDRGN's")
    assert run_dir.analyze_dir(2).name == "analyze.2.cryoscape"
    (folder / "vae_fourier" / "analyze.2" / "analysis.json").write_text("{}")  # cryoscape's analysis
    assert run_dir.analyze_dir(2).name == "analyze.2"


def test_a_folder_is_never_written(folder):
    run_dir = CryoDRGNRunDir(folder / "vae_fourier")
    for call in (lambda: run_dir.save_checkpoint(3, {}), lambda: run_dir.save_config({}),
                 lambda: run_dir.save_z(3, np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1)),
                 lambda: run_dir.remove_run_files(), lambda: run_dir.lock()):
        with pytest.raises(InputError, match="never written"):
            call()
    assert run_dir.run_files() == []


@pytest.mark.parametrize("name, encode_mode, extra", [
    ("vae_fourier", "tilt", {}),  # cryoDRGN-ET's tilt-series encoder
    ("vae_hartley", "resid", {"ntilts": 10}),  # tilt-series particles
])
def test_tilt_series_models_are_refused_naming_the_setting(folder, name, encode_mode, extra):
    cfg = yaml.safe_load((folder / name / "config.yaml").read_text())
    cfg["model_args"]["encode_mode"] = encode_mode
    cfg["dataset_args"].update(extra)
    (folder / name / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError) as info:
        TrainedRun.open(folder / name)
    text = str(info.value)
    assert text.startswith(str(folder / name / "config.yaml")) and "unsupported" in text
    assert ("encode_mode='tilt'" if encode_mode == "tilt" else "dataset_args.ntilts=10") in text
    assert "\n" not in text


def test_tilt_params_of_single_particle_runs_are_not_a_tilt_series(cryodrgn_runs_dir):
    cfg = yaml.safe_load((cryodrgn_runs_dir / "vae_fourier" / "config.yaml").read_text())
    assert cfg["model_args"]["tilt_params"]["ntilts"] == 10 and cfg["model_args"]["encode_mode"] == "resid"
    assert TrainedRun.open(cryodrgn_runs_dir / "vae_fourier").config.model.zdim == 2


@pytest.mark.parametrize("version, stored, expected", [
    ("4.3.1", 2, 2),  # cryoDRGN 4 counts from 1: weights.2.pkl is after two epochs
    ("3.4.3", 49, 50),  # cryoDRGN 3 counted from 0
    (None, 0, 1),  # no version recorded (the 4.3.0 test fixture): an old, 0-based run
])
def test_epochs_completed(version, stored, expected):
    cfg = {} if version is None else {"version": version}
    assert epochs_completed(cfg, {"epoch": stored}) == expected
    assert epochs_completed(cfg, {}, f"weights.{stored}.pkl") == expected


def test_het_fixture_of_cryodrgn_tests_reads_as_a_folder_too(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "het_config.yaml", tmp_path / "config.yaml")
    shutil.copy(fixtures_dir / "het_weights.pkl", tmp_path / "weights.0.pkl")  # a 0-based cryoDRGN's first epoch
    run = TrainedRun.open(tmp_path, device="cpu", pixel_size_angstrom=2.0)
    assert run.epoch == 0 and run.zdim == 8 and run.pixel_size_angstrom == 2.0
    from cryoscape.cryodrgn_run import read_cryodrgn_config, read_cryodrgn_weights
    from cryoscape.models.cryodrgn_compat import import_cryodrgn

    imported = import_cryodrgn(read_cryodrgn_config(tmp_path / "config.yaml"),
                               read_cryodrgn_weights(tmp_path / "weights.0.pkl"))
    z = np.linspace(-1, 1, 8, dtype=np.float32)[None]
    expected = imported.model.decoder.eval_volume(torch.from_numpy(z), scale=imported.data_std,
                                                  radius_px=imported.volume_radius_px).numpy()
    np.testing.assert_allclose(run.volumes(z, amp=False)[0], expected, rtol=0, atol=1e-6 * np.abs(expected).max())
    assert not RunDir(tmp_path).epochs()  # nothing written (no weights.N.pt)


def test_a_cryodrgn_config_for_a_cryoscape_run_is_refused(cryodrgn_runs_dir, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(InputError, match="not a cryoDRGN run"):
        find_run(tmp_path / "run", cryodrgn_config=cryodrgn_runs_dir / "nn" / "config.yaml")
    run_dir, epoch = find_run(cryodrgn_runs_dir / "nn" / "weights.1.pkl",
                              cryodrgn_config=cryodrgn_runs_dir / "nn" / "config.yaml")
    assert isinstance(run_dir, CryoDRGNRunDir) and epoch == 1
    assert run_dir.config_path == cryodrgn_runs_dir / "nn" / "config.yaml"
