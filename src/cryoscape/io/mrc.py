"""MRC volumes and particle stacks: eager or memory-mapped reads, atomic writes.

Arrays are numpy in the order of the file's sections: a volume is ``(z, y, x)``, a stack of images is
``(n, y, x)`` (row = y, column = x). Files whose axis map (``mapc, mapr, maps``) is not the usual ``1, 2,
3`` are reordered to ``(z, y, x)`` by :func:`read_mrc`.

Reads never hold more than what was asked for: :class:`MrcStackReader` memory-maps the data block and copies
only the requested images, so one image of a 10 GB stack costs one image of memory. Writes go to a temporary
file in the destination folder that is renamed over the destination only once complete (:func:`write_mrc`).

Header quirks handled here (all seen in files written by real programs): a missing ``MAP`` identifier or a
zero machine stamp (read as little-endian), a zero cell (voxel size unknown → ``None``), cells that are not
cubes (``spike-vol.mrc``: 16 × 16 × 128 voxels of 8 Å), sampling ``mx = my = mz = 1`` with a cell of 1
(voxel size 1).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_write

HEADER_BYTES = 1024
IMOD_STAMP = 1146047817

# MRC mode -> numpy dtype (little-endian; byte order fixed up from the header)
_MODE_DTYPES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
_WRITE_DTYPES = (np.float32, np.float16, np.int16, np.int8, np.uint8, np.uint16)


@dataclass(frozen=True)
class MrcHeader:
    """What cryoscape uses from an MRC header.

    Attributes
    ----------
    voxel_size_angstrom : float or None
        Voxel (pixel) size along x in Å (``cella.x / mx``); ``None`` when the header has no cell.
    shape : tuple of int
        Shape of the data as returned by :func:`read_mrc`: ``(nz, ny, nx)`` (sections, rows, columns).
    mode : int
        MRC data mode (0 int8 or uint8, 1 int16, 2 float32, 6 uint16, 12 float16).
    dtype : numpy dtype
        Dtype of the values stored in the file (with its byte order).
    voxel_size_xyz_angstrom : tuple of float or None
        Voxel size along x, y and z (Å); a stack has its section spacing here.
    origin_angstrom : tuple of float
        The header's ``origin`` (x, y, z) in Å.
    axis_order : tuple of int
        ``(mapc, mapr, maps)``; ``(1, 2, 3)`` for almost every file.
    is_image_stack : bool
        True when the header marks the file as a stack of 2-D images (``ispg == 0``). Stacks are also often
        written with ``ispg == 1``, so this is informative only.
    data_offset : int
        Byte offset of the first value (1024 + extended header).
    """

    voxel_size_angstrom: float | None
    shape: tuple[int, int, int]
    mode: int
    dtype: np.dtype
    voxel_size_xyz_angstrom: tuple[float, float, float] | None
    origin_angstrom: tuple[float, float, float]
    axis_order: tuple[int, int, int]
    is_image_stack: bool
    data_offset: int


def _mode_dtype(header: np.recarray, mode: int, path: Path) -> np.dtype:
    """Dtype of the stored values, with the file's byte order (header dtype) and IMOD's unsigned-byte flag."""
    if mode not in _MODE_DTYPES:
        raise InputError(f"unsupported MRC data mode {mode} (supported: 0, 1, 2, 6, 12)", path=path,
                         fix="convert the file to float32 MRC (mode 2)")
    base = _MODE_DTYPES[mode]
    order = header.mode.dtype.byteorder
    if mode == 0:
        # IMOD stamp and flags (bytes 152-159, inside extra2): unsigned bytes unless bit 0 of the flags is set
        extra = header.extra2.tobytes()
        stamp, flags = np.frombuffer(extra[40:48], dtype=np.dtype(np.int32).newbyteorder(order))
        if int(stamp) == IMOD_STAMP and not (int(flags) & 1):
            base = np.uint8
    return np.dtype(base).newbyteorder(order)


def read_header(path: str | os.PathLike) -> MrcHeader:
    """Read and check the header of an MRC file.

    Parameters
    ----------
    path
        An ``.mrc``/``.mrcs`` file.

    Returns
    -------
    MrcHeader

    Raises
    ------
    InputError
        The file is missing, is not an MRC file (implausible dimensions or mode) or is shorter than its
        header says.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the path")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise InputError(f"not an MRC file: only {size} bytes, shorter than the 1024-byte header", path=path,
                         fix="check that the file was completely copied")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing MAP id / machine stamp: accepted, checked below
            with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
                header = mrc.header.copy()
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable MRC file ({exc})", path=path, fix="check the file format") from exc
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    mode = int(header.mode)
    nsymbt = int(header.nsymbt)
    if min(nx, ny, nz) < 1 or max(nx, ny, nz) > 2**20 or nsymbt < 0:
        raise InputError(f"not an MRC file: implausible header dimensions nx={nx}, ny={ny}, nz={nz}",
                         path=path, fix="check that the file is an MRC image stack or volume")
    dtype = _mode_dtype(header, mode, path)
    offset = HEADER_BYTES + nsymbt
    needed = offset + nx * ny * nz * dtype.itemsize
    if size < needed:
        raise InputError(f"truncated MRC file: {size} bytes but the header ({nx}×{ny}×{nz}, mode {mode}) "
                         f"needs {needed}", path=path,
                         fix="the file was probably not completely written or copied")
    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    if sorted(axis_order) != [1, 2, 3]:
        axis_order = (1, 2, 3)  # absent or corrupt axis map: take the standard order
    sampling = np.array([header.mx, header.my, header.mz], dtype=np.float64)
    cell = np.array([header.cella.x, header.cella.y, header.cella.z], dtype=np.float64)
    if np.all(cell > 0) and np.all(sampling > 0):
        voxel = cell / sampling
        voxel_xyz = (float(voxel[0]), float(voxel[1]), float(voxel[2]))
    elif cell[0] > 0 and sampling[0] > 0:
        voxel_xyz = (float(cell[0] / sampling[0]),) * 3
    else:
        voxel_xyz = None
    # returned data are (z, y, x); with a non-standard axis map the stored (sections, rows, cols) get permuted
    dims = {axis_order[0]: nx, axis_order[1]: ny, axis_order[2]: nz}
    shape = (dims[3], dims[2], dims[1])
    return MrcHeader(
        voxel_size_angstrom=None if voxel_xyz is None else voxel_xyz[0],
        shape=shape,
        mode=mode,
        dtype=dtype,
        voxel_size_xyz_angstrom=voxel_xyz,
        origin_angstrom=(float(header.origin.x), float(header.origin.y), float(header.origin.z)),
        axis_order=axis_order,
        is_image_stack=int(header.ispg) == 0,
        data_offset=offset,
    )


