"""Atomic writes: an error while writing keeps the previous file and leaves no temporary file behind."""

from __future__ import annotations

import os

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


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    """Atomic writes go through mkstemp (mode 0600); the result must get 0666 minus the umask, like open()."""
    import numpy as np

    from cryoscape.io.atomic import atomic_open, current_umask
    from cryoscape.io.mrc import write_mrc
    from cryoscape.io.mrc_stream import MrcStackWriter

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        with atomic_open(tmp_path / "a.txt", "w") as handle:
            handle.write("x")
        write_mrc(tmp_path / "v.mrc", np.zeros((4, 4, 4), np.float32), 1.0)
        with MrcStackWriter(tmp_path / "s.mrcs", 2, 4, 1.0) as writer:
            writer.write(0, np.zeros((2, 4, 4), np.float32))
        with open(tmp_path / "plain.txt", "w") as handle:  # what an ordinary open gives, for reference
            handle.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected
    for name in ("a.txt", "v.mrc", "s.mrcs"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
