"""Value checks of pose and CTF records, run by every metadata reader before any work starts.

Each check raises :class:`InvalidMetadataError` (an :class:`~cryoscape.errors.InputError`) naming the file, the
first bad particle (0-based index, or its STAR line through ``row_label``), the value and the fix. The checks:

* poses: every rotation finite, orthonormal (‖RRᵀ − I‖ ≤ 1e-3) with determinant +1; shifts finite;
* CTF: every field finite; pixel size > 0; voltage > 0; amplitude contrast in [0, 1); defocus U and V > 0
  (positive = underfocus) unless ``allow_overfocus``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.records import CTFParams, Poses

ORTHONORMAL_TOLERANCE = 1e-3

RowLabel = Callable[[int], str]


class InvalidMetadataError(InputError):
    """The metadata are present but a value is unusable (as opposed to a missing table or column)."""


def particle_label(row: int) -> str:
    """The default way messages name a particle: its 0-based index."""
    return f"particle {row} (0-based)"


def _first(bad: np.ndarray) -> int | None:
    where = np.flatnonzero(bad)
    return int(where[0]) if where.size else None


def _refuse(row: int, count: int, message: str, path, label: RowLabel, fix: str) -> None:
    more = f" ({count} such particles)" if count > 1 else ""
    raise InvalidMetadataError(f"{label(row)}: {message}{more}", path=path, fix=fix)


def check_poses(poses: Poses, path: str | os.PathLike | None, row_label: RowLabel = particle_label) -> Poses:
    """Check that ``poses`` are usable; returns them unchanged.

    Parameters
    ----------
    poses
        Rotations (N, 3, 3) and shifts (N, 2) px.
    path
        The file they came from (for messages).
    row_label
        Maps a 0-based particle index to how the message names it (e.g. its STAR line).

    Raises
    ------
    InvalidMetadataError
        A non-finite rotation or shift, or a rotation that is not orthonormal with determinant +1.
    """
    rot, shifts = poses.rotations, poses.shifts_px
    bad = ~np.isfinite(rot).all(axis=(1, 2))
    if (k := _first(bad)) is not None:
        _refuse(k, int(bad.sum()), "the rotation is not finite (NaN or infinite angles)", path, row_label,
                "remove or repair the particles without a valid pose")
    bad = ~np.isfinite(shifts).all(axis=1)
    if (k := _first(bad)) is not None:
        _refuse(k, int(bad.sum()), f"the shift {shifts[k].tolist()} px is not finite", path, row_label,
                "remove or repair the particles without a valid shift")
    if len(poses):
        error = np.abs(rot @ np.swapaxes(rot, 1, 2) - np.eye(3)).max(axis=(1, 2))
        det = np.linalg.det(rot)
        bad = (error > ORTHONORMAL_TOLERANCE) | (det <= 0)
        if (k := _first(bad)) is not None:
            what = "a reflection (determinant < 0)" if det[k] <= 0 and error[k] <= ORTHONORMAL_TOLERANCE else \
                f"not orthonormal (|R Rᵀ − I| = {error[k]:.3g})"
            _refuse(k, int(bad.sum()), f"the rotation is {what}, determinant {det[k]:.4g}", path, row_label,
                    "a pose file must hold rotation matrices (orthonormal, determinant +1)")
    return poses


_CTF_FIELDS = {
    "pixel_size_angstrom": "pixel size (Å)",
    "defocus_u_angstrom": "defocus U (Å)",
    "defocus_v_angstrom": "defocus V (Å)",
    "defocus_angle_deg": "defocus angle (°)",
    "voltage_kv": "voltage (kV)",
    "cs_mm": "spherical aberration Cs (mm)",
    "amplitude_contrast": "amplitude contrast",
    "phase_shift_deg": "phase shift (°)",
    "bfactor_angstrom2": "CTF B-factor (Å²)",
}


def check_ctf(ctf: CTFParams, path: str | os.PathLike | None, row_label: RowLabel = particle_label,
              allow_overfocus: bool = False) -> CTFParams:
    """Check that ``ctf`` describes a physical CTF; returns it unchanged.

    Parameters
    ----------
    ctf
        CTF parameters, each (N,).
    path
        The file they came from (for messages).
    row_label
        Maps a 0-based particle index to how the message names it.
    allow_overfocus
        Accept defocus ≤ 0 (overfocus, or a dummy zero-defocus CTF).

    Raises
    ------
    InvalidMetadataError
        A non-finite value, pixel size or voltage ≤ 0, amplitude contrast outside [0, 1), or defocus ≤ 0
        without ``allow_overfocus``.
    """
    for name, what in _CTF_FIELDS.items():
        values = getattr(ctf, name)
        bad = ~np.isfinite(values)
        if (k := _first(bad)) is not None:
            _refuse(k, int(bad.sum()), f"{what} is {values[k]}", path, row_label,
                    "remove or repair the particles with NaN/inf CTF parameters")
    for name, what in (("pixel_size_angstrom", "pixel size (Å)"), ("voltage_kv", "voltage (kV)")):
        values = getattr(ctf, name)
        bad = values <= 0
        if (k := _first(bad)) is not None:
            _refuse(k, int(bad.sum()), f"{what} is {values[k]:g}, not positive", path, row_label,
                    f"fix the {what.split(' (')[0]} in the file (or its optics group)")
    w = ctf.amplitude_contrast
    bad = (w < 0) | (w >= 1)
    if (k := _first(bad)) is not None:
        _refuse(k, int(bad.sum()), f"amplitude contrast is {w[k]:g}, outside [0, 1)", path, row_label,
                "amplitude contrast is a fraction, typically 0.07-0.1")
    if not allow_overfocus:
        defocus = np.minimum(ctf.defocus_u_angstrom, ctf.defocus_v_angstrom)
        bad = defocus <= 0
        if (k := _first(bad)) is not None:
            _refuse(k, int(bad.sum()), f"defocus U, V = {ctf.defocus_u_angstrom[k]:g}, "
                    f"{ctf.defocus_v_angstrom[k]:g} Å is not positive (positive = underfocus)", path, row_label,
                    "fix the defocus values, or pass --allow-overfocus if the data are really overfocus or the "
                    "CTF is a zero-defocus dummy")
    return ctf
