"""Lossless particle subsets (h_export): STAR rows/optics groups and cryoSPARC records, on the real fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryoscape.errors import InputError
from cryoscape.io.cs import read_cs
from cryoscape.io.star import read_star, write_star
from cryoscape.io.subset import check_same_particles, selection_positions, write_cs_subset, write_star_subset

STARS = ["relion31.star", "relion31.v2.star", "relion5.star", "toy.star", "relion31.6opticsgroups.star",
         "FinalRefinement-OriginalParticles-PfCRT.star"]
CS_FILES = ["cryosparc_P12_J24_001_particles.cs", "cryosparc_J2_particles_exported.cs"]


def _data_rows(path):
    """Independent reader: the raw text of every data row of every loop, by block name, in file order."""
    rows: dict[str, list[str]] = {}
    block, in_loop = "", False
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("data_"):
            block, in_loop = s[5:], False
            continue
        if s.startswith("loop_"):
            in_loop = True
            continue
        if s.startswith("_"):
            continue
        if in_loop:
            rows.setdefault(block, []).append(line)
    return rows


def _pick(n: int, rng) -> np.ndarray:
    k = max(1, n // 3)
    return np.sort(rng.choice(n, size=k, replace=False))


@pytest.mark.parametrize("name", STARS)
def test_star_subset_keeps_selected_rows_and_every_column(fixtures_dir, tmp_path, name):
    src = fixtures_dir / name
    original = read_star(src)
    rows = _pick(len(original), np.random.default_rng(len(name)))
    out = tmp_path / "subset.star"
    info = write_star_subset(src, rows[::-1], out)  # any order in, file order out
    assert (info.n_selected, info.n_total) == (len(rows), len(original))
    back = read_star(out)
    assert back.version == original.version
    expected = original.particles.iloc[rows].reset_index(drop=True)
    got = back.particles
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        if column == "rlnOpticsGroup":
            mapped = expected[column].map(info.optics_groups)
            pd.testing.assert_series_equal(got[column], mapped, check_names=False, check_dtype=False)
        else:
            pd.testing.assert_series_equal(got[column], expected[column], check_names=False)
    # byte-exact rows: the particle lines are the original lines (no renumbering needed in these picks)
    raw_in, raw_out = _data_rows(src), _data_rows(out)
    block = next(b for b in raw_out if b != "optics")
    if not info.renumbered:
        assert raw_out[block] == [raw_in[block][i] for i in rows]
    if original.optics is not None:
        used = sorted(set(expected["rlnOpticsGroup"].astype(int)))
        assert sorted(info.optics_groups) == used
        assert len(back.optics) == len(used)
        kept = original.optics.set_index("rlnOpticsGroup").loc[used].reset_index()
        for column in original.optics.columns:
            if column != "rlnOpticsGroup":
                assert back.optics[column].tolist() == kept[column].tolist(), column
    else:
        assert back.optics is None


def test_star_subset_drops_and_renumbers_unused_optics_groups(fixtures_dir, tmp_path):
    src = fixtures_dir / "relion31.6opticsgroups.star"
    original = read_star(src)
    groups = original.particles["rlnOpticsGroup"].astype(int).to_numpy()
    rows = np.flatnonzero(np.isin(groups, [2, 5]))
    assert rows.size > 0
    info = write_star_subset(src, rows, tmp_path / "g25.star")
    assert info.optics_groups == {2: 1, 5: 2} and info.renumbered
    back = read_star(tmp_path / "g25.star")
    assert back.optics["rlnOpticsGroup"].tolist() == [1, 2]
    names = dict(zip(original.optics["rlnOpticsGroup"], original.optics["rlnOpticsGroupName"]))
    assert back.optics["rlnOpticsGroupName"].tolist() == [names[2], names[5]]
    # every particle still points at its own optics parameters (pixel size, beam tilt, ...)
    for column in ("rlnImagePixelSize", "rlnBeamTiltX", "rlnSphericalAberration", "rlnOddZernike"):
        np.testing.assert_array_equal(back.values(column), original.values(column)[rows])
    other = [c for c in original.particles.columns if c != "rlnOpticsGroup"]
    pd.testing.assert_frame_equal(back.particles[other], original.particles.iloc[rows][other].reset_index(drop=True))
    # --all-optics-groups keeps the table and the numbers
    info_all = write_star_subset(src, rows, tmp_path / "all.star", all_optics_groups=True)
    assert not info_all.renumbered
    assert len(read_star(tmp_path / "all.star").optics) == 6


def test_star_subset_bad_indices(fixtures_dir, tmp_path):
    src = fixtures_dir / "relion31.star"
    with pytest.raises(InputError, match="out of range"):
        write_star_subset(src, [0, 5], tmp_path / "x.star")
    with pytest.raises(InputError, match="more than once"):
        write_star_subset(src, [1, 1], tmp_path / "x.star")
    with pytest.raises(InputError, match="negative"):
        selection_positions(np.array([-1]), 5)
    assert not (tmp_path / "x.star").exists()


def test_star_subset_empty_selection_is_valid(fixtures_dir, tmp_path):
    info = write_star_subset(fixtures_dir / "relion31.star", np.array([], dtype=np.int64), tmp_path / "e.star")
    assert info.n_selected == 0
    assert _data_rows(tmp_path / "e.star").get("particles", []) == []


@pytest.mark.parametrize("name", CS_FILES)
def test_cs_subset_keeps_every_field(fixtures_dir, tmp_path, name):
    src = fixtures_dir / name
    original = np.load(src, allow_pickle=False)
    rows = _pick(len(original), np.random.default_rng(7))
    out = tmp_path / "subset.cs"
    info = write_cs_subset(src, rows, out)
    assert info.n_selected == len(rows)
    raw = np.load(out, allow_pickle=False)  # read back with numpy ...
    assert raw.dtype == original.dtype
    for field in original.dtype.names:
        np.testing.assert_array_equal(raw[field], original[field][rows], err_msg=field)
    ours = read_cs(out)  # ... and with cryoscape
    assert ours.tobytes() == original[rows].tobytes()


def test_check_same_particles_accepts_a_downsampled_copy_and_catches_reordering(fixtures_dir, tmp_path):
    src = fixtures_dir / "relion31.6opticsgroups.star"
    star = read_star(src)
    table = star.particles.copy()
    table["rlnImageName"] = [f"{i + 1:06d}@down.mrcs" for i in range(len(table))]  # what downsample writes
    write_star(tmp_path / "down.star", table, star.optics)
    message = check_same_particles(src, tmp_path / "down.star")
    assert "rlnMicrographName" in message and "139 particles" in message
    swapped = table.iloc[[1, 0, *range(2, len(table))]].reset_index(drop=True)
    swapped["rlnImageName"] = table["rlnImageName"]
    write_star(tmp_path / "swapped.star", swapped, star.optics)
    with pytest.raises(InputError, match="particle 0 "):
        check_same_particles(src, tmp_path / "swapped.star")
    write_star(tmp_path / "fewer.star", table.iloc[:-1], star.optics)
    with pytest.raises(InputError, match="139 particles here but 138"):
        check_same_particles(src, tmp_path / "fewer.star")


def test_check_same_particles_cs(fixtures_dir, tmp_path):
    src = fixtures_dir / "cryosparc_P12_J24_001_particles.cs"
    array = read_cs(src)
    same = array.copy()
    same["blob/path"] = b">J99/downsampled.mrcs"
    np.save(tmp_path / "same.npy", same)
    (tmp_path / "same.npy").rename(tmp_path / "same.cs")
    assert "uid" in check_same_particles(src, tmp_path / "same.cs")
    np.save(tmp_path / "rev.npy", array[::-1])
    (tmp_path / "rev.npy").rename(tmp_path / "rev.cs")
    with pytest.raises(InputError, match="not the same particles"):
        check_same_particles(src, tmp_path / "rev.cs")


def test_star_subset_reports_a_damaged_selected_row(fixtures_dir, tmp_path):
    lines = (fixtures_dir / "toy.star").read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if "@" in line)
    lines[first + 4] = lines[first + 4].rsplit(" ", 1)[0] + "\n"  # row 4 loses its last field
    damaged = tmp_path / "damaged.star"
    damaged.write_text("".join(lines))
    with pytest.raises(InputError, match=f"line {first + 5}: 7 field"):
        write_star_subset(damaged, [2, 4], tmp_path / "x.star")
    assert not (tmp_path / "x.star").exists()
    write_star_subset(damaged, [2, 3], tmp_path / "ok.star")  # the damaged row is not copied
    assert len(read_star(tmp_path / "ok.star")) == 2
