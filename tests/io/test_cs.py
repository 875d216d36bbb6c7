"""cryoSPARC .cs reading/writing."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.errors import InputError
from cryoscape.io.cs import blob_paths, read_cs, require_fields, write_cs


def test_read_real_refinement_cs(fixtures_dir):
    array = read_cs(fixtures_dir / "cryosparc_P12_J24_001_particles.cs")
    assert array.shape == (2019,)
    assert array["alignments3D/pose"].shape == (2019, 3)
    np.testing.assert_array_equal(array["blob/shape"][0], [180, 180])
    assert float(array["blob/psize_A"][0]) == pytest.approx(2.95)


def test_blob_paths_strip_import_marker(fixtures_dir):
    array = read_cs(fixtures_dir / "cryosparc_J2_particles_exported.cs")
    raw = array["blob/path"][0].decode()
    assert raw.startswith(">")
    paths = blob_paths(array)
    assert paths.shape == (22,)
    assert paths[0] == raw[1:]
    assert not any(p.startswith(">") for p in paths)


def test_write_read_round_trip(tmp_path):
    dtype = [("uid", "<u8"), ("blob/path", "S20"), ("blob/idx", "<u4"), ("alignments3D/pose", "<f4", (3,))]
    array = np.zeros(4, dtype=dtype)
    array["uid"] = [1, 2, 3, 2**63]
    array["blob/path"] = [b"a.mrc", b">J1/b.mrcs", b"c", b"d"]
    array["alignments3D/pose"] = np.arange(12).reshape(4, 3) / 7
    path = write_cs(tmp_path / "sub" / "p.cs", array)
    back = read_cs(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in path.parent.iterdir()] == ["p.cs"]


def test_missing_and_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_cs(tmp_path / "none.cs")
    text = tmp_path / "text.cs"
    text.write_text("not numpy")
    with pytest.raises(InputError, match="not a readable cryoSPARC"):
        read_cs(text)
    plain = tmp_path / "plain.cs"
    with open(plain, "wb") as handle:
        np.save(handle, np.arange(5))
    with pytest.raises(InputError, match="structured array"):
        read_cs(plain)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.cs"
    with open(path, "wb") as handle:
        np.save(handle, np.array([Evil()], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a readable"):
        read_cs(path)
    assert not marker.exists()


def test_require_fields_names_all_missing(tmp_path):
    array = np.zeros(2, dtype=[("blob/idx", "<u4")])
    with pytest.raises(InputError, match="alignments3D/pose, alignments3D/shift"):
        fields = ["blob/idx", "alignments3D/pose", "alignments3D/shift"]
        require_fields(array, fields, tmp_path / "x.cs", "poses")
