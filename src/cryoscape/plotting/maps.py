"""Montages of map series: central slices and projections along x, y and z, one row per map.

All slices of a montage share one grey scale and all projections another (the 0.5th to 99.5th percentiles over
the maps shown), so rows are comparable: a domain that moves or vanishes shows as a change down a column. A
series of more than :data:`MONTAGE_MAX_MAPS` maps shows an evenly spaced subset (first and last included; the
title says so), and more than :data:`MONTAGE_ROWS_PER_BLOCK` rows are laid out in blocks side by side, so a
montage stays a few thousand pixels in each direction whatever the series' length. Every row carries the label
the caller gives (several lines allowed).

The figure is laid out in inches, not by matplotlib's layout engines: the title, the column headers and the row
labels are measured and given their own space, so none of them covers an image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoscape.plotting.figures import EDGE_PAD_IN, TITLE_SIZE, new_figure, save_figure, text_block_in, wrap_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VIEWS = ("slice x", "slice y", "slice z", "proj. x", "proj. y", "proj. z")
#: Maps shown at most in one montage (an evenly spaced subset of a longer series).
MONTAGE_MAX_MAPS = 50
#: Rows per block; longer montages continue in a block to the right.
MONTAGE_ROWS_PER_BLOCK = 25
#: Size of one image (inches), the space between images (fraction of an image) and the label font (points).
CELL_IN = 1.2
GAP_FRACTION = 0.06
LABEL_SIZE = 8.0
HEADER_SIZE = 8.0
DPI = 100


def map_views(vol: np.ndarray) -> list[np.ndarray]:
    """Central slices and projections of a map (D, D, D) indexed [z, y, x] along x, y and z (six 2-D images).

    Each view is oriented for ``imshow(origin="lower")``: a slice/projection along x shows (z, y), along y shows
    (z, x), along z shows (y, x).
    """
    vol = np.asarray(vol, dtype=np.float32)
    c = vol.shape[0] // 2
    slices = [vol[:, :, c].copy(), vol[:, c, :].copy(), vol[c, :, :].copy()]  # copies: the map can be freed
    return [*slices, vol.sum(axis=2), vol.sum(axis=1), vol.sum(axis=0)]


def map_level_percentile(vol: np.ndarray) -> float:
    """The 99.99th percentile of a map's values (one map's share of :func:`contour_level`)."""
    return float(np.percentile(np.asarray(vol, dtype=np.float32), 99.99))


def contour_level(maps: Sequence[np.ndarray]) -> float:
    """One contour level for a whole series: half the mean over maps of each map's 99.99th percentile.

    (The threshold rule of the paper's soft mask; it shows the molecule, not the noise, for maps of a trained
    decoder.)
    """
    values = [map_level_percentile(m) for m in maps]
    return 0.5 * float(np.mean(values)) if values else 0.0


def shown_rows(n_maps: int, max_maps: int = MONTAGE_MAX_MAPS) -> np.ndarray:
    """Indices (0-based, increasing) of the maps a montage shows: all, or ``max_maps`` evenly spaced ones."""
    if n_maps <= max_maps:
        return np.arange(n_maps)
    return np.unique(np.linspace(0, n_maps - 1, max_maps).round().astype(np.int64))


def _label_size(label: str) -> float:
    """Font size (points) at which ``label``'s lines fit the height of one image."""
    lines = label.count("\n") + 1
    return min(LABEL_SIZE, CELL_IN * 72.0 / (lines * 1.25))


def _mosaic(views: Sequence[Sequence[np.ndarray]], scales: tuple[tuple[float, float], tuple[float, float]],
            gap_px: int) -> np.ndarray:
    """Rows of six views, each scaled to [0, 1] by its grey scale, on a NaN background (gaps)."""
    d0, d1 = views[0][0].shape
    width = 6 * d1 + 5 * gap_px + 2 * gap_px  # a wider gap between the slices and the projections
    height = len(views) * d0 + (len(views) - 1) * gap_px
    mosaic = np.full((height, width), np.nan, dtype=np.float32)
    for i, row in enumerate(views):
        y0 = i * (d0 + gap_px)
        for j, image in enumerate(row):
            lo, hi = scales[0] if j < 3 else scales[1]
            x0 = j * (d1 + gap_px) + (2 * gap_px if j >= 3 else 0)
            scaled = (np.asarray(image, dtype=np.float32) - lo) / (hi - lo if hi > lo else 1.0)
            mosaic[y0:y0 + d0, x0:x0 + d1] = np.clip(scaled, 0.0, 1.0)[::-1]  # views are oriented origin="lower"
    return mosaic


