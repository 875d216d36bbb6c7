"""Plots a user looks at (matplotlib, Agg backend; PNG files).

Each function draws one figure from arrays and writes one PNG atomically; none reads run files (the pipeline in
:mod:`cryoscape.analysis.analyze` and the notebook do that). Scatter plots of more than ``SCATTER_MAX`` points
draw a random subsample (stated in the title); histograms, hexbins and contours use every point.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SCATTER_MAX = 50000


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (PNG files, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    from cryoscape.io.atomic import atomic_open

    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return path


def _subsample(n: int, max_points: int = SCATTER_MAX, seed: int = 0) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def plot_latent_vs_truth(latent: np.ndarray, truth: np.ndarray, path: str | os.PathLike, *, xlabel: str,
                         ylabel: str, title: str = "", caption: str = "") -> Path:
    """Scatter of a latent coordinate (N,) against a ground-truth value (N,), saved as PNG (caption below)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.6 if caption else 4), dpi=120)
    rows = _subsample(len(latent))
    ax.scatter(np.asarray(truth)[rows], np.asarray(latent)[rows], s=3, alpha=0.4, linewidths=0, rasterized=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    if caption:
        import textwrap

        text = textwrap.fill(caption, 85)
        fig.text(0.5, 0.015, text, ha="center", va="bottom", fontsize=7.5)
        fig.tight_layout(rect=(0, 0.04 + 0.035 * text.count("\n"), 1, 1))
    else:
        fig.tight_layout()
    return save_figure(fig, path)


def plot_explained_variance(ratio: np.ndarray, path: str | os.PathLike, title: str = "PCA of the latent space"
                            ) -> Path:
    """Bar chart of the explained-variance ratio of each principal component with the cumulative curve."""
    plt = pyplot()
    ratio = np.asarray(ratio, dtype=float)
    pcs = np.arange(1, len(ratio) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    ax.bar(pcs, 100 * ratio, color="tab:blue", label="per component")
    ax.plot(pcs, 100 * np.cumsum(ratio), "o-", color="tab:orange", label="cumulative")
    ax.set_xticks(pcs)
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _density_grid(x: np.ndarray, y: np.ndarray, bins: int = 120):
    """A smoothed 2-D histogram (bins, bins) on the 0.5–99.5 % range and its bin centres."""
    from scipy.ndimage import gaussian_filter

    xr = np.percentile(x, [0.5, 99.5])
    yr = np.percentile(y, [0.5, 99.5])
    pad_x = 0.1 * (xr[1] - xr[0] or 1.0)
    pad_y = 0.1 * (yr[1] - yr[0] or 1.0)
    xe = np.linspace(xr[0] - pad_x, xr[1] + pad_x, bins + 1)
    ye = np.linspace(yr[0] - pad_y, yr[1] + pad_y, bins + 1)
    h, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    h = gaussian_filter(h, sigma=2.0)
    return h.T, 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1])


