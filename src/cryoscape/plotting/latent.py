"""Pictures of the latent space: joint plots (scatter, hexbin, density contours), clusters, traversal points,
1-D histograms, a latent coordinate against the particle index or a ground truth.

Each ``*_figure`` function draws one :class:`~matplotlib.figure.Figure` from arrays; each ``plot_*`` function
draws the same figure and writes it as a PNG atomically, returning the path. None reads run files. Scatter plots
of more than :data:`~cryoscape.plotting.figures.SCATTER_MAX` points draw a random subsample (stated in the
title); histograms, hexbins and contours use every point. Colour bars of counts have whole-number ticks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoscape.plotting.figures import (
    SMALL_SIZE,
    category_colours,
    integer_axis,
    integer_colorbar,
    new_figure,
    save_figure,
    set_suptitle,
    subsample,
    wrap_text,
)
from cryoscape.plotting.labels import pc_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JOINT_KINDS = ("scatter", "hexbin", "contour")
#: Hexbin plots of more particles use a logarithmic colour scale.
HEXBIN_LOG_ABOVE = 5000
#: The density contours' colour bar counts particles per cell; cells are grown until the densest holds this many.
CONTOUR_PEAK_COUNT = 50


def _marker_size(n_points: int) -> float:
    return max(0.5, min(8.0, 4000.0 / max(n_points, 1)))


def _hexbin(ax, x: np.ndarray, y: np.ndarray, *, gridsize: int, cmap: str):
    """Hexagon counts (log colour scale above :data:`HEXBIN_LOG_ABOVE` points); returns (artist, log_scale)."""
    log_scale = len(x) > HEXBIN_LOG_ABOVE
    art = ax.hexbin(x, y, gridsize=gridsize, bins="log" if log_scale else None, cmap=cmap, mincnt=1)
    return art, log_scale


def density_grid(x: np.ndarray, y: np.ndarray, bins: int = 120, sigma_bins: float = 2.0):
    """A Gaussian-smoothed 2-D histogram of the points on their 0.5–99.5 % range (plus 10 % margins).

    Returns
    -------
    counts : ndarray (bins, bins)
        Smoothed particle counts per bin, indexed [y, x] (sums to about the number of points).
    x_centres, y_centres : ndarray (bins,)
    bin_width, bin_height : float
        Size of one bin in the units of ``x`` and ``y``.
    """
    from scipy.ndimage import gaussian_filter

    xr = np.percentile(x, [0.5, 99.5])
    yr = np.percentile(y, [0.5, 99.5])
    pad_x = 0.1 * (xr[1] - xr[0] or 1.0)
    pad_y = 0.1 * (yr[1] - yr[0] or 1.0)
    xe = np.linspace(xr[0] - pad_x, xr[1] + pad_x, bins + 1)
    ye = np.linspace(yr[0] - pad_y, yr[1] + pad_y, bins + 1)
    h, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    h = gaussian_filter(h, sigma=sigma_bins)
    return h.T, 0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1]), float(xe[1] - xe[0]), float(ye[1] - ye[0])


def _contour(fig, ax, cax, x: np.ndarray, y: np.ndarray) -> None:
    """Filled contours of the smoothed density, in whole particles per cell of a stated size."""
    from matplotlib.ticker import MaxNLocator

    h, xc, yc, bw, bh = density_grid(x, y)
    peak = float(h.max())
    cells = max(1, int(np.ceil(np.sqrt(CONTOUR_PEAK_COUNT / peak)))) if peak > 0 else 1
    h = h * cells**2
    ticks = MaxNLocator(nbins=10, integer=True).tick_values(0, max(float(h.max()), 2.0))
    levels = np.unique(np.concatenate([[1.0], ticks[ticks > 1]]))  # whole numbers from 1 to above the peak
    art = ax.contourf(xc, yc, h, levels=levels, cmap="viridis")
    ax.contour(xc, yc, h, levels=levels[::2], colors="k", linewidths=0.4, alpha=0.6)
    bar = fig.colorbar(art, cax=cax, spacing="proportional")
    bar.set_label(f"particles per {cells * bw:.2g} × {cells * bh:.2g} cell (smoothed)")
    integer_colorbar(bar)


def joint_figure(xy: np.ndarray, *, kind: str, xlabel: str, ylabel: str, title: str = "",
                 color: np.ndarray | None = None, color_label: str = "") -> Figure:
    """2-D latent coordinates (N, 2) with marginal histograms (see :func:`plot_joint`)."""
    if kind not in JOINT_KINDS:
        raise ValueError(f"unknown plot kind {kind!r} (expected one of {', '.join(JOINT_KINDS)})")
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[:, 0], xy[:, 1]
    n = len(x)
    fig = new_figure(6.6, 5.8)
    fig.get_layout_engine().set(wspace=0.0, hspace=0.0)
    grid = fig.add_gridspec(2, 3, width_ratios=(4, 1, 0.18), height_ratios=(1, 4))
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    side = fig.add_subplot(grid[1, 1], sharey=ax)
    cax = fig.add_subplot(grid[1, 2])
    note = ""
    if kind == "scatter":
        rows = subsample(n)
        if len(rows) < n:
            note = f" ({len(rows)} of {n} shown)"
        if color is None:
            ax.scatter(x[rows], y[rows], s=_marker_size(len(rows)), alpha=0.5, linewidths=0, rasterized=True)
            cax.set_axis_off()
        else:
            art = ax.scatter(x[rows], y[rows], c=np.asarray(color)[rows], s=_marker_size(len(rows)), alpha=0.7,
                             linewidths=0, cmap="viridis", rasterized=True)
            fig.colorbar(art, cax=cax, label=color_label)
    elif kind == "hexbin":
        art, log_scale = _hexbin(ax, x, y, gridsize=50, cmap="viridis")
        bar = fig.colorbar(art, cax=cax, label="particles per hexagon" + (" (log scale)" if log_scale else ""))
        integer_colorbar(bar, log_scale)
    else:
        _contour(fig, ax, cax, x, y)
    top.hist(x, bins=100, color="tab:gray")
    side.hist(y, bins=100, color="tab:gray", orientation="horizontal")
    top.tick_params(labelbottom=False)
    side.tick_params(labelleft=False)
    integer_axis(top.yaxis, nbins=3)
    integer_axis(side.xaxis, nbins=3)
    top.set_ylabel("count", fontsize=SMALL_SIZE)
    side.set_xlabel("count", fontsize=SMALL_SIZE)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_suptitle(fig, (title or f"{n} particles") + note)
    return fig


def plot_joint(xy: np.ndarray, path: str | os.PathLike, *, kind: str, xlabel: str, ylabel: str, title: str = "",
               color: np.ndarray | None = None, color_label: str = "") -> Path:
    """2-D latent coordinates (N, 2) as a joint plot with marginal histograms, saved as PNG.

    Parameters
    ----------
    kind : ``"scatter"`` (points; coloured by ``color`` (N,) with a colour bar when given), ``"hexbin"``
        (particle counts per hexagon, log colour scale above 5000 particles) or ``"contour"`` (filled contours
        of a smoothed histogram, colour bar in whole particles per cell, the cell's size in the label)
    """
    return save_figure(joint_figure(xy, kind=kind, xlabel=xlabel, ylabel=ylabel, title=title, color=color,
                                    color_label=color_label), path)


def clusters_figure(xy: np.ndarray, labels: np.ndarray, centers_xy: np.ndarray, *, xlabel: str, ylabel: str,
                    title: str = "") -> Figure:
    """Points (N, 2) coloured by cluster (``labels`` 0-based), each on-data centre (k, 2) marked with its 1-based id."""
    from matplotlib.colors import ListedColormap

    xy = np.asarray(xy, dtype=np.float64)
    labels = np.asarray(labels)
    centers_xy = np.asarray(centers_xy, dtype=np.float64)
    k = len(centers_xy)
    rows = subsample(len(xy))
    fig = new_figure(6.6, 5.6)
    ax = fig.add_subplot()
    art = ax.scatter(xy[rows, 0], xy[rows, 1], c=labels[rows] + 1, s=_marker_size(len(rows)),
                     cmap=ListedColormap(category_colours(k)), vmin=0.5, vmax=k + 0.5, linewidths=0, alpha=0.6,
                     rasterized=True)
    ax.scatter(centers_xy[:, 0], centers_xy[:, 1], s=60, c="white", edgecolors="black", linewidths=0.8, zorder=3)
    for j, (cx, cy) in enumerate(centers_xy):
        ax.annotate(str(j + 1), (cx, cy), ha="center", va="center", fontsize=6, zorder=4)
    bar = fig.colorbar(art, ax=ax)
    if k <= 20:
        bar.set_ticks(np.arange(1, k + 1))
    else:
        integer_colorbar(bar)
    bar.set_label("cluster (k-means id, 1-based)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_suptitle(fig, title or f"k-means, K = {k}: on-data centres (numbered)")
    return fig


def plot_clusters(xy: np.ndarray, labels: np.ndarray, centers_xy: np.ndarray, path: str | os.PathLike, *,
                  xlabel: str, ylabel: str, title: str = "") -> Path:
    """Points (N, 2) coloured by 1-based cluster id, each on-data centre (k, 2) marked with its id (PNG)."""
    return save_figure(clusters_figure(xy, labels, centers_xy, xlabel=xlabel, ylabel=ylabel, title=title), path)


def traversal_points_figure(xy: np.ndarray, points_xy: np.ndarray, *, xlabel: str, ylabel: str,
                            title: str) -> Figure:
    """Density (hexbin) of all particles (N, 2) with the traversal points (m, 2) numbered 1…m on top.

    The axes are drawn as given: pass the same two coordinates (e.g. PC1 then PC2) for every traversal, so a
    traversal along PC2 runs vertically in the same picture as the PC1 one.
    """
    xy = np.asarray(xy, dtype=np.float64)
    points_xy = np.asarray(points_xy, dtype=np.float64)
    fig = new_figure(6.2, 5.2)
    ax = fig.add_subplot()
    art, log_scale = _hexbin(ax, xy[:, 0], xy[:, 1], gridsize=40, cmap="Greys")
    ax.plot(points_xy[:, 0], points_xy[:, 1], "o-", color="tab:red", ms=5)
    for j, (px, py) in enumerate(points_xy):
        ax.annotate(str(j + 1), (px, py), xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:red")
    bar = fig.colorbar(art, ax=ax, label="particles per hexagon" + (" (log scale)" if log_scale else ""))
    integer_colorbar(bar, log_scale)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_suptitle(fig, title)
    return fig


def plot_traversal_points(xy: np.ndarray, points_xy: np.ndarray, path: str | os.PathLike, *, xlabel: str,
                          ylabel: str, title: str) -> Path:
    """Density of all particles (N, 2) with the traversal points (m, 2) numbered 1…m on top (PNG)."""
    return save_figure(traversal_points_figure(xy, points_xy, xlabel=xlabel, ylabel=ylabel, title=title), path)


def pc_traversal_figure(pcs: np.ndarray, points_pcs: np.ndarray, pc: int, ratio: np.ndarray | None = None,
                        title: str = "") -> Figure:
    """The points of a traversal along principal component ``pc`` (0-based) over the particles, in PC1/PC2.

    Every PC traversal is drawn in the same axes (PC1 across, PC2 up, as the PCA joint plots), so a traversal
    along PC2 runs vertically.

    Parameters
    ----------
    pcs : ndarray (N, c), c ≥ 2
        The particles' PC coordinates.
    points_pcs : ndarray (m, c)
        The traversal points' PC coordinates, in the order of the maps.
    pc : the component traversed (0-based)
    ratio : explained-variance ratios (c,) for the axis labels, optional
    title : default ``PC<pc+1> traversal points (numbered as the maps)``
    """
    pcs = np.asarray(pcs)
    points_pcs = np.asarray(points_pcs)
    if pcs.shape[1] < 2:
        raise ValueError("a PC traversal picture needs at least two components")
    ratio = [None, None] if ratio is None else ratio
    return traversal_points_figure(pcs[:, :2], points_pcs[:, :2], xlabel=pc_label(0, ratio[0]),
                                   ylabel=pc_label(1, ratio[1]),
                                   title=title or f"PC{pc + 1} traversal points (numbered as the maps)")


def plot_pc_traversal(pcs: np.ndarray, points_pcs: np.ndarray, path: str | os.PathLike, *, pc: int,
                      ratio: np.ndarray | None = None, title: str = "") -> Path:
    """:func:`pc_traversal_figure` as PNG."""
    return save_figure(pc_traversal_figure(pcs, points_pcs, pc, ratio, title), path)


def histogram_1d_figure(values: np.ndarray, *, xlabel: str, title: str, marks: Sequence[float] = ()) -> Figure:
    """Histogram of a 1-D latent (N,) with vertical lines at ``marks`` (e.g. the map percentiles)."""
    fig = new_figure(5.8, 4.0)
    ax = fig.add_subplot()
    ax.hist(np.asarray(values), bins=100, color="tab:blue")
    for m in marks:
        ax.axvline(m, color="tab:red", lw=0.8, alpha=0.8)
    integer_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("particles")
    set_suptitle(fig, title)
    return fig


def plot_histogram_1d(values: np.ndarray, path: str | os.PathLike, *, xlabel: str, title: str,
                      marks: Sequence[float] = ()) -> Path:
    """Histogram of a 1-D latent (N,) with vertical lines at ``marks`` (PNG)."""
    return save_figure(histogram_1d_figure(values, xlabel=xlabel, title=title, marks=marks), path)


def z_vs_index_figure(indices: np.ndarray, values: np.ndarray, *, ylabel: str, title: str) -> Figure:
    """A 1-D latent (N,) against the original particle index (N,) (reveals drifts along the dataset)."""
    rows = subsample(len(values))
    fig = new_figure(6.8, 3.8)
    ax = fig.add_subplot()
    ax.scatter(np.asarray(indices)[rows], np.asarray(values)[rows], s=2, alpha=0.4, linewidths=0, rasterized=True)
    ax.set_xlabel("particle index (0-based, original file)")
    ax.set_ylabel(ylabel)
    set_suptitle(fig, title)
    return fig


def plot_z_vs_index(indices: np.ndarray, values: np.ndarray, path: str | os.PathLike, *, ylabel: str,
                    title: str) -> Path:
    """A 1-D latent (N,) against the original particle index (N,) (PNG)."""
    return save_figure(z_vs_index_figure(indices, values, ylabel=ylabel, title=title), path)


def latent_vs_truth_figure(latent: np.ndarray, truth: np.ndarray, *, xlabel: str, ylabel: str, title: str = "",
                           caption: str = "") -> Figure:
    """Scatter of a latent coordinate (N,) against a ground-truth value (N,), ``caption`` below the axes."""
    fig = new_figure(5.8, 4.8 if caption else 4.2)
    ax = fig.add_subplot()
    rows = subsample(len(latent))
    ax.scatter(np.asarray(truth)[rows], np.asarray(latent)[rows], s=3, alpha=0.4, linewidths=0, rasterized=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_suptitle(fig, title)
    if caption:
        fig.supxlabel(wrap_text(caption, fig.get_figwidth() - 0.3, 7.5), fontsize=7.5)
    return fig


def plot_latent_vs_truth(latent: np.ndarray, truth: np.ndarray, path: str | os.PathLike, *, xlabel: str,
                         ylabel: str, title: str = "", caption: str = "") -> Path:
    """Scatter of a latent coordinate (N,) against a ground-truth value (N,), saved as PNG (caption below)."""
    return save_figure(latent_vs_truth_figure(latent, truth, xlabel=xlabel, ylabel=ylabel, title=title,
                                              caption=caption), path)
