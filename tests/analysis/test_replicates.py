"""compare-runs (h_export): Hungarian label matching, k-NN agreement, runs on different particle subsets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.replicates import knn_agreement, match_labels
from cryoscape.cli.main import main

K = 4


def test_match_labels_recovers_a_permutation_and_counts_disagreements():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 6, size=1000)
    perm = np.array([0, 3, 5, 1, 2, 4])  # label l of a is called perm[l] in b
    b = perm[a]
    match = match_labels(a, b)
    assert match.agreement == 1.0
    assert match.mapping == {int(perm[l]): l for l in range(1, 6)}
    assert match.confusion.sum() == 1000 and np.count_nonzero(match.confusion) == 5
    noisy = b.copy()
    flip = rng.choice(1000, size=100, replace=False)
    noisy[flip] = perm[(a[flip] % 5) + 1]  # 100 particles moved to another cluster
    assert match_labels(a, noisy).agreement == pytest.approx(0.9)
    # clusters 4 and 5 merged in b: the merged cluster matches the larger one, the smaller one disagrees
    merged = np.where(a == 5, 4, a)
    smaller = min(np.sum(a == 4), np.sum(a == 5))
    assert match_labels(a, merged).agreement == pytest.approx(1 - smaller / 1000)


def test_knn_agreement_bounds():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 3))
    assert knn_agreement(z, z, k=10) == 1.0
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    assert knn_agreement(z, 2.0 * z @ rotation + 1.0, k=10) == pytest.approx(1.0)  # a similarity transform
    unrelated = knn_agreement(z, rng.standard_normal((500, 3)), k=10)
    assert unrelated < 0.1  # ~k/n = 0.02
    sampled = knn_agreement(z, z + 0.05 * rng.standard_normal(z.shape), k=10, max_queries=100)
    assert 0.3 < sampled < 1.0


def _analysed_copy(run_path, tmp_path, name):
    from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis

    run_dir = tmp_path / name
    shutil.copytree(run_path, run_dir, ignore=shutil.ignore_patterns("analyze.*", "landscape.*"))
    run = TrainedRun.open(run_dir)
    run_analysis(run, AnalyzeConfig(ksample=K, skip_umap=True, skip_vol=True, notebook=False, pc=1))
    return run_dir, run


def test_compare_runs_itself_relabelled_and_a_subset(trained_run, trained_subset_run, tmp_path, capsys):
    run_dir, run = _analysed_copy(trained_run, tmp_path, "a")
    assert main(["compare-runs", str(run_dir), str(run_dir), "--kmeans", str(K), "-o", str(tmp_path / "self")]) == 0
    summary = json.loads((tmp_path / "self" / "comparison.json").read_text())
    assert summary["identical_labels_fraction"] == 1.0 and summary["knn_agreement"] == 1.0
    assert summary["n_common"] == len(run.indices)
    assert (tmp_path / "self" / "confusion.png").stat().st_size > 1000

    # a copy whose analyze labels are permuted: still 100 % after matching, and the matching says how
    copy_dir = tmp_path / "b"
    shutil.copytree(run_dir, copy_dir)
    labels_path = TrainedRun.open(copy_dir).analyze_dir / f"kmeans{K}" / "labels.txt"
    labels = np.loadtxt(labels_path, dtype=np.int64)
    perm = np.array([0, 3, 1, 4, 2])
    np.savetxt(labels_path, perm[labels], fmt="%d")
    assert main(["compare-runs", str(run_dir), str(copy_dir), "--kmeans", str(K), "-o", str(tmp_path / "perm")]) == 0
    printed = capsys.readouterr().out
    assert "identical cluster labels after optimal matching: 100.0 %" in printed
    summary = json.loads((tmp_path / "perm" / "comparison.json").read_text())
    assert summary["matching_run2_to_run1"] == {str(int(perm[l])): l for l in range(1, K + 1)}
    confusion = np.loadtxt(tmp_path / "perm" / "confusion.csv", delimiter=",", dtype=np.int64)
    assert confusion.sum() == len(run.indices) and np.count_nonzero(confusion) == K

    # a run on the odd particles only: compared on the intersection (200 particles), reclustered here
    assert main(["compare-runs", str(run_dir), str(trained_subset_run), "--kmeans", str(K), "--recluster",
                 "-o", str(tmp_path / "sub")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "sub" / "comparison.json").read_text())
    odd = TrainedRun.open(trained_subset_run).indices
    assert summary["n_common"] == len(np.intersect1d(run.indices, odd)) == 200
    assert summary["n_run1"] == 400 and summary["n_run2"] == 200
    assert "compared 200 particles present in both runs (400 in RUN1, 200 in RUN2)" in printed
    assert 0.0 < summary["identical_labels_fraction"] <= 1.0
    assert summary["knn_random_expectation"] == pytest.approx(10 / 199)
