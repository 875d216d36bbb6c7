"""Is the protein white or dark in these images? A check against the wrong contrast convention.

cryoscape models images with RELION's CTF sign, under which positive density gives *white* particles (brighter
than the background), as RELION writes them after extraction with contrast inversion. Stacks extracted without
inversion (e.g. cryoSPARC, whose ``.cs`` then says ``blob/sign = -1``) hold dark particles and need
``--invert-data``. Low-pass particle images are brighter (white) or darker (dark) in the centre than at the box
edge; this module measures that difference over a sample of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cryoscape.geometry.lattice import radius_px_grid


@dataclass(frozen=True)
class ContrastEstimate:
    """Centre-minus-edge contrast of particle images.

    Attributes
    ----------
    t_statistic : float
        Mean over images of (mean inside the central disc − mean of the border ring), divided by its standard
        error: > 0 for white particles, < 0 for dark ones.
    n_images : int
        Images measured.
    """

    t_statistic: float
    n_images: int

    @property
    def verdict(self) -> str:
        """``"white"``, ``"dark"`` or ``"unclear"`` (|t| < 3)."""
        if self.t_statistic >= 3:
            return "white"
        if self.t_statistic <= -3:
            return "dark"
        return "unclear"


def estimate_contrast(images: np.ndarray, inner_fraction: float = 0.25,
                      border_fraction: float = 0.42) -> ContrastEstimate:
    """Centre-minus-border contrast of ``images`` (k, D, D).

    Parameters
    ----------
    images
        Particle images, float; at least 2.
    inner_fraction
        Radius of the central disc as a fraction of the box D.
    border_fraction
        Pixels farther than this fraction of D from the centre form the border ring.
    """
    images = np.asarray(images, dtype=np.float64)
    box = images.shape[-1]
    radius = radius_px_grid(box)
    inner = radius < inner_fraction * box
    border = radius > border_fraction * box
    diff = images[:, inner].mean(axis=1) - images[:, border].mean(axis=1)
    k = diff.shape[0]
    if k < 2:
        return ContrastEstimate(t_statistic=0.0, n_images=k)
    stderr = diff.std(ddof=1) / np.sqrt(k)
    t = float(diff.mean() / stderr) if stderr > 0 else float(np.sign(diff.mean()) * np.inf)
    return ContrastEstimate(t_statistic=t, n_images=k)
