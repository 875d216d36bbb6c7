"""``cryoscape analyze`` (analyze helper): every output exists and is valid; API and CLI give the same numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import fit_pca, kmeans, pc_traversal, percentile_points
from cryoscape.cli.main import main
from cryoscape.io.mrc import read_mrc

K = 4
N_PER_PC = 3
MAP_BOX = 16


def _analyze(*args: str) -> None:
    assert main(["analyze", *args]) == 0


@pytest.fixture(scope="module")
def analysis_2d(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "a2"
    _analyze(str(trained_run), "-o", str(out), "--ksample", str(K), "--n-per-pc", str(N_PER_PC), "-d", str(MAP_BOX),
             "--device", "cpu", "--umap-fit-max", "300")
    return out


@pytest.fixture(scope="module")
def analysis_1d(trained_run_1d) -> Path:
    _analyze(str(trained_run_1d), "--ksample", str(K), "-d", str(MAP_BOX), "--device", "cpu", "--no-notebook")
    return TrainedRun.open(trained_run_1d).analyze_dir


def _png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, path


def _check_series(folder: Path, count: int, voxel: float) -> None:
    """vol_001.mrc … exist with the voxel size, montage.png is a PNG, <folder>.cxc names exactly those maps."""
    maps = sorted(folder.glob("vol_*.mrc"))
    assert [m.name for m in maps] == [f"vol_{i:03d}.mrc" for i in range(1, count + 1)]
    for m in maps:
        vol, header = read_mrc(m)
        assert vol.shape == (MAP_BOX,) * 3 and np.isfinite(vol).all() and vol.std() > 0
        assert header.voxel_size_angstrom == pytest.approx(voxel, rel=1e-4)
    _png_ok(folder / "montage.png")
    script = (folder / f"{folder.name}.cxc").read_text()
    opened = re.search(r"^open (.*) vseries true$", script, re.M).group(1).split()
    assert [(folder / name).resolve() for name in opened] == [m.resolve() for m in maps]
    assert re.search(r"^volume #1 level [-0-9.e]+", script, re.M)
    assert np.loadtxt(folder / "z_values.txt", ndmin=2).shape[0] == count


def test_zdim2_outputs_exist_and_are_valid(analysis_2d, trained_run):
    run = TrainedRun.open(trained_run)
    summary = json.loads((analysis_2d / "analysis.json").read_text())
    n = len(run.z)
    assert summary["n_particles"] == n and summary["zdim"] == 2 and summary["epoch"] == run.epoch
    for name in summary["files"]:
        assert (analysis_2d / name).is_file(), name
    for png in ("pca_explained_variance", "z_pca_scatter", "z_pca_hexbin", "z_pca_contour", "umap_scatter",
                "umap_hexbin", "umap_contour", "learning_curve", f"kmeans{K}/z_pca", f"kmeans{K}/umap",
                "pc1/traversal", "pc2/traversal"):
        _png_ok(analysis_2d / f"{png}.png")
    pca = np.load(analysis_2d / "pca.npy")
    umap = np.load(analysis_2d / "umap.npy")
    assert pca.shape == (n, 2) and pca.dtype == np.float32
    assert umap.shape == (n, 2) and umap.dtype == np.float32 and np.isfinite(umap).all()
    voxel = run.voxel_size_angstrom(MAP_BOX)
    assert voxel == pytest.approx(run.pixel_size_angstrom * run.box_size / MAP_BOX)
    _check_series(analysis_2d / f"kmeans{K}", K, voxel)
    _check_series(analysis_2d / "pc1", N_PER_PC, voxel)
    _check_series(analysis_2d / "pc2", N_PER_PC, voxel)
    ratio = summary["pca"]["explained_variance_ratio"]
    assert sum(ratio) == pytest.approx(1.0) and ratio[0] >= ratio[1]
    assert summary["learning_curve"]["epoch"] == [1, 2]


def test_kmeans_files_agree_with_labels_and_particles(analysis_2d, trained_run):
    run = TrainedRun.open(trained_run)
    kdir = analysis_2d / f"kmeans{K}"
    labels = np.loadtxt(kdir / "labels.txt", dtype=np.int64)
    centers = np.loadtxt(kdir / "centers.txt", ndmin=2)
    centers_ind = np.loadtxt(kdir / "centers_ind.txt", dtype=np.int64)
    assert labels.shape == (len(run.z),) and set(labels.tolist()) == set(range(1, K + 1))
    # on-data centres are actual particle latents, and centre i belongs to cluster i (= vol_00i.mrc)
    rows = run.rows_of(centers_ind)
    np.testing.assert_allclose(centers, run.z[rows], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels[rows], np.arange(1, K + 1))
    np.testing.assert_allclose(np.loadtxt(kdir / "z_values.txt", ndmin=2), centers, rtol=1e-5, atol=1e-6)
    summary = json.loads((analysis_2d / "analysis.json").read_text())
    assert summary["kmeans"]["sizes"] == np.bincount(labels, minlength=K + 1)[1:].tolist()
    # each cluster's map is the map at its centre
    vol, _ = read_mrc(kdir / "vol_002.mrc")
    np.testing.assert_allclose(vol, run.volumes(centers[1:2], box_size=MAP_BOX)[0], atol=1e-4 * np.abs(vol).max())


def test_api_and_cli_give_the_same_numbers(analysis_2d, trained_run):
    run = TrainedRun.open(trained_run)
    z = run.z
    pca = fit_pca(z)
    np.testing.assert_allclose(np.load(analysis_2d / "pca.npy"), pca.transform(z), atol=1e-5)
    km = kmeans(z, K, seed=0)
    np.testing.assert_array_equal(np.loadtxt(analysis_2d / f"kmeans{K}" / "labels.txt", dtype=int), km.labels + 1)
    np.testing.assert_array_equal(np.loadtxt(analysis_2d / f"kmeans{K}" / "centers_ind.txt", dtype=int),
                                  run.indices[km.on_data_indices])
    points = pc_traversal(z, pc=0, n_points=N_PER_PC)
    np.testing.assert_allclose(np.loadtxt(analysis_2d / "pc1" / "z_values.txt"), points, rtol=1e-5, atol=1e-6)
    coords = pca.transform(points)[:, 0]
    lo, hi = np.percentile(pca.transform(z)[:, 0], [5, 95])
    np.testing.assert_allclose(coords, np.linspace(lo, hi, N_PER_PC), atol=1e-5)


def _execute_notebook(folder: Path) -> list:
    """Run ``folder/analyze.ipynb`` headless; returns the PNG outputs (asserting no cell failed)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(folder / "analyze.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]


def test_notebook_executes_headless(analysis_2d):
    images = _execute_notebook(analysis_2d)
    assert len(images) >= 8  # learning curve, variance, 3 PCA, 3 UMAP, clusters, map montage
    assert (analysis_2d / "notebook_figures" / "kmeans_pca.png").is_file()


def test_notebook_of_a_1d_latent_executes_headless(analysis_1d, trained_run_1d):
    from cryoscape.analysis.notebook import write_notebook
    from cryoscape.runs.layout import AnalysisLayout

    run = TrainedRun.open(trained_run_1d)
    write_notebook(AnalysisLayout(analysis_1d).notebook, run.path, run.epoch, analysis_1d, k=K, seed=0, zdim=1)
    images = _execute_notebook(analysis_1d)
    assert len(images) == 4  # learning curve, histogram of z, z against index, map montage
    assert (analysis_1d / "notebook_figures" / "z_hist.png").is_file()
    assert not (analysis_1d / "notebook_figures" / "kmeans_pca.png").exists()


def test_zdim1_histogram_and_percentile_maps(analysis_1d, trained_run_1d):
    run = TrainedRun.open(trained_run_1d)
    assert analysis_1d == Path(trained_run_1d) / f"analyze.{run.epoch}"
    for png in ("z_hist", "z_vs_index", "learning_curve"):
        _png_ok(analysis_1d / f"{png}.png")
    assert not (analysis_1d / "umap.npy").exists() and not (analysis_1d / "pc1").exists()
    voxel = run.voxel_size_angstrom(MAP_BOX)
    _check_series(analysis_1d / "percentiles", 10, voxel)
    np.testing.assert_allclose(np.loadtxt(analysis_1d / "percentiles" / "z_values.txt", ndmin=2),
                               percentile_points(run.z), rtol=1e-5, atol=1e-6)
    _check_series(analysis_1d / f"kmeans{K}", K, voxel)


def test_subset_run_maps_centres_to_original_indices(trained_subset_run, tmp_path):
    _analyze(str(trained_subset_run), "-o", str(tmp_path / "a"), "--ksample", "3", "--skip-vol", "--skip-umap",
             "--no-notebook")
    centers_ind = np.loadtxt(tmp_path / "a" / "kmeans3" / "centers_ind.txt", dtype=np.int64)
    assert (centers_ind % 2 == 1).all()  # trained on odd particles only
    run = TrainedRun.open(trained_subset_run)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "a" / "kmeans3" / "centers.txt", ndmin=2),
                               run.z[run.rows_of(centers_ind)], rtol=1e-5, atol=1e-6)
    assert not list((tmp_path / "a").rglob("*.mrc"))
    assert (tmp_path / "a" / "pc1" / "z_values.txt").is_file()


