"""Plots of the analyze helper: the learning-curve parser and the joint plots (valid PNGs, every kind)."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.analysis import plots


def test_learning_curve_reads_epoch_lines_and_keeps_the_last_of_a_resumed_epoch(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "2026-01-01 00:00:00  training VAE: 400 particles\n"
        "2026-01-01 00:00:01  epoch 1/3: loss 1.5, mse 1.4, kl 0.25, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:02  epoch 2/3: loss 1.2, mse 1.1, kl 0.5, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:03  resuming from weights.1.pt\n"
        "2026-01-01 00:00:04  epoch 2/3: loss 1.25, mse 1.15, kl 0.45, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:05  epoch 3/3: loss 1e-1, mse 9.5e-2, kl 5e-3, beta 1 (2.0 s, 200 images/s)\n")
    curve = plots.read_learning_curve(log)
    np.testing.assert_array_equal(curve["epoch"], [1, 2, 3])
    np.testing.assert_allclose(curve["loss"], [1.5, 1.25, 0.1])
    np.testing.assert_allclose(curve["mse"], [1.4, 1.15, 0.095])
    np.testing.assert_allclose(curve["kl"], [0.25, 0.45, 0.005])
    path = plots.plot_learning_curve(curve, tmp_path / "curve.png", mark_epoch=2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    homogeneous = tmp_path / "nn.log"
    homogeneous.write_text("x  epoch 1/1: loss 2, mse 2 (1.0 s, 10 images/s)\n")
    assert np.isnan(plots.read_learning_curve(homogeneous)["kl"]).all()
    assert len(plots.read_learning_curve(tmp_path / "missing.log")["epoch"]) == 0


@pytest.mark.parametrize("kind", ["scatter", "hexbin", "contour"])
def test_joint_plots_write_pngs(tmp_path, kind):
    rng = np.random.default_rng(0)
    xy = rng.standard_normal((3000, 2))
    color = xy[:, 0] if kind == "scatter" else None
    path = plots.plot_joint(xy, tmp_path / f"{kind}.png", kind=kind, xlabel="PC1", ylabel="PC2", color=color,
                            color_label="x")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10000
    with pytest.raises(ValueError):
        plots.plot_joint(xy, tmp_path / "bad.png", kind="violin", xlabel="a", ylabel="b")


def test_cluster_plot_with_more_than_twenty_clusters(tmp_path):
    rng = np.random.default_rng(1)
    xy = rng.standard_normal((500, 2))
    labels = rng.integers(0, 25, 500)
    path = plots.plot_clusters(xy, labels, xy[:25], tmp_path / "k25.png", xlabel="PC1", ylabel="PC2")
    assert path.stat().st_size > 10000
