"""Per-particle pose and CTF records, with units in the field names.

These are plain numpy containers shared by every reader (RELION star, cryoSPARC cs, cryoDRGN pickles) and every
consumer (simulation, back-projection, training). They carry no file names; matching them to images is done by
:class:`cryoscape.data.particles.ParticleSet`.

Conventions (DESIGN.md)
-----------------------
* ``rotations[i]`` is RELION's ``Euler_angles2matrix(rot, tilt, psi)``; the 3-D Fourier point of the 2-D lattice
  vector ``k`` (row vector, z = 0) is ``k @ rotations[i]``.
* ``shifts_px[i] = (x, y)`` is RELION's origin (``rlnOriginX/Y``, or ``rlnOriginX/YAngst`` divided by the pixel
  size) in pixels of a box of ``box_size``, with the file's sign: translating the *image* by ``+shift`` centres the
  particle (the projection of the centred map equals the image translated by ``+shift``).
* CTF parameters follow RELION: defocus positive = underfocus (Å), astigmatism angle in degrees, voltage kV, Cs mm,
  amplitude contrast as a fraction, phase shift in degrees, B-factor in Å².
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


def _as_index(ind: np.ndarray | slice | list[int], n: int) -> np.ndarray:
    index = np.arange(n)[ind] if isinstance(ind, slice) else np.asarray(ind)
    if index.dtype == bool:
        index = np.flatnonzero(index)
    return index.astype(np.int64)


@dataclass(frozen=True)
class Poses:
    """Rotations and in-plane shifts of N particles.

    Attributes
    ----------
    rotations : ndarray, shape (N, 3, 3), float64
        RELION rotation matrices (see module docstring).
    shifts_px : ndarray, shape (N, 2), float64
        In-plane origin (x, y) in pixels of a box of ``box_size`` (RELION sign).
    box_size : int
        Box (pixels) the shifts are expressed in.
    """

    rotations: np.ndarray
    shifts_px: np.ndarray
    box_size: int

    def __post_init__(self) -> None:
        rot = np.asarray(self.rotations, dtype=np.float64)
        shifts = np.asarray(self.shifts_px, dtype=np.float64)
        if rot.ndim != 3 or rot.shape[1:] != (3, 3):
            raise ValueError(f"rotations must have shape (N, 3, 3), got {rot.shape}")
        if shifts.shape != (rot.shape[0], 2):
            raise ValueError(f"shifts_px must have shape ({rot.shape[0]}, 2), got {shifts.shape}")
        object.__setattr__(self, "rotations", rot)
        object.__setattr__(self, "shifts_px", shifts)
        object.__setattr__(self, "box_size", int(self.box_size))

    def __len__(self) -> int:
        return self.rotations.shape[0]

    def subset(self, ind: np.ndarray | slice | list[int]) -> Poses:
        """Poses of the particles ``ind`` (0-based indices, a boolean mask or a slice)."""
        index = _as_index(ind, len(self))
        return Poses(self.rotations[index], self.shifts_px[index], self.box_size)

    def rescaled(self, box_size: int) -> Poses:
        """The same poses with shifts expressed in pixels of another box (after Fourier cropping/padding)."""
        return Poses(self.rotations, self.shifts_px * (box_size / self.box_size), box_size)


@dataclass(frozen=True)
class CTFParams:
    """Contrast transfer function parameters of N particles (RELION model, see ``geometry.ctf``).

    All array attributes have shape (N,) and dtype float64.

    Attributes
    ----------
    pixel_size_angstrom : Å per pixel of the images (per particle; from the optics group where there are several)
    defocus_u_angstrom, defocus_v_angstrom : defocus, positive = underfocus (Å)
    defocus_angle_deg : astigmatism angle (degrees)
    voltage_kv : acceleration voltage (kV)
    cs_mm : spherical aberration (mm)
    amplitude_contrast : fraction of amplitude contrast (e.g. 0.1)
    phase_shift_deg : phase-plate phase shift (degrees)
    bfactor_angstrom2 : CTF B-factor envelope exp(-B s²/4) (Å²); 0 for none
    box_size : int
        Box (pixels) of the images the parameters belong to.
    """

    pixel_size_angstrom: np.ndarray
    defocus_u_angstrom: np.ndarray
    defocus_v_angstrom: np.ndarray
    defocus_angle_deg: np.ndarray
    voltage_kv: np.ndarray
    cs_mm: np.ndarray
    amplitude_contrast: np.ndarray
    phase_shift_deg: np.ndarray
    box_size: int
    bfactor_angstrom2: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = np.asarray(self.defocus_u_angstrom).reshape(-1).shape[0]
        for f in fields(self):
            if f.name == "box_size":
                continue
            value = getattr(self, f.name)
            if value is None:
                value = np.zeros(n)
            arr = np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (n,)).copy()
            object.__setattr__(self, f.name, arr)
        object.__setattr__(self, "box_size", int(self.box_size))

    def __len__(self) -> int:
        return self.defocus_u_angstrom.shape[0]

    @classmethod
    def array_fields(cls) -> list[str]:
        """Names of the per-particle array attributes, in a fixed order."""
        return [f.name for f in fields(cls) if f.name != "box_size"]

    def subset(self, ind: np.ndarray | slice | list[int]) -> CTFParams:
        """CTF parameters of the particles ``ind`` (0-based indices, a boolean mask or a slice)."""
        index = _as_index(ind, len(self))
        kwargs = {name: getattr(self, name)[index] for name in self.array_fields()}
        return CTFParams(box_size=self.box_size, **kwargs)

    def rescaled(self, box_size: int) -> CTFParams:
        """The same CTF for images Fourier-cropped/padded to ``box_size`` (the pixel size scales)."""
        kwargs = {name: getattr(self, name) for name in self.array_fields()}
        kwargs["pixel_size_angstrom"] = self.pixel_size_angstrom * (self.box_size / box_size)
        return CTFParams(box_size=box_size, **kwargs)
