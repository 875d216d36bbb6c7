"""MRC reading/writing: values, header fields, modes, laziness, atomicity, header quirks and bad files."""

from __future__ import annotations

import time
import warnings

import mrcfile
import numpy as np
import pytest

from cryoscape.errors import InputError
from cryoscape.io.mrc import HEADER_BYTES, IMOD_STAMP, MrcStackReader, read_header, read_mrc, write_mrc


def _mrcfile_data(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # relion31.mrcs lacks the MAP id: mrcfile warns in permissive mode
        with mrcfile.open(path, permissive=True) as mrc:
            return np.array(mrc.data), mrc.voxel_size, mrc.header.copy()


def test_write_read_volume_round_trip_with_voxel_size(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(8, 10, 12)).astype(np.float32)  # (z, y, x), deliberately not a cube
    path = write_mrc(tmp_path / "vol.mrc", vol, voxel_size_angstrom=1.7)
    data, header = read_mrc(path)
    np.testing.assert_array_equal(data, vol)
    assert data.dtype == np.float32
    assert header.voxel_size_angstrom == pytest.approx(1.7)
    assert header.shape == (8, 10, 12)
    # an independent reader sees the same: data in (z, y, x), voxel size, origin 0, float32 mode
    ref, voxel, raw = _mrcfile_data(path)
    np.testing.assert_array_equal(ref, vol)
    assert (voxel.x, voxel.y, voxel.z) == pytest.approx((1.7, 1.7, 1.7))
    assert (raw.nx, raw.ny, raw.nz) == (12, 10, 8)
    assert int(raw.mode) == 2
    assert (float(raw.origin.x), float(raw.origin.y), float(raw.origin.z)) == (0.0, 0.0, 0.0)
    assert not header.is_image_stack


def test_write_stack_marks_image_stack_and_pixel_size(tmp_path):
    stack = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    path = write_mrc(tmp_path / "s.mrcs", stack, voxel_size_angstrom=2.5)
    _, voxel, raw = _mrcfile_data(path)
    assert int(raw.ispg) == 0 and int(raw.mz) == 1
    assert voxel.x == pytest.approx(2.5)
    reader = MrcStackReader(path)
    assert (reader.n, reader.box_size, reader.pixel_size_angstrom) == (3, 4, 2.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.int8, np.uint8, np.uint16])
def test_modes_are_readable_as_float32(tmp_path, dtype):
    values = np.arange(-8, 56, dtype=np.float64).reshape(1, 8, 8)
    if np.issubdtype(dtype, np.unsignedinteger):
        values = values + 8
    path = write_mrc(tmp_path / "m.mrcs", values, voxel_size_angstrom=1.0, dtype=dtype)
    data, _ = read_mrc(path)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, values.astype(np.float32))
    np.testing.assert_array_equal(MrcStackReader(path).read([0]), values.astype(np.float32))


def test_integer_write_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValueError, match="range of int8"):
        write_mrc(tmp_path / "x.mrc", np.full((2, 2, 2), 300.0), 1.0, dtype=np.int8)


def test_imod_unsigned_bytes_mode0(tmp_path):
    """IMOD marks mode-0 files as unsigned unless bit 0 of imodFlags is set."""
    raw = np.array([[[0, 100], [200, 255]]], dtype=np.uint8)
    path = tmp_path / "u8.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(raw.view(np.int8))
    with open(path, "r+b") as handle:  # imodStamp, imodFlags at bytes 152-159 (little-endian file)
        handle.seek(152)
        handle.write(np.array([IMOD_STAMP, 0], dtype="<i4").tobytes())
    data, header = read_mrc(path)
    assert header.mode == 0
    np.testing.assert_array_equal(data, raw.astype(np.float32))
    with open(path, "r+b") as handle:
        handle.seek(156)
        handle.write(np.array([1], dtype="<i4").tobytes())  # bit 0 set: signed
    data, _ = read_mrc(path)
    np.testing.assert_array_equal(data, raw.view(np.int8).astype(np.float32))


def test_non_standard_axis_order_is_reordered(tmp_path):
    """Columns along z, rows along y, sections along x (mapc, mapr, maps = 3, 2, 1)."""
    stored = np.random.default_rng(1).normal(size=(4, 5, 6)).astype(np.float32)  # (sections, rows, cols)
    path = tmp_path / "axes.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(stored)
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    data, header = read_mrc(path)
    # out[z, y, x] = stored[x, y, z]
    np.testing.assert_array_equal(data, stored.transpose(2, 1, 0))
    assert header.shape == (6, 5, 4)
    lazy, _ = read_mrc(path, mmap=True)
    np.testing.assert_array_equal(np.asarray(lazy), stored.transpose(2, 1, 0))


def test_atomic_write_keeps_old_file_on_failure_and_leaves_no_temp(tmp_path):
    path = tmp_path / "v.mrc"
    write_mrc(path, np.ones((2, 2, 2), np.float32), 1.0)
    with pytest.raises(ValueError):
        write_mrc(path, np.full((2, 2, 2), 1e6), 1.0, dtype=np.int16)
    data, _ = read_mrc(path)
    np.testing.assert_array_equal(data, np.ones((2, 2, 2)))
    write_mrc(path, np.zeros((2, 2, 2), np.float32), 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]


def test_mmap_read_is_lazy_memmap(tmp_path):
    vol = np.random.default_rng(2).normal(size=(4, 6, 6)).astype(np.float32)
    path = write_mrc(tmp_path / "v.mrc", vol, 1.0)
    data, _ = read_mrc(path, mmap=True)
    assert isinstance(data, np.memmap)
    np.testing.assert_array_equal(data[2], vol[2])


