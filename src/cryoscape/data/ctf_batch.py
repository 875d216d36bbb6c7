"""Per-particle CTF parameters of a batch as named torch tensors.

:class:`CTFBatch` carries the fields of :class:`cryoscape.io.records.CTFParams` (same names and units, one value
per particle) from the dataset to the training step, so that no layer depends on a column order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from cryoscape.io.records import CTFParams

#: The CTF parameters of ``geometry.ctf.ctf_2d`` (keyword names), in its argument order.
CTF_2D_PARAMETERS = (
    "defocus_u_angstrom",
    "defocus_v_angstrom",
    "defocus_angle_deg",
    "voltage_kv",
    "cs_mm",
    "amplitude_contrast",
    "phase_shift_deg",
    "bfactor_angstrom2",
)


@dataclass(frozen=True)
class CTFBatch:
    """CTF parameters of B particles, each field a torch tensor of shape (B,) (float32 from the dataset).

    Attributes
    ----------
    pixel_size_angstrom : Å per pixel of each image
    defocus_u_angstrom, defocus_v_angstrom : defocus, positive = underfocus (Å)
    defocus_angle_deg : astigmatism angle (degrees)
    voltage_kv : acceleration voltage (kV)
    cs_mm : spherical aberration (mm)
    amplitude_contrast : amplitude contrast fraction
    phase_shift_deg : phase-plate phase shift (degrees)
    bfactor_angstrom2 : B-factor of the CTF envelope (Å²)
    """

    pixel_size_angstrom: torch.Tensor
    defocus_u_angstrom: torch.Tensor
    defocus_v_angstrom: torch.Tensor
    defocus_angle_deg: torch.Tensor
    voltage_kv: torch.Tensor
    cs_mm: torch.Tensor
    amplitude_contrast: torch.Tensor
    phase_shift_deg: torch.Tensor
    bfactor_angstrom2: torch.Tensor

    @classmethod
    def from_params(cls, ctf: CTFParams, dtype: torch.dtype = torch.float32) -> CTFBatch:
        """The tensors of every particle of ``ctf`` (each field (N,), ``dtype``)."""
        return cls(**{
            f.name: torch.from_numpy(np.ascontiguousarray(getattr(ctf, f.name), dtype=np.float64)).to(dtype)
            for f in dataclasses.fields(cls)
        })

    def _map(self, fn) -> CTFBatch:
        return CTFBatch(**{f.name: fn(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def __len__(self) -> int:
        return int(self.pixel_size_angstrom.shape[0])

    def __getitem__(self, index) -> CTFBatch:
        """The particles at ``index`` (anything a torch tensor takes: a slice, positions, a mask)."""
        return self._map(lambda t: t[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
           non_blocking: bool = False) -> CTFBatch:
        """The tensors on ``device`` and/or as ``dtype``."""
        return self._map(lambda t: t.to(device=device, dtype=dtype, non_blocking=non_blocking))

    def ctf_2d_parameters(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of ``geometry.ctf.ctf_2d`` for frequencies (B, P, 2): each parameter as (B, 1)."""
        return {name: getattr(self, name)[:, None] for name in CTF_2D_PARAMETERS}
