"""The confusion matrix of two runs' cluster labels (``cryoscape compare-runs``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cryoscape.plotting.figures import integer_colorbar, new_figure, save_figure, set_suptitle

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class LabelMatchLike(Protocol):
    """What the plot needs of a matching (:class:`cryoscape.analysis.replicates.LabelMatch` has it)."""

    confusion: np.ndarray  # (ka, kb) int: particles with label i+1 in run 1 and j+1 in run 2
    mapping: Mapping[int, int]  # run-2 cluster id -> matched run-1 cluster id (1-based)
    agreement: float  # fraction of particles whose labels agree after matching


def confusion_figure(match: LabelMatchLike, title: str = "", names: tuple[str, str] = ("run 1", "run 2")
                     ) -> Figure:
    """Confusion matrix: rows run-1 clusters; columns run-2 clusters in the order matched to the rows."""
    ka, kb = match.confusion.shape
    inverse = {a: b for b, a in match.mapping.items()}
    order = [inverse[a] - 1 for a in range(1, ka + 1) if a in inverse]
    order += [j for j in range(kb) if j not in order]
    matrix = np.asarray(match.confusion)[:, order]
    size = max(4.0, 0.35 * max(ka, kb) + 2)
    fig = new_figure(size + 1.2, size + 0.4, dpi=120)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(kb), [str(j + 1) for j in order], fontsize=8)
    ax.set_yticks(range(ka), [str(i + 1) for i in range(ka)], fontsize=8)
    ax.set_xlabel(f"{names[1]} cluster (ordered by the optimal matching)")
    ax.set_ylabel(f"{names[0]} cluster")
    if max(ka, kb) <= 25:
        top = matrix.max() if matrix.size else 0
        for i in range(ka):
            for j in range(kb):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] > 0.6 * top else "black")
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="particles")
    integer_colorbar(bar)
    set_suptitle(fig, title or f"{100 * match.agreement:.1f} % identical labels after matching")
    return fig


def plot_confusion(match: LabelMatchLike, path: str | os.PathLike, title: str = "",
                   names: tuple[str, str] = ("run 1", "run 2")) -> Path:
    """Confusion matrix of two runs' labels as PNG (see :func:`confusion_figure`)."""
    return save_figure(confusion_figure(match, title, names), path)
