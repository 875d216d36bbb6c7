"""compare-runs (h_export): Hungarian label matching, k-NN agreement, runs on different particle subsets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.replicates import chance_agreement, knn_agreement, latent_agreement, match_labels
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


def test_latent_agreement_is_one_for_linear_transforms_and_chance_for_unrelated_latents():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((600, 3)) * [3.0, 1.0, 0.3]
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    same = latent_agreement(z, 2.5 * z @ rotation + 4.0, permutations=10)
    np.testing.assert_allclose(same.canonical_correlations, 1.0, atol=1e-9)
    assert same.r2_b_from_a == pytest.approx(1.0) and same.r2_a_from_b == pytest.approx(1.0)
    assert same.chance_first_correlation < 0.25  # shuffled particles: unrelated

    # other zdims: a 5-D latent holding the 3-D one linearly (rank 3); a 2-D latent holding 2 of its 3 directions
    wide = latent_agreement(z, z @ rng.standard_normal((3, 5)), permutations=5)
    np.testing.assert_allclose(wide.canonical_correlations, 1.0, atol=1e-9)
    assert wide.canonical_correlations.size == 3 and wide.r2_b_from_a == pytest.approx(1.0)
    narrow = latent_agreement(z, z[:, :2] @ rotation[:2, :2], permutations=5)
    np.testing.assert_allclose(narrow.canonical_correlations, 1.0, atol=1e-9)
    assert narrow.r2_b_from_a == pytest.approx(1.0)
    assert narrow.r2_a_from_b == pytest.approx(2 / 3, abs=0.02)  # the third coordinate is not in the 2-D latent

    unrelated = latent_agreement(z, rng.standard_normal((600, 4)), permutations=50)
    first = unrelated.canonical_correlations[0]
    assert first < 0.25 and abs(first - unrelated.chance_first_correlation) < 0.08
    assert unrelated.r2_b_from_a < 0.03 and unrelated.r2_a_from_b < 0.03
    assert unrelated.chance_r2_b_from_a == pytest.approx(3 / 599, rel=0.5)  # ≈ predictors / (n - 1)


def test_label_chance_level_of_independent_and_shifted_labellings():
    rng = np.random.default_rng(3)
    a = rng.integers(1, 6, size=3000)
    b = rng.integers(1, 6, size=3000)
    chance = chance_agreement(a, b, permutations=50, seed=1)
    assert 0.2 < chance < 0.25  # above 1/K: the matching picks the best permutation even for unrelated labels
    assert match_labels(a, b).agreement == pytest.approx(chance, abs=0.02)
    # one continuum cut into 10 bins twice, the second cut shifted by half a bin: half the labels identical
    t = np.sort(rng.uniform(0, 1, size=2000))
    cut_a = np.minimum((t * 10).astype(int), 9) + 1
    cut_b = np.minimum(((t + 0.05) * 10).astype(int), 9) + 1
    assert match_labels(cut_a, cut_b).agreement == pytest.approx(0.55, abs=0.03)
    assert chance_agreement(cut_a, cut_b, permutations=20) < 0.2


def _with_latent(run_dir, transform):
    """Rewrite the latest z of a run folder through ``transform(z)`` (same particles)."""
    from cryoscape.runs.folder import RunDir

    folder = RunDir(run_dir)
    latents = folder.load_z()
    epoch = folder.latest_epoch()
    folder.save_z(epoch, transform(latents.mean), latents.logvar, latents.indices)
    return run_dir


def test_compare_runs_latent_agreement_and_verdict(trained_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    moved = _with_latent(shutil.copytree(trained_run, tmp_path / "moved"), lambda z: 3.0 * z @ rotation - 1.0)
    assert main(["compare-runs", str(trained_run), str(moved), "--kmeans", "5", "--recluster",
                 "--permutations", "20", "-o", str(tmp_path / "same")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "same" / "comparison.json").read_text())
    assert summary["canonical_correlations"] == pytest.approx([1.0, 1.0])
    assert summary["linear_r2_run2_from_run1"] == pytest.approx(1.0)
    assert summary["knn_agreement"] == pytest.approx(1.0)
    assert summary["identical_labels_fraction"] > summary["identical_labels_chance_fraction"]
    assert "The two latent spaces agree: first canonical correlation 1.00" in printed
    assert summary["verdict"] in printed and "by chance" in summary["verdict"]

    shuffled = _with_latent(shutil.copytree(trained_run, tmp_path / "shuffled"), lambda z: rng.permutation(z))
    assert main(["compare-runs", str(trained_run), str(shuffled), "--kmeans", "5", "--recluster",
                 "--permutations", "50", "-o", str(tmp_path / "unrelated")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "unrelated" / "comparison.json").read_text())
    assert summary["canonical_correlations"][0] < summary["canonical_correlation_chance"] + 0.15
    assert abs(summary["adjusted_rand_index"]) < 0.05
    assert summary["identical_labels_fraction"] < summary["identical_labels_chance_fraction"] + 0.08
    assert "do not agree beyond chance" in printed
    assert main(["compare-runs", str(trained_run), str(moved), "--permutations", "0"]) == 2
    assert "--permutations must be at least 1" in capsys.readouterr().err
