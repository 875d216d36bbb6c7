"""Day-to-day usability: metadata without images, maps vs stacks, quiet logs, cryoDRGN verbs, -o forms,
guard rails and no partial outputs (info / export-cryodrgn / downsample / eval-vol / the cryoscape command)."""

from __future__ import annotations

import os
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryoscape.cli.main import build_parser, command_aliases, main
from cryoscape.errors import InputError
from cryoscape.io.legacy import load_pickle
from cryoscape.io.mrc import read_mrc, write_mrc

PFCRT = "FinalRefinement-OriginalParticles-PfCRT.star"
J24 = "cryosparc_P12_J24_001_particles.cs"
SIX = "relion31.6opticsgroups.star"


# ---- 1. metadata does not need the images ------------------------------------------------------------------

def test_info_metadata_only_on_relion30_star(fixtures_dir, capsys):
    assert main(["info", str(fixtures_dir / PFCRT)]) == 0
    out = capsys.readouterr().out
    assert "particles:  5" in out and "NOT FOUND" in out
    assert "box size is unknown (pass -D" in out  # RELION 3.0: no rlnImageSize, no images
    assert main(["info", str(fixtures_dir / PFCRT), "-D", "300", "--amplitude-contrast", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "300 px (from -D)" in out and "1.0350 Å" in out and "poses:      present" in out
    ref = load_pickle(fixtures_dir / "ctf1.pkl")
    assert f"{ref[:, 2].min():.1f} – {ref[:, 2].max():.1f} Å" in out  # defocus U range of cryoDRGN's parse


def test_info_metadata_only_on_six_optics_groups_and_cs(fixtures_dir, capsys):
    assert main(["info", str(fixtures_dir / SIX)]) == 0
    out = capsys.readouterr().out
    assert "particles:  139" in out and "196 px (from the optics table" in out
    assert "pixel size: 2 groups: 1.2400 Å × 55, 1.2500 Å × 84" in out
    assert "pixels:     not checked" in out
    assert main(["info", str(fixtures_dir / J24)]) == 0
    out = capsys.readouterr().out
    assert "particles:  2019" in out and "180 px (from blob/shape)" in out and "2.9500 Å" in out
    assert "poses:      present" in out and "NOT FOUND" in out


@pytest.mark.parametrize("slash", ["", "/"])
def test_export_cs_without_images_matches_cryodrgn(fixtures_dir, tmp_path, capsys, slash):
    out = tmp_path / "j24"
    assert main(["export-cryodrgn", str(fixtures_dir / J24), "-o", str(out) + slash]) == 0
    text = capsys.readouterr()
    assert "images not found" in text.err
    assert sorted(p.name for p in out.iterdir()) == ["ctf.pkl", "pose.pkl"]  # a folder, not a prefix
    assert f"wrote {out / 'pose.pkl'} (2019 particles)" in text.out
    rot, trans = load_pickle(out / "pose.pkl")
    ref_rot, ref_trans = load_pickle(fixtures_dir / "pose.cs.pkl")
    np.testing.assert_allclose(rot, ref_rot, atol=1e-5)
    np.testing.assert_allclose(trans, ref_trans, atol=1e-6)
    np.testing.assert_allclose(load_pickle(out / "ctf.pkl"), load_pickle(fixtures_dir / "ctf2.pkl"), rtol=1e-5)


def test_export_relion30_star_without_images_matches_cryodrgn(fixtures_dir, tmp_path, capsys):
    star = str(fixtures_dir / PFCRT)
    assert main(["export-cryodrgn", star, "-o", str(tmp_path / "a")]) == 2
    assert "pass -D" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main(["export-cryodrgn", star, "-D", "300", "-w", "0.1", "-o", str(tmp_path / "a")]) == 0
    rot, trans = load_pickle(tmp_path / "a" / "pose.pkl")
    ref_rot, ref_trans = load_pickle(fixtures_dir / "pose.star.pkl")
    np.testing.assert_allclose(rot, ref_rot, atol=1e-6)
    np.testing.assert_allclose(trans, ref_trans, atol=1e-6)
    np.testing.assert_allclose(load_pickle(tmp_path / "a" / "ctf.pkl"), load_pickle(fixtures_dir / "ctf1.pkl"),
                               rtol=1e-5)


def test_export_six_optics_groups_without_images(fixtures_dir, tmp_path):
    assert main(["export-cryodrgn", str(fixtures_dir / SIX), "-o", str(tmp_path / "six")]) == 0
    ctf = load_pickle(tmp_path / "six" / "ctf.pkl")
    rot, trans = load_pickle(tmp_path / "six" / "pose.pkl")
    assert ctf.shape == (139, 9) and rot.shape == (139, 3, 3) and trans.shape == (139, 2)
    np.testing.assert_allclose(np.unique(ctf[:, 1]), [1.24, 1.25], rtol=1e-6)
    assert set(ctf[:, 0].tolist()) == {196.0}
    from cryoscape.io.star import read_star

    star = read_star(fixtures_dir / SIX)  # per particle, in the file's order
    np.testing.assert_allclose(ctf[:, 2], star.values("rlnDefocusU").astype(float), rtol=1e-6)
    np.testing.assert_allclose(ctf[:, 1], star.pixel_sizes_angstrom(), rtol=1e-6)


def test_cryodrgn_parse_verbs_write_one_pickle(fixtures_dir, tmp_path, capsys):
    star = str(fixtures_dir / PFCRT)
    assert main(["parse_pose_star", star, "-D", "300", "-o", str(tmp_path / "pose.pkl")]) == 0
    assert main(["parse_ctf_star", star, "-D", "300", "-w", "0.1", "--o", str(tmp_path / "ctf.pkl")]) == 0
    assert main(["parse_ctf_csparc", str(fixtures_dir / J24), "-o", str(tmp_path / "c2.pkl")]) == 0
    assert main(["parse_pose_csparc", str(fixtures_dir / J24), "-D", "180", "-o", str(tmp_path / "p2.pkl")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c2.pkl", "ctf.pkl", "p2.pkl", "pose.pkl"]
    np.testing.assert_allclose(load_pickle(tmp_path / "pose.pkl")[1], load_pickle(fixtures_dir / "pose.star.pkl")[1],
                               atol=1e-6)
    np.testing.assert_allclose(load_pickle(tmp_path / "ctf.pkl"), load_pickle(fixtures_dir / "ctf1.pkl"), rtol=1e-5)
    np.testing.assert_allclose(load_pickle(tmp_path / "c2.pkl"), load_pickle(fixtures_dir / "ctf2.pkl"), rtol=1e-5)
    np.testing.assert_allclose(load_pickle(tmp_path / "p2.pkl")[0], load_pickle(fixtures_dir / "pose.cs.pkl")[0],
                               atol=1e-5)


# ---- 5. consistent -o, true counts, no partial outputs ------------------------------------------------------

def test_export_reports_true_counts_and_prefix(fixtures_dir, tmp_path, capsys):
    assert main(["export-cryodrgn", str(fixtures_dir / J24), "--ind", str(fixtures_dir / "ind100.pkl"),
                 "-o", str(tmp_path / "out"), "--prefix", "keep_"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'keep_ind.pkl'} (100 of 2019 particles)" in out
    assert f"wrote {tmp_path / 'out' / 'keep_pose.pkl'} (2019 particles)" in out
    np.testing.assert_array_equal(load_pickle(tmp_path / "out" / "keep_ind.pkl"), np.arange(100))


def test_export_to_a_pkl_name_is_refused_without_output(fixtures_dir, tmp_path, capsys):
    assert main(["export-cryodrgn", str(fixtures_dir / J24), "-o", str(tmp_path / "x" / "pose.pkl")]) == 2
    assert "-o names the folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_failure_while_writing_leaves_nothing(fixtures_dir, tmp_path, monkeypatch):
    import cryoscape.io.legacy as legacy

    def broken(path, ctf):
        raise OSError("disk full")

    monkeypatch.setattr(legacy, "write_ctf_pickle", broken)
    with pytest.raises(OSError):
        main(["export-cryodrgn", str(fixtures_dir / J24), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # the pose.pkl written first is gone too
    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError):
        main(["export-cryodrgn", str(fixtures_dir / J24), "-o", str(tmp_path / "kept")])
    assert list((tmp_path / "kept").iterdir()) == []


def test_downsample_star_failure_leaves_no_stack(fixtures_dir, tmp_path, monkeypatch):
    import cryoscape.data.downsample as ds

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ds, "write_resampled_star", broken)
    with pytest.raises(OSError):
        main(["downsample", str(fixtures_dir / "relion31.star"), "-D", "64", "-o", str(tmp_path / "r.mrcs")])
    assert list(tmp_path.iterdir()) == []


def test_downsample_output_must_be_a_file(fixtures_dir, tmp_path, capsys):
    assert main(["downsample", str(fixtures_dir / "hand.mrcs"), "-D", "32", "-o", str(tmp_path) + "/"]) == 2
    assert "-o names the file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ---- 6. guard rails -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("box, message", [(128, "--upsample"), (100000, "limit of 1024"), (31, "even")])
def test_downsample_refuses_bad_boxes_before_writing(fixtures_dir, tmp_path, capsys, box, message):
    out = tmp_path / "x.mrcs"
    assert main(["downsample", str(fixtures_dir / "hand.mrcs"), "-D", str(box), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_downsample_upsample_on_request(fixtures_dir, tmp_path):
    out = tmp_path / "up.mrcs"
    assert main(["downsample", str(fixtures_dir / "toy_projections.mrcs"), "-D", "40", "--upsample",
                 "--ind", str(fixtures_dir / "ind100.pkl"), "-o", str(out)]) == 0
    data, _ = read_mrc(out)
    assert data.shape == (100, 40, 40)
    src, _ = read_mrc(fixtures_dir / "toy_projections.mrcs")
    from cryoscape.geometry.fourier import fourier_crop

    np.testing.assert_allclose(fourier_crop(data, 30), src[:100], atol=1e-4)  # padding is undone exactly


def test_eval_vol_asks_before_many_maps():
    from cryoscape.training.evaluation import check_map_count

    check_map_count(100, 64, yes=False)  # at the limit: fine
    check_map_count(4549, 64, yes=True)
    with pytest.raises(InputError) as exc:
        check_map_count(4549, 64, yes=False)
    text = str(exc.value)
    assert "4549 maps" in text and "--yes" in text
    assert f"{4549 * (1024 + 4 * 64**3) / 2**30:.1f} GiB" in text  # 4,549 maps of 64³: 4.4 GiB


def test_eval_vol_refuses_a_large_zfile_before_decoding(fixtures_dir, tmp_path, capsys):
    # the cryoDRGN run of the fixtures and its 4,549-row z file: refused, nothing written, unless --yes
    assert main(["import-cryodrgn", str(fixtures_dir / "het_config.yaml"), str(fixtures_dir / "het_weights.pkl"),
                 "--apix", "1.0", "-o", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    code = main(["eval_vol", str(tmp_path / "run"), "--zfile", str(fixtures_dir / "zvals_het-8_4k.pkl"), "-o",
                 str(tmp_path / "maps")])
    err = capsys.readouterr().err
    assert code == 2 and "4549 maps of 64^3 voxels (4.4 GiB on disk)" in err and "--yes" in err
    assert not (tmp_path / "maps").exists()


# ---- 2. maps are not stacks ---------------------------------------------------------------------------------

def test_downsample_and_info_on_a_map(fixtures_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(32, 32, 32)).astype(np.float32)
    write_mrc(tmp_path / "map.mrc", vol, voxel_size_angstrom=1.5)
    assert main(["info", str(tmp_path / "map.mrc")]) == 0
    out = capsys.readouterr().out
    assert "map:" in out and "particles" not in out and "32 × 32 × 32" in out and "1.5000 Å" in out
    assert f"rms {vol.std():.4g}" in out
    assert main(["downsample", str(tmp_path / "map.mrc"), "-D", "16", "-o", str(tmp_path / "small.mrc")]) == 0
    small, header = read_mrc(tmp_path / "small.mrc")
    assert small.shape == (16, 16, 16) and header.voxel_size_angstrom == pytest.approx(3.0)
    # an independent in-memory 3-D Fourier crop (numpy FFT, central 16³ coefficients, Nyquist planes folded)
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(vol.astype(np.float64))))
    c = f[8:25, 8:25, 8:25].copy()
    for axis in range(3):
        c = np.moveaxis(c, axis, 0)
        c = np.concatenate([c[:1] + c[-1:], c[1:16]], axis=0)
        c = np.moveaxis(c, 0, axis)
    expected = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(c))).real / 8
    np.testing.assert_allclose(small, expected, atol=1e-5)


def test_a_stack_stays_a_stack(fixtures_dir, tmp_path, capsys):
    assert main(["info", str(fixtures_dir / "hand.mrcs")]) == 0
    assert "particles:  100" in capsys.readouterr().out
    cube = tmp_path / "cube.mrcs"  # D images of D×D: a stack because of the .mrcs name
    write_mrc(cube, np.random.default_rng(1).normal(size=(16, 16, 16)).astype(np.float32))
    assert main(["info", str(cube)]) == 0
    assert "particles:  16" in capsys.readouterr().out
    assert main(["info", str(cube), "--is-vol"]) == 0  # the flag decides
    assert "map:" in capsys.readouterr().out


def test_fsc_error_names_the_resampling_command(tmp_path, capsys):
    write_mrc(tmp_path / "a.mrc", np.zeros((16, 16, 16), np.float32), voxel_size_angstrom=2.0)
    write_mrc(tmp_path / "b.mrc", np.zeros((8, 8, 8), np.float32), voxel_size_angstrom=2.0)
    assert main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "b.mrc")]) == 2
    assert "cryoscape downsample MAP -D N -o OUT.mrc" in capsys.readouterr().err


# ---- 4. familiar verbs, fast --help -------------------------------------------------------------------------

def test_every_command_answers_to_its_underscore_name():
    from cryoscape.cli.main import _command_modules

    choices = build_parser()._subparsers._group_actions[0].choices
    for module in _command_modules():
        assert module.NAME in choices
        if "-" in module.NAME:
            assert module.NAME.replace("-", "_") in command_aliases(module)
            assert choices[module.NAME.replace("-", "_")] is choices[module.NAME]
    assert choices["backproject_voxel"] is choices["backproject"]
    for verb in ("parse_pose_star", "parse_ctf_star", "parse_pose_csparc", "parse_ctf_csparc"):
        assert choices[verb] is choices["export-cryodrgn"]


def test_aliases_are_shown_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "eval-vol (eval_vol)" in out and "backproject (backproject_voxel)" in out and "parse_pose_star" in out


def test_alias_commands_run(fixtures_dir, tmp_path, capsys):
    assert main(["export_cryodrgn", str(fixtures_dir / J24), "-o", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "pose.pkl").is_file()
    assert main(["flip_hand", str(fixtures_dir / "hand-vol.mrc"), "-o", str(tmp_path / "f.mrc")]) == 0
    flipped, _ = read_mrc(tmp_path / "f.mrc")
    assert flipped.shape == (64, 64, 64)


def test_help_builds_without_importing_torch():
    code = ("import sys\n"
            "from cryoscape.cli.main import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "a command module imports torch at module level"


@pytest.mark.parametrize("command", ["train-vae", "train-nn", "analyze", "eval-vol"])
def test_a_commands_help_does_not_import_torch(command):
    code = ("import sys\n"
            "from cryoscape.cli.main import main\n"
            "try:\n"
            f"    main([{command!r}, '--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "False", f"{command} --help imports torch"


# ---- 3. readable logs ---------------------------------------------------------------------------------------

def _downsample_args(fixtures_dir, tmp_path, *extra):
    return ["downsample", str(fixtures_dir / "toy_projections.mrcs"), "-D", "16", "--chunk", "100", "-o",
            str(tmp_path / "t.mrcs"), *extra]


def test_progress_is_plain_lines_when_not_a_terminal(fixtures_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRYOSCAPE_NO_PROGRESS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert main(_downsample_args(fixtures_dir, tmp_path)) == 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "\r" not in err and "\x1b" not in err  # no bar redraws in a log
    assert lines == [f"resample 30→16 px: {p}% ({10 * p}/1000 img)" for p in range(10, 101, 10)]


def test_no_progress_and_secondary_ranks_are_silent(fixtures_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CRYOSCAPE_NO_PROGRESS", raising=False)
    assert main(_downsample_args(fixtures_dir, tmp_path, "--no-progress")) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "1")
    assert main(_downsample_args(fixtures_dir, tmp_path)) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("CRYOSCAPE_NO_PROGRESS", "1")
    assert main(_downsample_args(fixtures_dir, tmp_path)) == 0
    assert capsys.readouterr().err == ""


def test_progress_uses_a_bar_on_a_terminal(monkeypatch):
    import io

    from cryoscape import progress as progress_module

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("CRYOSCAPE_NO_PROGRESS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert list(progress_module.progress(range(5), desc="work")) == list(range(5))
    assert "work" in terminal.getvalue() and "\r" in terminal.getvalue()  # tqdm redraws in place
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    bar = progress_module.progress(total=3, desc="x", unit="img")
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert plain.getvalue().splitlines() == ["x: 33% (1/3 img)", "x: 66% (2/3 img)", "x: 100% (3/3 img)"]


def test_every_command_takes_no_progress():
    choices = build_parser()._subparsers._group_actions[0].choices
    for name, parser in choices.items():
        assert "--no-progress" in parser.format_help(), name


def test_cube_mrcs_is_read_as_stack_and_mrc_cube_as_map(tmp_path):
    from cryoscape.io.mrc_kind import mrc_kind

    write_mrc(tmp_path / "s.mrcs", np.zeros((8, 8, 8), np.float32))
    write_mrc(tmp_path / "v.mrc", np.zeros((8, 8, 8), np.float32))
    write_mrc(tmp_path / "st.mrc", np.zeros((8, 8, 8), np.float32), is_image_stack=True)
    write_mrc(tmp_path / "n.mrc", np.zeros((5, 8, 8), np.float32))
    kinds = [mrc_kind(tmp_path / n) for n in ("s.mrcs", "v.mrc", "st.mrc", "n.mrc")]
    assert kinds == ["stack", "volume", "stack", "stack"]
    with mrcfile.open(tmp_path / "v.mrc") as m:
        assert int(m.header.ispg) == 1
    assert os.path.getsize(tmp_path / "v.mrc") == 1024 + 4 * 8**3
