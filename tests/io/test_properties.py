"""Property tests: random STAR (3.0 and 3.1 layouts) and .cs files written, read back identically, and turned
into poses/CTF that match independent formulas (scipy rotations, unit conversions written out here)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from cryoscape.io.cs import read_cs, write_cs
from cryoscape.io.metadata import read_ctf, read_poses
from cryoscape.io.star import RELION30, read_star, write_star

SETTINGS = settings(max_examples=25, deadline=None)


def floats(lo, hi):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


def column(n, lo, hi):
    return st.lists(floats(lo, hi), min_size=n, max_size=n)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=12)


def _mutate_bytes(draw, raw: bytes) -> bytes:
    """Up to three random byte substitutions, then maybe a truncation (a damaged or partly written file)."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(0, 3))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@st.composite
def relion31_tables(draw):
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 4))
    box = draw(st.integers(8, 256)) * 2
    optics = pd.DataFrame({
        "rlnOpticsGroup": np.arange(1, k + 1),
        "rlnOpticsGroupName": [f"opticsGroup{draw(names)}" for _ in range(k)],
        "rlnAmplitudeContrast": draw(column(k, 0.0, 0.5)),
        "rlnSphericalAberration": draw(column(k, 0.0, 5.0)),
        "rlnVoltage": draw(st.lists(st.sampled_from([100.0, 200.0, 300.0]), min_size=k, max_size=k)),
        "rlnImagePixelSize": draw(column(k, 0.3, 10.0)),
        "rlnImageSize": [box] * k,
    })
    particles = pd.DataFrame({
        "rlnImageName": [f"{draw(st.integers(1, 999999)):06d}@Extract/{draw(names)}.mrcs" for _ in range(n)],
        "rlnOpticsGroup": draw(st.lists(st.integers(1, k), min_size=n, max_size=n)),
        "rlnAngleRot": draw(column(n, -180.0, 180.0)),
        "rlnAngleTilt": draw(column(n, 0.0, 180.0)),
        "rlnAnglePsi": draw(column(n, -180.0, 180.0)),
        "rlnOriginXAngst": draw(column(n, -60.0, 60.0)),
        "rlnOriginYAngst": draw(column(n, -60.0, 60.0)),
        "rlnDefocusU": draw(column(n, 1.0, 60000.0)),
        "rlnDefocusV": draw(column(n, 1.0, 60000.0)),
        "rlnDefocusAngle": draw(column(n, -180.0, 180.0)),
        "rlnPhaseShift": draw(column(n, 0.0, 180.0)),
        "rlnClassNumber": draw(st.lists(st.integers(1, 50), min_size=n, max_size=n)),
    })
    if draw(st.booleans()):
        particles = particles.drop(columns=["rlnPhaseShift"])
    return optics, particles


