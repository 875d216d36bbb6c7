"""cryoDRGN pickles: restricted loading (nothing executed), readers of real files, compatible writers."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys

import numpy as np
import pytest

from cryoscape.errors import InputError
from cryoscape.io.legacy import (
    ctf_to_array,
    load_pickle,
    load_pickles,
    read_ctf_pickle,
    read_index,
    read_latent_pickle,
    read_pose_pickle,
    read_z_pickle,
    write_ctf_pickle,
    write_index,
    write_pose_pickle,
    write_z_pickle,
)
from cryoscape.io.records import CTFParams, Poses


class _SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalCall:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_and_executes_nothing(tmp_path, protocol):
    marker = tmp_path / "marker"
    payloads = {
        "system.pkl": _SystemCall(f"touch {marker}"),
        "eval.pkl": _EvalCall(f"open({str(marker)!r}, 'w').close()"),
        "nested.pkl": (np.zeros(3), [_SystemCall(f"touch {marker}")]),
    }
    for name, payload in payloads.items():
        path = tmp_path / name
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        with pytest.raises(InputError, match="refusing to load") as info:
            load_pickle(path)
        assert name in str(info.value)
        assert not marker.exists()
    # the same pickle really is dangerous: an unrestricted load in another process creates the marker
    code = f"import pickle; pickle.load(open({str(tmp_path / 'system.pkl')!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.exists()


def test_other_classes_are_refused(tmp_path):
    import collections

    path = tmp_path / "od.pkl"
    path.write_bytes(pickle.dumps(collections.OrderedDict(a=1)))
    with pytest.raises(InputError, match=r"collections.OrderedDict"):
        load_pickle(path)


def test_basic_containers_and_numpy_values_load(tmp_path):
    obj = {"a": [1, 2.5, "x", None, True], "b": (np.arange(3, dtype=np.int16), np.float64(2.5)), "c": {1, 2},
           "d": np.zeros(2, dtype=[("f", "<f4"), ("g", "S3")]), "e": 1 + 2j}
    for protocol in (2, 4, 5):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        back = load_pickle(path)
        assert back["a"] == obj["a"] and back["c"] == obj["c"] and back["e"] == obj["e"]
        np.testing.assert_array_equal(back["b"][0], obj["b"][0])
        assert back["b"][0].dtype == np.int16 and back["b"][1] == 2.5
        np.testing.assert_array_equal(back["d"], obj["d"])


def test_corrupt_and_missing_pickles(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(np.arange(100))[:50])
    with pytest.raises(InputError, match="not a readable pickle"):
        load_pickle(path)
    with pytest.raises(InputError, match="not found"):
        load_pickle(tmp_path / "none.pkl")


# --- real cryoDRGN files --------------------------------------------------------------------------

def test_real_cryodrgn_files(fixtures_dir):
    np.testing.assert_array_equal(read_index(fixtures_dir / "ind100.pkl"), np.arange(100))
    z = read_z_pickle(fixtures_dir / "zvals_het-8_4k.pkl")
    assert z.shape == (4549, 8) and z.dtype == np.float32
    poses = read_pose_pickle(fixtures_dir / "hand_rot_trans.pkl", box_size=64)
    _, trans = load_pickle(fixtures_dir / "hand_rot_trans.pkl")
    np.testing.assert_array_equal(poses.shifts_px, trans.astype(np.float64) * 64)
    only_rot = read_pose_pickle(fixtures_dir / "toy_angles.pkl", box_size=30)
    assert only_rot.rotations.shape == (1000, 3, 3)
    np.testing.assert_array_equal(only_rot.shifts_px, 0)
    with pytest.raises(InputError, match=r"particle 0 .*defocus U, V = 0, 0 Å is not positive.*--allow-overfocus"):
        read_ctf_pickle(fixtures_dir / "test_ctf.pkl")  # a zero-defocus dummy CTF
    ctf = read_ctf_pickle(fixtures_dir / "test_ctf.pkl", allow_overfocus=True)
    assert ctf.box_size == 30
    np.testing.assert_allclose(ctf.phase_shift_deg, 90)
    np.testing.assert_allclose(ctf.amplitude_contrast, 0.1, rtol=1e-6)


def test_wrong_kind_of_pickle(fixtures_dir):
    with pytest.raises(InputError, match="\\(N, 9\\)"):
        read_ctf_pickle(fixtures_dir / "ind100.pkl")
    with pytest.raises(InputError, match="rotations must have shape"):
        read_pose_pickle(fixtures_dir / "ctf1.pkl", box_size=300)


# --- writers --------------------------------------------------------------------------------------

def _globals_in(path):
    names = set()
    for op, arg, _ in pickletools.genops(path.read_bytes()):
        if op.name == "PROTO":
            assert arg == 4
        if op.name in ("GLOBAL", "INST"):
            names.add(arg)
    return names


def test_pose_pickle_round_trip_and_layout(tmp_path):
    rng = np.random.default_rng(0)
    from scipy.spatial.transform import Rotation

    poses = Poses(Rotation.random(5, random_state=1).as_matrix(), rng.normal(size=(5, 2)) * 4, box_size=128)
    path = write_pose_pickle(tmp_path / "pose.pkl", poses)
    rot, trans = pickle.loads(path.read_bytes())  # our own file: a plain load is what cryoDRGN does
    assert rot.dtype == np.float64 and rot.shape == (5, 3, 3) and trans.shape == (5, 2)
    np.testing.assert_array_equal(trans, poses.shifts_px / 128)  # fraction of the box
    back = read_pose_pickle(path, box_size=128)
    np.testing.assert_array_equal(back.rotations, poses.rotations)
    np.testing.assert_allclose(back.shifts_px, poses.shifts_px, rtol=1e-15)
    assert all(".multiarray" in g or g.startswith("numpy") for g in _globals_in(path) if g)


def test_ctf_pickle_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    n = 6
    ctf = CTFParams(pixel_size_angstrom=np.full(n, 1.2), defocus_u_angstrom=rng.uniform(1e4, 2e4, n),
                    defocus_v_angstrom=rng.uniform(1e4, 2e4, n), defocus_angle_deg=rng.uniform(-90, 90, n),
                    voltage_kv=300, cs_mm=2.7, amplitude_contrast=0.07, phase_shift_deg=rng.uniform(0, 90, n),
                    box_size=96)
    path = write_ctf_pickle(tmp_path / "ctf.pkl", ctf)
    array = pickle.loads(path.read_bytes())
    assert array.shape == (n, 9) and array.dtype == np.float32
    np.testing.assert_array_equal(array, ctf_to_array(ctf))
    np.testing.assert_array_equal(array[:, 0], 96)
    back = read_ctf_pickle(path)
    assert back.box_size == 96
    for name in CTFParams.array_fields():
        if name != "bfactor_angstrom2":
            np.testing.assert_allclose(getattr(back, name), getattr(ctf, name), rtol=1e-6)


def test_z_and_index_round_trips(tmp_path):
    z = np.random.default_rng(3).normal(size=(7, 4)).astype(np.float32)
    path = write_z_pickle(tmp_path / "z.pkl", z)
    np.testing.assert_array_equal(read_z_pickle(path), z)
    index = np.array([5, 0, 9, 3])
    for name in ("ind.pkl", "ind.txt"):
        np.testing.assert_array_equal(read_index(write_index(tmp_path / name, index)), index)
    np.save(tmp_path / "ind.npy", index.astype(np.int32))
    out = read_index(tmp_path / "ind.npy")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, index)


def test_index_errors(tmp_path):
    txt = tmp_path / "bad.txt"
    txt.write_text("1 2 three\n")
    with pytest.raises(InputError, match="'three' is not an integer"):
        read_index(txt)
    txt.write_text("1 -2\n")
    with pytest.raises(InputError, match="negative particle index -2"):
        read_index(txt)
    np.save(tmp_path / "f.npy", np.array([1.5, 2.0]))
    with pytest.raises(InputError, match="integers"):
        read_index(tmp_path / "f.npy")
    np.save(tmp_path / "two.npy", np.zeros((2, 2), int))
    with pytest.raises(InputError, match="1-D"):
        read_index(tmp_path / "two.npy")
    with pytest.raises(InputError, match="index file not found"):
        read_index(tmp_path / "none.txt")


def test_latent_pickle_pair_as_train_vae_writes_it(tmp_path):
    rng = np.random.default_rng(3)
    mean, logvar = rng.standard_normal((2, 5, 3)).astype(np.float32)
    path = tmp_path / "z.7.pkl"
    with open(path, "wb") as handle:  # cryoDRGN: pickle.dump(z_mu, f); pickle.dump(z_logvar, f)
        pickle.dump(mean, handle)
        pickle.dump(logvar, handle)
    got_mean, got_logvar = read_latent_pickle(path)
    np.testing.assert_array_equal(got_mean, mean)
    np.testing.assert_array_equal(got_logvar, logvar)
    np.testing.assert_array_equal(read_z_pickle(path), mean)  # the means, as before
    assert len(load_pickles(path)) == 2
    # only means (or a third object): a clear error, not a silent zero log-variance
    write_z_pickle(tmp_path / "means.pkl", mean)
    with pytest.raises(InputError, match=r"expected two pickled arrays .* found 1"):
        read_latent_pickle(tmp_path / "means.pkl")
    with open(tmp_path / "odd.pkl", "wb") as handle:
        pickle.dump(mean, handle)
        pickle.dump(logvar[:4], handle)
    with pytest.raises(InputError, match=r"not two \(N, zdim\) arrays of one shape"):
        read_latent_pickle(tmp_path / "odd.pkl")
    # a second pickle is restricted as the first, and a truncated one is an error
    marker = tmp_path / "marker"
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump(mean, handle)
        pickle.dump(_SystemCall(f"touch {marker}"), handle)
    with pytest.raises(InputError, match="refusing to load"):
        read_latent_pickle(tmp_path / "evil.pkl")
    assert not marker.exists()
    (tmp_path / "cut.pkl").write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match="not a readable pickle"):
        read_latent_pickle(tmp_path / "cut.pkl")
