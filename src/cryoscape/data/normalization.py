"""The normalisation of the data: one standard deviation of the prepared Hartley values, robust to outliers.

Every image is divided by one number, the standard deviation of the prepared (inverted, windowed) centred
Hartley values over an evenly spaced sample of particles (:func:`estimate_data_std`). A plain standard
deviation over all sampled pixels is ruined by one image of a wrong scale (an image multiplied by 1e30 makes
every other image effectively zero after division, and training still "succeeds"). So the scale of each
sampled image is measured first (the mean square of its Hartley values), images whose scale is far from the
median scale, or not finite, or zero, are left out (:func:`scale_outliers`) and reported by particle index in
a warning; the standard deviation is computed over the remaining images. Without outliers the result is the
plain standard deviation of all sampled values.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from cryoscape.data.memory import prep_chunk_images
from cryoscape.errors import InputError

if TYPE_CHECKING:
    from cryoscape.data.dataset import ImagePrep
    from cryoscape.data.particles import ParticleSet

log = logging.getLogger(__name__)

#: Images sampled (evenly spaced) to estimate the normalisation of the data.
STD_SAMPLE_IMAGES = 1000
#: An image is an outlier when log(its mean square) is more than this many robust standard deviations
#: (1.4826 × the median absolute deviation of the logs) from the median log.
OUTLIER_ROBUST_SIGMAS = 6.0
#: ... and also more than this factor away from the median mean square (so that a set of very uniform images
#: does not make ordinary variation an outlier).
OUTLIER_MIN_POWER_RATIO = 4.0
#: Normal-consistency factor of the median absolute deviation (MAD × this estimates σ for normal data).
MAD_TO_SIGMA = 1.4826
#: Particle indices listed in the warning (the count is always given).
MAX_REPORTED = 20


def scale_outliers(mean_squares: np.ndarray) -> np.ndarray:
    """Which images have an outlying scale.

    Parameters
    ----------
    mean_squares : ndarray, shape (n,)
        Mean square of each image's values (any units; only ratios matter).

    Returns
    -------
    ndarray, shape (n,), bool
        True for images whose mean square is not finite or not positive, or whose log differs from the median
        log (over the finite positive ones) by more than ``max(OUTLIER_ROBUST_SIGMAS · MAD_TO_SIGMA · MAD,
        log(OUTLIER_MIN_POWER_RATIO))``.
    """
    ms = np.asarray(mean_squares, dtype=np.float64)
    bad = ~(np.isfinite(ms) & (ms > 0))
    if bad.all():
        return bad
    logs = np.log(np.where(bad, 1.0, ms))
    centre = np.median(logs[~bad])
    mad = np.median(np.abs(logs[~bad] - centre))
    limit = max(OUTLIER_ROBUST_SIGMAS * MAD_TO_SIGMA * mad, math.log(OUTLIER_MIN_POWER_RATIO))
    return bad | (np.abs(logs - centre) > limit)


def sample_positions(n: int, max_images: int = STD_SAMPLE_IMAGES) -> np.ndarray:
    """Evenly spaced positions (int64, ascending, unique) of at most ``max_images`` of ``n`` particles."""
    return np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(np.int64))


def estimate_data_std(
    particles: ParticleSet,
    prep: ImagePrep,
    max_images: int = STD_SAMPLE_IMAGES,
    chunk_size: int | None = None,
) -> float:
    """Standard deviation of the prepared Hartley values over a sample of particles, outlier images left out.

    Parameters
    ----------
    particles : ParticleSet
    prep : ImagePrep
        Real image → prepared centred Hartley transform.
    max_images : int
        Sample size (evenly spaced positions, so the estimate does not depend on a random state).
    chunk_size : int, optional
        Images read at a time (default and upper bound: ``data.memory.prep_chunk_images``).

    Returns
    -------
    float
        The std of all pixels of the sampled transforms of the non-outlier images (see the module docstring),
        used to divide every image. Outliers are reported with ``logging.warning`` (original particle indices).

    Raises
    ------
    InputError
        When the remaining values have zero or non-finite variance, or every sampled image is an outlier.
    """
    positions = sample_positions(len(particles), max_images)
    sums = np.zeros(positions.size)
    sums_sq = np.zeros(positions.size)
    pixels = particles.box_size**2
    step = prep_chunk_images(particles.box_size, chunk_size)
    for start in range(0, positions.size, step):
        ht = prep(particles.read(positions[start : start + step])).to(torch.float64)
        flat = ht.reshape(ht.shape[0], -1)
        sums[start : start + flat.shape[0]] = flat.sum(dim=1).numpy()
        sums_sq[start : start + flat.shape[0]] = flat.square().sum(dim=1).numpy()
    with np.errstate(invalid="ignore", over="ignore"):
        outliers = scale_outliers(sums_sq / pixels)
    path = getattr(particles.images, "path", None)
    if outliers.all():
        raise InputError(
            f"all {positions.size} sampled particle images are empty or non-finite",
            path=path,
            fix="check that the stack holds particle images",
        )
    if outliers.any():
        _report_outliers(particles, positions, outliers, sums_sq / pixels)
    keep = ~outliers
    count = int(keep.sum()) * pixels
    mean = float(sums[keep].sum()) / count
    std = math.sqrt(max(float(sums_sq[keep].sum()) / count - mean * mean, 0.0))
    if not std > 0 or not math.isfinite(std):
        raise InputError(
            f"the particle images have zero or non-finite variance (std {std})",
            path=path,
            fix="check that the stack holds particle images",
        )
    return std


def _report_outliers(particles: ParticleSet, positions: np.ndarray, outliers: np.ndarray,
                     mean_squares: np.ndarray) -> None:
    indices = np.asarray(particles.indices)[positions[outliers]]
    median = float(np.median(mean_squares[~outliers]))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratios = np.sqrt(mean_squares[outliers] / median)
    shown = ", ".join(f"{i} (x{r:.3g})" for i, r in zip(indices[:MAX_REPORTED], ratios[:MAX_REPORTED]))
    more = f" and {indices.size - MAX_REPORTED} more" if indices.size > MAX_REPORTED else ""
    log.warning(
        "%d of %d sampled particle images have an outlying scale and are left out of the data normalisation "
        "(particle index (rms / median rms), 0-based in the original stack): %s%s; check or exclude them "
        "(e.g. with --ind)",
        indices.size,
        positions.size,
        shown,
        more,
    )