def test_bad_options_are_one_line_errors(trained_run, tmp_path, capsys):
    assert main(["analyze", str(trained_run), "-o", str(tmp_path / "x"), "--ksample", "0"]) == 2
    assert "--ksample" in capsys.readouterr().err
    assert main(["analyze", str(trained_run), "-o", str(tmp_path / "y"), "-d", "15", "--skip-umap"]) == 2
    assert "even" in capsys.readouterr().err


def test_demo_truth_figures_match_maps_to_the_nearest_true_map(analysis_1d, trained_run_1d, hinge_dataset,
                                                                tmp_path):
    import pandas as pd

    from cryoscape.analysis import demo

    run = TrainedRun.open(trained_run_1d)
    plot, motion, curve, rho = demo.compare_with_truth(run, hinge_dataset, analysis_1d / "percentiles", tmp_path,
                                                       curve_png=analysis_1d / "learning_curve.png")
    for png in (plot, motion, curve):
        _png_ok(png)
    truth = pd.read_csv(hinge_dataset / "ground_truth.csv")
    assert -1 <= rho <= 1
    # the matching rule: the true coordinate of a point is the median over its nearest particles along z
    z = run.z[:, 0]
    coord = truth.set_index("index").loc[run.indices, "coordinate"].to_numpy()
    c = demo._truth_coordinate(np.array([z.min(), z.max()]), z, coord, k=5)
    lowest, highest = np.argsort(z)[:5], np.argsort(z)[-5:]
    np.testing.assert_allclose(c, [np.median(coord[lowest]), np.median(coord[highest])])


