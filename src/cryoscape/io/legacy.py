"""cryoDRGN's pickle files (poses, CTF, particle indices, latents): safe reading and compatible writing.

A pickle can run arbitrary code when loaded, so these files are read with :class:`RestrictedUnpickler`, which
resolves only numpy's array/scalar reconstruction functions, ``numpy.ndarray`` and ``numpy.dtype`` (plus the
built-in ``set``/``frozenset``/``complex`` and ``_codecs.encode`` for the bytes of protocol-2 pickles);
tuples, lists, dicts, strings and numbers need no lookup. Anything else raises
:class:`~cryoscape.errors.InputError` before it is called.

File layouts (cryoDRGN)
-----------------------
* pose pickle: tuple ``(rot (N, 3, 3), trans (N, 2))`` with ``trans`` a fraction of the box (shift in pixels
  ÷ D), or only ``rot``. Converted with ``shifts_px = trans * box_size`` — D, not cryoDRGN's D + 1 of some
  commands.
* CTF pickle: float32 array (N, 9): box (px), pixel size (Å), defocus U (Å), defocus V (Å), defocus angle (°),
  voltage (kV), Cs (mm), amplitude contrast, phase shift (°).
* index pickle: 1-D integer array of 0-based particle indices.
* latent pickle (``z.N.pkl``): float32 array (N, zdim) of latent means; ``train_vae`` writes a second pickle
  into the same file right after it, the log-variances (N, zdim) (:func:`read_z_pickle` reads the means,
  :func:`read_latent_pickle` both).

Written pickles use protocol 4 and contain only numpy arrays and tuples, so cryoDRGN reads them back.
"""

from __future__ import annotations

import builtins
import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open
from cryoscape.io.records import CTFParams, Poses
from cryoscape.io.validation import check_ctf, check_poses

PICKLE_PROTOCOL = 4


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The numpy callables that appear in array pickles, under the module names of numpy 1.x and 2.x."""
    reconstruct = np.empty(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = np.empty(2).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for name in ("set", "frozenset", "complex"):
        allowed[("builtins", name)] = allowed[("__builtin__", name)] = getattr(builtins, name)
    allowed[("_codecs", "encode")] = codecs.encode  # bytes in protocol-2 pickles (str -> bytes only)
    return allowed


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a class or function outside the allowed list."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs numpy arrays, numpy scalars/dtypes and basic Python containers.

    Any other global (a class or function named in the pickle, e.g. ``os.system``) raises
    :class:`RefusedGlobal` (an ``UnpicklingError``) without being imported or called.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refusing to load '{module}.{name}'") from None


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle restricted to numpy arrays, tuples, lists, dicts and basic types.

    Only the first pickle of the file is read (see :func:`load_pickles` for files holding several).

    Raises
    ------
    InputError
        Missing file, or a pickle that names anything else (nothing in it is executed), or a corrupt pickle.
    """
    return _unpickle(Path(path), first_only=True)[0]


def load_pickles(path: str | os.PathLike) -> list[Any]:
    """Every pickle written one after the other into one file (e.g. cryoDRGN's ``z.N.pkl``), in order.

    Restricted as :func:`load_pickle`; a file that ends inside a pickle raises
    :class:`~cryoscape.errors.InputError`.
    """
    return _unpickle(Path(path), first_only=False)


def _unpickle(path: Path, first_only: bool) -> list[Any]:
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the path")
    data = path.read_bytes()
    stream = io.BytesIO(data)
    objects: list[Any] = []
    try:
        while not objects or (not first_only and stream.tell() < len(data)):
            objects.append(RestrictedUnpickler(stream).load())
    except RefusedGlobal as exc:
        raise InputError(f"unsafe or unsupported pickle content: {exc}", path=path,
                         fix="only pickles of numpy arrays/tuples (cryoDRGN pose, CTF, index, z files) are "
                             "accepted") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, UnicodeError, LookupError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise InputError(f"not a readable pickle ({type(exc).__name__}: {detail})", path=path,
                         fix="check that the file is a complete cryoDRGN .pkl") from exc
    return objects


