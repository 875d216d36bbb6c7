"""Soft real-space masks for map-to-map FSC (the cryoDRGN paper's mask).

The mask is 1 inside the thresholded map dilated by a distance ``dilate_angstrom`` (a Euclidean ball around
every voxel above the threshold), falls off as a raised cosine over a further ``edge_angstrom``, and is 0
beyond::

    d = distance (Å) from the voxel to the nearest voxel above the threshold
    mask = 1                                             if d <= dilate
         = ½ (1 + cos(π (d - dilate) / edge))            if dilate < d < dilate + edge
         = 0                                             otherwise

The default threshold is half the 99.99th percentile of the map (numpy's linear-interpolation percentile),
dilation 25 Å and cosine edge 15 Å, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cryoscape.errors import InputError


@dataclass(frozen=True)
class MaskConfig:
    """Parameters of :func:`soft_mask` (distances in Å).

    Attributes
    ----------
    threshold : float or None
        Absolute density threshold; None uses ``threshold_fraction`` × the ``percentile``-th percentile.
    threshold_fraction : float
        Fraction of the percentile value used as threshold (default 0.5).
    percentile : float
        Percentile of the map's values (default 99.99).
    dilate_angstrom : float
        Distance (Å) the thresholded region is grown by (default 25).
    edge_angstrom : float
        Width (Å) of the cosine fall-off beyond the dilated region (default 15; 0 for a hard edge).
    """

    threshold: float | None = None
    threshold_fraction: float = 0.5
    percentile: float = 99.99
    dilate_angstrom: float = 25.0
    edge_angstrom: float = 15.0


def mask_threshold(volume: np.ndarray, config: MaskConfig = MaskConfig()) -> float:
    """The density threshold of the mask: ``config.threshold`` or fraction × percentile of ``volume``."""
    if config.threshold is not None:
        return float(config.threshold)
    return float(config.threshold_fraction * np.percentile(np.asarray(volume, dtype=np.float64),
                                                         config.percentile))


def soft_mask(volume: np.ndarray, voxel_size_angstrom: float,
              config: MaskConfig = MaskConfig()) -> np.ndarray:
    """Soft mask around the density of ``volume``.

    Parameters
    ----------
    volume : ndarray, shape (D, D, D)
        Map (protein positive).
    voxel_size_angstrom
        Voxel size (Å); the dilation and edge widths are converted with it.
    config
        Threshold, dilation and edge (see :class:`MaskConfig`).

    Returns
    -------
    ndarray, shape (D, D, D), float32
        Values in [0, 1].
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"a mask needs a 3-D map, got shape {volume.shape}")
    if config.dilate_angstrom < 0 or config.edge_angstrom < 0:
        raise InputError(f"dilation and edge must be >= 0 Å, got {config.dilate_angstrom} and "
                         f"{config.edge_angstrom}")
    threshold = mask_threshold(volume, config)
    inside = volume >= threshold
    if not inside.any():
        raise InputError(f"no voxel reaches the mask threshold {threshold:.4g}",
                         fix="give a lower --threshold")
    # Euclidean distance (Å) from every voxel to the nearest voxel above the threshold.
    distance = ndimage.distance_transform_edt(~inside, sampling=float(voxel_size_angstrom))
    beyond = distance - config.dilate_angstrom
    if config.edge_angstrom > 0:
        ramp = 0.5 * (1.0 + np.cos(np.pi * np.clip(beyond / config.edge_angstrom, 0.0, 1.0)))
    else:
        ramp = np.zeros_like(distance)
    mask = np.where(beyond <= 0, 1.0, ramp)
    return mask.astype(np.float32)