def test_stack_reader_reads_only_requested_images_of_a_10gb_stack(tmp_path):
    """A sparse 10.5 GB stack: reading one image must be instant (nothing else is read)."""
    n, box = 40_000, 256
    path = tmp_path / "huge.mrcs"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((1, box, box), np.float32))
        mrc.header.nz = n
        mrc.header.mz = 1
    image = np.arange(box * box, dtype=np.float32).reshape(box, box)
    with open(path, "r+b") as handle:
        handle.truncate(HEADER_BYTES + n * box * box * 4)  # sparse: no data written
        handle.seek(HEADER_BYTES + (n - 2) * box * box * 4)
        handle.write(image.tobytes())
    assert path.stat().st_size > 10e9
    start = time.perf_counter()
    reader = MrcStackReader(path)
    got = reader.read([n - 2, 5, n - 2])
    assert time.perf_counter() - start < 2.0
    assert reader.n == n and got.shape == (3, box, box) and got.dtype == np.float32
    np.testing.assert_array_equal(got[0], image)
    np.testing.assert_array_equal(got[2], image)
    np.testing.assert_array_equal(got[1], 0)


def test_stack_reader_order_repeats_and_pickling(tmp_path):
    import pickle

    stack = np.random.default_rng(3).normal(size=(7, 4, 4)).astype(np.float32)
    path = write_mrc(tmp_path / "s.mrcs", stack, 1.0)
    reader = MrcStackReader(path)
    order = [6, 0, 3, 3, 1]
    np.testing.assert_array_equal(reader.read(order), stack[order])
    np.testing.assert_array_equal(reader.read(slice(2, 5)), stack[2:5])
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._data is None
    np.testing.assert_array_equal(clone.read([4]), stack[[4]])
    with pytest.raises(IndexError, match="out of range"):
        reader.read([7])


# --- header quirks of real files ------------------------------------------------------------------

def test_spike_and_50s_volumes_with_non_cubic_headers(fixtures_dir):
    for name, shape, voxel in [("spike-vol.mrc", (128, 16, 16), 8.0), ("50S-vol.mrc", (128, 32, 32), 4.0)]:
        data, header = read_mrc(fixtures_dir / name)
        ref, ref_voxel, _ = _mrcfile_data(fixtures_dir / name)
        assert data.shape == shape == ref.shape
        np.testing.assert_array_equal(data, ref)
        assert header.voxel_size_angstrom == pytest.approx(voxel) == pytest.approx(float(ref_voxel.x))


def test_stack_without_map_id_and_zero_cell(fixtures_dir):
    # relion31.mrcs: no "MAP " identifier, zero machine stamp
    reader = MrcStackReader(fixtures_dir / "relion31.mrcs")
    assert (reader.n, reader.box_size) == (5, 256)
    ref, _, _ = _mrcfile_data(fixtures_dir / "relion31.mrcs")
    np.testing.assert_array_equal(reader.read(np.arange(5)), ref)
    # empiar_10076_7.mrc: cell 0 → voxel size unknown
    header = read_header(fixtures_dir / "empiar_10076_7.mrc")
    assert header.voxel_size_angstrom is None
    assert header.shape == (7, 320, 320)


# --- bad files ------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        read_mrc(tmp_path / "nope.mrc")
    assert "nope.mrc" in str(info.value)


def test_truncated_file(tmp_path):
    path = write_mrc(tmp_path / "s.mrcs", np.zeros((10, 8, 8), np.float32), 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: HEADER_BYTES + 3 * 8 * 8 * 4])
    with pytest.raises(InputError, match="truncated") as info:
        MrcStackReader(path)
    assert "s.mrcs" in str(info.value) and "8×8×10" in str(info.value)


def test_non_mrc_files(tmp_path):
    short = tmp_path / "short.mrcs"
    short.write_text("hello")
    with pytest.raises(InputError, match="not an MRC file"):
        read_mrc(short)
    text = tmp_path / "text.mrcs"
    text.write_text("this is not an image stack\n" * 100)
    with pytest.raises(InputError, match="MRC"):
        read_mrc(text)


def test_non_square_and_odd_boxes(tmp_path):
    path = write_mrc(tmp_path / "rect.mrcs", np.zeros((2, 8, 10), np.float32), 1.0)
    with pytest.raises(InputError, match=r"square.*10×8"):
        MrcStackReader(path)
    path = write_mrc(tmp_path / "odd.mrcs", np.zeros((2, 9, 9), np.float32), 1.0)
    with pytest.raises(InputError, match="even, got 9"):
        MrcStackReader(path)


def test_nan_images_are_reported_when_read(tmp_path):
    stack = np.zeros((4, 6, 6), np.float32)
    stack[2, 3, 3] = np.nan
    stack[3, 0, 0] = np.inf
    path = write_mrc(tmp_path / "nan.mrcs", stack, 1.0)
    reader = MrcStackReader(path)
    np.testing.assert_array_equal(reader.read([0, 1]), 0)  # good images read fine
    with pytest.raises(InputError, match=r"image/section 2 .*NaN") as info:
        reader.read([1, 2])
    assert "nan.mrcs" in str(info.value)
    with pytest.raises(InputError, match="image/section 3"):
        reader.read([3])
    with pytest.raises(InputError, match="NaN or infinite"):
        read_mrc(path)
