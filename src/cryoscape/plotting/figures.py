"""Figures without pyplot: creation, text that fits, integer colour bars, atomic PNG files.

Every figure of cryoscape is a :class:`matplotlib.figure.Figure` attached to its own Agg canvas, so drawing never
touches matplotlib's global state (no backend switch, no figure manager, nothing left open): a notebook or a GUI
program that imports cryoscape keeps its own backend. Sizes are in inches, font sizes in points.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure

#: Scatter plots of more points draw a random subsample of this size (stated in the title).
SCATTER_MAX = 50000
#: Dots per inch of the PNG files.
DPI = 120
#: Font sizes (points) of figure titles, axes titles and small annotations.
TITLE_SIZE = 10.0
SMALL_SIZE = 8.0
#: Space (inches) kept free between text and the figure edge.
EDGE_PAD_IN = 0.06


def new_figure(width_in: float, height_in: float, *, dpi: float = DPI, constrained: bool = True) -> Figure:
    """A figure of ``width_in`` × ``height_in`` inches on its own Agg canvas.

    With ``constrained`` the figure uses matplotlib's constrained layout, which keeps titles, labels and colour
    bars apart and inside the figure; without it the caller places every axes itself.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    if constrained:
        fig.get_layout_engine().set(w_pad=EDGE_PAD_IN, h_pad=EDGE_PAD_IN)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (parent folders created); returns the path."""
    from cryoscape.io.atomic import atomic_open

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png")
    return path


@lru_cache(maxsize=4096)
def text_width_in(text: str, fontsize: float) -> float:
    """Width (inches) of one line of ``text`` in the default font at ``fontsize`` points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    if not text:
        return 0.0
    width, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)
    return float(width) / 72.0


def text_block_in(text: str, fontsize: float, linespacing: float = 1.2) -> tuple[float, float]:
    """Width and height (inches) of a possibly multi-line ``text`` at ``fontsize`` points."""
    lines = text.split("\n")
    width = max(text_width_in(line, fontsize) for line in lines)
    return width, len(lines) * fontsize * linespacing / 72.0


def wrap_text(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken at spaces into lines no wider than ``width_in`` inches (existing line breaks kept).

    A single word wider than the width stays on its own line (it is never cut).
    """
    out: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        line = ""
        for word in words:
            candidate = f"{line} {word}" if line else word
            if line and text_width_in(candidate, fontsize) > width_in:
                out.append(line)
                line = word
            else:
                line = candidate
        out.append(line)
    return "\n".join(out)


def set_suptitle(fig: Figure, text: str, fontsize: float = TITLE_SIZE) -> None:
    """A figure title wrapped to the figure's width (constrained layout keeps it above the axes)."""
    if text:
        width = fig.get_figwidth() - 4 * EDGE_PAD_IN
        fig.suptitle(wrap_text(text, width, fontsize), fontsize=fontsize)


def set_axes_title(ax: Axes, text: str, width_in: float, fontsize: float = TITLE_SIZE) -> None:
    """An axes title wrapped to ``width_in`` inches (about the axes' width)."""
    if text:
        ax.set_title(wrap_text(text, width_in, fontsize), fontsize=fontsize)


def integer_colorbar(bar: Colorbar, log_scale: bool = False) -> None:
    """Colour-bar ticks at whole numbers only (counts of particles), written as plain integers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if log_scale:
        bar.ax.yaxis.set_major_locator(LogLocator(base=10))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        bar.ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=2))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{round(float(value))}"))


def integer_axis(axis, nbins: int | str = "auto") -> None:
    """Ticks of a count axis (histogram heights) at whole numbers only, at most ``nbins`` intervals."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))


def subsample(n: int, max_points: int = SCATTER_MAX, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a random subsample of ``max_points`` of ``n`` rows (all rows when ``n`` is smaller)."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def category_colours(k: int) -> list[tuple[float, float, float, float]]:
    """``k`` distinguishable RGBA colours: tab10 up to 10, tab20 up to 20, else evenly along turbo."""
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [colormaps["tab20"](i) for i in range(k)]
    cmap = colormaps["turbo"]
    return [cmap(v) for v in np.linspace(0.0, 1.0, k)]
