"""ImageSource over stacks, STAR, CS and TXT listings: the right pixels, lazily, and clear errors."""

from __future__ import annotations

import os
import pickle
import warnings

import mrcfile
import numpy as np
import pandas as pd
import pytest

from cryoscape.errors import InputError
from cryoscape.io.mrc import write_mrc
from cryoscape.io.stacks import open_images
from cryoscape.io.star import write_star


def _direct(path):
    """All images of a stack through mrcfile (independent of our reader)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, permissive=True) as mrc:
            return np.array(mrc.data, dtype=np.float32)


def _image_names(star_path):
    """(1-based index, file) of each row, parsed from the text."""
    tokens = [t for line in star_path.read_text().splitlines() for t in line.split()[:10] if "@" in t]
    return [(int(t.split("@")[0]), t.split("@")[1]) for t in tokens]


def test_single_stack(fixtures_dir):
    source = open_images(fixtures_dir / "toy_projections.mrcs")
    ref = _direct(fixtures_dir / "toy_projections.mrcs")
    assert (len(source), source.box_size) == (1000, 30)
    order = [999, 3, 500, 3, 0]
    np.testing.assert_array_equal(source.read(order), ref[order])


def test_star_selecting_13_non_contiguous_images(fixtures_dir):
    path = fixtures_dir / "toy_projections_13.star"
    source = open_images(path)
    names = _image_names(path)
    assert len(source) == len(names) == 13
    ref = _direct(fixtures_dir / "toy_projections.mrcs")
    expected = ref[[i - 1 for i, _ in names]]  # 1-based in the file
    np.testing.assert_array_equal(source.read(np.arange(13)), expected)
    np.testing.assert_array_equal(source.read([12, 0]), expected[[12, 0]])
    assert source.pixel_size_angstrom == pytest.approx(1.035)


def test_star_needing_datadir(fixtures_dir):
    path = fixtures_dir / "toy_projections_dir.star"
    with pytest.raises(InputError, match=r"toy_images_b.mrcs.*not found.*tried") as info:
        open_images(path)
    assert "--datadir" in str(info.value) and str(path) in str(info.value)
    source = open_images(path, datadir=fixtures_dir / "toy_datadir")
    names = _image_names(path)
    stacks = {name: _direct(fixtures_dir / "toy_datadir" / name) for name in {n for _, n in names}}
    expected = np.stack([stacks[name][i - 1] for i, name in names])
    assert len(source) == 1000 and len(source.files) == 2
    np.testing.assert_array_equal(source.read(np.arange(1000)), expected)
    assert "data directory" in source.describe()


def test_relion5_with_datadir(fixtures_dir):
    path = fixtures_dir / "relion5.star"
    source = open_images(path, datadir=fixtures_dir / "toy_datadir")
    names = _image_names(path)
    assert len(source) == 17
    expected = np.stack([_direct(fixtures_dir / "toy_datadir" / n)[i - 1] for i, n in names])
    np.testing.assert_array_equal(source.read(np.arange(17)), expected)
    assert source.pixel_size_angstrom == pytest.approx(0.89)


def test_relion31_star_and_text_list(fixtures_dir):
    source = open_images(fixtures_dir / "relion31.star")
    np.testing.assert_array_equal(source.read(np.arange(5)), _direct(fixtures_dir / "relion31.mrcs"))
    assert source.pixel_size_angstrom == pytest.approx(2.806)
    text = open_images(fixtures_dir / "toy_projections.txt")
    assert len(text) == 1000
    ref = _direct(fixtures_dir / "toy_projections.mrcs")
    np.testing.assert_array_equal(text.read([0, 999]), ref[[0, 999]])


def test_empiar_same_images_three_ways(fixtures_dir):
    sources = [open_images(fixtures_dir / f"empiar_10076_7.{ext}") for ext in ("mrc", "star", "cs")]
    images = [s.read(np.arange(7)) for s in sources]
    assert all(len(s) == 7 and s.box_size == 320 for s in sources)
    np.testing.assert_array_equal(images[0], images[1])
    np.testing.assert_array_equal(images[0], images[2])
    np.testing.assert_array_equal(images[0], _direct(fixtures_dir / "empiar_10076_7.mrc"))
    # the pixel size: none in the MRC header (cell 0), 5 µm / 38168 from the star, blob/psize_A from the cs
    assert sources[0].pixel_size_angstrom is None
    assert sources[1].pixel_size_angstrom == pytest.approx(5e4 / 38168)
    assert sources[2].pixel_size_angstrom == pytest.approx(1.31, abs=1e-4)


def test_iter_chunks_and_describe(fixtures_dir):
    source = open_images(fixtures_dir / "toy_projections.mrcs")
    seen = []
    for positions, images in source.iter_chunks(300, indices=np.arange(10, 1000, 7)):
        np.testing.assert_array_equal(images, source.read(positions))
        seen.extend(positions.tolist())
    assert seen == list(range(10, 1000, 7))
    text = source.describe()
    assert "1,000 images" in text and "30×30" in text and "toy_projections.mrcs" in text


def test_pickled_source_reads_the_same(fixtures_dir):
    source = open_images(fixtures_dir / "toy_projections_13.star")
    first = source.read([1, 2])
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone.read([1, 2]), first)


# --- resolution of relative paths -----------------------------------------------------------------

def _stack(path, n, box=8, value=0.0):
    images = np.full((n, box, box), value, np.float32) + np.arange(n, dtype=np.float32)[:, None, None]
    return write_mrc(path, images, 1.0)


def test_relion_project_layout_paths_relative_to_parent(tmp_path):
    _stack(tmp_path / "Extract" / "job005" / "mic1.mrcs", 3, value=100)
    star = tmp_path / "Refine3D" / "job010" / "run_data.star"
    names = ["2@Extract/job005/mic1.mrcs", "1@Extract/job005/mic1.mrcs"]
    write_star(star, pd.DataFrame({"rlnImageName": names}))
    source = open_images(star)
    np.testing.assert_array_equal(source.read([0, 1])[:, 0, 0], [101, 100])
    assert "parent folder" in source.describe()


def test_datadir_takes_priority_and_basename_fallback(tmp_path):
    _stack(tmp_path / "a.mrcs", 2, value=0)
    _stack(tmp_path / "data" / "a.mrcs", 2, value=50)
    star = write_star(tmp_path / "p.star", pd.DataFrame({"rlnImageName": ["2@a.mrcs"]}))
    assert open_images(star).read([0])[0, 0, 0] == 1
    assert open_images(star, datadir=tmp_path / "data").read([0])[0, 0, 0] == 51
    # a path from another machine: only its file name is found inside datadir
    star = write_star(tmp_path / "q.star", pd.DataFrame({"rlnImageName": ["1@/old/disk/project/a.mrcs"]}))
    assert open_images(star, datadir=tmp_path / "data").read([0])[0, 0, 0] == 50
    with pytest.raises(InputError, match=r"/old/disk/project/a.mrcs"):
        open_images(star)


def test_cs_paths_relative_to_project_folder(tmp_path):
    _stack(tmp_path / "J3" / "extract" / "p.mrc", 4, value=10)
    dtype = [("blob/path", "S40"), ("blob/idx", "<u4"), ("blob/psize_A", "<f4")]
    array = np.zeros(2, dtype=dtype)
    array["blob/path"] = [b">J3/extract/p.mrc", b"J3/extract/p.mrc"]
    array["blob/idx"] = [3, 0]  # 0-based
    array["blob/psize_A"] = 1.5
    from cryoscape.io.cs import write_cs

    path = write_cs(tmp_path / "J9" / "particles.cs", array)
    source = open_images(path)
    np.testing.assert_array_equal(source.read([0, 1])[:, 0, 0], [13, 10])
    assert source.pixel_size_angstrom == 1.5


# --- bad inputs -----------------------------------------------------------------------------------

def test_row_past_end_of_stack(tmp_path):
    _stack(tmp_path / "s.mrcs", 10)
    names = ["3@s.mrcs", "20@s.mrcs", "1@s.mrcs"]
    star = write_star(tmp_path / "p.star", pd.DataFrame({"rlnImageName": names}))
    with pytest.raises(InputError) as info:
        open_images(star)
    message = str(info.value)
    assert str(star) in message and "row 2" in message and "image 20" in message
    assert "s.mrcs" in message and "holds only 10 images" in message


def test_mixed_box_sizes(tmp_path):
    _stack(tmp_path / "a.mrcs", 2, box=8)
    _stack(tmp_path / "b.mrcs", 2, box=10)
    star = write_star(tmp_path / "p.star", pd.DataFrame({"rlnImageName": ["1@a.mrcs", "1@b.mrcs"]}))
    with pytest.raises(InputError, match=r"different box sizes: 8×8 px in .*a.mrcs, 10×10 px in .*b.mrcs"):
        open_images(star)
    txt = tmp_path / "list.txt"
    txt.write_text("a.mrcs\nb.mrcs\n")
    with pytest.raises(InputError, match="different box sizes"):
        open_images(txt)


def test_missing_stack_names_file_and_paths_tried(tmp_path):
    star = write_star(tmp_path / "p.star", pd.DataFrame({"rlnImageName": ["1@Extract/gone.mrcs"]}))
    with pytest.raises(InputError) as info:
        open_images(star, datadir=tmp_path)
    message = str(info.value)
    assert "Extract/gone.mrcs" in message and "row 1" in message
    assert str(tmp_path / "Extract" / "gone.mrcs") in message and str(tmp_path / "gone.mrcs") in message
    assert "--datadir" in message
    txt = tmp_path / "l.txt"
    txt.write_text("# stacks\n\nmissing.mrcs\n")
    with pytest.raises(InputError, match=r"'missing.mrcs' \(line 3\) not found"):
        open_images(txt)


def test_bad_image_names_and_columns(tmp_path):
    _stack(tmp_path / "s.mrcs", 2)
    star = write_star(tmp_path / "a.star", pd.DataFrame({"rlnImageName": ["1@s.mrcs", "x@s.mrcs"]}))
    with pytest.raises(InputError, match=r"row 2: rlnImageName 'x@s.mrcs'"):
        open_images(star)
    star = write_star(tmp_path / "b.star", pd.DataFrame({"rlnImageName": ["0@s.mrcs"]}))
    with pytest.raises(InputError, match="start at 1"):
        open_images(star)
    star = write_star(tmp_path / "c.star", pd.DataFrame({"rlnMicrographName": ["m.mrc"]}))
    with pytest.raises(InputError, match="no rlnImageName"):
        open_images(star)


def test_bad_particle_files(tmp_path):
    with pytest.raises(InputError, match="particle file not found"):
        open_images(tmp_path / "none.mrcs")
    other = tmp_path / "x.h5"
    other.write_bytes(b"")
    with pytest.raises(InputError, match=r"unknown particle file type '.h5'"):
        open_images(other)
    write_mrc(tmp_path / "odd.mrcs", np.zeros((2, 9, 9), np.float32), 1.0)
    with pytest.raises(InputError, match="even"):
        open_images(tmp_path / "odd.mrcs")
    with pytest.raises(InputError, match="data directory not found"):
        open_images(tmp_path / "odd.mrcs", datadir=tmp_path / "nowhere")


def test_nan_image_in_a_star_listed_stack(tmp_path):
    images = np.zeros((3, 8, 8), np.float32)
    images[1, 4, 4] = np.nan
    write_mrc(tmp_path / "s.mrcs", images, 1.0)
    star = write_star(tmp_path / "p.star", pd.DataFrame({"rlnImageName": ["1@s.mrcs", "2@s.mrcs"]}))
    source = open_images(star)
    source.read([0])
    with pytest.raises(InputError, match=r"s.mrcs: image/section 1 .*NaN"):
        source.read([1])


def test_absolute_paths_in_star(tmp_path):
    stack = _stack(tmp_path / "abs" / "s.mrcs", 2, value=7)
    names = [f"2@{os.fspath(stack)}"]
    star = write_star(tmp_path / "other" / "p.star", pd.DataFrame({"rlnImageName": names}))
    assert open_images(star).read([0])[0, 0, 0] == 8
