"""The reconstruction commands end to end through ``cryoscape.cli.main.main``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryoscape.cli.main import main
from cryoscape.io.mrc import read_mrc, write_mrc
from cryoscape.reconstruct.fsc import fsc_curve
from cryoscape.reconstruct.masks import soft_mask
from cryoscape.reconstruct.sharpen import apply_bfactor
from cryoscape.reconstruct.transforms import flip_hand


@pytest.fixture()
def blob_maps(tmp_path):
    """Two noisy copies of a smooth blob (box 24, 3 Å/voxel), written as .mrc."""
    d = 24
    z, y, x = np.indices((d, d, d)) - d // 2
    blob = np.exp(-((x - 2) ** 2 + y**2 + (z + 1) ** 2) / 8.0)
    blob += 0.5 * np.exp(-((x + 4) ** 2 + (y - 3) ** 2 + z**2) / 4)
    rng = np.random.default_rng(0)
    a = (blob + 0.05 * rng.normal(size=blob.shape)).astype(np.float32)
    b = (blob + 0.05 * rng.normal(size=blob.shape)).astype(np.float32)
    write_mrc(tmp_path / "a.mrc", a, 3.0)
    write_mrc(tmp_path / "b.mrc", b, 3.0)
    return tmp_path, a, b


def test_fsc_command_writes_curve_and_prints_resolutions(blob_maps, capsys):
    folder, a, b = blob_maps
    assert main(["fsc", str(folder / "a.mrc"), str(folder / "b.mrc"), "-o", str(folder / "out" / "ab")]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(folder / "out" / "ab.csv")
    expected = fsc_curve(a, b, 3.0)
    np.testing.assert_allclose(table["fsc"], expected.fsc, atol=1e-5)
    np.testing.assert_allclose(table["frequency_per_angstrom"], expected.frequency_per_angstrom, rtol=1e-5)
    assert (folder / "out" / "ab.png").stat().st_size > 1000
    assert f"FSC = 0.143: {expected.resolution_angstrom(0.143):.2f} Å" in out
    assert f"FSC = 0.5: {expected.resolution_angstrom(0.5):.2f} Å" in out
    assert f"{expected.area_under_curve():.4f}" in out
    # with the paper's mask the noise outside the blob is removed: the curve rises
    assert main(["fsc", str(folder / "a.mrc"), str(folder / "b.mrc"), "--auto-mask", "-o",
                 str(folder / "masked")]) == 0
    masked = pd.read_csv(folder / "masked.csv")
    assert masked["fsc"].iloc[1:].mean() > table["fsc"].iloc[1:].mean()


def test_fsc_command_rejects_different_boxes(blob_maps, capsys):
    folder, a, _ = blob_maps
    write_mrc(folder / "small.mrc", a[:16, :16, :16], 3.0)
    assert main(["fsc", str(folder / "a.mrc"), str(folder / "small.mrc")]) == 2
    assert "different shapes" in capsys.readouterr().err


def test_mask_command(blob_maps):
    folder, a, _ = blob_maps
    assert main(["mask", str(folder / "a.mrc"), "-o", str(folder / "mask.mrc"), "--dilate", "6", "--edge",
                 "6"]) == 0
    mask, header = read_mrc(folder / "mask.mrc")
    assert header.voxel_size_angstrom == pytest.approx(3.0)
    from cryoscape.reconstruct.masks import MaskConfig

    np.testing.assert_allclose(mask, soft_mask(a, 3.0, MaskConfig(dilate_angstrom=6, edge_angstrom=6)))
    assert 0 < mask.mean() < 1


def test_sharpen_command_given_and_estimated_bfactor(tmp_path, capsys):
    rng = np.random.default_rng(1)
    vol = apply_bfactor(rng.normal(size=(32, 32, 32)), 2.0, 150.0)
    write_mrc(tmp_path / "blurred.mrc", vol, 2.0)
    blurred = str(tmp_path / "blurred.mrc")
    assert main(["sharpen", blurred, "--bfactor", "-50", "-o", str(tmp_path / "s.mrc")]) == 0
    out, _ = read_mrc(tmp_path / "s.mrc")
    np.testing.assert_allclose(out, apply_bfactor(vol, 2.0, -50.0), atol=1e-4)
    capsys.readouterr()
    assert main(["sharpen", str(tmp_path / "blurred.mrc"), "-o", str(tmp_path / "g.mrc")]) == 0
    printed = capsys.readouterr().out
    b_est = float(printed.split("B = ")[1].split(" Å²")[0])
    assert b_est == pytest.approx(-150.0, abs=10.0)
    assert main(["sharpen", str(tmp_path / "blurred.mrc"), "--bfactor", "0", "--lowpass", "8", "-o",
                 str(tmp_path / "lp.mrc")]) == 0


def test_flip_hand_and_invert_contrast_commands(blob_maps):
    folder, a, _ = blob_maps
    assert main(["flip-hand", str(folder / "a.mrc"), "-o", str(folder / "flip.mrc")]) == 0
    flipped, header = read_mrc(folder / "flip.mrc")
    np.testing.assert_array_equal(flipped, flip_hand(a))
    assert header.voxel_size_angstrom == pytest.approx(3.0)
    assert main(["invert-contrast", str(folder / "a.mrc"), "-o", str(folder / "inv.mrc")]) == 0
    np.testing.assert_array_equal(read_mrc(folder / "inv.mrc")[0], -a)
    # a stack, streamed in chunks of 2 images
    stack = np.random.default_rng(2).normal(size=(5, 8, 8)).astype(np.float32)
    write_mrc(folder / "stack.mrcs", stack, 1.5)
    assert main(["invert-contrast", str(folder / "stack.mrcs"), "-o", str(folder / "inv.mrcs"),
                 "--chunk", "2"]) == 0
    inv, header = read_mrc(folder / "inv.mrcs")
    np.testing.assert_array_equal(inv, -stack)
    assert header.voxel_size_angstrom == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------------- backproject
RIGID = {"source": "hinge", "hinge_angles_deg": (30.0, 30.0), "n_gt_volumes": 1, "bfactor_angstrom2": 0.0}


def _nyquist_fraction_at(curve, threshold: float) -> float:
    freq = curve.crossing_frequency(threshold)
    return 1.0 if freq is None else freq * 2 * curve.voxel_size_angstrom


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A very high SNR dataset with CTF written by the simulator (star + mrcs + ground truth), box 32."""
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.simulator import run_simulation

    out = tmp_path_factory.mktemp("sim")
    cfg = preset_config("tiny-32", n_particles=600, snr=1e4, ctf=True, box_size=32, **RIGID)
    return run_simulation(cfg, out, show_progress=False)