def _save_pickle(path: str | os.PathLike, obj: Any) -> Path:
    """Pickle ``obj`` with protocol 4 atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=PICKLE_PROTOCOL)
    return path


def _float_array(value: Any, path: Path, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        raise InputError(f"expected a numeric numpy array for the {what}, got {type(value).__name__}",
                         path=path, fix="give a cryoDRGN pickle of the right kind")
    return value.astype(np.float64)


def read_pose_pickle(path: str | os.PathLike, box_size: int) -> Poses:
    """Read a cryoDRGN pose pickle.

    Parameters
    ----------
    path
        ``(rot (N,3,3), trans (N,2))`` tuple pickle, or a pickle of ``rot`` alone (shifts are then zero).
    box_size
        Box D (pixels) of the images the poses belong to; ``shifts_px = trans * D``.

    Returns
    -------
    Poses
    """
    path = Path(path)
    if box_size is None or int(box_size) <= 0:
        raise InputError("the box size is needed to convert cryoDRGN translations (fraction of box) to px",
                         path=path, fix="give the box size of the particle images")
    obj = load_pickle(path)
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        rot, trans = obj
    elif isinstance(obj, (tuple, list)) and len(obj) == 1:
        rot, trans = obj[0], None
    elif isinstance(obj, np.ndarray):
        rot, trans = obj, None
    else:
        raise InputError(f"not a cryoDRGN pose pickle: expected (rot, trans), got {type(obj).__name__}",
                         path=path, fix="give a pose .pkl written by cryoDRGN (parse_pose_star/csparc)")
    rot = _float_array(rot, path, "rotations")
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise InputError(f"rotations must have shape (N, 3, 3), got {rot.shape}", path=path,
                         fix="give a cryoDRGN pose pickle")
    if trans is None:
        shifts = np.zeros((rot.shape[0], 2))
    else:
        trans = _float_array(trans, path, "translations")
        if trans.shape != (rot.shape[0], 2):
            raise InputError(f"translations must have shape ({rot.shape[0]}, 2), got {trans.shape}",
                             path=path, fix="give a cryoDRGN pose pickle")
        shifts = trans * int(box_size)
    return check_poses(Poses(rotations=rot, shifts_px=shifts, box_size=int(box_size)), path)


def write_pose_pickle(path: str | os.PathLike, poses: Poses) -> Path:
    """Write poses as cryoDRGN's ``(rot (N,3,3), trans (N,2) = shifts_px / box)`` pickle (float64, as cryoDRGN
    writes poses parsed from a STAR file)."""
    rot = np.ascontiguousarray(poses.rotations, dtype=np.float64)
    trans = np.ascontiguousarray(poses.shifts_px / poses.box_size, dtype=np.float64)
    return _save_pickle(path, (rot, trans))


def read_ctf_pickle(path: str | os.PathLike, allow_overfocus: bool = False) -> CTFParams:
    """Read a cryoDRGN CTF pickle (N, 9) into :class:`CTFParams` (the box must be the same for all rows).

    The values are checked by :func:`cryoscape.io.validation.check_ctf` (``allow_overfocus`` accepts
    defocus ≤ 0, e.g. a zero-defocus dummy CTF).
    """
    path = Path(path)
    arr = _float_array(load_pickle(path), path, "CTF parameters")
    if arr.ndim != 2 or arr.shape[1] != 9:
        raise InputError(f"a cryoDRGN CTF pickle is an (N, 9) array, got shape {arr.shape}", path=path,
                         fix="give the .pkl written by cryoDRGN parse_ctf_star/parse_ctf_csparc")
    boxes = np.unique(arr[:, 0])
    if boxes.size != 1 or not np.isfinite(boxes[0]) or boxes[0] <= 0 or boxes[0] != np.round(boxes[0]):
        raise InputError(f"column 0 (box size) must hold one positive integer, got {boxes[:5].tolist()}",
                         path=path, fix="all particles of one CTF file must share a box size")
    ctf = CTFParams(
        pixel_size_angstrom=arr[:, 1], defocus_u_angstrom=arr[:, 2], defocus_v_angstrom=arr[:, 3],
        defocus_angle_deg=arr[:, 4], voltage_kv=arr[:, 5], cs_mm=arr[:, 6], amplitude_contrast=arr[:, 7],
        phase_shift_deg=arr[:, 8], box_size=int(boxes[0]))
    return check_ctf(ctf, path, allow_overfocus=allow_overfocus)


def ctf_to_array(ctf: CTFParams) -> np.ndarray:
    """cryoDRGN's (N, 9) float32 layout of ``ctf`` (the B-factor is not part of it)."""
    cols = [np.full(len(ctf), ctf.box_size, dtype=np.float64), ctf.pixel_size_angstrom,
            ctf.defocus_u_angstrom, ctf.defocus_v_angstrom, ctf.defocus_angle_deg, ctf.voltage_kv, ctf.cs_mm,
            ctf.amplitude_contrast,
            ctf.phase_shift_deg]
    return np.ascontiguousarray(np.stack(cols, axis=1), dtype=np.float32)


