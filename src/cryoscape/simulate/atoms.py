"""Density maps from atomic models: Gaussian atoms weighted by atomic number (ChimeraX ``molmap``).

Each atom of atomic number Z at position r contributes ``Z * exp(-|x - r|² / (2 sigma²))`` with
``sigma = 0.225 * resolution`` (Å), sampled at the voxel centres of a ``box³`` grid of ``pixel_size_angstrom``
whose centre (index ``box // 2``) is the model's centre of mass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from cryoscape.errors import InputError

SIGMA_PER_RESOLUTION = 0.225
FILL_FRACTION = 0.6


@dataclass(frozen=True)
class AtomicModel:
    """Atoms of an atomic model.

    Attributes
    ----------
    coords_angstrom : ndarray, shape (M, 3), float64
        Positions (x, y, z) in Å.
    atomic_numbers : ndarray, shape (M,), float64
        Z of each atom (the density weight).
    masses : ndarray, shape (M,), float64
        Atomic masses (Da), for the centre of mass.
    """

    coords_angstrom: np.ndarray
    atomic_numbers: np.ndarray
    masses: np.ndarray

    def centre_of_mass(self) -> np.ndarray:
        """Mass-weighted centre (3,) in Å."""
        return (self.coords_angstrom * self.masses[:, None]).sum(0) / self.masses.sum()


def read_atomic_model(path: str | os.PathLike) -> AtomicModel:
    """Read the first model of a PDB or mmCIF file with gemmi (every atom; alternate locations included).

    Raises
    ------
    InputError
        If the file is missing, unreadable or has no atoms.
    """
    import gemmi

    if not os.path.isfile(path):
        raise InputError("file not found", path=path, fix="give an existing .pdb or .cif file")
    try:
        structure = gemmi.read_structure(os.fspath(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"cannot read the atomic model: {exc}", path=path,
                         fix="give a valid PDB or mmCIF file") from exc
    coords, numbers, masses = [], [], []
    if len(structure) > 0:
        for chain in structure[0]:
            for residue in chain:
                for atom in residue:
                    coords.append((atom.pos.x, atom.pos.y, atom.pos.z))
                    numbers.append(atom.element.atomic_number)
                    masses.append(atom.element.weight)
    if not coords:
        raise InputError("the atomic model has no atoms", path=path, fix="check the file's ATOM records")
    model = AtomicModel(np.asarray(coords, dtype=np.float64), np.asarray(numbers, dtype=np.float64),
                        np.asarray(masses, dtype=np.float64))
    if not np.all(model.atomic_numbers > 0):
        raise InputError("the atomic model has atoms of unknown element", path=path,
                         fix="set the element columns (77-78 in PDB)")
    return model


def fill_pixel_size(coords_angstrom: np.ndarray, centre_angstrom: np.ndarray, box_size: int,
                    fill_fraction: float = FILL_FRACTION) -> float:
    """Pixel size (Å) at which the molecule's diameter (twice its largest radius) fills ``fill_fraction``
    of the box."""
    radius = float(np.sqrt(((coords_angstrom - centre_angstrom) ** 2).sum(-1)).max())
    radius = max(radius, 1.0)
    return 2.0 * radius / (fill_fraction * box_size)


def molmap(coords_angstrom: np.ndarray, weights: np.ndarray, box_size: int, pixel_size_angstrom: float,
           resolution_angstrom: float, centre_angstrom: np.ndarray | None = None,
           cutoff_sigmas: float = 4.0) -> np.ndarray:
    """Sum of Gaussian atoms sampled on a grid (real space, truncated at ``cutoff_sigmas``).

    Parameters
    ----------
    coords_angstrom : ndarray, shape (M, 3)
        Atom positions (x, y, z), Å.
    weights : ndarray, shape (M,)
        Peak height of each Gaussian (e.g. atomic number).
    box_size : int
        Grid side (voxels).
    pixel_size_angstrom : float
        Voxel size (Å).
    resolution_angstrom : float
        sigma = 0.225 * resolution (Å).
    centre_angstrom : ndarray, shape (3,), optional
        Position placed at voxel index ``box_size // 2`` (default: the weighted mean of the atoms).
    cutoff_sigmas : float
        Each Gaussian is evaluated within this many sigmas of its centre.

    Returns
    -------
    ndarray, shape (box, box, box), float32
        Density indexed [z, y, x].
    """
    coords = np.asarray(coords_angstrom, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if centre_angstrom is None:
        centre_angstrom = (coords * weights[:, None]).sum(0) / weights.sum()
    sigma_px = SIGMA_PER_RESOLUTION * resolution_angstrom / pixel_size_angstrom
    positions = torch.as_tensor((coords - centre_angstrom) / pixel_size_angstrom + box_size // 2)
    w = torch.as_tensor(weights)
    half = int(np.ceil(cutoff_sigmas * sigma_px))
    offsets = torch.arange(-half, half + 1, dtype=torch.int64)
    oz, oy, ox = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
    offsets = torch.stack([ox.reshape(-1), oy.reshape(-1), oz.reshape(-1)], -1)  # (W, 3) as (x, y, z)
    volume = torch.zeros(box_size**3, dtype=torch.float64)
    step = max(1, (1 << 22) // offsets.shape[0])
    for start in range(0, positions.shape[0], step):
        pos = positions[start:start + step]
        voxels = torch.round(pos).to(torch.int64)[:, None, :] + offsets[None]  # (m, W, 3)
        dist2 = ((voxels.to(torch.float64) - pos[:, None, :]) ** 2).sum(-1)
        values = w[start:start + step, None] * torch.exp(-dist2 / (2 * sigma_px**2))
        inside = ((voxels >= 0) & (voxels < box_size)).all(-1) & (dist2 <= (cutoff_sigmas * sigma_px) ** 2)
        flat = (voxels[..., 2] * box_size + voxels[..., 1]) * box_size + voxels[..., 0]
        volume.index_add_(0, flat[inside], values[inside])
    return volume.reshape(box_size, box_size, box_size).numpy().astype(np.float32)
