"""A corpus of malformed, inconsistent or misused inputs, run through the real command line in-process.

Every case states its exact outcome: exit status 2 with one ``error:`` line naming the problem (no traceback),
or success. After every case the input files of the workspace are byte-for-byte unchanged (hashed before and
after): no command may replace or damage an input.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoscape.cli.main import main
from cryoscape.io.mrc import write_mrc
from cryoscape.io.star import write_star

BOX = 16
N = 6
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "cryodrgn-tests"


# ----------------------------------------------------------------------------------------------- workspace
def _optics(**overrides) -> pd.DataFrame:
    optics = {"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnAmplitudeContrast": [0.1],
              "rlnSphericalAberration": [2.7], "rlnVoltage": [300.0], "rlnImagePixelSize": [2.0],
              "rlnImageSize": [BOX]}
    optics.update(overrides)
    return pd.DataFrame(optics)


def _particles(stack: str = "p.mrcs") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "rlnImageName": [f"{i + 1:06d}@{stack}" for i in range(N)],
        "rlnOpticsGroup": [1] * N,
        "rlnAngleRot": rng.uniform(-180, 180, N), "rlnAngleTilt": rng.uniform(0, 180, N),
        "rlnAnglePsi": rng.uniform(-180, 180, N),
        "rlnOriginXAngst": rng.uniform(-2, 2, N), "rlnOriginYAngst": rng.uniform(-2, 2, N),
        "rlnDefocusU": rng.uniform(10000, 15000, N), "rlnDefocusV": rng.uniform(10000, 15000, N),
        "rlnDefocusAngle": rng.uniform(-90, 90, N),
    })


def _replace_value(text: str, column: str, row: int, value: str) -> str:
    """``text`` (a STAR file written by write_star) with ``column`` of particle ``row`` set to ``value``."""
    lines = text.splitlines()
    labels = [ln.split()[0][1:] for ln in lines if ln.startswith("_")]
    block_start = text.splitlines().index("data_particles")
    header = [ln for ln in lines[block_start:] if ln.startswith("_")]
    col = [h.split()[0][1:] for h in header].index(column)
    data = [i for i in range(block_start, len(lines)) if lines[i] and not lines[i].startswith(("_", "data_",
                                                                                                "loop_", "#"))]
    fields = lines[data[row]].split()
    fields[col] = value
    lines[data[row]] = " ".join(fields)
    assert labels
    return "\n".join(lines) + "\n"


def _replace_optics(text: str, column: str, value: str) -> str:
    lines = text.splitlines()
    start = lines.index("data_optics")
    header = [ln.split()[0][1:] for ln in lines[start:] if ln.startswith("_")]
    first = next(i for i in range(start, len(lines)) if lines[i] and lines[i][0].isdigit())
    fields = lines[first].split()
    fields[header[: len(fields)].index(column)] = value
    lines[first] = " ".join(fields)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A folder of good inputs and bad variants (every file here is an input: hashed around each case)."""
    w = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(1)
    volume = np.zeros((BOX, BOX, BOX), np.float32)
    volume[5:11, 5:11, 5:11] = 1.0
    write_mrc(w / "m.mrc", volume, 2.0)
    write_mrc(w / "p.mrcs", rng.normal(size=(N, BOX, BOX)).astype(np.float32), 2.0)
    write_mrc(w / "odd.mrcs", rng.normal(size=(2, 15, 15)).astype(np.float32), 2.0)
    write_mrc(w / "big.mrcs", rng.normal(size=(N, 2 * BOX, 2 * BOX)).astype(np.float32), 1.0)
    write_star(w / "good.star", _particles(), _optics())
    good = (w / "good.star").read_text()
    bad = {
        "nan_rot": _replace_value(good, "rlnAngleRot", 2, "nan"),
        "inf_tilt": _replace_value(good, "rlnAngleTilt", 1, "inf"),
        "abc_psi": _replace_value(good, "rlnAnglePsi", 3, "abc"),
        "nan_originx": _replace_value(good, "rlnOriginXAngst", 0, "nan"),
        "nan_defocus": _replace_value(good, "rlnDefocusU", 4, "nan"),
        "zero_defocus": _replace_value(good, "rlnDefocusV", 1, "0"),
        "neg_defocus": _replace_value(_replace_value(good, "rlnDefocusU", 5, "-8000"), "rlnDefocusV", 5, "-8000"),
        "abc_defocus_angle": _replace_value(good, "rlnDefocusAngle", 0, "x12"),
        "voltage0": _replace_optics(good, "rlnVoltage", "0"),
        "voltage_nan": _replace_optics(good, "rlnVoltage", "nan"),
        "voltage_neg": _replace_optics(good, "rlnVoltage", "-300"),
        "cs_nan": _replace_optics(good, "rlnSphericalAberration", "nan"),
        "pixel0": _replace_optics(good, "rlnImagePixelSize", "0"),
        "pixel_nan": _replace_optics(good, "rlnImagePixelSize", "nan"),
        "pixel_abc": _replace_optics(good, "rlnImagePixelSize", "abc"),
        "amp_contrast_big": _replace_optics(good, "rlnAmplitudeContrast", "1.5"),
        "group_undefined": _replace_value(good, "rlnOpticsGroup", 2, "3"),
        "group_abc": _replace_value(good, "rlnOpticsGroup", 2, "x"),
        "image_index0": _replace_value(good, "rlnImageName", 0, "000000@p.mrcs"),
        "image_past_end": _replace_value(good, "rlnImageName", 0, "000099@p.mrcs"),
        "image_no_stack": _replace_value(good, "rlnImageName", 0, "000001@missing.mrcs"),
        "image_not_index": _replace_value(good, "rlnImageName", 0, "one@p.mrcs"),
    }
    lines = good.splitlines()
    last = max(i for i, ln in enumerate(lines) if ln.strip())
    bad["short_row"] = "\n".join([*lines[:last], " ".join(lines[last].split()[:-2])]) + "\n"
    bad["long_row"] = "\n".join([*lines[:last], lines[last] + " 7"]) + "\n"
    i = lines.index("_rlnAngleTilt #4")
    bad["dup_column"] = "\n".join([*lines[:i], "_rlnAngleRot #4b", *lines[i + 1:]]) + "\n"
    bad["no_rows"] = "\n".join(ln for ln in lines if not ln.startswith("00000")) + "\n"
    for name, text in bad.items():
        (w / f"{name}.star").write_text(text)
    two = _optics(rlnOpticsGroup=[1, 2], rlnOpticsGroupName=["g1", "g2"], rlnAmplitudeContrast=[0.1, 0.1],
                  rlnSphericalAberration=[2.7, 2.7], rlnVoltage=[300.0, 300.0], rlnImagePixelSize=[2.0, 2.2],
                  rlnImageSize=[BOX, BOX])
    parts = _particles().assign(rlnOpticsGroup=[1, 2, 1, 2, 1, 1])
    write_star(w / "two_pixel_sizes.star", parts, two)
    write_star(w / "two_boxes.star", parts, two.assign(rlnImagePixelSize=[2.0, 2.0], rlnImageSize=[BOX, 2 * BOX]))
    write_star(w / "mixed_stacks.star", _particles().assign(rlnImageName=[f"{i + 1:06d}@{s}" for i, s in
                                                                   enumerate(["p.mrcs", "big.mrcs"] * 3)]),
               _optics())
    (w / "garbage.star").write_bytes(b"\x00\x01\x02 not a star \xff\xfe" * 10)
    (w / "garbage.mrc").write_bytes(b"MRC?" * 100)
    (w / "garbage.cs").write_bytes(b"\x93NUMPY" + b"\x00" * 50)
    (w / "garbage.pkl").write_bytes(b"\x80\x04not a pickle")
    rot = np.tile(np.eye(3), (N, 1, 1))
    for name, obj in {
        "pose_good.pkl": (rot, np.zeros((N, 2))),
        "pose_5I.pkl": (rot * 5, np.zeros((N, 2))),
        "pose_reflect.pkl": (-rot, np.zeros((N, 2))),
        "pose_nan.pkl": (np.where(np.arange(N)[:, None, None] == 3, np.nan, rot), np.zeros((N, 2))),
        "pose_inf_shift.pkl": (rot, np.full((N, 2), np.inf)),
        "pose_wrong_n.pkl": (rot[:4], np.zeros((4, 2))),
        "pose_bad_shape.pkl": (np.zeros((N, 3)), np.zeros((N, 2))),
        "ctf_good.pkl": np.tile(np.array([BOX, 2.0, 12000, 11000, 10, 300, 2.7, 0.1, 0], np.float32), (N, 1)),
        "ctf_nan.pkl": np.tile(np.array([BOX, 2.0, np.nan, 11000, 10, 300, 2.7, 0.1, 0], np.float32), (N, 1)),
        "ctf_volt0.pkl": np.tile(np.array([BOX, 2.0, 12000, 11000, 10, 0, 2.7, 0.1, 0], np.float32), (N, 1)),
        "ctf_dummy.pkl": np.tile(np.array([BOX, 2.0, 0, 0, 0, 300, 2.7, 0.1, 90], np.float32), (N, 1)),
        "ctf_8cols.pkl": np.zeros((N, 8), np.float32),
        "evil.pkl": None,
        "ind_dup.pkl": np.array([0, 1, 1]),
        "ind_out.pkl": np.array([0, 99]),
        "ind_neg.pkl": np.array([-1, 2]),
    }.items():
        if name == "evil.pkl":
            (w / name).write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
        else:
            (w / name).write_bytes(pickle.dumps(obj, protocol=4))
    (w / "ind_text.txt").write_text("0 1 two\n")
    (w / "ind_good.txt").write_text("0 2 4\n")
    (w / "z8.mrc").write_text(" ".join(["0"] * 8) + "\n")  # a latent file with a map-like name
    (w / "blocker").write_text("a file where a folder is expected\n")
    (w / "sim.yaml").write_text("voltage_kv: 0\nn_particles: 2\nbox_size: 16\n")
    (w / "simcfg").mkdir()
    (w / "simcfg" / "config.yaml").write_text("n_particles: 2\nbox_size: 16\n")
    (w / "exp").mkdir()
    shutil.copy(w / "pose_good.pkl", w / "exp" / "pose.pkl")
    os.symlink(w / "m.mrc", w / "m_link.mrc")
    os.link(w / "m.mrc", w / "m_hard.mrc")
    os.link(w / "p.mrcs", w / "p_hard.mrcs")
    run = w / "run"
    if FIXTURES.is_dir():
        assert main(["import-cryodrgn", str(FIXTURES / "het_config.yaml"), str(FIXTURES / "het_weights.pkl"),
                     "-o", str(run), "--apix", "2"]) == 0
    return w


