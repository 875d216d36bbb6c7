"""info / downsample / export-cryodrgn commands end to end on real fixture files."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.cli.main import main
from cryoscape.data.particles import load_particles
from cryoscape.geometry.fourier import fourier_crop
from cryoscape.io.legacy import load_pickle


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "cryoscape" in capsys.readouterr().out
    for cmd in ("info", "downsample", "export-cryodrgn"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "examples:" in capsys.readouterr().out


def test_info_on_star_with_optics_groups(fixtures_dir, capsys):
    # relion31.6opticsgroups.star has no images on disk: info reports the metadata and says they are missing
    code = main(["info", str(fixtures_dir / "relion31.6opticsgroups.star")])
    out = capsys.readouterr().out
    assert code == 0 and "NOT FOUND" in out and "--datadir" in out and "0003_shiny.mrcs" in out


def test_info_summary(fixtures_dir, capsys):
    assert main(["info", str(fixtures_dir / "relion31.star")]) == 0
    out = capsys.readouterr().out
    assert "particles:  5" in out and "256 px" in out and "2.8060 Å" in out
    assert "poses:      present" in out and "defocus U" in out


def test_info_on_cs_and_txt(fixtures_dir, capsys):
    assert main(["info", str(fixtures_dir / "empiar_10076_7.cs")]) == 0
    assert "particles:  7" in capsys.readouterr().out
    assert main(["info", str(fixtures_dir / "toy_projections.txt"), "--ind",
                 str(fixtures_dir / "ind100.pkl")]) == 0
    assert "100 (of 1000 in the source)" in capsys.readouterr().out


def test_missing_file_is_one_line_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.star")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope.star" in err and "\n" not in err


def test_downsample_star_round_trip(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "small.mrcs"
    code = main(["downsample", str(fixtures_dir / "toy_projections_13.star"), "-D", "16", "-o", str(out),
                 "--chunk", "5", "--allow-overfocus"])  # the toy star has a zero-defocus dummy CTF
    assert code == 0
    src = load_particles(fixtures_dir / "toy_projections_13.star", allow_overfocus=True)
    new = load_particles(tmp_path / "small.star", allow_overfocus=True)
    assert len(new) == 13 and new.box_size == 16
    np.testing.assert_allclose(new.read(np.arange(13)), fourier_crop(src.read(np.arange(13)), 16),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new.pixel_size_angstrom, src.pixel_size_angstrom * 30 / 16)


def test_downsample_star_keeps_poses_and_ctf(fixtures_dir, tmp_path):
    """RELION 3.1 star with poses (shifts in Å): the new star gives the same poses (shifts in new pixels)."""
    out = tmp_path / "r64.mrcs"
    assert main(["downsample", str(fixtures_dir / "relion31.star"), "-D", "64", "-o", str(out)]) == 0
    src = load_particles(fixtures_dir / "relion31.star")
    new = load_particles(tmp_path / "r64.star")
    assert new.box_size == 64
    np.testing.assert_allclose(new.pixel_size_angstrom, 2.806 * 4)
    np.testing.assert_allclose(new.poses.rotations, src.poses.rotations, atol=1e-12)
    np.testing.assert_allclose(new.poses.shifts_px, src.poses.shifts_px / 4, atol=1e-9)
    np.testing.assert_allclose(new.ctf.defocus_u_angstrom, src.ctf.defocus_u_angstrom)
    np.testing.assert_allclose(new.read(np.arange(5)), fourier_crop(src.read(np.arange(5)), 64), atol=1e-4)


def test_downsample_mrcs_with_subset(fixtures_dir, tmp_path):
    out = tmp_path / "sub.mrcs"
    assert main(["downsample", str(fixtures_dir / "toy_projections.mrcs"), "-D", "20", "-o", str(out),
                 "--ind", str(fixtures_dir / "ind100.pkl")]) == 0
    new = load_particles(out)
    src = load_particles(fixtures_dir / "toy_projections.mrcs")
    assert len(new) == 100
    np.testing.assert_allclose(new.read([7]), fourier_crop(src.read([7]), 20), rtol=1e-5, atol=1e-5)


def test_downsample_rejects_odd_box(fixtures_dir, tmp_path, capsys):
    assert main(["downsample", str(fixtures_dir / "toy_projections.mrcs"), "-D", "15", "-o",
                 str(tmp_path / "x.mrcs")]) == 2
    assert "even" in capsys.readouterr().err


def test_export_cryodrgn_matches_cryodrgn_files(fixtures_dir, tmp_path, capsys):
    """Exporting the PfCRT star reproduces cryoDRGN's own pose.star.pkl (same rotations, translations/box)."""
    star = fixtures_dir / "FinalRefinement-OriginalParticles-PfCRT.star"
    # images are absent for this star: use the pose/CTF readers through a stack of the right size
    stack = tmp_path / "five.mrcs"
    import mrcfile

    with mrcfile.new(stack) as m:
        m.set_data(np.zeros((5, 300, 300), np.float32))
        m.voxel_size = 1.035
    args = ["export-cryodrgn", str(stack), "--poses", str(star), "--ctf", str(star), "-o", str(tmp_path / "out") + "/"]
    # RELION 3.0 star without rlnAmplitudeContrast: refused until the user gives it (cryoDRGN used 0.1 by hand)
    assert main(args) == 2
    assert "--amplitude-contrast" in capsys.readouterr().err
    assert main([*args, "--amplitude-contrast", "0.1"]) == 0
    rot, trans = load_pickle(tmp_path / "out" / "pose.pkl")
    ref_rot, ref_trans = load_pickle(fixtures_dir / "pose.star.pkl")
    np.testing.assert_allclose(rot, ref_rot, atol=1e-6)
    np.testing.assert_allclose(trans, ref_trans, atol=1e-6)
    ctf = load_pickle(tmp_path / "out" / "ctf.pkl")
    assert ctf.shape == (5, 9)
    ref_ctf = load_pickle(fixtures_dir / "ctf1.pkl")
    np.testing.assert_allclose(ctf, ref_ctf, rtol=1e-5)


def test_every_particle_option_reaches_the_training_config():
    """The shared particle options (flag = field) are all fields of DataConfig: none is silently dropped."""
    from cryoscape.cli.main import build_parser
    from cryoscape.cli.train_vae import config_from_args

    args = build_parser().parse_args(["train-vae", "p.star", "-o", "run", "--poses", "a.pkl", "--ctf", "c.pkl",
                                      "--ind", "i.txt", "--datadir", "d", "--amplitude-contrast", "0.07"])
    data = config_from_args(args, heterogeneous=True).data
    assert (data.poses, data.ctf, data.ind, data.datadir, data.amplitude_contrast) == (
        "a.pkl", "c.pkl", "i.txt", "d", 0.07)