def write_ctf_pickle(path: str | os.PathLike, ctf: CTFParams) -> Path:
    """Write ``ctf`` as cryoDRGN's (N, 9) float32 pickle (see the module docstring)."""
    return _save_pickle(path, ctf_to_array(ctf))


def _as_index_array(values: np.ndarray, path: Path) -> np.ndarray:
    try:
        values = np.asarray(values)
    except (ValueError, TypeError):
        raise InputError(f"not an index list: a {type(values).__name__} of mixed items", path=path,
                         fix="an index file holds a 1-D list of 0-based integers") from None
    if values.ndim != 1:
        raise InputError(f"an index file holds a 1-D list of integers, got shape {values.shape}", path=path,
                         fix="write one 0-based index per entry")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise InputError("index values must be integers", path=path, fix="write 0-based integer indices")
    elif values.dtype.kind not in "iu" and values.size:
        raise InputError(f"index values must be integers, got dtype {values.dtype}", path=path,
                         fix="write 0-based integer indices")
    index = values.astype(np.int64)
    if index.size and index.min() < 0:
        raise InputError(f"negative particle index {int(index.min())}", path=path,
                         fix="indices are 0-based positions (0, 1, ...)")
    return index


def read_index(path: str | os.PathLike) -> np.ndarray:
    """Read 0-based particle indices from ``.txt`` (whitespace separated), ``.npy`` or ``.pkl``.

    Returns
    -------
    ndarray, shape (K,), int64
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("index file not found", path=path, fix="check the path given to --ind")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return _as_index_array(load_pickle(path), path)
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"not a numeric .npy file ({exc})", path=path,
                             fix="save indices with numpy.save") from exc
        return _as_index_array(values, path)
    try:
        tokens = path.read_text().split()
    except UnicodeDecodeError:
        raise InputError("not a text file of indices (binary content)", path=path,
                         fix="a .txt index file holds 0-based integers separated by whitespace; "
                             "use .npy or .pkl for binary files") from None
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise InputError(f"'{bad}' is not an integer index", path=path,
                         fix="a .txt index file holds 0-based integers separated by whitespace") from None
    return _as_index_array(values, path)


def write_index(path: str | os.PathLike, index: np.ndarray) -> Path:
    """Write 0-based indices as cryoDRGN's index pickle (int64 1-D array), or as text for a ``.txt`` path."""
    path = Path(path)
    index = np.asarray(index, dtype=np.int64).reshape(-1)
    if path.suffix.lower() == ".txt":
        with atomic_open(path, "w") as handle:
            handle.write("\n".join(str(int(i)) for i in index) + ("\n" if index.size else ""))
        return path
    return _save_pickle(path, index)


def read_z_pickle(path: str | os.PathLike) -> np.ndarray:
    """Read a cryoDRGN latent pickle: float array (N, zdim) (a 1-D array is read as zdim = 1)."""
    path = Path(path)
    z = _float_array(load_pickle(path), path, "latent encodings")
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise InputError(f"latent encodings must be an (N, zdim) array, got shape {z.shape}", path=path,
                         fix="give a cryoDRGN z.<epoch>.pkl file")
    return z.astype(np.float32)


def read_latent_pickle(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read cryoDRGN ``train_vae``'s ``z.N.pkl``: the latent means, then the log-variances.

    Returns
    -------
    mean, logvar : ndarray, shape (N, zdim), float32
        Rows in the order of the particles cryoDRGN trained on.

    Raises
    ------
    InputError
        Not two (N, zdim) float arrays of the same shape (e.g. a z file holding only means).
    """
    path = Path(path)
    objects = load_pickles(path)
    if len(objects) != 2:
        raise InputError(f"expected two pickled arrays (latent means, then log-variances), found {len(objects)}",
                         path=path, fix="give the z.N.pkl written by cryodrgn train_vae")
    mean, logvar = (_float_array(obj, path, what) for obj, what in zip(objects, ("latent means",
                                                                                 "latent log-variances")))
    mean, logvar = (a[:, None] if a.ndim == 1 else a for a in (mean, logvar))
    if mean.ndim != 2 or mean.shape != logvar.shape:
        raise InputError(f"latent means {mean.shape} and log-variances {logvar.shape} are not two (N, zdim) "
                         "arrays of one shape", path=path, fix="give the z.N.pkl written by cryodrgn train_vae")
    return mean.astype(np.float32), logvar.astype(np.float32)


def write_z_pickle(path: str | os.PathLike, z: np.ndarray) -> Path:
    """Write latent encodings (N, zdim) as a float32 pickle, as cryoDRGN does."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (N, zdim), got {z.shape}")
    return _save_pickle(path, np.ascontiguousarray(z))
