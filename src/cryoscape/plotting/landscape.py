"""Pictures of a conformational landscape (``cryoscape analyze-landscape``): state populations, the centre maps in
volume-PCA coordinates and the particles' latent coordinates coloured by state.

States are numbered 1…m in every argument and picture; each state keeps one colour in all pictures
(:func:`state_colours`). ``*_figure`` functions return a figure, ``plot_*`` functions write it as a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cryoscape.plotting.figures import (
    SMALL_SIZE,
    category_colours,
    integer_axis,
    new_figure,
    save_figure,
    set_suptitle,
    subsample,
)
from cryoscape.plotting.labels import latent_label, view_labels, volume_pc_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Particles drawn at most in a latent scatter coloured by state (a random subsample beyond).
STATE_SCATTER_MAX = 100_000


def state_colours(n_states: int) -> list[tuple[float, float, float, float]]:
    """The colour of state s (1-based) is ``state_colours(m)[s - 1]``."""
    return category_colours(n_states)


def state_populations_figure(populations: np.ndarray) -> Figure:
    """Bar chart of the particles in each state (m,)."""
    populations = np.asarray(populations)
    m = len(populations)
    fig = new_figure(max(4.2, 0.5 * m + 2), 3.6)
    ax = fig.add_subplot()
    ax.bar(np.arange(1, m + 1), populations, color=state_colours(m))
    ax.set_xticks(np.arange(1, m + 1))
    integer_axis(ax.yaxis)
    ax.set_xlabel("state")
    ax.set_ylabel("particles")
    set_suptitle(fig, "state populations")
    return fig


def volume_pca_states_figure(coords: np.ndarray, ratio: np.ndarray, centre_state: np.ndarray,
                             sizes: np.ndarray, n_states: int) -> Figure:
    """The centre maps (K, c) in volume-PCA coordinates, coloured by their state (K,), area ∝ particles (K,).

    ``ratio`` (c,) is each volume PC's explained-variance fraction; with one component the maps lie on a line.
    """
    coords = np.asarray(coords, dtype=float)
    centre_state = np.asarray(centre_state)
    sizes = np.asarray(sizes, dtype=float)
    colours = state_colours(n_states)
    fig = new_figure(5.4, 4.8)
    ax = fig.add_subplot()
    for s in range(1, n_states + 1):
        sel = centre_state == s
        y = coords[sel, 1] if coords.shape[1] > 1 else np.zeros(int(sel.sum()))
        ax.scatter(coords[sel, 0], y, s=10 + 90 * sizes[sel] / max(1.0, sizes.max()), color=colours[s - 1],
                   label=f"state {s}", alpha=0.8, linewidths=0)
    ax.set_xlabel(volume_pc_label(0, ratio[0]))
    ax.set_ylabel(volume_pc_label(1, ratio[1]) if len(ratio) > 1 else "")
    ax.legend(fontsize=SMALL_SIZE - 1, markerscale=0.8)
    set_suptitle(fig, "centre maps (size ∝ particles)")
    return fig


def latent_states_figure(view_xy: np.ndarray, particle_state: np.ndarray, n_states: int, view: str) -> Figure:
    """Particles' 2-D latent coordinates (N, 2) of ``view`` (``"pca"`` or ``"umap"``) coloured by state (N,)."""
    view_xy = np.asarray(view_xy, dtype=float)
    particle_state = np.asarray(particle_state)
    shown = subsample(len(view_xy), STATE_SCATTER_MAX)
    colours = state_colours(n_states)
    xlabel, ylabel = view_labels(view)
    fig = new_figure(5.4, 4.8)
    ax = fig.add_subplot()
    for s in range(1, n_states + 1):
        sel = shown[particle_state[shown] == s]
        ax.scatter(view_xy[sel, 0], view_xy[sel, 1], s=2, color=colours[s - 1], label=f"state {s}", alpha=0.5,
                   linewidths=0, rasterized=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=SMALL_SIZE - 1, markerscale=4)
    note = f" ({len(shown)} of {len(view_xy)} shown)" if len(shown) < len(view_xy) else ""
    set_suptitle(fig, f"latent {'PCA' if view == 'pca' else 'UMAP'} coloured by landscape state{note}")
    return fig


def z_states_figure(z: np.ndarray, particle_state: np.ndarray, n_states: int) -> Figure:
    """Histograms of a 1-D latent (N,) per state (N,), one colour per state."""
    z = np.asarray(z, dtype=float).reshape(-1)
    particle_state = np.asarray(particle_state)
    colours = state_colours(n_states)
    fig = new_figure(5.4, 3.8)
    ax = fig.add_subplot()
    bins = np.linspace(z.min(), z.max(), 60)
    for s in range(1, n_states + 1):
        ax.hist(z[particle_state == s], bins=bins, color=colours[s - 1], label=f"state {s}", alpha=0.7)
    integer_axis(ax.yaxis)
    ax.set_xlabel(latent_label())
    ax.set_ylabel("particles")
    ax.legend(fontsize=SMALL_SIZE - 1)
    set_suptitle(fig, "latent z by landscape state")
    return fig


def plot_state_populations(populations: np.ndarray, path: str | os.PathLike) -> Path:
    """:func:`state_populations_figure` as PNG."""
    return save_figure(state_populations_figure(populations), path)


def plot_volume_pca_states(coords: np.ndarray, ratio: np.ndarray, centre_state: np.ndarray, sizes: np.ndarray,
                           n_states: int, path: str | os.PathLike) -> Path:
    """:func:`volume_pca_states_figure` as PNG."""
    return save_figure(volume_pca_states_figure(coords, ratio, centre_state, sizes, n_states), path)


def plot_latent_states(view_xy: np.ndarray, particle_state: np.ndarray, n_states: int, view: str,
                       path: str | os.PathLike) -> Path:
    """:func:`latent_states_figure` as PNG."""
    return save_figure(latent_states_figure(view_xy, particle_state, n_states, view), path)


def plot_z_states(z: np.ndarray, particle_state: np.ndarray, n_states: int, path: str | os.PathLike) -> Path:
    """:func:`z_states_figure` as PNG."""
    return save_figure(z_states_figure(z, particle_state, n_states), path)