def _hashes(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# ----------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    argv: str            # {w} is the workspace, {o} a fresh output folder
    expect: tuple = ()   # substrings of the error line; empty means success (exit 0)
    needs_run: bool = False
    report: tuple = ()   # on success: substrings of the standard output (e.g. info reporting a problem)


def E(argv: str, *expect: str, needs_run: bool = False) -> Case:
    return Case(argv, tuple(expect), needs_run)


def OK(argv: str, *report: str, needs_run: bool = False) -> Case:
    return Case(argv, (), needs_run, tuple(report))


SAME = "the output would replace the input"
CASES = {
    # --- 1. no output may replace an input (same path, symlink, hard link) -------------------------
    "mask-same": E("mask {w}/m.mrc -o {w}/m.mrc", SAME),
    "mask-symlink": E("mask {w}/m.mrc -o {w}/m_link.mrc", SAME),
    "mask-hardlink": E("mask {w}/m.mrc -o {w}/m_hard.mrc", SAME),
    "mask-dotdot": E("mask {w}/m.mrc -o {w}/../" + "{wn}/m.mrc", SAME),
    "sharpen-same": E("sharpen {w}/m.mrc -o {w}/m.mrc --bfactor -50", SAME),
    "flip-hand-same": E("flip-hand {w}/m.mrc -o {w}/m.mrc", SAME),
    "flip-hand-hardlink": E("flip-hand {w}/m.mrc -o {w}/m_hard.mrc", SAME),
    "invert-contrast-map-same": E("invert-contrast {w}/m.mrc -o {w}/m.mrc", SAME),
    "invert-contrast-stack-same": E("invert-contrast {w}/p.mrcs -o {w}/p.mrcs", SAME),
    "downsample-stack-same": E("downsample {w}/p.mrcs -D 8 -o {w}/p.mrcs", SAME),
    "downsample-stack-hardlink": E("downsample {w}/p.mrcs -D 8 -o {w}/p_hard.mrcs", SAME),
    "downsample-star-onto-its-stack": E("downsample {w}/good.star -D 8 -o {w}/p.mrcs", SAME, "p.mrcs"),
    "downsample-star-onto-star": E("downsample {w}/good.star -D 8 -o {o}/x.mrcs --out-star {w}/good.star", SAME),
    "downsample-map-same": E("downsample {w}/m.mrc -D 8 -o {w}/m.mrc", SAME),
    "fsc-mask-and-auto-mask": E("fsc {w}/m.mrc {w}/m_hard.mrc --mask {w}/m.mrc --auto-mask -o {o}/f",
                                "give either --mask or --auto-mask"),
    "export-onto-pose-input": E("export-cryodrgn {w}/good.star --poses {w}/exp/pose.pkl -o {w}/exp", SAME),
    "backproject-onto-stack": E("backproject {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_good.pkl "
                                "-o {w}/p.mrcs", "is a file, but an output folder is expected"),
    "train-vae-outdir-is-input": E("train-vae {w}/good.star -o {w}/good.star --zdim 1 -n 1",
                                   "is a file, but an output folder is expected"),
    "train-nn-outdir-is-stack": E("train-nn {w}/p.mrcs --poses {w}/pose_good.pkl -o {w}/p.mrcs -n 1",
                                  "is a file, but an output folder is expected"),
    "import-cryodrgn-onto-config": E("import-cryodrgn {w}/run/config.yaml {w}/run/weights.1.pt -o {w}/run",
                                     SAME, needs_run=True),
    "simulate-onto-config": E("simulate --config {w}/simcfg/config.yaml -o {w}/simcfg", SAME),
    "eval-vol-onto-zfile": E("eval-vol {w}/run --zfile {w}/z8.mrc -o {w}/z8.mrc --downsample 8", SAME,
                             needs_run=True),
    "eval-images-onto-weights": E("eval-images {w}/run/weights.1.pt {w}/p.mrcs --poses {w}/pose_good.pkl "
                                  "-o {w}/run/weights.1.pt", SAME, needs_run=True),
    # --- 3. wrong kind of output path --------------------------------------------------------------
    "mask-out-is-folder": E("mask {w}/m.mrc -o {w}", "is a folder, but a file is expected"),
    "mask-out-under-file": E("mask {w}/m.mrc -o {w}/blocker/mask.mrc", "blocker is a file, not a folder"),
    "sharpen-out-under-file": E("sharpen {w}/m.mrc -o {w}/m.mrc/x.mrc --bfactor 0", "is a file, not a folder"),
    "fsc-out-under-file": E("fsc {w}/m.mrc {w}/m.mrc -o {w}/blocker/f", "is a file, not a folder"),
    "backproject-out-is-file": E("backproject {w}/good.star -o {w}/blocker",
                                 "is a file, but an output folder is expected"),
    "demo-out-is-file": E("demo -o {w}/blocker", "is a file, but an output folder is expected"),
    "simulate-out-is-file": E("simulate --preset tiny-32 -n 2 -o {w}/blocker",
                              "is a file, but an output folder is expected"),
    "export-under-file": E("export-cryodrgn {w}/good.star -o {w}/blocker/x_", "is a file, not a folder"),
    "import-out-is-file": E("import-cryodrgn {w}/run/config.yaml {w}/run/weights.1.pt -o {w}/blocker",
                            "is a file, but an output folder is expected", needs_run=True),
    "eval-vol-out-under-file": E("eval-vol {w}/run -z 0 0 0 0 0 0 0 0 -o {w}/blocker/maps --downsample 8",
                                 "is a file, not a folder", needs_run=True),
    "mask-out-not-writable": E("mask {w}/m.mrc -o {ro}/mask.mrc", "not writable"),
    "simulate-out-not-writable": E("simulate --preset tiny-32 -n 2 -o {ro}/sim", "not writable"),
    # --- 3. bad options -----------------------------------------------------------------------------
    "backproject-device-cuda": E("backproject {w}/good.star -o {o}/bp --device cuda", "no CUDA GPU"),
    "backproject-device-unknown": E("backproject {w}/good.star -o {o}/bp --device tpu9", "unknown --device"),
    "backproject-chunk0": E("backproject {w}/good.star -o {o}/bp --chunk 0", "chunk size must be >= 1"),
    "backproject-reg-nan": E("backproject {w}/good.star -o {o}/bp --regularization nan", "--regularization nan"),
    "train-device-cuda": E("train-vae {w}/good.star -o {o}/r --zdim 1 -n 1 --device cuda", "no CUDA GPU"),
    "train-num-workers": E("train-vae {w}/good.star -o {o}/r --zdim 1 -n 1 --num-workers -1",
                           "num_workers must be at least 0"),
    "train-chunk0": E("train-vae {w}/good.star -o {o}/r --zdim 1 -n 1 --chunk-size 0", "chunk_size must be at least 1"),
    "eval-images-batch0": E("eval-images {w}/run {w}/p.mrcs --poses {w}/pose_good.pkl -o {o}/z.npz -b 0",
                            "batch_size must be at least 1", needs_run=True),
    "eval-vol-device-cuda": E("eval-vol {w}/run -z 0 0 0 0 0 0 0 0 -o {o}/v.mrc --device cuda", "no CUDA GPU",
                              needs_run=True),
    "downsample-chunk0": E("downsample {w}/p.mrcs -D 8 -o {o}/s.mrcs --chunk 0", "--chunk must be at least 1"),
    "sharpen-bfactor-nan": E("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor nan", "--bfactor nan is not a finite"),
    "sharpen-bfactor-inf": E("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor inf", "--bfactor inf is not a finite"),
    "sharpen-lowpass0": E("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor 0 --lowpass 0", "--lowpass 0.0 must be"),
    "sharpen-lowpass-neg": E("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor 0 --lowpass -4", "--lowpass -4.0 must be"),
    "sharpen-lowpass-nan": E("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor 0 --lowpass nan", "--lowpass nan must be"),
    "sharpen-guinier-order": E("sharpen {w}/m.mrc -o {o}/s.mrc --guinier-low 5 --guinier-high 8",
                               "must be a finer resolution"),
    "mask-edge-nan": E("mask {w}/m.mrc -o {o}/k.mrc --edge nan", "--edge nan must be a distance"),
    "mask-dilate-neg": E("mask {w}/m.mrc -o {o}/k.mrc --dilate -5", "--dilate -5.0 must be a distance"),
    "mask-percentile": E("mask {w}/m.mrc -o {o}/k.mrc --percentile 200", "--percentile 200.0 must be in"),
    "mask-threshold-inf": E("mask {w}/m.mrc -o {o}/k.mrc --threshold inf", "--threshold inf is not a finite"),
    "simulate-voltage0": E("simulate --preset tiny-32 -n 2 --voltage-kv 0 -o {o}/s", "--voltage-kv 0.0 must be"),
    "simulate-voltage-config": E("simulate --config {w}/sim.yaml -o {o}/s", "--voltage-kv 0.0 must be"),
    "simulate-cs-nan": E("simulate --preset tiny-32 -n 2 --cs-mm nan -o {o}/s", "--cs-mm nan is not a finite"),
    "simulate-defocus-nan": E("simulate --preset tiny-32 -n 2 --defocus-min-angstrom nan -o {o}/s",
                              "--defocus-min-angstrom nan must be"),
    "simulate-bfactor-nan": E("simulate --preset tiny-32 -n 2 --bfactor-angstrom2 nan -o {o}/s",
                              "--bfactor-angstrom2 nan is not"),
    "simulate-shift-inf": E("simulate --preset tiny-32 -n 2 --max-shift-px inf -o {o}/s", "--max-shift-px inf"),
    "simulate-astig": E("simulate --preset tiny-32 -n 2 --defocus-min-angstrom 400 -o {o}/s",
                        "would give defocus V <= 0"),
    # --- 2. metadata values, named by file and STAR line / particle ----------------------------------
    "star-nan-rot": E("export-cryodrgn {w}/nan_rot.star -o {o}/e",
                      "nan_rot.star: line", "(particle 2, 0-based): rlnAngleRot is nan"),
    "star-inf-tilt": E("export-cryodrgn {w}/inf_tilt.star -o {o}/e", "(particle 1, 0-based): rlnAngleTilt is inf"),
    "star-abc-psi": E("export-cryodrgn {w}/abc_psi.star -o {o}/e",
                      "(particle 3, 0-based): rlnAnglePsi value 'abc' is not a number"),
    "star-nan-origin": E("export-cryodrgn {w}/nan_originx.star -o {o}/e",
                         "(particle 0, 0-based): rlnOriginXAngst is nan"),
    "star-nan-defocus": E("export-cryodrgn {w}/nan_defocus.star -o {o}/e", "(particle 4, 0-based): rlnDefocusU is nan"),
    "star-zero-defocus": E("export-cryodrgn {w}/zero_defocus.star -o {o}/e",
                           "(particle 1, 0-based): defocus U, V", "not positive",
                           "--allow-overfocus"),
    "star-zero-defocus-allowed": OK("export-cryodrgn {w}/zero_defocus.star -o {o}/e --allow-overfocus"),
    "star-neg-defocus": E("export-cryodrgn {w}/neg_defocus.star -o {o}/e",
                          "(particle 5, 0-based): defocus U, V = -8000, -8000"),
    "star-neg-defocus-allowed": OK("export-cryodrgn {w}/neg_defocus.star -o {o}/e --allow-overfocus"),
    "star-abc-defocus-angle": E("export-cryodrgn {w}/abc_defocus_angle.star -o {o}/e",
                                "rlnDefocusAngle value 'x12' is not a number"),
    "star-voltage0": E("export-cryodrgn {w}/voltage0.star -o {o}/e", "voltage (kV) is 0, not positive"),
    "star-voltage-neg": E("export-cryodrgn {w}/voltage_neg.star -o {o}/e", "voltage (kV) is -300, not positive"),
    "star-voltage-nan": E("export-cryodrgn {w}/voltage_nan.star -o {o}/e", "(optics group row 1): rlnVoltage is nan"),
    "star-cs-nan": E("export-cryodrgn {w}/cs_nan.star -o {o}/e", "rlnSphericalAberration is nan"),
    "star-pixel0": E("export-cryodrgn {w}/pixel0.star -o {o}/e", "pixel size", "not positive"),
    "star-pixel-nan": E("info {w}/pixel_nan.star", "rlnImagePixelSize is nan"),
    "star-pixel-abc": E("info {w}/pixel_abc.star", "rlnImagePixelSize value 'abc' is not a number"),
    "star-amp-contrast": E("export-cryodrgn {w}/amp_contrast_big.star -o {o}/e",
                           "amplitude contrast is 1.5, outside [0, 1)"),
    "star-group-undefined": E("info {w}/group_undefined.star", "(particle 2, 0-based) names optics group 3"),
    "star-group-abc": E("info {w}/group_abc.star", "rlnOpticsGroup value 'x' is not a number"),
    "star-dup-column": E("info {w}/dup_column.star", "column rlnAngleRot of data_particles is repeated"),
    "star-short-row": E("info {w}/short_row.star", "8 field(s) in a row of data_particles, which has 10"),
    "star-long-row": E("info {w}/long_row.star", "11 field(s) in a row of data_particles, which has 10"),
    "star-no-rows": E("info {w}/no_rows.star", "has no rows"),
    "star-image-index0": E("info {w}/image_index0.star", "STAR image indices start at 1"),
    "star-image-past-end": E("info {w}/image_past_end.star", "asks for image 99", "holds only 6 images"),
    "star-image-not-index": E("info {w}/image_not_index.star", "is not of the form index@file"),
    "star-garbage": E("info {w}/garbage.star", "garbage.star"),
    "star-two-pixel-sizes-backproject": E("backproject {w}/two_pixel_sizes.star -o {o}/bp",
                                          "2 different pixel sizes", "cryoscape downsample"),
    "star-two-pixel-sizes-train": E("train-vae {w}/two_pixel_sizes.star -o {o}/r --zdim 1 -n 1",
                                    "2 different pixel sizes"),
    "star-two-boxes": E("backproject {w}/two_boxes.star -o {o}/bp", "different values of box size"),
    "star-mixed-stack-boxes": E("info {w}/mixed_stacks.star", "different box sizes"),
    "star-nan-backproject": E("backproject {w}/nan_rot.star -o {o}/bp", "rlnAngleRot is nan"),
    "star-nan-train": E("train-vae {w}/nan_defocus.star -o {o}/r --zdim 1 -n 1", "rlnDefocusU is nan"),
    "star-nan-export": E("export-cryodrgn {w}/nan_originx.star -o {o}/e_", "rlnOriginXAngst is nan"),
    "star-voltage-export": E("export-cryodrgn {w}/voltage0.star -o {o}/e_", "voltage (kV) is 0"),
    "star-downsample-nan": E("downsample {w}/nan_rot.star -D 8 -o {o}/d.mrcs", "rlnAngleRot is nan"),
    "pkl-pose-5I": E("backproject {w}/p.mrcs --poses {w}/pose_5I.pkl --ctf {w}/ctf_good.pkl -o {o}/bp",
                     "pose_5I.pkl: particle 0 (0-based): the "
                     "rotation is not orthonormal"),
    "pkl-pose-reflection": E("backproject {w}/p.mrcs --poses {w}/pose_reflect.pkl --ctf {w}/ctf_good.pkl -o {o}/bp",
                             "rotation is a reflection"),
    "pkl-pose-nan": E("backproject {w}/p.mrcs --poses {w}/pose_nan.pkl --ctf {w}/ctf_good.pkl -o {o}/bp",
                      "particle 3 (0-based): the rotation is not finite"),
    "pkl-pose-inf-shift": E("backproject {w}/p.mrcs --poses {w}/pose_inf_shift.pkl --ctf {w}/ctf_good.pkl -o {o}/bp",
                            "the shift [inf, inf] px"),
    "pkl-pose-wrong-n": E("info {w}/p.mrcs --poses {w}/pose_wrong_n.pkl", "has 4 poses", "lists 6 particles"),
    "pkl-pose-bad-shape": E("info {w}/p.mrcs --poses {w}/pose_bad_shape.pkl", "rotations must have shape"),
    "pkl-ctf-nan": E("backproject {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_nan.pkl -o {o}/bp",
                     "particle 0 (0-based): defocus U (Å) is nan"),
    "pkl-ctf-voltage0": E("backproject {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_volt0.pkl -o {o}/bp",
                          "voltage (kV) is 0"),
    "pkl-ctf-dummy": E("backproject {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_dummy.pkl -o {o}/bp",
                       "defocus U, V = 0, 0", "--allow-overfocus"),
    "pkl-ctf-dummy-allowed": OK("export-cryodrgn {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_dummy.pkl -o {o}/e "
                                "--allow-overfocus",
                                ),
    "pkl-ctf-8cols": E("info {w}/p.mrcs --ctf {w}/ctf_8cols.pkl", "(N, 9) array"),
    "pkl-evil": E("info {w}/p.mrcs --poses {w}/evil.pkl", "refusing to load 'os.system'"),
    "pkl-garbage": E("info {w}/p.mrcs --poses {w}/garbage.pkl", "not a readable pickle"),
    "ind-dup": E("info {w}/p.mrcs --ind {w}/ind_dup.pkl", "duplicates"),
    "ind-out": E("info {w}/p.mrcs --ind {w}/ind_out.pkl", "index 99 is outside the 6 images"),
    "ind-neg": E("info {w}/p.mrcs --ind {w}/ind_neg.pkl", "negative particle index -1"),
    "ind-text": E("info {w}/p.mrcs --ind {w}/ind_text.txt", "'two' is not an integer index"),
    "ind-binary-txt": E("info {w}/p.mrcs --ind {w}/garbage.mrc", "index"),
    "cs-garbage": E("info {w}/garbage.cs", "not a readable cryoSPARC .cs file"),
    "mrc-garbage": E("mask {w}/garbage.mrc -o {o}/k.mrc", "garbage.mrc"),
    "stack-odd-box": E("info {w}/odd.mrcs", "box size must be even, got 15"),
    "stack-missing": E("info {w}/nope.mrcs", "not found"),
    "info-reports-nan-angle": OK("info {w}/nan_rot.star", "unusable", "rlnAngleRot is nan"),
    "info-reports-nan-defocus": OK("info {w}/nan_defocus.star", "unusable", "rlnDefocusU is nan"),
    "info-reports-bad-rotation": OK("info {w}/p.mrcs --poses {w}/pose_5I.pkl", "unusable", "not orthonormal"),
    "info-reports-zero-voltage": OK("info {w}/p.mrcs --ctf {w}/ctf_volt0.pkl", "unusable", "voltage (kV) is 0"),
    # --- correct uses succeed -------------------------------------------------------------------------
    "ok-info-star": OK("info {w}/good.star"),
    "ok-info-pkl": OK("info {w}/p.mrcs --poses {w}/pose_good.pkl --ctf {w}/ctf_good.pkl --ind {w}/ind_good.txt"),
    "ok-mask-new-file": OK("mask {w}/m.mrc -o {o}/sub/mask.mrc"),
    "ok-flip-hand": OK("flip-hand {w}/m.mrc -o {o}/flipped.mrc"),
    "ok-sharpen": OK("sharpen {w}/m.mrc -o {o}/s.mrc --bfactor -20 --lowpass 6"),
    "ok-downsample": OK("downsample {w}/good.star -D 8 -o {o}/d.mrcs"),
    "ok-export": OK("export-cryodrgn {w}/good.star -o {o}/exp/"),
    "ok-invert": OK("invert-contrast {w}/p.mrcs -o {o}/inv.mrcs"),
}


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: /proc/sys when running as root (permissions do not bind root)."""
    if os.geteuid() == 0:
        assert not os.access("/proc/sys", os.W_OK)
        return Path("/proc/sys")
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, ws, tmp_path, capsys):
    case = CASES[name]
    if case.needs_run and not (ws / "run").is_dir():
        pytest.skip("the cryoDRGN fixture folder is absent")
    before = _hashes(ws)
    argv = case.argv.format(w=ws, wn=ws.name, o=tmp_path, ro=_read_only_folder(tmp_path)).split()
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if case.expect:
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2, (code, out[-500:], err[-1500:])
        assert len(lines) == 1, err
        for text in case.expect:
            assert text in lines[0], (text, lines[0])
    else:
        assert code == 0, err[-1500:]
        for text in case.report:
            assert text in out, (text, out[-1500:])
    assert _hashes(ws) == before, "an input file was changed"
    leftovers = [p.name for p in tmp_path.rglob(".*.tmp")]
    assert not leftovers, leftovers


def test_corpus_size():
    assert len(CASES) >= 80


def test_outputs_follow_the_umask(ws, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["mask", str(ws / "m.mrc"), "-o", str(tmp_path / "mask.mrc")]) == 0
        assert main(["invert-contrast", str(ws / "p.mrcs"), "-o", str(tmp_path / "inv.mrcs")]) == 0
        assert main(["export-cryodrgn", str(ws / "good.star"), "-o", str(tmp_path / "e")]) == 0
    finally:
        os.umask(old)
    for name in ("mask.mrc", "inv.mrcs", "e/pose.pkl", "e/ctf.pkl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
    shutil.rmtree(tmp_path)
