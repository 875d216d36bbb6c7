"""Reading maps for the reconstruction tools: a cubic, even-box volume and its voxel size."""

from __future__ import annotations

import logging
import os

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.mrc import read_mrc

log = logging.getLogger(__name__)


def read_map(path: str | os.PathLike, voxel_size_angstrom: float | None = None) -> tuple[np.ndarray, float]:
    """Read a cubic map with an even box.

    Parameters
    ----------
    path
        ``.mrc`` volume.
    voxel_size_angstrom
        Overrides the header's voxel size (Å); needed when the header has none.

    Returns
    -------
    volume : ndarray, shape (D, D, D), float32, indexed [z, y, x]
    voxel_size_angstrom : float
    """
    volume, header = read_mrc(path)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(f"expected a cubic 3-D map, got shape {volume.shape} (z, y, x)", path=path,
                         fix="give a cubic .mrc volume")
    if volume.shape[0] % 2:
        raise InputError(f"map box must be even, got {volume.shape[0]}", path=path,
                         fix="pad or crop the map by one voxel")
    if voxel_size_angstrom is not None:
        apix = float(voxel_size_angstrom)
    elif header.voxel_size_angstrom and header.voxel_size_angstrom > 0:
        apix = float(header.voxel_size_angstrom)
    else:
        raise InputError("the header has no voxel size", path=path, fix="give it with --voxel-size")
    if apix <= 0:
        raise InputError(f"voxel size must be > 0 Å, got {apix}", path=path, fix="give --voxel-size")
    return volume, apix
