"""The analysis figures: the learning curve (provenance.yaml, else run.log), the joint and cluster plots (valid
PNGs, every kind) and the montage of a written map series (analysis.volumes)."""

from __future__ import annotations

import numpy as np
import pytest

from cryoscape.plotting.curves import plot_learning_curve
from cryoscape.plotting.latent import plot_clusters, plot_joint
from cryoscape.training.learning_curve import read_learning_curve


def test_learning_curve_reads_epoch_lines_and_keeps_the_last_of_a_resumed_epoch(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "2026-01-01 00:00:00  training VAE: 400 particles\n"
        "2026-01-01 00:00:01  epoch 1/3: loss 1.5, mse 1.4, kl 0.25, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:02  epoch 2/3: loss 1.2, mse 1.1, kl 0.5, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:03  resuming from weights.1.pt\n"
        "2026-01-01 00:00:04  epoch 2/3: loss 1.25, mse 1.15, kl 0.45, beta 1 (2.0 s, 200 images/s)\n"
        "2026-01-01 00:00:05  epoch 3/3: loss 1e-1, mse 9.5e-2, kl 5e-3, beta 1 (2.0 s, 200 images/s)\n")
    curve = read_learning_curve(log)
    np.testing.assert_array_equal(curve["epoch"], [1, 2, 3])
    np.testing.assert_allclose(curve["loss"], [1.5, 1.25, 0.1])
    np.testing.assert_allclose(curve["mse"], [1.4, 1.15, 0.095])
    np.testing.assert_allclose(curve["kl"], [0.25, 0.45, 0.005])
    path = plot_learning_curve(curve, tmp_path / "curve.png", mark_epoch=2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    homogeneous = tmp_path / "nn.log"
    homogeneous.write_text("x  epoch 1/1: loss 2, mse 2 (1.0 s, 10 images/s)\n")
    assert np.isnan(read_learning_curve(homogeneous)["kl"]).all()
    assert len(read_learning_curve(tmp_path / "missing.log")["epoch"]) == 0


@pytest.mark.parametrize("kind", ["scatter", "hexbin", "contour"])
def test_joint_plots_write_pngs(tmp_path, kind):
    rng = np.random.default_rng(0)
    xy = rng.standard_normal((3000, 2))
    color = xy[:, 0] if kind == "scatter" else None
    path = plot_joint(xy, tmp_path / f"{kind}.png", kind=kind, xlabel="PC1", ylabel="PC2", color=color,
                            color_label="x")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10000
    with pytest.raises(ValueError):
        plot_joint(xy, tmp_path / "bad.png", kind="violin", xlabel="a", ylabel="b")


def test_cluster_plot_with_more_than_twenty_clusters(tmp_path):
    rng = np.random.default_rng(1)
    xy = rng.standard_normal((500, 2))
    labels = rng.integers(0, 25, 500)
    path = plot_clusters(xy, labels, xy[:25], tmp_path / "k25.png", xlabel="PC1", ylabel="PC2")
    assert path.stat().st_size > 10000


def _provenance(tmp_path, records):
    import yaml

    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "provenance.yaml").write_text(yaml.safe_dump(records))
    return run


def test_learning_curve_comes_from_provenance_first_with_the_last_record_of_an_epoch(tmp_path):
    from cryoscape.runs import RunDir

    run = _provenance(tmp_path, [
        {"epochs": [{"epoch": 1, "loss": 1.5, "mse": 1.4, "kl": 0.25},
                    {"epoch": 2, "loss": 1.2, "mse": 1.1, "kl": 0.5}]},
        {"epochs": [{"epoch": 2, "loss": 1.25, "mse": 1.15, "kl": 0.45},
                    {"epoch": 3, "loss": 0.1234567891, "mse": 0.095, "kl": 0.005}]},
    ])
    (run / "run.log").write_text("x  epoch 1/1: loss 9, mse 9, kl 9, beta 1 (1.0 s, 10 images/s)\n")
    assert read_learning_curve(run / "run.log")["loss"].tolist() == [9.0]  # a log file given: that log only
    for source in (run, RunDir(run)):
        curve = read_learning_curve(source)
        np.testing.assert_array_equal(curve["epoch"], [1, 2, 3])
        np.testing.assert_allclose(curve["loss"], [1.5, 1.25, 0.1234567891])  # full precision, not the log's
        np.testing.assert_allclose(curve["kl"], [0.25, 0.45, 0.005])
    # a provenance file without reconstruction errors (or without epochs) leaves the log to speak
    other = _provenance(tmp_path / "b", [{"epochs": [{"epoch": 1, "seconds": 2.0, "loss": 3.0}]}])
    (other / "run.log").write_text("x  epoch 1/1: loss 2, mse 2 (1.0 s, 10 images/s)\n")
    curve = read_learning_curve(other)
    np.testing.assert_allclose(curve["loss"], [2.0])
    assert np.isnan(curve["kl"]).all()


def test_describe_series_shows_a_labelled_subset_of_a_long_series_and_scripts_all_maps(tmp_path):
    from cryoscape.analysis.volumes import describe_series
    from cryoscape.io.mrc import write_mrc
    from cryoscape.plotting.maps import MONTAGE_MAX_MAPS

    rng = np.random.default_rng(0)
    paths = []
    for i in range(MONTAGE_MAX_MAPS + 10):
        paths.append(tmp_path / f"m{i:03d}.mrc")
        write_mrc(paths[-1], rng.random((8, 8, 8), dtype=np.float32) * (i + 1), voxel_size_angstrom=3.0)
    montage, script = describe_series(paths, tmp_path / "montage.png", tmp_path / "series.cxc", title="t")
    assert montage.read_bytes()[:4] == b"\x89PNG"
    lines = script.read_text().splitlines()
    assert lines[1].split()[1:-2] == [p.name for p in paths]  # every map, relative to the script
    assert "voxelSize 3" in script.read_text()
    with pytest.raises(ValueError, match="labels"):
        describe_series(paths, tmp_path / "m2.png", tmp_path / "s2.cxc", labels=["a"])