def plot_joint(xy: np.ndarray, path: str | os.PathLike, *, kind: str, xlabel: str, ylabel: str, title: str = "",
               color: np.ndarray | None = None, color_label: str = "") -> Path:
    """2-D latent coordinates (N, 2) as a joint plot with marginal histograms.

    Parameters
    ----------
    kind : ``"scatter"`` (points; coloured by ``color`` (N,) with a colour bar when given), ``"hexbin"``
        (particle counts per hexagon, log colour scale, colour bar) or ``"contour"`` (filled density contours of
        a smoothed histogram, colour bar in particles per bin)
    """
    plt = pyplot()
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[:, 0], xy[:, 1]
    fig = plt.figure(figsize=(6.4, 5.6), dpi=120)
    grid = fig.add_gridspec(2, 3, width_ratios=(4, 1, 0.2), height_ratios=(1, 4), wspace=0.05, hspace=0.05,
                            left=0.12, right=0.88, bottom=0.1, top=0.9)
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    side = fig.add_subplot(grid[1, 1], sharey=ax)
    cax = fig.add_subplot(grid[1, 2])
    n = len(x)
    note = ""
    if kind == "scatter":
        rows = _subsample(n)
        if len(rows) < n:
            note = f" ({len(rows)} of {n} shown)"
        size = max(0.5, min(8.0, 4000.0 / max(len(rows), 1)))
        if color is None:
            ax.scatter(x[rows], y[rows], s=size, alpha=0.5, linewidths=0, rasterized=True)
            cax.axis("off")
        else:
            art = ax.scatter(x[rows], y[rows], c=np.asarray(color)[rows], s=size, alpha=0.7, linewidths=0,
                             cmap="viridis", rasterized=True)
            fig.colorbar(art, cax=cax, label=color_label)
    elif kind == "hexbin":
        log_scale = n > 5000
        art = ax.hexbin(x, y, gridsize=50, bins="log" if log_scale else None, cmap="viridis", mincnt=1)
        fig.colorbar(art, cax=cax, label="particles per hexagon" + (" (log scale)" if log_scale else ""))
    elif kind == "contour":
        h, xc, yc = _density_grid(x, y)
        levels = np.linspace(0.02 * h.max(), h.max(), 12) if h.max() > 0 else 12
        art = ax.contourf(xc, yc, h, levels=levels, cmap="viridis")
        ax.contour(xc, yc, h, levels=art.levels[::2], colors="k", linewidths=0.4, alpha=0.6)
        fig.colorbar(art, cax=cax, label="particles per bin (smoothed)")
    else:
        raise ValueError(f"unknown plot kind {kind!r}")
    top.hist(x, bins=100, color="tab:gray")
    side.hist(y, bins=100, color="tab:gray", orientation="horizontal")
    top.tick_params(labelbottom=False)
    side.tick_params(labelleft=False)
    top.set_ylabel("count", fontsize=8)
    side.set_xlabel("count", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.suptitle((title or f"{n} particles") + note, fontsize=10)
    return save_figure(fig, path)


def plot_clusters(xy: np.ndarray, labels: np.ndarray, centers_xy: np.ndarray, path: str | os.PathLike, *,
                  xlabel: str, ylabel: str, title: str = "") -> Path:
    """Points (N, 2) coloured by 1-based cluster id, each on-data centre (k, 2) marked with its id."""
    plt = pyplot()
    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels)
    k = len(centers_xy)
    rows = _subsample(len(xy))
    fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=120)
    from matplotlib.colors import ListedColormap

    if k <= 10:
        cmap = ListedColormap(plt.get_cmap("tab10").colors[:k])
    elif k <= 20:
        cmap = ListedColormap(plt.get_cmap("tab20").colors[:k])
    else:
        cmap = plt.get_cmap("turbo", k)
    art = ax.scatter(xy[rows, 0], xy[rows, 1], c=labels[rows] + 1, s=max(0.5, min(8.0, 4000.0 / len(rows))),
                     cmap=cmap, vmin=0.5, vmax=k + 0.5, linewidths=0, alpha=0.6, rasterized=True)
    centers_xy = np.asarray(centers_xy)
    ax.scatter(centers_xy[:, 0], centers_xy[:, 1], s=60, c="white", edgecolors="black", linewidths=0.8, zorder=3)
    for j, (cx, cy) in enumerate(centers_xy):
        ax.annotate(str(j + 1), (cx, cy), ha="center", va="center", fontsize=6, zorder=4)
    bar = fig.colorbar(art, ax=ax, ticks=np.arange(1, k + 1) if k <= 20 else None)
    bar.set_label("cluster (kmeans id, 1-based)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"k-means, K = {k}: on-data centres (numbered)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_traversal_points(xy: np.ndarray, points_xy: np.ndarray, path: str | os.PathLike, *, xlabel: str,
                          ylabel: str, title: str) -> Path:
    """Density (hexbin) of all particles (N, 2) with the traversal points (m, 2) numbered 1…m on top."""
    plt = pyplot()
    xy = np.asarray(xy, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    log_scale = len(xy) > 5000
    art = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=40, bins="log" if log_scale else None, cmap="Greys", mincnt=1)
    points_xy = np.asarray(points_xy)
    ax.plot(points_xy[:, 0], points_xy[:, 1], "o-", color="tab:red", ms=5)
    for j, (px, py) in enumerate(points_xy):
        ax.annotate(str(j + 1), (px, py), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:red")
    fig.colorbar(art, ax=ax, label="particles per hexagon" + (" (log scale)" if log_scale else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_histogram_1d(values: np.ndarray, path: str | os.PathLike, *, xlabel: str, title: str,
                      marks: Sequence[float] = ()) -> Path:
    """Histogram of a 1-D latent (N,) with vertical lines at ``marks`` (e.g. the map percentiles)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    ax.hist(np.asarray(values), bins=100, color="tab:blue")
    for m in marks:
        ax.axvline(m, color="tab:red", lw=0.8, alpha=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("particles")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_z_vs_index(indices: np.ndarray, values: np.ndarray, path: str | os.PathLike, *, ylabel: str,
                    title: str) -> Path:
    """A 1-D latent (N,) against the original particle index (N,) (reveals drifts along the dataset)."""
    plt = pyplot()
    rows = _subsample(len(values))
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=120)
    ax.scatter(np.asarray(indices)[rows], np.asarray(values)[rows], s=2, alpha=0.4, linewidths=0, rasterized=True)
    ax.set_xlabel("particle index (0-based, original file)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


_EPOCH_LINE = re.compile(r"epoch (\d+)/\d+: loss ([-+0-9.eEinfa]+), mse ([-+0-9.eEinfa]+)(?:, kl ([-+0-9.eEinfa]+))?")


def read_learning_curve(log_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per-epoch losses from a run's ``run.log``: ``epoch``, ``loss``, ``mse`` and (VAE) ``kl`` arrays.

    A resumed run logs an epoch again; the last line of each epoch wins. Missing log → empty arrays.
    """
    rows: dict[int, tuple[float, float, float]] = {}
    path = Path(log_path)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            m = _EPOCH_LINE.search(line)
            if m:
                kl = float(m.group(4)) if m.group(4) else np.nan
                rows[int(m.group(1))] = (float(m.group(2)), float(m.group(3)), kl)
    epochs = np.array(sorted(rows), dtype=np.int64)
    values = np.array([rows[e] for e in epochs], dtype=np.float64).reshape(-1, 3)
    return {"epoch": epochs, "loss": values[:, 0], "mse": values[:, 1], "kl": values[:, 2]}


def plot_learning_curve(curve: dict[str, np.ndarray], path: str | os.PathLike, title: str = "learning curve",
                        mark_epoch: int | None = None) -> Path:
    """Training loss, reconstruction error and KL per epoch (from :func:`read_learning_curve`)."""
    plt = pyplot()
    epochs = curve["epoch"]
    has_kl = bool(np.isfinite(curve["kl"]).any())
    fig, axes = plt.subplots(1, 2 if has_kl else 1, figsize=(9 if has_kl else 5, 3.6), dpi=120, squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, curve["loss"], "o-", label="total loss", ms=3)
    ax.plot(epochs, curve["mse"], "s--", label="reconstruction (mse)", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    if has_kl:
        ax2 = axes[0, 1]
        ax2.plot(epochs, curve["kl"], "o-", color="tab:green", ms=3)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("KL divergence per image")
        ax2.set_title("latent regularisation (KL)", fontsize=10)
    for a in axes[0]:
        if mark_epoch is not None:
            a.axvline(mark_epoch, color="tab:red", lw=0.8, ls=":", label=None)
        if len(epochs):
            a.set_xticks(epochs if len(epochs) <= 15 else np.linspace(epochs[0], epochs[-1], 8).round())
    fig.tight_layout()
    return save_figure(fig, path)
