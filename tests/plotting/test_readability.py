"""Every plot reads: nothing cut at the figure's edge, no title over an axes (renderer measures), at zdim 1, 2 and 8
and for montages of 20, 50 and 100 maps with labels of several lines."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.plotting import maps
from tests.plotting.figures_under_test import figures_for
from tests.plotting.readability import assert_readable

CASES = [(zdim, name) for zdim in (1, 2, 8) for name in figures_for(zdim)]


@pytest.mark.parametrize(("zdim", "name"), CASES, ids=[f"zdim{z}-{n}" for z, n in CASES])
def test_figure_reads(zdim, name):
    fig = figures_for(zdim)[name]()
    assert_readable(fig)


def _series(n: int, box: int = 16) -> list[np.ndarray]:
    g = np.mgrid[:box, :box, :box] - box // 2
    return [np.exp(-((g[0] - 3 * np.sin(i / n * 6)) ** 2 + g[1] ** 2 + (g[2] - 5 * i / n) ** 2) / 6.0)
            for i in range(n)]


@pytest.mark.parametrize("n", [20, 50, 100])
def test_montage_reads_and_stays_a_sane_size(n):
    series = _series(n)
    labels = [f"vol_{i + 1:03d}\nz=({0.1 * i:.2f}, {-0.05 * i:.2f})\nparticle {1000 + i}" for i in range(n)]
    rows = maps.shown_rows(n)
    fig = maps.montage_figure([maps.map_views(series[i]) for i in rows], [labels[i] for i in rows],
                              title="graph traversal from particle 12 to 5021 — "
                                    "hinge_run_with_a_long_descriptive_name, epoch 25: 1000 particles, zdim 8",
                              total=n)
    assert_readable(fig)
    width_px, height_px = fig.bbox.width, fig.bbox.height
    assert height_px < 3500 and width_px < 2000, (width_px, height_px)
    shown_labels = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text() in labels]
    assert shown_labels == [labels[i] for i in rows]
    title = fig.get_suptitle()
    if n > maps.MONTAGE_MAX_MAPS:
        assert len(rows) == maps.MONTAGE_MAX_MAPS and rows[0] == 0 and rows[-1] == n - 1
        assert f"{maps.MONTAGE_MAX_MAPS} of {n} maps shown" in title
    else:
        assert len(rows) == n and "shown" not in title


def test_montage_title_is_above_the_first_row_for_a_long_series():
    series = _series(30)
    fig = maps.montage_figure([maps.map_views(v) for v in series], [f"map {i}" for i in range(30)], title="t")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title = fig._suptitle.get_window_extent(renderer)
    headers = [t.get_window_extent(renderer) for ax in fig.axes for t in ax.texts if t.get_text() in maps.VIEWS]
    images = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert len(headers) == 12 and len(images) == 2  # 30 rows: two blocks of 15 side by side
    assert min(h.y0 for h in headers) >= max(i.y1 for i in images) - 1
    assert title.y0 >= max(h.y1 for h in headers) - 1


def test_montage_refuses_labels_that_do_not_match(tmp_path):
    with pytest.raises(ValueError, match="2 labels for 3 maps"):
        maps.write_montage(_series(3), tmp_path / "m.png", labels=["a", "b"])
    with pytest.raises(ValueError, match="no maps"):
        maps.montage_figure([], [])


def test_paired_montage_reads_and_keeps_each_side_on_its_own_scale():
    generated = _series(8)
    truth = [100.0 * v + 5.0 for v in _series(8, box=24)]  # another box and another scale
    labels = [f"{i + 1}: latent PC1={0.3 * i - 1:.2g}" for i in range(8)]
    truth_labels = [f"state_{3 * i:03d}.mrc\n{10 * i}°" for i in range(8)]
    fig = maps.paired_montage_figure(
        generated, truth, labels, truth_labels,
        title="Generated maps along latent PC1 (left, pc1/vol_001…) next to the true map of the nearest hinge "
              "angle (right)\nepoch 25, 1000 particles, zdim 8")
    assert_readable(fig)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 8 * 6
    left, right = images[0].get_clim(), images[5].get_clim()
    assert right[0] > left[1]  # the true maps' grey scale is their own, not the generated maps'
    shown = [t.get_text() for ax in fig.axes for t in (ax.yaxis.label,) if t.get_text()]
    assert shown == [x for pair in zip(labels, truth_labels) for x in pair]
    with pytest.raises(ValueError, match="one of each per row"):
        maps.paired_montage_figure(generated, truth[:7], labels, truth_labels)
