"""Poses and CTF parameters from RELION ``.star``, cryoSPARC ``.cs`` or cryoDRGN ``.pkl`` files.

:func:`read_poses` and :func:`read_ctf` pick the reader from the file extension and return the shared records
:class:`~cryoscape.io.records.Poses` and :class:`~cryoscape.io.records.CTFParams` (conventions in DESIGN.md).

Where the file says it, the box size and pixel size come from the file (RELION 3.1+ optics ``rlnImageSize``
and ``rlnImagePixelSize``, RELION 3.0 ``rlnDetectorPixelSize × 10⁴ / rlnMagnification``, cryoSPARC
``blob/shape`` and ``blob/psize_A``, the cryoDRGN CTF table). The arguments ``box_size``,
``pixel_size_angstrom`` and ``amplitude_contrast`` fill in what the file lacks (a RELION 3.0 file has no box
size); when the file has a value that disagrees with the argument, the file wins and a warning says so. The
returned record's ``box_size`` is the box the file describes: after Fourier cropping, convert with
``.rescaled(new_box)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.geometry.rotations import axis_angle_to_matrix, euler_to_matrix
from cryoscape.io.cs import read_cs, require_fields
from cryoscape.io.legacy import read_ctf_pickle, read_pose_pickle
from cryoscape.io.records import CTFParams, Poses
from cryoscape.io.star import StarData, read_star
from cryoscape.io.validation import InvalidMetadataError, check_ctf, check_poses

_EULER_COLUMNS = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".star", ".cs", ".pkl"):
        raise InputError(f"cannot read poses/CTF from a '{suffix}' file", path=path,
                         fix="give a RELION .star, a cryoSPARC .cs or a cryoDRGN .pkl file")
    if not path.is_file():
        raise InputError("file not found", path=path, fix="check the path")
    return suffix


def _fill(file_value: float | None, argument: float | None, what: str, path: Path, fix: str,
          warn: bool = True) -> float:
    """The file's value if any (warning if the argument disagrees and ``warn``), else the argument, else an error.

    Box sizes are filled with ``warn=False``: a file describing another box than the images' is normal after
    downsampling, and the caller rescales the records (``Poses.rescaled``, ``CTFParams.rescaled``).
    """
    if file_value is not None:
        if warn and argument is not None and not np.isclose(float(argument), float(file_value), rtol=1e-4, atol=0):
            warnings.warn(f"{path}: the file gives {what} = {file_value:g}; the value {argument:g} passed "
                          "in is ignored", stacklevel=3)
        return float(file_value)
    if argument is None:
        raise InputError(f"the file does not give the {what}", path=path, fix=fix)
    return float(argument)


def _single(values: np.ndarray | None, what: str, path: Path) -> float | None:
    if values is None:
        return None
    unique = np.unique(values.astype(np.float64))
    if unique.size != 1:
        raise InvalidMetadataError(f"particles have different values of {what}: {unique[:6].tolist()}", path=path,
                         fix=f"bring them to one box with cryoscape downsample, or split the file into subsets "
                             f"with one {what}")
    return float(unique[0])


def _require_columns(star: StarData, columns: list[str], path: Path, what: str) -> None:
    missing = [c for c in columns if not star.has(c)]
    if missing:
        raise InputError(f"{what} need the column(s) {', '.join(missing)}, which the STAR file lacks",
                         path=path,
                         fix="use the particle STAR file of a refinement (e.g. Refine3D run_data.star)")


def _star_box(star: StarData, box_size: int | None, path: Path) -> int:
    box = _single(star.image_sizes(), "box size (rlnImageSize)", path)
    return int(_fill(box, box_size, "box size (rlnImageSize)", path,
                     "RELION 3.0 files do not store it: give the box size of the particle images", warn=False))


def _star_pixel_sizes(star: StarData, pixel_size_angstrom: float | None, path: Path) -> np.ndarray:
    pixel = star.pixel_sizes_angstrom()
    if pixel is None:
        value = _fill(None, pixel_size_angstrom, "pixel size (rlnImagePixelSize or rlnDetectorPixelSize and "
                      "rlnMagnification)", path, "give the pixel size in Å")
        return np.full(len(star), value)
    if pixel_size_angstrom is not None and not np.allclose(pixel, pixel_size_angstrom, rtol=1e-4, atol=0):
        warnings.warn(f"{path}: the file gives pixel sizes {np.unique(pixel)[:6].tolist()} Å; the value "
                      f"{pixel_size_angstrom:g} passed in is ignored", stacklevel=3)
    bad = np.flatnonzero(~(np.isfinite(pixel) & (pixel > 0)))
    if bad.size:
        raise InvalidMetadataError(f"{star.row_label(int(bad[0]))}: pixel size {pixel[bad[0]]:g} Å is not positive",
                         path=path, fix="fix the pixel size in the optics table")
    return pixel


def _star_poses(path: Path, box_size: int | None, pixel_size_angstrom: float | None) -> Poses:
    star = read_star(path)
    _require_columns(star, _EULER_COLUMNS, path, "poses")
    angles_deg = np.stack([star.numeric(c) for c in _EULER_COLUMNS], axis=1)
    rotations = euler_to_matrix(np.deg2rad(angles_deg))
    box = _star_box(star, box_size, path)
    if star.has("rlnOriginXAngst") or star.has("rlnOriginYAngst"):
        _require_columns(star, ["rlnOriginXAngst", "rlnOriginYAngst"], path, "shifts")
        pixel = _star_pixel_sizes(star, pixel_size_angstrom, path)
        origin_angstrom = np.stack([star.numeric("rlnOriginXAngst"), star.numeric("rlnOriginYAngst")], axis=1)
        shifts = origin_angstrom / pixel[:, None]
    elif star.has("rlnOriginX") or star.has("rlnOriginY"):
        _require_columns(star, ["rlnOriginX", "rlnOriginY"], path, "shifts")
        shifts = np.stack([star.numeric("rlnOriginX"), star.numeric("rlnOriginY")], axis=1)
    else:
        warnings.warn(f"{path}: no rlnOriginXAngst/YAngst or rlnOriginX/Y columns; shifts set to 0",
                      stacklevel=3)
        shifts = np.zeros((len(star), 2))
    return check_poses(Poses(rotations=rotations, shifts_px=shifts, box_size=box), path, star.row_label)


def _star_ctf(path: Path, box_size: int | None, pixel_size_angstrom: float | None,
              amplitude_contrast: float | None, allow_overfocus: bool) -> CTFParams:
    star = read_star(path)
    _require_columns(star, ["rlnDefocusU", "rlnDefocusV", "rlnDefocusAngle", "rlnVoltage",
                            "rlnSphericalAberration"], path, "CTF parameters")
    n = len(star)
    box = _star_box(star, box_size, path)
    pixel = _star_pixel_sizes(star, pixel_size_angstrom, path)
    w = star.numeric("rlnAmplitudeContrast")
    if w is None:
        w = np.full(n, _fill(None, amplitude_contrast, "amplitude contrast (rlnAmplitudeContrast)", path,
                             "give it with --amplitude-contrast, e.g. 0.1"))
    elif amplitude_contrast is not None and not np.allclose(w, amplitude_contrast):
        warnings.warn(f"{path}: the file gives rlnAmplitudeContrast; the value {amplitude_contrast:g} "
                      "passed in is ignored", stacklevel=3)

    def column(name: str, default: float = 0.0) -> np.ndarray:
        values = star.numeric(name)
        return np.full(n, default) if values is None else values

    ctf = CTFParams(
        pixel_size_angstrom=pixel, defocus_u_angstrom=column("rlnDefocusU"),
        defocus_v_angstrom=column("rlnDefocusV"), defocus_angle_deg=column("rlnDefocusAngle"),
        voltage_kv=column("rlnVoltage"), cs_mm=column("rlnSphericalAberration"), amplitude_contrast=w,
        phase_shift_deg=column("rlnPhaseShift"), bfactor_angstrom2=column("rlnCtfBfactor"), box_size=box)
    return check_ctf(ctf, path, star.row_label, allow_overfocus)


def _cs_box(array: np.ndarray, box_size: int | None, path: Path) -> int:
    names = array.dtype.names
    shape = array["blob/shape"] if "blob/shape" in names else None
    if shape is not None and shape.size:
        shape = np.asarray(shape).reshape(len(array), -1)
        if np.any(shape[:, 0] != shape[:, -1]):
            raise InvalidMetadataError("blob/shape says the particle images are not square", path=path,
                             fix="re-extract the particles with a square box")
    box = _single(None if shape is None or not shape.size else shape[:, 0], "box size (blob/shape)", path)
    return int(_fill(box, box_size, "box size (blob/shape)", path,
                     "give the box size of the particle images", warn=False))


def _cs_poses(path: Path, box_size: int | None) -> Poses:
    array = read_cs(path)
    names = array.dtype.names
    if "alignments3D/pose" not in names and any(n.startswith("alignments2D/") for n in names):
        raise InputError("this .cs file has only 2-D alignments (alignments2D/*), no 3-D poses", path=path,
                         fix="use the particles .cs of a 3-D refinement job (alignments3D/pose and shift)")
    require_fields(array, ["alignments3D/pose", "alignments3D/shift"], path, "poses")
    pose = np.asarray(array["alignments3D/pose"], dtype=np.float64).reshape(len(array), 3)
    rotations = np.swapaxes(axis_angle_to_matrix(pose), -1, -2)
    shifts = np.asarray(array["alignments3D/shift"], dtype=np.float64).reshape(len(array), 2)
    if "alignments3D/psize_A" in names and "blob/psize_A" in names:
        # shifts are measured in pixels of the alignment; express them in pixels of the images (blob)
        shifts = shifts * (array["alignments3D/psize_A"].astype(np.float64)
                           / array["blob/psize_A"].astype(np.float64))[:, None]
    return check_poses(Poses(rotations=rotations, shifts_px=shifts, box_size=_cs_box(array, box_size, path)),
                       path)


def _cs_ctf(path: Path, box_size: int | None, pixel_size_angstrom: float | None,
            allow_overfocus: bool) -> CTFParams:
    array = read_cs(path)
    fields = ["ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm", "ctf/amp_contrast"]
    require_fields(array, fields, path, "CTF parameters")
    names = array.dtype.names
    n = len(array)
    if "blob/psize_A" in names:
        pixel = array["blob/psize_A"].astype(np.float64)
        if pixel_size_angstrom is not None and not np.allclose(pixel, pixel_size_angstrom, rtol=1e-4, atol=0):
            warnings.warn(f"{path}: the file gives blob/psize_A; the value {pixel_size_angstrom:g} passed "
                          "in is ignored", stacklevel=3)
    else:
        pixel = np.full(n, _fill(None, pixel_size_angstrom, "pixel size (blob/psize_A)", path,
                                 "give the pixel size in Å"))

    def field(name: str) -> np.ndarray:
        return array[name].astype(np.float64) if name in names else np.zeros(n)

    ctf = CTFParams(
        pixel_size_angstrom=pixel, defocus_u_angstrom=field("ctf/df1_A"),
        defocus_v_angstrom=field("ctf/df2_A"), defocus_angle_deg=np.rad2deg(field("ctf/df_angle_rad")),
        voltage_kv=field("ctf/accel_kv"),
        cs_mm=field("ctf/cs_mm"), amplitude_contrast=field("ctf/amp_contrast"),
        phase_shift_deg=np.rad2deg(field("ctf/phase_shift_rad")), bfactor_angstrom2=field("ctf/bfactor"),
        box_size=_cs_box(array, box_size, path))
    return check_ctf(ctf, path, allow_overfocus=allow_overfocus)


def read_poses(path: str | os.PathLike, box_size: int | None = None,
               pixel_size_angstrom: float | None = None) -> Poses:
    """Read particle poses from a RELION ``.star``, cryoSPARC ``.cs`` or cryoDRGN pose ``.pkl``.

    Parameters
    ----------
    path
        The pose file.
    box_size
        Box D (pixels) the file's shifts refer to, when the file does not say (RELION 3.0 star, cryoDRGN
        pickle: required there).
    pixel_size_angstrom
        Pixel size (Å), when a STAR file with shifts in Å does not give it.

    Returns
    -------
    Poses
        RELION rotations ``Euler_angles2matrix(rot, tilt, psi)`` (STAR), exp-map(pose)ᵀ (CS), as stored (PKL);
        shifts in pixels with the file's sign: ``rlnOriginX/YAngst ÷ pixel size`` or ``rlnOriginX/Y`` (STAR),
        ``alignments3D/shift`` (CS), ``trans × box_size`` (PKL).

    Raises
    ------
    InputError
        Missing file or columns (named in the message), 2-D-only cryoSPARC alignments, unknown box size;
        :class:`~cryoscape.io.validation.InvalidMetadataError` for non-finite values or rotations that are not
        orthonormal with determinant +1 (the message names the particle or STAR line).
    """
    path = Path(path)
    kind = _kind(path)
    if kind == ".star":
        return _star_poses(path, box_size, pixel_size_angstrom)
    if kind == ".cs":
        return _cs_poses(path, box_size)
    return read_pose_pickle(path, box_size)


def read_ctf(path: str | os.PathLike, box_size: int | None = None, pixel_size_angstrom: float | None = None,
             amplitude_contrast: float | None = None, allow_overfocus: bool = False) -> CTFParams:
    """Read CTF parameters from a RELION ``.star``, cryoSPARC ``.cs`` or cryoDRGN CTF ``.pkl``.

    Parameters
    ----------
    path
        The CTF file.
    box_size, pixel_size_angstrom
        Used when the file does not give them (RELION 3.0 stars have no box size).
    amplitude_contrast
        Used when a STAR file has no ``rlnAmplitudeContrast`` column (some RELION 3.0 files).
    allow_overfocus
        Accept defocus ≤ 0 (see :func:`cryoscape.io.validation.check_ctf`).

    Returns
    -------
    CTFParams
        Defocus in Å, angles and phase shift in degrees (cryoSPARC radians converted), voltage kV, Cs mm,
        B-factor from ``rlnCtfBfactor``/``ctf/bfactor`` (0 when absent).

    Raises
    ------
    InputError
        Missing file or columns (named in the message), unknown box or pixel size or amplitude contrast;
        :class:`~cryoscape.io.validation.InvalidMetadataError` for unusable values (NaN/inf, voltage or pixel
        size ≤ 0, defocus ≤ 0 unless ``allow_overfocus``; the message names the particle or STAR line).
    """
    path = Path(path)
    kind = _kind(path)
    if kind == ".star":
        return _star_ctf(path, box_size, pixel_size_angstrom, amplitude_contrast, allow_overfocus)
    if kind == ".cs":
        return _cs_ctf(path, box_size, pixel_size_angstrom, allow_overfocus)
    ctf = read_ctf_pickle(path, allow_overfocus=allow_overfocus)
    _fill(ctf.box_size, box_size, "box size", path, "", warn=False)
    if pixel_size_angstrom is not None and not np.allclose(ctf.pixel_size_angstrom, pixel_size_angstrom,
                                                           rtol=1e-4, atol=0):
        shown = np.unique(ctf.pixel_size_angstrom)[:6].tolist()
        warnings.warn(f"{path}: the file gives pixel sizes {shown} Å; "
                      f"the value {pixel_size_angstrom:g} passed in is ignored", stacklevel=2)
    return ctf
