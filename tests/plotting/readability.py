"""Checks that a drawn figure reads: no text cut at the figure's edge, no title over an axes, labels apart."""

from __future__ import annotations

import re

import numpy as np

TOLERANCE_PX = 1.0


def _inside(box, frame) -> bool:
    return (box.x0 >= frame.x0 - TOLERANCE_PX and box.y0 >= frame.y0 - TOLERANCE_PX
            and box.x1 <= frame.x1 + TOLERANCE_PX and box.y1 <= frame.y1 + TOLERANCE_PX)


def _overlap(a, b) -> bool:
    t = TOLERANCE_PX
    return a.x0 < b.x1 - t and b.x0 < a.x1 - t and a.y0 < b.y1 - t and b.y0 < a.y1 - t


def _anchored_outside(text, ax, renderer) -> bool:
    """Whether a text of ``ax`` is placed outside its data area (a label, a header), not on the data."""
    x, y = text.get_transform().transform(text.get_position())
    area = ax.get_window_extent(renderer)
    return not (area.x0 <= x <= area.x1 and area.y0 <= y <= area.y1)


def _figure_texts(fig):
    texts = list(fig.texts)
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        text = getattr(fig, name, None)
        if text is not None:
            texts.append(text)
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def assert_readable(fig) -> None:
    """Draw ``fig`` and check what a reader needs, with the renderer's own measures (pixels).

    1. Every axes (with its tick labels, axis labels, title and unclipped texts), every figure-level text and every
       figure legend lies inside the figure.
    2. The figure title overlaps no axes, not even its tick labels or titles (``get_tightbbox``).
    3. No axes title and no text anchored outside its axes' data area (montage row labels, column headers)
       overlaps any axes' data area, and such texts do not overlap one another.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert box is None or _inside(box, frame), f"axes {ax.get_label() or ax} reaches outside the figure: {box}"
    fig_texts = _figure_texts(fig)
    for text in fig_texts:
        box = text.get_window_extent(renderer)
        assert _inside(box, frame), f"figure text {text.get_text()!r} is cut at the edge: {box} vs {frame}"
    for legend in fig.legends:
        assert _inside(legend.get_window_extent(renderer), frame), "a figure legend is cut at the edge"
    areas = [ax.get_window_extent(renderer) for ax in fig.axes]
    for text in fig_texts:
        box = text.get_window_extent(renderer)
        for ax in fig.axes:
            tight = ax.get_tightbbox(renderer)
            assert not _overlap(box, tight), f"figure text {text.get_text()!r} overlaps an axes"
    outside = [ax.title for ax in fig.axes if ax.title.get_text()]
    outside += [t for ax in fig.axes for t in ax.texts if t.get_text().strip() and _anchored_outside(t, ax, renderer)]
    boxes = [t.get_window_extent(renderer) for t in outside]
    for text, box in zip(outside, boxes):
        assert _inside(box, frame), f"text {text.get_text()!r} is cut at the edge"
        for area in areas:
            assert not _overlap(box, area), f"text {text.get_text()!r} is drawn over an axes"
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _overlap(boxes[i], boxes[j]), f"{outside[i].get_text()!r} overlaps {outside[j].get_text()!r}"


def count_axes(fig):
    """The (axes, axis) pairs labelled as counts of particles ("particles …", "count")."""
    pairs = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            label = axis.get_label().get_text()
            if label.startswith("particles") or label == "count":
                pairs.append((ax, axis))
    return pairs


def tick_labels_in_view(axis) -> tuple[list[str], np.ndarray]:
    """The major tick labels an axis shows and their positions (ticks inside its view interval)."""
    lo, hi = sorted(axis.get_view_interval())
    locs = [v for v in axis.get_majorticklocs() if lo - 1e-9 <= v <= hi + 1e-9]
    return list(axis.get_major_formatter().format_ticks(locs)), np.asarray(locs)


INTEGER = re.compile(r"^[0-9]+$")
