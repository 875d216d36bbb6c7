"""Plots a user looks at (matplotlib, Agg backend; PNG files)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (PNG files, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latent_vs_truth(latent: np.ndarray, truth: np.ndarray, path: str | os.PathLike, *, xlabel: str,
                         ylabel: str, title: str = "") -> Path:
    """Scatter of a latent coordinate (N,) against a ground-truth value (N,), saved as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    ax.scatter(truth, latent, s=3, alpha=0.4, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
