"""The analysis plots, now in :mod:`cryoscape.plotting` (re-exported here until every caller imports from there).

``pyplot`` and ``save_figure`` remain for the callers that still draw with pyplot (landscape, demo,
replicates); new code builds figures with :func:`cryoscape.plotting.figures.new_figure`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cryoscape.plotting import figures as _figures
from cryoscape.plotting.curves import plot_explained_variance, plot_learning_curve
from cryoscape.plotting.figures import SCATTER_MAX
from cryoscape.plotting.latent import (
    plot_clusters,
    plot_histogram_1d,
    plot_joint,
    plot_latent_vs_truth,
    plot_pc_traversal,
    plot_traversal_points,
    plot_z_vs_index,
)
from cryoscape.runs import RunDir
from cryoscape.training.learning_curve import curve_from_log
from cryoscape.training.learning_curve import read_learning_curve as _read_run_curve

__all__ = [
    "SCATTER_MAX", "plot_clusters", "plot_explained_variance", "plot_histogram_1d", "plot_joint",
    "plot_latent_vs_truth", "plot_learning_curve", "plot_pc_traversal", "plot_traversal_points", "plot_z_vs_index",
    "pyplot", "read_learning_curve", "save_figure",
]


def read_learning_curve(log_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per-epoch losses of the run whose ``run.log`` is ``log_path`` (its ``provenance.yaml`` first).

    Any other log file is read as a log. See :func:`cryoscape.training.learning_curve.read_learning_curve`.
    """
    path = Path(log_path)
    run = RunDir(path.parent)
    return _read_run_curve(run) if run.log_path == path else curve_from_log(path)


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (for the callers not yet on cryoscape.plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it (pyplot figures)."""
    path = _figures.save_figure(fig, path)
    pyplot().close(fig)
    return path