def _stored_shape(header: MrcHeader) -> tuple[int, int, int]:
    """(sections, rows, columns) as stored in the file."""
    dims = {3: header.shape[0], 2: header.shape[1], 1: header.shape[2]}
    mapc, mapr, maps = header.axis_order
    return dims[maps], dims[mapr], dims[mapc]


def _to_zyx(stored: np.ndarray, axis_order: tuple[int, int, int]) -> np.ndarray:
    """Permute (sections, rows, columns) to (z, y, x) following the header's axis map."""
    if axis_order == (1, 2, 3):
        return stored
    mapc, mapr, maps = axis_order
    axis_of = {maps: 0, mapr: 1, mapc: 2}  # spatial axis (1=x, 2=y, 3=z) -> stored axis
    return stored.transpose(axis_of[3], axis_of[2], axis_of[1])


def _check_finite(images: np.ndarray, path: Path, first_index: np.ndarray | None = None) -> None:
    bad = ~np.isfinite(images.reshape(images.shape[0], -1)).all(axis=1)
    if bad.any():
        where = int(np.flatnonzero(bad)[0])
        label = where if first_index is None else int(first_index[where])
        raise InputError(f"image/section {label} (0-based) contains NaN or infinite values", path=path,
                         fix="remove or repair the bad images (e.g. re-extract the particles)")


def read_mrc(path: str | os.PathLike, mmap: bool = False) -> tuple[np.ndarray, MrcHeader]:
    """Read an MRC volume or stack.

    Parameters
    ----------
    path
        ``.mrc`` or ``.mrcs`` file.
    mmap
        If True, return a read-only ``numpy.memmap`` in the file's dtype (nothing is read until indexed; no
        NaN check). If False, read everything into a float32 array and check that all values are finite.

    Returns
    -------
    data : ndarray, shape (nz, ny, nx)
        float32 (or memmap of the stored dtype), ordered (z, y, x) — for a stack (n, y, x).
    header : MrcHeader

    Raises
    ------
    InputError
        Missing, truncated or non-MRC file; NaN/inf values (eager read only).
    """
    path = Path(path)
    header = read_header(path)
    stored_shape = _stored_shape(header)
    if mmap:
        stored = np.memmap(path, dtype=header.dtype, mode="r", offset=header.data_offset, shape=stored_shape)
        return _to_zyx(stored, header.axis_order), header
    count = int(np.prod(stored_shape))
    with open(path, "rb") as handle:
        handle.seek(header.data_offset)
        stored = np.fromfile(handle, dtype=header.dtype, count=count).reshape(stored_shape)
    data = np.ascontiguousarray(_to_zyx(stored, header.axis_order), dtype=np.float32)
    _check_finite(data, path)
    return data, header


