"""The Fourier shell correlation plot: curves against spatial frequency, resolutions at FSC 0.143 and 0.5 in Å.

Each curve's legend entry states its resolution at both thresholds, and the 0.143 crossing is marked on the curve
with its value. A curve that stays above a threshold up to Nyquist is reported as ``≥ Nyquist (X Å)``: the data
support at least that resolution, and the box's sampling hides the rest. The top axis reads in Å.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cryoscape.plotting.figures import SMALL_SIZE, new_figure, save_figure, set_suptitle, wrap_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

THRESHOLDS = (0.143, 0.5)
LEGEND_SIZE = SMALL_SIZE - 0.5


class FSCCurveLike(Protocol):
    """What the plot needs of a curve (:class:`cryoscape.reconstruct.fsc.FSCCurve` has it)."""

    frequency_per_angstrom: np.ndarray
    fsc: np.ndarray

    @property
    def nyquist_angstrom(self) -> float: ...

    def crossing_frequency(self, threshold: float) -> float | None: ...


def format_angstrom(value: float) -> str:
    """A resolution in Å: two decimals below 10 Å, one above (``3.25 Å``, ``12.4 Å``)."""
    return f"{value:.2f} Å" if value < 10 else f"{value:.1f} Å"


def resolution_text(curve: FSCCurveLike, threshold: float) -> str:
    """The resolution at ``threshold`` as a user reads it.

    ``"6.40 Å"`` at the first crossing, ``"≥ Nyquist (4.00 Å)"`` when the curve stays at or above the threshold
    up to Nyquist, ``"none (below at the first shell)"`` when it starts below it.
    """
    freq = curve.crossing_frequency(threshold)
    if freq is None:
        return f"≥ Nyquist ({format_angstrom(curve.nyquist_angstrom)})"
    if freq <= 0:
        return "none (below at the first shell)"
    return format_angstrom(1.0 / freq)


def fsc_figure(curves: Mapping[str, FSCCurveLike], title: str = "") -> Figure:
    """One or more FSC curves against frequency with the 0.5 and 0.143 thresholds and resolutions (legend)."""
    fig = new_figure(6.4, 4.8)
    ax = fig.add_subplot()
    nyquist_freq = 0.0
    for label, curve in curves.items():
        freqs = np.asarray(curve.frequency_per_angstrom, dtype=float)
        at = {thr: resolution_text(curve, thr) for thr in THRESHOLDS}
        entry = f"{label}: {at[0.143]} at FSC 0.143, {at[0.5]} at FSC 0.5"
        (line,) = ax.plot(freqs, curve.fsc, label=wrap_text(entry, fig.get_figwidth() - 1.0, LEGEND_SIZE))
        nyquist_freq = max(nyquist_freq, 1.0 / curve.nyquist_angstrom)
        for thr, marker in zip(THRESHOLDS, ("o", "s")):
            freq = curve.crossing_frequency(thr)
            if freq is not None and freq > 0:
                ax.plot([freq], [thr], marker, color=line.get_color(), ms=5, mfc="none")
                if thr == 0.143:
                    ax.annotate(at[thr], (freq, thr), xytext=(4, 6), textcoords="offset points",
                                fontsize=SMALL_SIZE, color=line.get_color())
    for thr, style in zip(THRESHOLDS, ("--", ":")):
        ax.axhline(thr, color="grey", linestyle=style, linewidth=1, label=f"FSC = {thr}")
    if nyquist_freq > 0:
        ax.axvline(nyquist_freq, color="grey", linewidth=0.8, alpha=0.6)
        ax.set_xlim(0, nyquist_freq * 1.02)
    else:
        ax.set_xlim(left=0)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    if nyquist_freq > 0:  # the same frequencies, read as resolutions
        top = ax.secondary_xaxis("top")
        ticks = nyquist_freq / np.array([1.0, 1.25, 1.6, 2.0, 3.0, 5.0])
        top.set_xticks(ticks, [f"{1.0 / t:.3g}" for t in ticks])
        top.set_xlabel("resolution (Å)")
    fig.legend(loc="outside lower center", fontsize=LEGEND_SIZE, ncols=1, frameon=False)
    set_suptitle(fig, title)
    return fig


def plot_fsc(curves: Mapping[str, FSCCurveLike], path: str | os.PathLike, title: str = "") -> Path:
    """Plot one or more FSC curves with the 0.143 and 0.5 resolutions in Å to a PNG (see :func:`fsc_figure`)."""
    return save_figure(fsc_figure(curves, title), path)
