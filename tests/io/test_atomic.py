"""Atomic writes: an error while writing keeps the previous file and leaves no temporary file behind."""

from __future__ import annotations

import pytest

from cryoscape.io.atomic import atomic_open, atomic_write


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "weights.3.pt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.3.pt"]


def test_write_by_name_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "map.mrc"
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["map.mrc"]
    with pytest.raises(ValueError):
        atomic_write(target, lambda tmp: (_ for _ in ()).throw(ValueError("bad")))
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["map.mrc"]