def montage_figure(views: Sequence[Sequence[np.ndarray]], labels: Sequence[str], title: str = "",
                   total: int | None = None) -> Figure:
    """A montage of already computed views (see :func:`map_views`), one row per map.

    Parameters
    ----------
    views : per row, the six 2-D views of one map (all of one shape)
    labels : one label per row (may hold line breaks)
    title : figure title (wrapped to the figure's width)
    total : number of maps in the whole series when ``views`` is a subset (said in the title)
    """
    from matplotlib import colormaps

    n = len(views)
    if n == 0:
        raise ValueError("no maps to draw")
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} maps")
    shapes = {np.shape(v) for row in views for v in row}
    if len(shapes) != 1:
        raise ValueError(f"the maps' views differ in shape ({sorted(shapes)}): draw maps of one box together")
    d0, d1 = shapes.pop()
    s_lo, s_hi = np.percentile(np.concatenate([np.ravel(row[j]) for row in views for j in range(3)]), [0.5, 99.5])
    p_lo, p_hi = np.percentile(np.concatenate([np.ravel(row[j]) for row in views for j in range(3, 6)]),
                               [0.5, 99.5])
    gap_px = max(1, round(GAP_FRACTION * d1))
    px_per_in = d1 / CELL_IN
    blocks = math.ceil(n / MONTAGE_ROWS_PER_BLOCK)
    per_block = math.ceil(n / blocks)
    starts = list(range(0, n, per_block))
    label_w = [max(text_block_in(labels[i], _label_size(labels[i]))[0] for i in range(s, min(n, s + per_block)))
               + 3 * EDGE_PAD_IN for s in starts]
    image_w = (6 * d1 + 7 * gap_px) / px_per_in
    block_gap = 0.25
    width = 2 * EDGE_PAD_IN + sum(label_w) + blocks * image_w + (blocks - 1) * block_gap
    if total is not None and total > n:
        title = f"{title} ({n} of {total} maps shown, evenly spaced)" if title else f"{n} of {total} maps shown"
    title = wrap_text(title, width - 2 * EDGE_PAD_IN, TITLE_SIZE) if title else ""
    title_h = text_block_in(title, TITLE_SIZE)[1] + EDGE_PAD_IN if title else 0.0
    header_h = text_block_in(VIEWS[0], HEADER_SIZE)[1] + EDGE_PAD_IN
    top = EDGE_PAD_IN + title_h + header_h
    block_h = (per_block * d0 + (per_block - 1) * gap_px) / px_per_in
    height = top + block_h + 2 * EDGE_PAD_IN
    fig = new_figure(width, height, dpi=DPI, constrained=False)
    cmap = colormaps["gray"].with_extremes(bad="white")
    left = EDGE_PAD_IN
    for b, s in enumerate(starts):
        rows = range(s, min(n, s + per_block))
        mosaic = _mosaic([views[i] for i in rows], ((s_lo, s_hi), (p_lo, p_hi)), gap_px)
        left += label_w[b]
        h_in, w_in = mosaic.shape[0] / px_per_in, mosaic.shape[1] / px_per_in
        ax = fig.add_axes((left / width, 1 - (top + h_in) / height, w_in / width, h_in / height))
        ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal",
                  extent=(0, mosaic.shape[1], mosaic.shape[0], 0))
        ax.set_axis_off()
        for j, name in enumerate(VIEWS):
            x = j * (d1 + gap_px) + (2 * gap_px if j >= 3 else 0) + d1 / 2
            ax.text(x, -EDGE_PAD_IN * px_per_in, name, ha="center", va="bottom", fontsize=HEADER_SIZE,
                    clip_on=False)
        for r, i in enumerate(rows):
            ax.text(-2 * EDGE_PAD_IN * px_per_in, r * (d0 + gap_px) + d0 / 2, labels[i], ha="right", va="center",
                    fontsize=_label_size(labels[i]), clip_on=False)
        left += w_in + block_gap
    if title:
        fig.suptitle(title, x=0.5, y=1 - EDGE_PAD_IN / height, ha="center", va="top", fontsize=TITLE_SIZE)
    return fig


