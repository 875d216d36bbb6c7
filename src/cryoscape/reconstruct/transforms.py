"""Simple map operations: mirror (flip the hand) and contrast inversion.

Maps are (D, D, D) arrays indexed [z, y, x] whose rotation centre is the voxel (D/2, D/2, D/2) (the DC
index of the centred FFT, DESIGN.md).
"""

from __future__ import annotations

import numpy as np

from cryoscape.errors import InputError


def flip_hand(volume: np.ndarray) -> np.ndarray:
    """Mirror a map through the plane z = D/2 (inverts the handedness, keeps the centre fixed).

    ``out[z, y, x] = volume[(D - z) mod D, y, x]``: the voxel D/2 + t goes to D/2 - t, so the map stays
    centred on (D/2, D/2, D/2). (A plain ``volume[::-1]`` would also move the map by one voxel.) In Fourier
    space this is ``F(kz, ky, kx) → F(-kz, ky, kx)``.

    Parameters
    ----------
    volume : ndarray, shape (D, D, D)

    Returns
    -------
    ndarray, shape (D, D, D), same dtype
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"flipping the hand needs a 3-D map, got shape {volume.shape}")
    return np.roll(volume[::-1], 1, axis=0)


def invert_contrast(array: np.ndarray) -> np.ndarray:
    """Multiply a map or an image stack by -1 (white particles ⇄ black particles)."""
    return np.negative(np.asarray(array))