class MrcStackReader:
    """Lazy reader of a stack of square images (one ``.mrcs``/``.mrc`` file).

    Only the header is read on construction; :meth:`read` memory-maps the data block (once, on first use) and
    copies only the requested images. The reader can be pickled (for data-loader worker processes): the
    mapping is dropped and re-created in the new process.

    Parameters
    ----------
    path
        The stack.

    Attributes
    ----------
    path : Path
    n : int
        Number of images.
    box_size : int
        Image side D (pixels); images are D × D with D even.
    header : MrcHeader

    Raises
    ------
    InputError
        Missing/truncated/non-MRC file, images that are not square, odd box size, non-standard axis order.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.header = read_header(self.path)
        n, ny, nx = self.header.shape
        if self.header.axis_order != (1, 2, 3):
            raise InputError("image stacks must have the standard axis order (mapc, mapr, maps) = (1, 2, 3), "
                             f"got {self.header.axis_order}", path=self.path,
                             fix="rewrite the stack in standard order")
        if nx != ny:
            raise InputError(f"particle images must be square, got {nx}×{ny} pixels (x × y)", path=self.path,
                             fix="re-extract the particles with a square box")
        if nx % 2:
            raise InputError(f"particle box size must be even, got {nx}", path=self.path,
                             fix="re-extract with an even box or crop/pad the images by one pixel")
        self.n = n
        self.box_size = nx
        self._data: np.ndarray | None = None

    @property
    def pixel_size_angstrom(self) -> float | None:
        """Pixel size from the header (Å), or None when the header has none. Often a placeholder (1.0)."""
        return self.header.voxel_size_angstrom

    def _mapped(self) -> np.ndarray:
        if self._data is None:
            self._data = np.memmap(self.path, dtype=self.header.dtype, mode="r",
                                   offset=self.header.data_offset,
                                   shape=(self.n, self.box_size, self.box_size))
        return self._data

    def read(self, indices: np.ndarray | list[int] | slice, check_finite: bool = True) -> np.ndarray:
        """Read images by 0-based index.

        Parameters
        ----------
        indices
            0-based positions in this stack, any order, repeats allowed (or a slice).
        check_finite
            Raise InputError if a returned image contains NaN/inf.

        Returns
        -------
        ndarray, shape (k, D, D), float32
            The images in the requested order.
        """
        if isinstance(indices, slice):
            indices = np.arange(self.n)[indices]
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.n):
            bad = int(index[(index < 0) | (index >= self.n)][0])
            raise IndexError(f"{self.path}: image index {bad} out of range for a stack of {self.n} images")
        data = self._mapped()
        unique, inverse = np.unique(index, return_inverse=True)  # sorted reads: sequential access on disk
        if unique.size and unique[-1] - unique[0] + 1 == unique.size:
            block = np.asarray(data[unique[0]:unique[-1] + 1], dtype=np.float32)
        else:
            block = np.asarray(data[unique], dtype=np.float32)
        images = block[inverse.reshape(-1)] if unique.size != index.size or np.any(unique != index) else block
        images = np.ascontiguousarray(images, dtype=np.float32)
        if check_finite:
            _check_finite(images, self.path, index)
        return images

    def close(self) -> None:
        """Drop the memory map (it is re-created on the next read)."""
        self._data = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_data"] = None
        return state

    def __len__(self) -> int:
        return self.n


def _mrc_mode_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.type not in _WRITE_DTYPES:
        names = ", ".join(np.dtype(d).name for d in _WRITE_DTYPES)
        raise ValueError(f"cannot write MRC values of dtype {dtype.name}; use one of {names}")
    return dtype


def _cast_checked(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if array.size and (np.nanmin(array) < info.min or np.nanmax(array) > info.max):
            raise ValueError(f"values outside the range of {dtype.name} [{info.min}, {info.max}]")
        if np.issubdtype(array.dtype, np.floating):
            array = np.rint(array)
    return np.ascontiguousarray(array, dtype=dtype)


def write_mrc(path: str | os.PathLike, array: np.ndarray, voxel_size_angstrom: float | None = None,
              dtype: np.dtype | type = np.float32, is_image_stack: bool | None = None) -> Path:
    """Write a volume or image stack atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path
        Destination ``.mrc``/``.mrcs``; parent folders are created.
    array : ndarray, shape (nz, ny, nx) or (ny, nx)
        Volume ordered (z, y, x), stack (n, y, x) or a single image.
    voxel_size_angstrom
        Voxel/pixel size written into the header cell (Å); None writes 1.0 (unknown).
    dtype
        Stored dtype: float32 (default), float16, int16, int8, uint16, or uint8 (stored as uint16, mode 6).
        Integer dtypes are rounded and must hold the values.
    is_image_stack
        Mark the file as a stack of 2-D images (``ispg = 0``, section spacing = pixel size). Default: True for
        ``.mrcs`` files, False otherwise (volume, ``ispg = 1``).

    Returns
    -------
    Path
        The written file. The header origin is 0 and the statistics are those of the data.
    """
    path = Path(path)
    dtype = _mrc_mode_dtype(dtype)
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"write_mrc expects a 2-D or 3-D array, got shape {array.shape}")
    data = _cast_checked(array, dtype)
    if is_image_stack is None:
        is_image_stack = path.suffix.lower() == ".mrcs"

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mrcfile warns when it widens uint8 to uint16
            with mrcfile.new(tmp, overwrite=True) as mrc:
                mrc.set_data(data)
                if is_image_stack and data.ndim == 3:
                    mrc.set_image_stack()
                elif data.ndim == 3:
                    mrc.set_volume()
                mrc.voxel_size = 1.0 if voxel_size_angstrom is None else float(voxel_size_angstrom)
                mrc.header.origin.x = mrc.header.origin.y = mrc.header.origin.z = 0.0
                mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0

    return atomic_write(path, write)
