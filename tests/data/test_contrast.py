"""White/dark particle check on real fixture stacks and on synthetic blobs."""

from __future__ import annotations

import numpy as np

from cryoscape.data.contrast import estimate_contrast
from cryoscape.data.particles import load_particles


def _blobs(sign: float, n: int = 20, box: int = 32, noise: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:box, :box] - box // 2
    blob = np.exp(-(xx**2 + yy**2) / (2 * (box / 8) ** 2))
    return sign * blob[None] + noise * rng.standard_normal((n, box, box))


def test_synthetic_white_and_dark():
    assert estimate_contrast(_blobs(+1)).verdict == "white"
    assert estimate_contrast(_blobs(-1)).verdict == "dark"
    assert estimate_contrast(_blobs(0)).verdict == "unclear"


def test_empiar_particles_are_dark(fixtures_dir):
    """EMPIAR-10076 particles as cryoSPARC extracted them (blob/sign = -1): protein darker than background."""
    ps = load_particles(fixtures_dir / "empiar_10076_7.mrc")
    assert estimate_contrast(ps.read(np.arange(7))).verdict == "dark"


def test_toy_projections_are_white(fixtures_dir):
    """cryoDRGN's noiseless toy projections of a positive density are white."""
    ps = load_particles(fixtures_dir / "toy_projections.mrcs")
    assert estimate_contrast(ps.read(np.arange(100))).verdict == "white"


def test_info_reports_dark_particles(fixtures_dir, capsys):
    from cryoscape.cli.main import main

    assert main(["info", str(fixtures_dir / "empiar_10076_7.star")]) == 0
    assert "particles look dark" in capsys.readouterr().out
