"""RELION STAR reading (3.0, 3.1, 5; optics before/after; several optics groups) and writing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import starfile

from cryoscape.errors import InputError
from cryoscape.io.star import RELION30, read_star, write_star


def _raw_loop(path, block):
    """Minimal independent parser: (labels, rows as lists of tokens) of ``data_<block>``'s loop."""
    lines = path.read_text().splitlines()
    start = lines.index(f"data_{block}")
    labels, rows, i = [], [], start + 1
    while i < len(lines) and not lines[i].startswith("_"):
        i += 1
    while i < len(lines) and lines[i].startswith("_"):
        labels.append(lines[i].split()[0][1:])
        i += 1
    while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "data_")):
        rows.append(lines[i].split())
        i += 1
    return labels, rows


def test_relion31_optics_first(fixtures_dir):
    star = read_star(fixtures_dir / "relion31.star")
    assert star.version == 30001
    assert len(star) == 5 and len(star.optics) == 1
    np.testing.assert_allclose(star.pixel_sizes_angstrom(), 2.806)
    np.testing.assert_array_equal(star.image_sizes(), 256)
    np.testing.assert_allclose(star.values("rlnVoltage"), 300.0)
    origin_x = [0.019324, -0.25248, -0.65323, -0.00755, -0.33773]
    np.testing.assert_allclose(star.values("rlnOriginXAngst"), origin_x)


def test_relion31_optics_after_particles_reads_the_same(fixtures_dir):
    first = read_star(fixtures_dir / "relion31.star")
    after = read_star(fixtures_dir / "relion31.v2.star")
    assert after.version == 30001
    pd.testing.assert_frame_equal(first.particles, after.particles)
    pd.testing.assert_frame_equal(first.optics, after.optics)


def test_relion5_version_and_optics(fixtures_dir):
    star = read_star(fixtures_dir / "relion5.star")
    assert star.version == 50001
    assert len(star) == 17
    np.testing.assert_allclose(star.pixel_sizes_angstrom(), 0.89)
    np.testing.assert_allclose(star.values("rlnSphericalAberration"), 1.6)


def test_six_optics_groups_per_particle_values(fixtures_dir):
    path = fixtures_dir / "relion31.6opticsgroups.star"
    star = read_star(path)
    assert len(star) == 139 and len(star.optics) == 6
    o_labels, o_rows = _raw_loop(path, "optics")
    p_labels, p_rows = _raw_loop(path, "particles")
    group_pixel = {int(r[o_labels.index("rlnOpticsGroup")]): float(r[o_labels.index("rlnImagePixelSize")])
                   for r in o_rows}
    group_cs = {int(r[o_labels.index("rlnOpticsGroup")]): float(r[o_labels.index("rlnSphericalAberration")])
                for r in o_rows}
    groups = [int(r[p_labels.index("rlnOpticsGroup")]) for r in p_rows]
    assert len(groups) == 139
    expected_pixel = np.array([group_pixel[g] for g in groups])
    np.testing.assert_array_equal(star.pixel_sizes_angstrom(), expected_pixel)
    np.testing.assert_array_equal(star.values("rlnSphericalAberration"), [group_cs[g] for g in groups])
    assert set(np.unique(expected_pixel)) == {1.24, 1.25}  # the groups really differ


def test_relion30_files(fixtures_dir):
    star = read_star(fixtures_dir / "FinalRefinement-OriginalParticles-PfCRT.star")  # data_images
    assert star.version == RELION30 and star.optics is None and len(star) == 5
    np.testing.assert_allclose(star.pixel_sizes_angstrom(), 1.035 * 1e4 / 10000)
    assert star.image_sizes() is None
    star = read_star(fixtures_dir / "empiar_10076_7.star")  # data_
    np.testing.assert_allclose(star.pixel_sizes_angstrom(), 5 * 1e4 / 38168)
    assert read_star(fixtures_dir / "toy_projections_13.star").version == 30001  # optics, no version comment


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="STAR file not found"):
        read_star(tmp_path / "none.star")
    bad = tmp_path / "bad.star"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(InputError, match=r"particle table|STAR"):
        read_star(bad)


def test_no_particle_table_lists_blocks(tmp_path):
    path = tmp_path / "blocks.star"
    path.write_text("data_foo\n\nloop_\n_rlnA\n1\n\ndata_bar\n\nloop_\n_rlnB\n2\n")
    with pytest.raises(InputError, match="data_foo, data_bar"):
        read_star(path)


def test_undefined_optics_group_is_reported(tmp_path):
    path = tmp_path / "groups.star"
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [1.5], "rlnImageSize": [64]})
    particles = pd.DataFrame({"rlnImageName": ["1@a.mrcs", "2@a.mrcs"], "rlnOpticsGroup": [1, 3]})
    with pytest.raises(ValueError, match="optics groups \\[3\\]"):
        write_star(path, particles, optics)
    starfile.write({"optics": optics, "particles": particles}, path)
    with pytest.raises(InputError, match="line 19 \\(particle 1, 0-based\\) names optics group 3"):
        read_star(path).pixel_sizes_angstrom()


def test_write_star_relion31_layout(tmp_path):
    optics = pd.DataFrame({"rlnOpticsGroup": [1, 2], "rlnOpticsGroupName": ["opticsGroup1", "opticsGroup2"],
                           "rlnImagePixelSize": [1.1, 1.3], "rlnImageSize": [128, 128],
                           "rlnVoltage": [300.0, 200.0]})
    particles = pd.DataFrame({"rlnImageName": ["000001@Extract/a.mrcs", "000002@Extract/a.mrcs"],
                              "rlnOpticsGroup": [2, 1], "rlnAngleRot": [10.123456789012345, -3.0],
                              "rlnOriginXAngst": [1e-7, 2.5]})
    path = write_star(tmp_path / "out" / "p.star", particles, optics)
    text = path.read_text()
    assert text.index("data_optics") < text.index("data_particles")
    assert text.count("# version 30001") == 2
    # an independent reader sees exactly our values
    blocks = starfile.read(path, always_dict=True)
    pd.testing.assert_frame_equal(blocks["particles"], particles, check_dtype=False)
    pd.testing.assert_frame_equal(blocks["optics"], optics, check_dtype=False)
    star = read_star(path)
    np.testing.assert_array_equal(star.pixel_sizes_angstrom(), [1.3, 1.1])
    assert [p.name for p in path.parent.iterdir()] == ["p.star"]  # no temporary left


def test_write_star_refuses_unwritable_values(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        write_star(tmp_path / "x.star", pd.DataFrame({"rlnImageName": ["1@a b.mrcs"]}))
    with pytest.raises(ValueError, match="NaN"):
        write_star(tmp_path / "x.star", pd.DataFrame({"rlnAngleRot": [np.nan]}))
    assert not (tmp_path / "x.star").exists()