def _relion_matrices(df):
    angles = df[["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]].to_numpy(dtype=np.float64)
    return Rotation.from_euler("ZYZ", angles, degrees=True).as_matrix().transpose(0, 2, 1)


@SETTINGS
@given(relion31_tables())
def test_relion31_star_round_trip_and_records(tables):
    optics, particles = tables
    with tempfile.TemporaryDirectory() as tmp:
        path = write_star(Path(tmp) / "p.star", particles, optics)
        star = read_star(path)
        poses = read_poses(path)
        ctf = read_ctf(path)
    assert star.version == 30001
    pd.testing.assert_frame_equal(star.particles, particles, check_dtype=False)
    pd.testing.assert_frame_equal(star.optics, optics, check_dtype=False)
    row = {g: i for i, g in enumerate(optics["rlnOpticsGroup"])}
    group = np.array([row[g] for g in particles["rlnOpticsGroup"]])
    pixel = optics["rlnImagePixelSize"].to_numpy()[group]
    assert poses.box_size == ctf.box_size == optics["rlnImageSize"][0]
    np.testing.assert_allclose(poses.rotations, _relion_matrices(particles), atol=1e-12)
    np.testing.assert_array_equal(poses.shifts_px[:, 0], particles["rlnOriginXAngst"].to_numpy() / pixel)
    np.testing.assert_array_equal(poses.shifts_px[:, 1], particles["rlnOriginYAngst"].to_numpy() / pixel)
    np.testing.assert_array_equal(ctf.pixel_size_angstrom, pixel)
    np.testing.assert_array_equal(ctf.voltage_kv, optics["rlnVoltage"].to_numpy()[group])
    np.testing.assert_array_equal(ctf.cs_mm, optics["rlnSphericalAberration"].to_numpy()[group])
    np.testing.assert_array_equal(ctf.amplitude_contrast, optics["rlnAmplitudeContrast"].to_numpy()[group])
    np.testing.assert_array_equal(ctf.defocus_u_angstrom, particles["rlnDefocusU"])
    np.testing.assert_array_equal(ctf.defocus_angle_deg, particles["rlnDefocusAngle"])
    expected_phase = particles["rlnPhaseShift"] if "rlnPhaseShift" in particles else np.zeros(len(particles))
    np.testing.assert_array_equal(ctf.phase_shift_deg, expected_phase)


@st.composite
def relion30_table(draw):
    n = draw(st.integers(1, 12))
    return pd.DataFrame({
        "rlnImageName": [f"{i + 1}@{draw(names)}.mrcs" for i in range(n)],
        "rlnMicrographName": [f"mic{draw(names)}.mrc" for _ in range(n)],
        "rlnAngleRot": draw(column(n, -180.0, 180.0)),
        "rlnAngleTilt": draw(column(n, 0.0, 180.0)),
        "rlnAnglePsi": draw(column(n, -180.0, 180.0)),
        "rlnOriginX": draw(column(n, -20.0, 20.0)),
        "rlnOriginY": draw(column(n, -20.0, 20.0)),
        "rlnDefocusU": draw(column(n, 1.0, 60000.0)),
        "rlnDefocusV": draw(column(n, 1.0, 60000.0)),
        "rlnDefocusAngle": draw(column(n, -180.0, 180.0)),
        "rlnVoltage": [draw(st.sampled_from([200.0, 300.0]))] * n,
        "rlnSphericalAberration": draw(column(n, 0.0, 5.0)),
        "rlnAmplitudeContrast": draw(column(n, 0.0, 0.5)),
        "rlnDetectorPixelSize": draw(column(n, 1.0, 15.0)),
        "rlnMagnification": draw(column(n, 5000.0, 200000.0)),
    })


@SETTINGS
@given(relion30_table(), st.integers(8, 200))
def test_relion30_star_round_trip_and_records(particles, half_box):
    box = 2 * half_box
    with tempfile.TemporaryDirectory() as tmp:
        path = write_star(Path(tmp) / "p.star", particles)
        star = read_star(path)
        poses = read_poses(path, box_size=box)
        ctf = read_ctf(path, box_size=box)
    assert star.version == RELION30 and star.optics is None
    pd.testing.assert_frame_equal(star.particles, particles, check_dtype=False)
    assert poses.box_size == ctf.box_size == box
    np.testing.assert_allclose(poses.rotations, _relion_matrices(particles), atol=1e-12)
    np.testing.assert_array_equal(poses.shifts_px, particles[["rlnOriginX", "rlnOriginY"]].to_numpy())
    # RELION 3.0 pixel size: detector pixel (µm) × 10⁴ / magnification
    detector, magnification = particles["rlnDetectorPixelSize"], particles["rlnMagnification"]
    expected_pixel = detector.to_numpy() * 1e4 / magnification.to_numpy()
    np.testing.assert_array_equal(ctf.pixel_size_angstrom, expected_pixel)
    np.testing.assert_array_equal(ctf.amplitude_contrast, particles["rlnAmplitudeContrast"])


def f32(lo, hi):
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def cs_arrays(draw):
    n = draw(st.integers(1, 15))
    dtype = [("uid", "<u8"), ("blob/path", "S24"), ("blob/idx", "<u4"), ("blob/shape", "<u4", (2,)),
             ("blob/psize_A", "<f4"), ("alignments3D/pose", "<f4", (3,)), ("alignments3D/shift", "<f4", (2,)),
             ("alignments3D/psize_A", "<f4"), ("ctf/accel_kv", "<f4"), ("ctf/cs_mm", "<f4"),
             ("ctf/amp_contrast", "<f4"), ("ctf/df1_A", "<f4"), ("ctf/df2_A", "<f4"),
             ("ctf/df_angle_rad", "<f4"),
             ("ctf/phase_shift_rad", "<f4")]
    array = np.zeros(n, dtype=dtype)
    array["uid"] = draw(arrays(np.uint64, n))
    array["blob/path"] = [(">" if draw(st.booleans()) else "") + f"J{draw(st.integers(1, 99))}/{draw(names)}"
                          for _ in range(n)]
    array["blob/idx"] = draw(arrays(np.uint32, n, elements=st.integers(0, 10**6)))
    array["blob/shape"] = draw(st.integers(8, 300)) * 2
    psize = draw(f32(0.25, 10.0))
    array["blob/psize_A"] = psize
    array["alignments3D/psize_A"] = psize
    array["alignments3D/pose"] = draw(arrays(np.float32, (n, 3), elements=f32(-3.0, 3.0)))
    array["alignments3D/shift"] = draw(arrays(np.float32, (n, 2), elements=f32(-40, 40)))
    array["ctf/accel_kv"] = draw(st.sampled_from([200.0, 300.0]))
    array["ctf/cs_mm"] = draw(arrays(np.float32, n, elements=f32(0, 5)))
    array["ctf/amp_contrast"] = draw(arrays(np.float32, n, elements=f32(0, 0.5)))
    array["ctf/df1_A"] = draw(arrays(np.float32, n, elements=f32(1, 60000)))
    array["ctf/df2_A"] = draw(arrays(np.float32, n, elements=f32(1, 60000)))
    array["ctf/df_angle_rad"] = draw(arrays(np.float32, n, elements=f32(-3.25, 3.25)))
    array["ctf/phase_shift_rad"] = draw(arrays(np.float32, n, elements=f32(0, 3.25)))
    return array


@SETTINGS
@given(cs_arrays())
def test_cs_round_trip_and_records(array):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cs(Path(tmp) / "p.cs", array)
        back = read_cs(path)
        poses = read_poses(path)
        ctf = read_ctf(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    box = int(array["blob/shape"][0, 0])
    assert poses.box_size == ctf.box_size == box
    rotvec = array["alignments3D/pose"].astype(np.float64)
    np.testing.assert_allclose(poses.rotations, Rotation.from_rotvec(rotvec).as_matrix().transpose(0, 2, 1),
                               atol=1e-12)
    np.testing.assert_array_equal(poses.shifts_px, array["alignments3D/shift"].astype(np.float64))
    to_deg = 180 / np.pi
    np.testing.assert_allclose(ctf.defocus_angle_deg, array["ctf/df_angle_rad"].astype(np.float64) * to_deg,
                               rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(ctf.phase_shift_deg, array["ctf/phase_shift_rad"].astype(np.float64) * to_deg,
                               rtol=1e-15, atol=1e-12)
    np.testing.assert_array_equal(ctf.defocus_u_angstrom, array["ctf/df1_A"].astype(np.float64))
    np.testing.assert_array_equal(ctf.pixel_size_angstrom, array["blob/psize_A"].astype(np.float64))
    np.testing.assert_array_equal(ctf.cs_mm, array["ctf/cs_mm"].astype(np.float64))


# --- fuzzing: generated and mutated files never raise anything but InputError ---------------------------------
# Each reader is given valid files changed by random edits (tokens replaced by junk/NaN/huge numbers, lines
# dropped, duplicated or cut short, bytes flipped, files truncated). The only acceptable outcomes are a result or an
# InputError whose message is one line. max_examples is kept small: all fuzz tests together take well under 30 s.

import io  # noqa: E402
import pickle  # noqa: E402

import pytest  # noqa: E402

from cryoscape.errors import InputError  # noqa: E402
from cryoscape.io.legacy import (  # noqa: E402
    load_pickle,
    read_ctf_pickle,
    read_index,
    read_pose_pickle,
    read_z_pickle,
)
from cryoscape.io.mrc import MrcStackReader, read_header, read_mrc, write_mrc  # noqa: E402
from cryoscape.io.stacks import open_images  # noqa: E402

FUZZ = settings(max_examples=int(os.environ.get("CRYOSCAPE_FUZZ_EXAMPLES", "30")), deadline=None,
                derandomize=not os.environ.get("CRYOSCAPE_FUZZ_EXAMPLES"))
JUNK_TOKENS = ["abc", "nan", "inf", "-inf", "1e400", "", "0", "-1", "9" * 30, "1@", "@", "\"", "_rlnX", "loop_",
               "data_", "#", "1.2.3", "0x10", "\u00e9", "-0"]


def _expect_input_error_or_result(call):
    try:
        call()
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)


@st.composite
def mutated_star_text(draw):
    optics, particles = draw(relion31_tables())
    if draw(st.booleans()):
        particles = particles.drop(columns=["rlnOpticsGroup"])
        optics = optics.iloc[:1]
    buffer = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_star(Path(tmp) / "p.star", particles if "rlnOpticsGroup" in particles else
                          particles.assign(rlnOpticsGroup=1), optics)
        text = path.read_text()
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["token", "drop", "dup", "cut", "junkline", "swap"]))
        tokens = lines[i].split()
        if kind == "token" and tokens:
            tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(JUNK_TOKENS))
            lines[i] = " ".join(tokens)
        elif kind == "drop":
            del lines[i]
        elif kind == "dup":
            lines.insert(i, lines[i])
        elif kind == "cut" and tokens:
            lines[i] = " ".join(tokens[: draw(st.integers(0, len(tokens)))])
        elif kind == "junkline":
            lines.insert(i, " ".join(draw(st.lists(st.sampled_from(JUNK_TOKENS), min_size=1, max_size=4))))
        elif kind == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
    buffer.write("\n".join(lines) + "\n")
    return buffer.getvalue()