def test_apix_overrides_the_voxel_size(trained_run, tmp_path):
    _analyze(str(trained_run), "-o", str(tmp_path / "a"), "--ksample", "2", "--pc", "1", "--n-per-pc", "2",
             "--skip-umap", "--no-notebook", "-d", "8", "--Apix", "2.0")
    _, header = read_mrc(tmp_path / "a" / "kmeans2" / "vol_001.mrc")
    run = TrainedRun.open(trained_run)
    assert header.voxel_size_angstrom == pytest.approx(2.0 * run.box_size / 8, rel=1e-5)
    assert (tmp_path / "a" / "pc1").is_dir() and not (tmp_path / "a" / "pc2").exists()


def _quick(*args: str) -> list[str]:
    return [*args, "--ksample", "2", "--skip-vol", "--skip-umap", "--no-notebook"]


def test_pc_outside_one_to_zdim_is_refused_before_any_folder_is_made(trained_run, tmp_path, capsys):
    for pc, words in (("3", "--pc must be between 1 and zdim 2, got 3"), ("0", "--pc must be at least 1, got 0")):
        assert main(["analyze", str(trained_run), *_quick("-o", str(tmp_path / "new" / "a"), "--pc", pc)]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_an_earlier_analysis_is_replaced_only_with_overwrite(trained_run, tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["analyze", str(trained_run), *_quick("-o", str(out))]) == 0
    labels = (out / "kmeans2" / "labels.txt").read_bytes()
    capsys.readouterr()
    assert main(["analyze", str(trained_run), "-o", str(out), "--ksample", "3", "--skip-vol", "--skip-umap"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(out) in err and err.count("\n") == 1
    assert (out / "kmeans2" / "labels.txt").read_bytes() == labels and not (out / "kmeans3").exists()
    assert main(["analyze", str(trained_run), "-o", str(out), "--ksample", "3", "--skip-vol", "--skip-umap",
                 "--no-notebook", "--overwrite"]) == 0
    assert (out / "kmeans3" / "labels.txt").is_file() and not (out / "kmeans2").exists()
    assert json.loads((out / "analysis.json").read_text())["kmeans"]["k"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no staging folder left behind


def test_a_failed_analysis_leaves_no_folder_and_keeps_the_earlier_one(trained_run, tmp_path, monkeypatch):
    from cryoscape.analysis import analyze

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    run = TrainedRun.open(trained_run)
    config = analyze.AnalyzeConfig(ksample=2, skip_vol=True, skip_umap=True, notebook=False)
    monkeypatch.setattr(analyze, "plot_clusters", broken)
    with pytest.raises(RuntimeError):
        analyze.run_analysis(run, config, tmp_path / "new" / "a")
    assert list(tmp_path.iterdir()) == []
    earlier = tmp_path / "b"
    earlier.mkdir()
    (earlier / "mine.txt").write_text("kept")
    with pytest.raises(RuntimeError):
        analyze.run_analysis(run, config, earlier, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["b"] and (earlier / "mine.txt").read_text() == "kept"


def test_positional_epoch_and_learning_curve_from_provenance(trained_run, tmp_path):
    import shutil

    import yaml

    from cryoscape.training.learning_curve import read_learning_curve

    out = tmp_path / "a"
    assert main(["analyze", str(trained_run), "1", *_quick("-o", str(out))]) == 0
    summary = json.loads((out / "analysis.json").read_text())
    assert summary["epoch"] == 1
    records = yaml.safe_load((Path(trained_run) / "provenance.yaml").read_text())
    losses = {e["epoch"]: e["loss"] for r in records for e in r["epochs"]}
    assert summary["learning_curve"]["epoch"] == [1, 2]
    assert summary["learning_curve"]["loss"] == [losses[1], losses[2]]  # full precision, not run.log's digits
    # a run without provenance.yaml (older runs): run.log's rounded values
    old = tmp_path / "old"
    shutil.copytree(trained_run, old, ignore=shutil.ignore_patterns("analyze.*", "landscape.*", "provenance.yaml"))
    curve = read_learning_curve(TrainedRun.open(old).run_dir)
    assert curve["epoch"].tolist() == [1, 2]
    np.testing.assert_allclose(curve["loss"], [losses[1], losses[2]], rtol=1e-3)
    assert curve["loss"].tolist() != [losses[1], losses[2]]


def test_demo_options_come_from_its_config(capsys):
    from cryoscape.analysis.demo import DemoConfig

    assert DemoConfig().zdim == 8  # the demo shows PCA/UMAP, not a 1-D histogram
    assert main(["demo", "-o", "unused", "--n-maps", "1"]) == 2
    assert "--n-maps must be at least 2, got 1" in capsys.readouterr().err