def write_montage(maps: Sequence[np.ndarray], path: str | os.PathLike, labels: Sequence[str] | None = None,
                  title: str = "", max_maps: int = MONTAGE_MAX_MAPS) -> Path:
    """PNG montage: one row per map, columns = central slices and projections along x, y, z.

    Parameters
    ----------
    maps : sequence of ndarray (D, D, D), all of one box
    path : output PNG (written atomically)
    labels : row labels, one per map (default ``map 1``, ``map 2`` …); line breaks allowed
    title : figure title
    max_maps : more maps than this show as an evenly spaced subset of this many (see :func:`shown_rows`)
    """
    n = len(maps)
    labels = list(labels) if labels is not None else [f"map {i + 1}" for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} maps")
    rows = shown_rows(n, max_maps)
    fig = montage_figure([map_views(maps[i]) for i in rows], [labels[i] for i in rows], title, total=n)
    return save_figure(fig, path)


def paired_montage_figure(generated: Sequence[np.ndarray], truth: Sequence[np.ndarray], labels: Sequence[str],
                          truth_labels: Sequence[str], title: str = "") -> Figure:
    """Generated maps next to their true maps: one row per pair, projections x, y, z of each side.

    Parameters
    ----------
    generated, truth : sequences of ndarray (D, D, D) of one length; the true maps may have another box
    labels : label of each generated map (left of its row)
    truth_labels : label of each true map (right of its row)
    title : figure title

    Each side has its own grey scale (0.5th to 99.5th percentile of its projections): the decoder's maps are on
    the normalised image scale, the true maps on their own.
    """
    n = len(generated)
    if n == 0 or len(truth) != n or len(labels) != n or len(truth_labels) != n:
        raise ValueError(f"{n} generated maps, {len(truth)} true maps, {len(labels)} and {len(truth_labels)} "
                         "labels: give one of each per row")
    sides = [[map_views(v)[3:] for v in maps] for maps in (generated, truth)]
    scales = []
    for side in sides:
        lo, hi = np.percentile(np.concatenate([p.ravel() for row in side for p in row]), [0.5, 99.5])
        scales.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    fig = new_figure(6 * CELL_IN + 2.2, n * CELL_IN + 0.9, dpi=DPI)
    axes = fig.subplots(n, 6, squeeze=False)
    for i in range(n):
        for j in range(6):
            side = j // 3
            ax = axes[i, j]
            ax.imshow(sides[side][i][j % 3], cmap="gray", vmin=scales[side][0], vmax=scales[side][1],
                      origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(("generated " if side == 0 else "true ") + VIEWS[3 + j % 3], fontsize=HEADER_SIZE)
        axes[i, 0].set_ylabel(labels[i], fontsize=LABEL_SIZE - 1, rotation=0, ha="right", va="center")
        axes[i, 5].yaxis.set_label_position("right")
        axes[i, 5].set_ylabel(truth_labels[i], fontsize=LABEL_SIZE - 1, rotation=0, ha="left", va="center")
    if title:
        fig.suptitle(title, fontsize=TITLE_SIZE - 1)
    return fig


def write_paired_montage(generated: Sequence[np.ndarray], truth: Sequence[np.ndarray], labels: Sequence[str],
                         truth_labels: Sequence[str], path: str | os.PathLike, title: str = "") -> Path:
    """:func:`paired_montage_figure` as PNG (written atomically)."""
    return save_figure(paired_montage_figure(generated, truth, labels, truth_labels, title), path)