@FUZZ
@given(mutated_star_text())
def test_fuzz_star_readers_raise_only_input_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.star"
        path.write_text(text)
        _expect_input_error_or_result(lambda: read_star(path))
        _expect_input_error_or_result(lambda: read_poses(path, box_size=64, pixel_size_angstrom=1.0))
        _expect_input_error_or_result(lambda: read_ctf(path, box_size=64, pixel_size_angstrom=1.0,
                                                       amplitude_contrast=0.1))
        _expect_input_error_or_result(lambda: open_images(path))


@st.composite
def mutated_cs_bytes(draw):
    array = draw(cs_arrays())
    names = list(array.dtype.names)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        if array.dtype[name].kind == "f":
            flat = array[name].reshape(len(array), -1)
            flat[draw(st.integers(0, len(array) - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0,
                                                                                  -1.0, 1e30]))
            array[name] = flat.reshape(array[name].shape)
    if draw(st.booleans()):
        keep = [n for n in names if draw(st.booleans())] or names[:1]
        array = np.ascontiguousarray(array[keep])
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return _mutate_bytes(draw, buffer.getvalue())


@FUZZ
@given(mutated_cs_bytes())
def test_fuzz_cs_readers_raise_only_input_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.cs"
        path.write_bytes(data)
        _expect_input_error_or_result(lambda: read_cs(path))
        _expect_input_error_or_result(lambda: read_poses(path, box_size=64))
        _expect_input_error_or_result(lambda: read_ctf(path, box_size=64, pixel_size_angstrom=1.0))
        _expect_input_error_or_result(lambda: open_images(path))


