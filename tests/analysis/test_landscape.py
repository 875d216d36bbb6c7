"""Volume landscape (trajectories helper): map PCA vs scikit-learn, clustering, sketch, the command's files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.landscape import ball, cluster_maps, masked_pca, sketch
from cryoscape.cli.main import main
from cryoscape.io.mrc import read_mrc


def test_masked_pca_matches_sklearn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    data = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 500)) * [[5.0]] + 0.1 * rng.standard_normal((40, 500))
    coords, ratio = masked_pca(data.astype(np.float32), 5)
    ref = PCA(n_components=5).fit(data)
    expected = ref.transform(data)
    np.testing.assert_allclose(np.abs(coords), np.abs(expected), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-5)
    assert np.all(coords[np.abs(coords).argmax(axis=0), np.arange(5)] > 0)  # sign convention


@pytest.mark.parametrize("linkage", ["ward", "average"])
def test_cluster_maps_recovers_separated_groups_ordered_by_pc1(linkage):
    rng = np.random.default_rng(1)
    centres = np.array([[5.0, 0.0], [-5.0, 1.0], [0.0, 8.0]])
    truth = rng.integers(0, 3, 90)
    coords = centres[truth] + 0.3 * rng.standard_normal((90, 2))
    states = cluster_maps(coords, 3, linkage)
    # state 1 = lowest mean first coordinate (centre -5), 2 = centre 0, 3 = centre +5
    expected = np.array([3, 1, 2])[truth]
    np.testing.assert_array_equal(states, expected)


def test_sketch_centres_are_on_data_and_nearest_their_centre():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(c, 0.2, (150, 2)) for c in ((0, 0), (4, 0), (0, 4))]).astype(np.float32)
    sk = sketch(z, 6, seed=0)
    assert len(sk.centre_rows) == 6 and sk.sizes.sum() == len(z)
    for c in range(6):
        members = z[sk.labels == c]
        centre = members.mean(axis=0)  # k-means centre = mean of its members
        d = np.linalg.norm(z - centre, axis=1)
        assert d[sk.centre_rows[c]] == pytest.approx(d.min(), abs=1e-5)


def test_ball_structuring_element():
    b = ball(2)
    assert b.shape == (5, 5, 5) and b[2, 2, 2] and b[0, 2, 2] and not b[0, 0, 0]
    assert b.sum() == 33  # lattice points with x²+y²+z² ≤ 4


def test_analyze_landscape_command_files_agree(trained_run, tmp_path):
    out = tmp_path / "land"
    assert main(["analyze-landscape", str(trained_run), "--sketch-size", "12", "-M", "3", "-d", "16", "--pc-dim",
                 "5", "--dilate", "1", "--skip-umap", "-o", str(out), "--device", "cpu"]) == 0
    run = TrainedRun.open(trained_run)
    n = len(run.z)
    labels = np.loadtxt(out / "labels.txt", dtype=np.int64)
    assert labels.shape == (n,) and set(labels.tolist()) <= {1, 2, 3}
    # per-state indices: original indices of exactly the rows with that label
    for s in (1, 2, 3):
        ind = np.loadtxt(out / f"state_{s:02d}_indices.txt", dtype=np.int64, ndmin=1)
        np.testing.assert_array_equal(ind, run.indices[labels == s])
    # particles take the state of their k-means centre
    centre_of = np.loadtxt(out / "centers" / "labels.txt", dtype=np.int64)
    state_of_centre = np.loadtxt(out / "centers" / "states.txt", dtype=np.int64)
    np.testing.assert_array_equal(labels, state_of_centre[centre_of - 1])
    centres_ind = np.loadtxt(out / "centers" / "centers_ind.txt", dtype=np.int64)
    np.testing.assert_allclose(np.loadtxt(out / "centers" / "z_values.txt"), run.z[run.rows_of(centres_ind)],
                               atol=1e-5)
    maps = sorted((out / "centers").glob("vol_*.mrc"))
    assert len(maps) == 12
    vols = np.stack([read_mrc(p)[0] for p in maps])
    assert vols.shape == (12, 16, 16, 16)
    np.testing.assert_allclose(vols[0], run.volumes(run.z[run.rows_of(centres_ind[:1])], box_size=16)[0],
                               rtol=1e-4, atol=1e-4 * np.abs(vols[0]).max())
    # the mask contains every thresholded centre map
    mask = read_mrc(out / "mask.mrc")[0] > 0.5
    for v in vols:
        assert mask[v > 0.5 * np.percentile(v, 99.99)].all()
    # state mean/std: particle-weighted over the state's centre maps
    sizes = np.bincount(centre_of - 1, minlength=12).astype(np.float64)
    for s in (1, 2, 3):
        members = np.flatnonzero(state_of_centre == s)
        if members.size == 0:
            continue
        w = sizes[members] / sizes[members].sum()
        mean = np.tensordot(w, vols[members].astype(np.float64), axes=1)
        std = np.sqrt(np.clip(np.tensordot(w, vols[members].astype(np.float64) ** 2, axes=1) - mean**2, 0, None))
        np.testing.assert_allclose(read_mrc(out / f"state_{s:02d}_mean.mrc")[0], mean, atol=1e-4 * np.abs(mean).max())
        np.testing.assert_allclose(read_mrc(out / f"state_{s:02d}_std.mrc")[0], std,
                                   atol=1e-3 * np.abs(mean).max())
    summary = json.loads((out / "landscape.json").read_text())
    assert summary["n_states"] == 3 and summary["sketch_size"] == 12
    assert sum(summary["state_populations"].values()) == n
    for name in ("state_populations.png", "volume_pca_states.png", "z_pca_states.png", "montage.png",
                 "centers/montage.png"):
        assert (out / name).stat().st_size > 0
    assert "state_01_mean.mrc" in (out / "land.cxc").read_text()
    assert "vol_012.mrc" in (out / "centers" / "centers.cxc").read_text()
    assert np.load(out / "volume_pca.npy").shape == (12, 5)


def test_analyze_landscape_on_a_subset_run_and_bad_options(trained_subset_run, tmp_path, capsys):
    out = tmp_path / "odd"
    assert main(["analyze-landscape", str(trained_subset_run), "--sketch-size", "6", "-M", "2", "-d", "16",
                 "--skip-umap", "-o", str(out)]) == 0
    ind = np.concatenate([np.loadtxt(out / f"state_{s:02d}_indices.txt", dtype=np.int64, ndmin=1) for s in (1, 2)])
    np.testing.assert_array_equal(np.sort(ind), np.arange(1, 400, 2))  # original indices of the --ind subset
    assert main(["analyze-landscape", str(trained_subset_run), "--sketch-size", "4", "-M", "5", "-o", str(out)]) == 2
    assert "-M 5 states need at least as many maps" in capsys.readouterr().err


def test_sketch_size_must_be_below_the_particle_count_and_earlier_results_need_overwrite(trained_subset_run, tmp_path,
                                                                                        capsys):
    out = tmp_path / "new" / "land"
    assert main(["analyze-landscape", str(trained_subset_run), "--sketch-size", "200", "-M", "2", "-o",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "--sketch-size 200 must be smaller than the number of particles (200)" in err
    assert not (tmp_path / "new").exists()
    out.mkdir(parents=True)
    (out / "labels.txt").write_text("1\n")
    assert main(["analyze-landscape", str(trained_subset_run), "--sketch-size", "5", "-M", "2", "-d", "8",
                 "--skip-umap", "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "labels.txt").read_text() == "1\n"
    assert main(["analyze-landscape", str(trained_subset_run), "--sketch-size", "5", "-M", "2", "-d", "8",
                 "--skip-umap", "-o", str(out), "--overwrite"]) == 0
    assert len(np.loadtxt(out / "labels.txt")) == 200
    summary = json.loads((out / "landscape.json").read_text())
    assert all((out / name).is_file() for name in summary["files"]) and "centers/vol_005.mrc" in summary["files"]
