"""Counts read as whole numbers (colour bars and histogram axes) and the FSC plot states resolutions in Å."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.plotting import fsc, latent
from tests.plotting.figures_under_test import figures_for, latent_space, linear_fsc
from tests.plotting.readability import INTEGER, count_axes, tick_labels_in_view


def _assert_integer_ticks(fig) -> int:
    fig.canvas.draw()
    checked = 0
    for _, axis in count_axes(fig):
        labels, locs = tick_labels_in_view(axis)
        assert len(labels) >= 1, axis.get_label().get_text()
        assert all(INTEGER.match(s) for s in labels), (axis.get_label().get_text(), labels)
        np.testing.assert_allclose(locs, np.round(locs), atol=1e-9)
        checked += 1
    return checked


@pytest.mark.parametrize("name", ["joint_hexbin", "joint_contour", "traversal", "confusion", "joint_scatter",
                                  "state_populations"])
def test_count_axes_have_whole_number_ticks(name):
    assert _assert_integer_ticks(figures_for(8)[name]()) >= 1


@pytest.mark.parametrize("n", [300, 8000])
def test_density_colour_bars_count_whole_particles_at_any_number_of_points(n):
    _, pcs, _ = latent_space(2, n=n)
    for kind in ("hexbin", "contour"):
        fig = latent.joint_figure(pcs, kind=kind, xlabel="PC1", ylabel="PC2")
        assert _assert_integer_ticks(fig) == 3  # the colour bar and both marginal histograms
        bar_label = next(a.get_ylabel() for a in fig.axes if a.get_ylabel().startswith("particles"))
        assert ("log scale" in bar_label) == (kind == "hexbin" and n > latent.HEXBIN_LOG_ABOVE)


def _figure_strings(fig) -> list[str]:
    fig.canvas.draw()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    texts += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    return texts


def test_fsc_plot_marks_the_resolution_at_0143_and_05():
    curve = linear_fsc(box=64, voxel_angstrom=2.0, slope=1 / 16)  # FSC = 1 - shell/16
    # crossing at shell 16 (1 - t): frequency shell / (64 * 2 Å)
    res_0143 = 64 * 2.0 / (16 * (1 - 0.143))
    res_05 = 64 * 2.0 / (16 * 0.5)
    assert fsc.resolution_text(curve, 0.143) == f"{res_0143:.2f} Å" == "9.33 Å"
    assert fsc.resolution_text(curve, 0.5) == f"{res_05:.1f} Å" == "16.0 Å"
    strings = _figure_strings(fsc.fsc_figure({"half-maps": curve}))
    legend = [s for s in strings if s.startswith("half-maps")]
    assert legend == ["half-maps: 9.33 Å at FSC 0.143, 16.0 Å at FSC 0.5"]
    assert "9.33 Å" in strings  # the annotation at the crossing


def test_fsc_plot_says_when_the_curve_does_not_cross_before_nyquist():
    high = linear_fsc(box=64, voxel_angstrom=1.5, slope=1 / 100)  # 0.68 at Nyquist
    assert fsc.resolution_text(high, 0.143) == "≥ Nyquist (3.00 Å)"
    assert fsc.resolution_text(high, 0.5) == "≥ Nyquist (3.00 Å)"
    low = linear_fsc(slope=0.9)  # below 0.143 at the first shell
    assert fsc.resolution_text(low, 0.143) == "none (below at the first shell)"
    strings = " ".join(_figure_strings(fsc.fsc_figure({"a": high, "b": low})))
    assert "a: ≥ Nyquist (3.00 Å) at FSC 0.143" in strings
    assert "b: none (below at the first shell) at FSC 0.143" in strings


def test_the_reconstruct_module_still_offers_the_fsc_plot(tmp_path):
    from cryoscape.plotting.fsc import plot_fsc
    from cryoscape.reconstruct.fsc import FSCCurve

    shells = np.arange(17)
    curve = FSCCurve(shells / 64.0, np.clip(1 - shells / 10, 0, 1), np.ones(17, np.int64), 2.0)
    assert curve.resolution_angstrom(0.143) == pytest.approx(1 / (10 * (1 - 0.143) / 64.0))
    path = plot_fsc({"x": curve}, tmp_path / "fsc.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_pc_traversal_is_drawn_in_pc1_pc2_whatever_component_it_follows():
    _, pcs, ratio = latent_space(8)
    points = np.zeros((5, 8))
    points[:, 1] = np.linspace(-1, 1, 5)  # along PC2
    fig = latent.pc_traversal_figure(pcs, points, pc=1, ratio=ratio)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    line = next(line for line in ax.get_lines() if len(line.get_xdata()) == 5)
    np.testing.assert_allclose(line.get_xdata(), 0)  # runs vertically
    np.testing.assert_allclose(line.get_ydata(), points[:, 1])
    assert fig.get_suptitle().startswith("PC2 traversal points")