_MRC_FIELDS = {  # byte offset of int32 header words that readers interpret
    "nx": 0, "ny": 4, "nz": 8, "mode": 12, "mx": 28, "my": 32, "mz": 36, "cella_x": 40, "mapc": 64, "mapr": 68,
    "maps": 72, "ispg": 88, "nsymbt": 92, "map": 208, "machst": 212,
}


@st.composite
def mutated_mrc_bytes(draw):
    n = draw(st.integers(1, 3))
    box = draw(st.sampled_from([4, 6, 8]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_mrc(Path(tmp) / "s.mrcs", np.arange(n * box * box, dtype=np.float32).reshape(n, box, box), 1.5)
        data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            offset = _MRC_FIELDS[draw(st.sampled_from(sorted(_MRC_FIELDS)))]
            value = draw(st.sampled_from([0, -1, 1, 2, 3, 5, 7, 12, 13, 2**20, 2**31 - 1, -(2**31)]))
            data[offset:offset + 4] = int(value).to_bytes(4, "little", signed=True)
        else:
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()) and len(data) > 1024:
        data[1024:1028] = np.float32(np.nan).tobytes()
    return bytes(data)


@FUZZ
@given(mutated_mrc_bytes())
def test_fuzz_mrc_header_readers_raise_only_input_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.mrcs"
        path.write_bytes(data)
        _expect_input_error_or_result(lambda: read_header(path))
        _expect_input_error_or_result(lambda: read_mrc(path))
        _expect_input_error_or_result(lambda: read_mrc(path, mmap=True))

        def stack():
            reader = MrcStackReader(path)
            reader.read(np.arange(reader.n))
        _expect_input_error_or_result(stack)
        _expect_input_error_or_result(lambda: open_images(path))


_leaf_arrays = st.one_of(
    arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
           st.sampled_from([(0,), (3,), (2, 3), (2, 9), (2, 3, 3), (3, 2), (1, 3, 3), (2, 2, 2)]),
           elements=None),
)
_objects = st.recursive(
    st.one_of(_leaf_arrays, st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    lambda children: st.one_of(st.tuples(children, children), st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=2), children, max_size=2)),
    max_leaves=4,
)


