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
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"not a readable cryoSPARC .cs file ({exc})", path=path,
                         fix="give a .cs file exported by cryoSPARC") from exc
    if not isinstance(array, np.ndarray) or array.dtype.names is None or array.ndim != 1:
        raise InputError("not a cryoSPARC .cs file: expected a 1-D structured array", path=path,
                         fix="give a .cs file exported by cryoSPARC")
    return array


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
    decoded = np.array([(u.decode() if isinstance(u, bytes) else str(u)).lstrip(">") for u in unique],
                       dtype=object)
    return decoded[inverse.reshape(-1)]