def test_backproject_star_reaches_08_nyquist_against_ground_truth(simulated, tmp_path, capsys):
    out = tmp_path / "recon"
    assert main(["backproject", str(simulated.star_path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("map.mrc", "half1.mrc", "half2.mrc", "fsc.csv", "fsc.png"):
        assert (out / name).stat().st_size > 0
    vol, header = read_mrc(out / "map.mrc")
    assert header.voxel_size_angstrom == pytest.approx(simulated.pixel_size_angstrom, rel=1e-4)
    truth, _ = read_mrc(simulated.volume_paths[0])
    curve = fsc_curve(vol, truth, header.voxel_size_angstrom)
    assert _nyquist_fraction_at(curve, 0.5) >= 0.8
    assert float(np.vdot(vol, truth)) > 0  # protein positive
    # printed gold-standard resolutions agree with the written curve and the half-maps
    half1, half2 = read_mrc(out / "half1.mrc")[0], read_mrc(out / "half2.mrc")[0]
    gold = fsc_curve(half1, half2, header.voxel_size_angstrom)
    np.testing.assert_allclose(pd.read_csv(out / "fsc.csv")["fsc"], gold.fsc, atol=1e-4)
    assert f"gold-standard FSC = 0.143: {gold.resolution_angstrom(0.143):.2f} Å" in printed
    assert "gold-standard FSC = 0.5:" in printed


def test_backproject_after_downsample_command(tmp_path):
    # Simulate at box 64, Fourier-crop the star's particles to 32 with `cryoscape downsample`, back-project
    # the new star: the map must match the Fourier-cropped truth out to 0.8 × the new Nyquist.
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.project import fourier_crop_volume
    from cryoscape.simulate.simulator import run_simulation

    sim = run_simulation(preset_config("tiny-32", n_particles=500, snr=1e4, ctf=True, box_size=64, **RIGID),
                         tmp_path / "sim64", show_progress=False)
    small = tmp_path / "p32.mrcs"
    assert main(["downsample", str(sim.star_path), "-D", "32", "-o", str(small)]) == 0
    assert main(["backproject", str(small.with_suffix(".star")), "-o", str(tmp_path / "recon")]) == 0
    vol, header = read_mrc(tmp_path / "recon" / "map.mrc")
    assert vol.shape == (32, 32, 32)
    assert header.voxel_size_angstrom == pytest.approx(2 * sim.pixel_size_angstrom, rel=1e-4)
    truth = fourier_crop_volume(read_mrc(sim.volume_paths[0])[0], 32)
    assert _nyquist_fraction_at(fsc_curve(vol, truth, header.voxel_size_angstrom), 0.5) >= 0.8


def test_backproject_stack_with_pickles_and_index_subset(simulated, tmp_path):
    # The same particles as .mrcs + cryoDRGN pose/CTF pickles + --ind give the map of the star with --ind.
    from cryoscape.io.legacy import write_ctf_pickle, write_index, write_pose_pickle
    from cryoscape.io.metadata import read_ctf, read_poses

    star = simulated.star_path
    write_pose_pickle(tmp_path / "pose.pkl", read_poses(star))
    write_ctf_pickle(tmp_path / "ctf.pkl", read_ctf(star))
    subset = np.arange(0, 600, 2)
    write_index(tmp_path / "ind.txt", subset)
    common = ["--ind", str(tmp_path / "ind.txt"), "--ctf-correction", "phase-flip", "--seed", "5"]
    assert main(["backproject", str(simulated.particles_path), "--poses", str(tmp_path / "pose.pkl"), "--ctf",
                 str(tmp_path / "ctf.pkl"), "-o", str(tmp_path / "a"), *common]) == 0
    assert main(["backproject", str(star), "-o", str(tmp_path / "b"), *common]) == 0
    a, _ = read_mrc(tmp_path / "a" / "map.mrc")
    b, _ = read_mrc(tmp_path / "b" / "map.mrc")
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(b).max())
    # a different subset gives a different map
    write_index(tmp_path / "ind2.txt", subset + 1)
    assert main(["backproject", str(star), "-o", str(tmp_path / "c"), "--ind", str(tmp_path / "ind2.txt"),
                 "--ctf-correction", "phase-flip", "--seed", "5"]) == 0
    assert not np.allclose(read_mrc(tmp_path / "c" / "map.mrc")[0], b, atol=1e-3 * np.abs(b).max())


def test_backproject_without_poses_is_a_user_error(simulated, tmp_path, capsys):
    assert main(["backproject", str(simulated.particles_path), "-o", str(tmp_path / "x")]) == 2
    assert "poses" in capsys.readouterr().err
