"""Write learned poses into a copy of a RELION STAR or cryoSPARC ``.cs`` particle file.

The rows given (0-based positions in the file) are written in file order with every other column or field
unchanged; only the pose fields are replaced:

* STAR: ``rlnAngleRot/Tilt/Psi`` (degrees, RELION ZYZ of the rotation matrix, ``geometry.rotations``) and
  ``rlnOriginXAngst/YAngst`` (Å; RELION 3.1+ files with an optics table) or ``rlnOriginX/Y`` (pixels of the
  file's images; RELION 3.0 files, the pixel size from the file). Shifts keep RELION's sign (``io.records``).
* cryoSPARC: ``alignments3D/pose`` (axis-angle of the matrix's transpose, radians, float32) and
  ``alignments3D/shift`` (pixels of ``alignments3D/psize_A``, else ``blob/psize_A``); fields that are missing
  are added.

Shifts are passed in Å, so poses learned on a downsampled stack apply to the full-size file unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.lib import recfunctions

from cryoscape.errors import InputError
from cryoscape.geometry.rotations import matrix_to_euler, matrix_to_quaternion
from cryoscape.io.cs import read_cs, write_cs
from cryoscape.io.star import read_star, write_star


def _check(rotations: np.ndarray, shifts_angstrom: np.ndarray, rows: np.ndarray, n_total: int,
           path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.asarray(rows, dtype=np.int64)
    rot = np.asarray(rotations, dtype=np.float64)
    sh = np.asarray(shifts_angstrom, dtype=np.float64)
    if rot.shape != (rows.size, 3, 3) or sh.shape != (rows.size, 2):
        raise InputError(f"{rows.size} rows but rotations {rot.shape} and shifts {sh.shape}")
    if rows.size == 0:
        raise InputError("no poses to write (0 particles)")
    if rows.min() < 0 or rows.max() >= n_total:
        raise InputError(f"the poses are for particle {int(rows.max())} (0-based) but the file has {n_total} rows",
                         path=path, fix="give the particle file the run was trained on (or its full-size original)")
    if np.unique(rows).size != rows.size:
        raise InputError("the poses name a particle twice", path=path)
    order = np.argsort(rows)
    return rot[order], sh[order], rows[order]


def rotation_vectors(rotations: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (N, 3), radians, of rotation matrices (N, 3, 3) (inverse of ``axis_angle_to_matrix``)."""
    q = matrix_to_quaternion(np.asarray(rotations, dtype=np.float64))
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    norm = np.linalg.norm(q[:, 1:], axis=1)
    angle = 2 * np.arctan2(norm, q[:, 0])
    scale = np.where(norm > 1e-12, angle / np.maximum(norm, 1e-300), 2.0)
    return q[:, 1:] * scale[:, None]


def write_star_poses(source: str | os.PathLike, out: str | os.PathLike, rotations: np.ndarray,
                     shifts_angstrom: np.ndarray, rows: np.ndarray) -> int:
    """Write the rows of STAR ``source`` with the poses given (module docstring); returns rows written.

    Parameters
    ----------
    rotations : ndarray, shape (n, 3, 3)
        RELION rotation matrices.
    shifts_angstrom : ndarray, shape (n, 2)
        (x, y) origins in Å (RELION sign).
    rows : ndarray, shape (n,)
        0-based rows of ``source`` the poses belong to.
    """
    source = Path(source)
    star = read_star(source)
    rot, sh, rows = _check(rotations, shifts_angstrom, rows, len(star), source)
    df = star.particles.iloc[rows].copy().reset_index(drop=True)
    euler = np.degrees(matrix_to_euler(rot))
    for i, name in enumerate(("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")):
        df[name] = euler[:, i]
    if star.optics is not None:
        df["rlnOriginXAngst"] = sh[:, 0]
        df["rlnOriginYAngst"] = sh[:, 1]
        df = df.drop(columns=[c for c in ("rlnOriginX", "rlnOriginY") if c in df.columns])
    else:
        pixel = star.pixel_sizes_angstrom()
        if pixel is None:
            raise InputError("a RELION 3.0 STAR file stores origins in pixels, but it gives no pixel size",
                             path=source, fix="add rlnDetectorPixelSize and rlnMagnification, or use a 3.1 file")
        px = sh / np.asarray(pixel, dtype=np.float64)[rows][:, None]
        df["rlnOriginX"] = px[:, 0]
        df["rlnOriginY"] = px[:, 1]
    write_star(out, df, star.optics)
    return int(rows.size)


def write_cs_poses(source: str | os.PathLike, out: str | os.PathLike, rotations: np.ndarray,
                   shifts_angstrom: np.ndarray, rows: np.ndarray) -> int:
    """Write the records of cryoSPARC ``source`` with the poses given (module docstring); returns rows written.

    Parameters are those of :func:`write_star_poses`.
    """
    source = Path(source)
    array = read_cs(source)
    rot, sh, rows = _check(rotations, shifts_angstrom, rows, len(array), source)
    sub = array[rows].copy()
    names = sub.dtype.names
    if "alignments3D/psize_A" in names:
        pixel = sub["alignments3D/psize_A"].astype(np.float64)
    elif "blob/psize_A" in names:
        pixel = sub["blob/psize_A"].astype(np.float64)
    else:
        raise InputError("the .cs file gives no pixel size (blob/psize_A)", path=source)
    pose = np.swapaxes(rot, -1, -2)
    values = {"alignments3D/pose": rotation_vectors(pose).astype(np.float32),
              "alignments3D/shift": (sh / pixel[:, None]).astype(np.float32)}
    missing = [k for k in values if k not in names]
    if missing:
        dtype = np.dtype(sub.dtype.descr + [(k, "<f4", (values[k].shape[1],)) for k in missing])
        grown = np.zeros(sub.shape, dtype=dtype)
        for name in names:
            grown[name] = sub[name]
        sub = grown
    for key, value in values.items():
        sub[key] = value
    write_cs(out, recfunctions.repack_fields(sub))
    return int(rows.size)