@st.composite
def mutated_pickle_bytes(draw):
    obj = draw(_objects)
    if draw(st.booleans()):  # the shapes cryoDRGN uses, with random (possibly NaN) contents
        n = draw(st.integers(1, 4))
        obj = draw(st.sampled_from([
            (np.full((n, 3, 3), draw(st.sampled_from([0.0, 5.0, np.nan, 1.0]))), np.zeros((n, 2))),
            np.tile(np.eye(3) * draw(st.sampled_from([1.0, 5.0, -1.0])), (n, 1, 1)),
            np.full((n, 9), draw(st.sampled_from([0.0, 64.0, -1.0, np.nan, np.inf]))),
        ]))
    return _mutate_bytes(draw, pickle.dumps(obj, protocol=draw(st.sampled_from([2, 4, 5]))))


@FUZZ
@given(mutated_pickle_bytes())
def test_fuzz_pickle_readers_raise_only_input_error(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.pkl"
        path.write_bytes(data)
        _expect_input_error_or_result(lambda: load_pickle(path))
        _expect_input_error_or_result(lambda: read_pose_pickle(path, box_size=64))
        _expect_input_error_or_result(lambda: read_ctf_pickle(path))
        _expect_input_error_or_result(lambda: read_index(path))
        _expect_input_error_or_result(lambda: read_z_pickle(path))
        _expect_input_error_or_result(lambda: read_poses(path, box_size=64))
        _expect_input_error_or_result(lambda: read_ctf(path))


@pytest.mark.parametrize("scale", [5.0, -1.0])
def test_pose_pickle_with_non_rotation_is_refused(tmp_path, scale):
    path = tmp_path / "pose.pkl"
    path.write_bytes(pickle.dumps((np.tile(np.eye(3) * scale, (3, 1, 1)), np.zeros((3, 2)))))
    expected = "not orthonormal" if scale == 5.0 else "a reflection"
    with pytest.raises(InputError, match=f"particle 0 \\(0-based\\): the rotation is {expected}"):
        read_pose_pickle(path, box_size=64)
