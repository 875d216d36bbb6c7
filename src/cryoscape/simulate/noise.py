"""White Gaussian noise at a signal-to-noise ratio, reproducible per particle whatever the chunk size.

SNR = (variance of the noiseless images over every pixel of every image) / (variance of the noise). The
noise of particle ``i`` comes from a generator seeded with ``(seed, NOISE_STREAM, i // NOISE_BLOCK)``, so the
same seed gives the same noise for any ``chunk_size``.
"""

from __future__ import annotations

import math

import numpy as np

NOISE_BLOCK = 64
NOISE_STREAM = 0x6E6F  # separates the noise stream from the parameter draws


def standard_noise(seed: int, start: int, stop: int, box: int) -> np.ndarray:
    """Unit-variance white noise (stop − start, box, box) float64 of particles ``start .. stop-1``."""
    blocks = []
    for block in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
        rng = np.random.default_rng([int(seed), NOISE_STREAM, block])
        first = block * NOISE_BLOCK
        noise = rng.standard_normal((NOISE_BLOCK, box, box))
        lo, hi = max(start, first) - first, min(stop, first + NOISE_BLOCK) - first
        blocks.append(noise[lo:hi])
    return np.concatenate(blocks) if blocks else np.zeros((0, box, box))


class VarianceAccumulator:
    """Running mean and variance of every pixel value seen (float64 sums)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.total_sq = 0.0

    def add(self, values: np.ndarray) -> None:
        """Include all values of an array."""
        values = np.asarray(values, dtype=np.float64)
        self.count += values.size
        self.total += float(values.sum())
        self.total_sq += float((values * values).sum())

    @property
    def variance(self) -> float:
        """Population variance of everything added."""
        if self.count == 0:
            return 0.0
        mean = self.total / self.count
        return max(self.total_sq / self.count - mean * mean, 0.0)


def noise_std(signal_variance: float, snr: float) -> float:
    """Noise standard deviation giving ``snr`` (0 for an infinite SNR)."""
    if math.isinf(snr):
        return 0.0
    return math.sqrt(signal_variance / snr)
