"""cryoSPARC ``.cs`` files: numpy structured arrays saved with ``numpy.save`` (read without pickle).

Fields used by cryoscape (one row per particle):

* ``blob/path`` (bytes; a leading ``>`` marks an imported path and is dropped), ``blob/idx`` (0-based image
  index in that stack), ``blob/shape`` (D, D), ``blob/psize_A`` (Å/px);
* ``alignments3D/pose`` (axis-angle, radians; RELION matrix = exp-map(pose)ᵀ), ``alignments3D/shift``
  (pixels), ``alignments3D/psize_A`` (Å/px the shift is measured in);
* ``ctf/df1_A``, ``ctf/df2_A`` (Å), ``ctf/df_angle_rad``, ``ctf/accel_kv``, ``ctf/cs_mm``,
  ``ctf/amp_contrast``, ``ctf/phase_shift_rad``, ``ctf/bfactor`` (Å², optional).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open
from cryoscape.io.validation import InvalidMetadataError


def read_cs(path: str | os.PathLike) -> np.ndarray:
    """Read a cryoSPARC ``.cs`` file.

    Returns
    -------
    ndarray, shape (N,)
        Structured array with cryoSPARC's field names (``blob/path``, ``alignments3D/pose``, ...).

    Raises
    ------
    InputError
        Missing file, a file that is not a numpy ``.npy``/``.cs`` (or needs pickle), or not a structured
        array.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("cryoSPARC file not found", path=path, fix="check the path")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged header makes numpy raise parser errors of many kinds
        detail = " ".join(str(exc).split())[:200]
        raise InputError(f"not a readable cryoSPARC .cs file ({type(exc).__name__}: {detail})", path=path,
                         fix="give a .cs file exported by cryoSPARC") from exc
    if not isinstance(array, np.ndarray) or array.dtype.names is None or array.ndim != 1:
        raise InputError("not a cryoSPARC .cs file: expected a 1-D structured array", path=path,
                         fix="give a .cs file exported by cryoSPARC")
    _check_field_types(array, path)
    return array


# numeric fields cryoscape reads, with the number of values each row holds
_NUMERIC_FIELDS = {"blob/idx": 1, "blob/shape": 2, "blob/psize_A": 1, "alignments3D/pose": 3,
                   "alignments3D/shift": 2, "alignments3D/psize_A": 1, "ctf/df1_A": 1, "ctf/df2_A": 1,
                   "ctf/df_angle_rad": 1, "ctf/accel_kv": 1, "ctf/cs_mm": 1, "ctf/amp_contrast": 1,
                   "ctf/phase_shift_rad": 1, "ctf/bfactor": 1}


def _check_field_types(array: np.ndarray, path: Path) -> None:
    """Refuse known fields stored with a non-numeric type or the wrong number of values per row."""
    for name, size in _NUMERIC_FIELDS.items():
        if name not in array.dtype.names:
            continue
        field = array.dtype[name]
        base = field.base if field.subdtype is not None else field
        count = int(np.prod(field.shape)) if field.shape else 1
        if base.kind not in "fiub" or count != size:
            raise InvalidMetadataError(f"field {name} has type {field}, expected {size} number(s) per particle",
                                       path=path, fix="re-export the particles from cryoSPARC")
    if "blob/path" in array.dtype.names and array.dtype["blob/path"].kind not in "SU":
        raise InvalidMetadataError(f"field blob/path has type {array.dtype['blob/path']}, expected text",
                                   path=path, fix="re-export the particles from cryoSPARC")


def write_cs(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a structured array as a ``.cs`` file atomically (``numpy.save`` format, no pickle)."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype.names is None or array.ndim != 1:
        raise ValueError("write_cs expects a 1-D structured array")
    if any(array.dtype[name].hasobject for name in array.dtype.names):
        raise ValueError("a .cs file cannot hold Python objects; store strings as fixed-size bytes ('S64')")
    with atomic_open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    return path


def require_fields(array: np.ndarray, fields: list[str], path: str | os.PathLike | None, what: str,
                   fix: str | None = None) -> None:
    """Raise InputError naming every field of ``fields`` that ``array`` lacks (``what`` needs them)."""
    missing = [name for name in fields if name not in (array.dtype.names or ())]
    if missing:
        raise InputError(f"{what} need the field(s) {', '.join(missing)}, which this .cs file lacks",
                         path=path, fix=fix or "use the particles .cs of a job that produced them")


def blob_paths(array: np.ndarray, path: str | os.PathLike | None = None) -> np.ndarray:
    """``blob/path`` of each particle as ``str`` (object array (N,)), without cryoSPARC's leading ``>``."""
    require_fields(array, ["blob/path", "blob/idx"], path, "particle images")
    raw = array["blob/path"]
    unique, inverse = np.unique(raw, return_inverse=True)
    try:
        decoded = np.array([(u.decode() if isinstance(u, bytes) else str(u)).lstrip(">") for u in unique],
                           dtype=object)
    except UnicodeDecodeError as exc:
        raise InvalidMetadataError(f"blob/path holds a name that is not text ({exc.object[:40]!r})", path=path,
                                   fix="re-export the particles from cryoSPARC") from None
    return decoded[inverse.reshape(-1)]
