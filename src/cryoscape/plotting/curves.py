"""Curves of a run: explained variance of the latent PCA and the learning curve (losses per epoch).

``*_figure`` functions return a :class:`~matplotlib.figure.Figure`; ``plot_*`` functions write it as a PNG
atomically and return the path. The learning curve is drawn from arrays; reading them from a run folder is
:func:`cryoscape.training.learning_curve.read_learning_curve`'s job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoscape.plotting.figures import SMALL_SIZE, new_figure, save_figure, set_suptitle

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def explained_variance_figure(ratio: np.ndarray, title: str = "PCA of the latent space") -> Figure:
    """Bar chart of the explained-variance ratio (zdim,) of each principal component with the cumulative curve."""
    ratio = np.asarray(ratio, dtype=float)
    pcs = np.arange(1, len(ratio) + 1)
    fig = new_figure(5.4, 4.0)
    ax = fig.add_subplot()
    ax.bar(pcs, 100 * ratio, color="tab:blue", label="per component")
    ax.plot(pcs, 100 * np.cumsum(ratio), "o-", color="tab:orange", label="cumulative")
    ax.set_xticks(pcs if len(pcs) <= 20 else np.unique(np.linspace(1, len(pcs), 10).round().astype(int)))
    ax.set_xlim(0.4, len(pcs) + 0.6)
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance (%)")
    ax.set_ylim(0, 105)
    ax.legend(loc="center right", fontsize=SMALL_SIZE)
    set_suptitle(fig, title)
    return fig


def plot_explained_variance(ratio: np.ndarray, path: str | os.PathLike, title: str = "PCA of the latent space"
                            ) -> Path:
    """Bar chart of the explained-variance ratio of each principal component with the cumulative curve (PNG)."""
    return save_figure(explained_variance_figure(ratio, title), path)


def learning_curve_figure(curve: Mapping[str, np.ndarray], title: str = "learning curve",
                          mark_epoch: int | None = None) -> Figure:
    """Training loss, reconstruction error and (VAE) KL per epoch.

    Parameters
    ----------
    curve : mapping with arrays ``epoch`` (E,) int, ``loss``, ``mse`` and ``kl`` (E,) float; ``kl`` all NaN
        (or absent) for a homogeneous run, which then gets one panel
    title : figure title
    mark_epoch : epoch drawn as a dotted vertical line (e.g. the one analysed)
    """
    epochs = np.asarray(curve["epoch"])
    kl = np.asarray(curve.get("kl", np.full(len(epochs), np.nan)), dtype=float)
    has_kl = bool(np.isfinite(kl).any())
    fig = new_figure(9.0 if has_kl else 5.4, 4.0)
    axes = fig.subplots(1, 2 if has_kl else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(epochs, curve["loss"], "o-", label="total loss", ms=3)
    ax.plot(epochs, curve["mse"], "s--", label="reconstruction (mse)", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image")
    ax.legend(fontsize=SMALL_SIZE)
    ax.set_title("loss", fontsize=SMALL_SIZE + 1)
    if has_kl:
        axes[1].plot(epochs, kl, "o-", color="tab:green", ms=3)
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("KL divergence per image")
        axes[1].set_title("latent regularisation (KL)", fontsize=SMALL_SIZE + 1)
    for a in axes:
        if mark_epoch is not None:
            a.axvline(mark_epoch, color="tab:red", lw=0.8, ls=":")
        if len(epochs):
            a.set_xticks(epochs if len(epochs) <= 15 else np.linspace(epochs[0], epochs[-1], 8).round())
    set_suptitle(fig, title)
    return fig


def plot_learning_curve(curve: Mapping[str, np.ndarray], path: str | os.PathLike, title: str = "learning curve",
                        mark_epoch: int | None = None) -> Path:
    """Training loss, reconstruction error and KL per epoch (PNG; see :func:`learning_curve_figure`)."""
    return save_figure(learning_curve_figure(curve, title, mark_epoch), path)
