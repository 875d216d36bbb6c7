"""Compare two runs on the same particles (the paper's replicate analysis): compute → :class:`RunComparison` →
:func:`write_comparison`.

Particles are matched by their original index; when the runs were trained on different subsets, only the
intersection is compared (and its size is reported). Each measure comes with its chance level:

* **label agreement**: cluster each run (the k-means labels ``cryoscape analyze`` wrote, else k-means here),
  match the clusters of run 2 to those of run 1 by the permutation that maximises the number of identical labels
  (Hungarian algorithm on the confusion matrix), report the % of particles whose labels agree; chance: the same
  after shuffling run 2's labels over the particles (same cluster sizes). Also the adjusted Rand index and the
  normalized mutual information of the two labelings. On a continuous landscape k-means cuts the continuum at
  arbitrary places, so label identity stays low even for runs that agree;
* **latent agreement** (no clustering; works when the zdims differ): canonical correlation analysis (the
  correlations of the best-matched linear combinations of the two latents) and the R² of predicting each latent
  linearly from the other (coordinates standardised); 1 for latents that are linear transforms of each other;
* **k-NN agreement** (no clustering): for each particle, the fraction of its k nearest neighbours in run 1's
  latent space that are also among its k nearest neighbours in run 2's (1 = the same neighbourhoods; a random
  embedding gives about k / n).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.configio import check_range, option
from cryoscape.plotting.confusion import plot_confusion
from cryoscape.runs.layout import AnalysisLayout, ComparisonLayout


@dataclass(frozen=True)
class LabelMatch:
    """Optimal matching of two labelings of the same particles.

    Attributes
    ----------
    confusion : ndarray (Ka, Kb) int64
        ``confusion[i, j]`` = particles with label i+1 in run 1 and j+1 in run 2.
    mapping : dict of int to int
        1-based label of run 2 → the 1-based label of run 1 it is matched with.
    agreement : float
        Fraction of particles whose run-1 label equals their matched run-2 label.
    """

    confusion: np.ndarray
    mapping: dict[int, int]
    agreement: float


def match_labels(labels_a: np.ndarray, labels_b: np.ndarray) -> LabelMatch:
    """Match 1-based labels ``labels_b`` to ``labels_a`` (same particles, same order) by the Hungarian algorithm."""
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(labels_a, dtype=np.int64)
    b = np.asarray(labels_b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("labels must be 1-D arrays of the same length")
    if a.size == 0:
        raise ValueError("no particles to compare")
    ka, kb = int(a.max()), int(b.max())
    confusion = np.zeros((ka, kb), dtype=np.int64)
    np.add.at(confusion, (a - 1, b - 1), 1)
    rows, cols = linear_sum_assignment(-confusion)
    mapping = {int(c) + 1: int(r) + 1 for r, c in zip(rows, cols)}
    agreement = float(confusion[rows, cols].sum()) / a.size
    return LabelMatch(confusion=confusion, mapping=mapping, agreement=agreement)


def knn_agreement(z_a: np.ndarray, z_b: np.ndarray, k: int = 10, max_queries: int = 20000,
                  seed: int = 0) -> float:
    """Mean fraction of shared k nearest neighbours of the same particles in two latent spaces.

    Parameters
    ----------
    z_a, z_b : ndarray (n, da), (n, db)
        Latents of the same n particles (same order); the dimensions may differ.
    k : int
        Neighbours (excluding the particle itself).
    max_queries : int
        Particles whose neighbourhoods are compared (a random sample when n is larger; neighbours are always
        searched among all n).
    """
    from sklearn.neighbors import NearestNeighbors

    z_a = np.asarray(z_a, dtype=np.float64)
    z_b = np.asarray(z_b, dtype=np.float64)
    n = len(z_a)
    if len(z_b) != n:
        raise ValueError("z_a and z_b must hold the same particles")
    k = min(int(k), n - 1)
    if k < 1:
        raise ValueError("k-NN agreement needs at least 2 particles")
    rng = np.random.default_rng(seed)
    queries = np.arange(n) if n <= max_queries else np.sort(rng.choice(n, size=max_queries, replace=False))
    shared = np.zeros(len(queries))
    neighbours = []
    for z in (z_a, z_b):
        nn = NearestNeighbors(n_neighbors=k + 1).fit(z)
        _, idx = nn.kneighbors(z[queries])
        # drop the particle itself (it may not come first when there are exact duplicates)
        cleaned = np.empty((len(queries), k), dtype=np.int64)
        for row, (q, found) in enumerate(zip(queries, idx)):
            others = found[found != q]
            cleaned[row] = others[:k]
        neighbours.append(cleaned)
    for row in range(len(queries)):
        shared[row] = len(np.intersect1d(neighbours[0][row], neighbours[1][row], assume_unique=True)) / k
    return float(shared.mean())


def chance_agreement(labels_a: np.ndarray, labels_b: np.ndarray, permutations: int = 100, seed: int = 0) -> float:
    """Identical-label fraction expected by chance: ``labels_b`` shuffled over the particles (same cluster sizes),
    matched to ``labels_a`` by the same optimal matching, averaged over ``permutations`` shuffles."""
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(labels_a, dtype=np.int64) - 1
    b = np.asarray(labels_b, dtype=np.int64) - 1
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(int(permutations)):
        confusion = np.bincount(a * kb + rng.permutation(b), minlength=ka * kb).reshape(ka, kb)
        rows, cols = linear_sum_assignment(-confusion)
        total += confusion[rows, cols].sum() / a.size
    return total / int(permutations)


@dataclass(frozen=True)
class LatentAgreement:
    """Linear agreement of two latent spaces of the same particles (their dimensions may differ).

    Attributes
    ----------
    canonical_correlations : ndarray (min(da, db),)
        Canonical correlations, decreasing: the correlation of the best-matched pair of linear combinations of
        each latent, then of the best pair uncorrelated with the previous ones, … (1 = a direction both share).
    r2_b_from_a, r2_a_from_b : float
        R² of predicting the other latent linearly (each of its coordinates standardised, R² averaged over
        them): 1 = one latent is a linear transform of the other (rotation, scaling, shift).
    chance_first_correlation, chance_r2_b_from_a, chance_r2_a_from_b : float
        The same for unrelated latents: the particles of one run shuffled (mean over the shuffles).
    """

    canonical_correlations: np.ndarray
    r2_b_from_a: float
    r2_a_from_b: float
    chance_first_correlation: float
    chance_r2_b_from_a: float
    chance_r2_a_from_b: float


def _basis_and_standardised(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis (n, r) of the centred columns of ``z`` and its standardised non-constant columns."""
    centred = np.asarray(z, dtype=np.float64) - np.asarray(z, dtype=np.float64).mean(axis=0)
    u, sv, _ = np.linalg.svd(centred, full_matrices=False)
    basis = u[:, sv > max(sv.max(initial=0.0), 1e-300) * 1e-10]
    std = centred.std(axis=0)
    return basis, centred[:, std > 0] / std[std > 0]


def _agreement(basis_a, basis_b, std_a, std_b) -> tuple[np.ndarray, float, float]:
    """Canonical correlations and the two R² of bases and standardised columns (rows aligned)."""
    n = len(basis_a)
    correlations = np.clip(np.linalg.svd(basis_a.T @ basis_b, compute_uv=False), 0.0, 1.0)
    r2_b = float(np.mean(np.sum((basis_a.T @ std_b) ** 2, axis=0) / n)) if std_b.size else 0.0
    r2_a = float(np.mean(np.sum((basis_b.T @ std_a) ** 2, axis=0) / n)) if std_a.size else 0.0
    return correlations, r2_b, r2_a


def latent_agreement(z_a: np.ndarray, z_b: np.ndarray, permutations: int = 20, seed: int = 0) -> LatentAgreement:
    """Canonical correlations and linear R² both ways between latents ``z_a`` (n, da) and ``z_b`` (n, db) of the
    same particles (same order), with their chance levels over ``permutations`` shuffles of the particles."""
    z_a, z_b = np.asarray(z_a), np.asarray(z_b)
    if len(z_a) != len(z_b) or len(z_a) < 3:
        raise ValueError("latent agreement needs the same particles (at least 3) in both latents")
    basis_a, std_a = _basis_and_standardised(z_a)
    basis_b, std_b = _basis_and_standardised(z_b)
    correlations, r2_b, r2_a = _agreement(basis_a, basis_b, std_a, std_b)
    rng = np.random.default_rng(seed)
    chance = np.zeros(3)
    for _ in range(int(permutations)):
        order = rng.permutation(len(z_b))
        shuffled, r2_bs, r2_as = _agreement(basis_a, basis_b[order], std_a, std_b[order])
        chance += (shuffled[0] if shuffled.size else 0.0, r2_bs, r2_as)
    chance /= max(int(permutations), 1)
    return LatentAgreement(canonical_correlations=correlations, r2_b_from_a=r2_b, r2_a_from_b=r2_a,
                           chance_first_correlation=float(chance[0]), chance_r2_b_from_a=float(chance[1]),
                           chance_r2_a_from_b=float(chance[2]))


@dataclass(frozen=True)
class CompareConfig:
    """Options of :func:`compare_runs`."""

    kmeans: int = option(20, metavar="K", help="clusters per run (default %(default)s)")
    recluster: bool = option(False, help="run k-means here even when analyze's k-means labels exist")
    knn: int = option(10, help="neighbours for the k-NN agreement (default %(default)s)")
    knn_queries: int = option(20000, help="particles whose neighbourhoods are compared (a random sample above "
                              "this; default %(default)s)")
    permutations: int = option(100, help="shuffles giving the chance levels (default %(default)s)")
    seed: int = option(0, help="seed of k-means, of the k-NN sample and of the shuffles (default %(default)s)")

    def __post_init__(self) -> None:
        for name in ("kmeans", "knn", "knn_queries", "permutations"):
            check_range(getattr(self, name), "--" + name.replace("_", "-"), minimum=1)


@dataclass(frozen=True)
class RunComparison:
    """Result of :func:`compare_runs` (nothing written; :func:`write_comparison` writes it).

    Attributes
    ----------
    run_a, run_b : str
        The run folders (resolved).
    epoch_a, epoch_b : int
    zdim_a, zdim_b : int
    n_a, n_b, n_common : int
        Particles of each run and of their intersection (compared).
    common_indices : ndarray (n_common,)
        Original indices compared.
    kmeans : int
        Clusters per run.
    labels_a, labels_b : ndarray (n_common,)
        1-based cluster labels on the intersection.
    label_source_a, label_source_b : str
        Where the labels came from.
    match : LabelMatch
    label_chance : float
        Identical-label fraction expected by chance after the same matching (:func:`chance_agreement`).
    adjusted_rand_index, normalized_mutual_information : float
        Of the two labelings (0 = chance, 1 = identical partitions).
    knn_k : int
    knn_agreement : float
    knn_random : float
        The value expected for unrelated embeddings (k / (n_common - 1)).
    latent : LatentAgreement
    permutations : int
        Shuffles behind the chance levels.
    """

    run_a: str
    run_b: str
    epoch_a: int
    epoch_b: int
    zdim_a: int
    zdim_b: int
    n_a: int
    n_b: int
    n_common: int
    common_indices: np.ndarray
    kmeans: int
    labels_a: np.ndarray
    labels_b: np.ndarray
    label_source_a: str
    label_source_b: str
    match: LabelMatch
    label_chance: float
    adjusted_rand_index: float
    normalized_mutual_information: float
    knn_k: int
    knn_agreement: float
    knn_random: float
    latent: LatentAgreement
    permutations: int

    def lines(self) -> list[str]:
        """The numbers, for the terminal (then :func:`verdict`)."""
        latent = self.latent
        cc = ", ".join(f"{c:.3f}" for c in latent.canonical_correlations[:4])
        return [
            f"compared {self.n_common} particles present in both runs ({self.n_a} in RUN1, {self.n_b} in RUN2)",
            f"labels: RUN1 from {self.label_source_a}; RUN2 from {self.label_source_b}",
            f"identical cluster labels after optimal matching: {100 * self.match.agreement:.1f} % (by chance: "
            f"{100 * self.label_chance:.1f} %); adjusted Rand index {self.adjusted_rand_index:.3f}, normalized "
            f"mutual information {self.normalized_mutual_information:.3f} (0 = chance, 1 = identical)",
            f"k-NN agreement (k={self.knn_k}): {self.knn_agreement:.3f} (unrelated embeddings: ~{self.knn_random:.3f})",
            f"canonical correlations (zdim {self.zdim_a} vs {self.zdim_b}): {cc} (unrelated latents: first "
            f"~{latent.chance_first_correlation:.3f})",
            f"linear R²: RUN2 from RUN1 {latent.r2_b_from_a:.3f}, RUN1 from RUN2 {latent.r2_a_from_b:.3f} (unrelated: "
            f"~{latent.chance_r2_b_from_a:.3f}, ~{latent.chance_r2_a_from_b:.3f})",
        ]


def run_labels(run, k: int, seed: int = 0, use_analyze: bool = True) -> tuple[np.ndarray, str]:
    """1-based k-means labels of every particle of ``run``: ``analyze``'s when present, else k-means here."""
    from cryoscape.analysis.filtering import kmeans_labels

    analysis = AnalysisLayout(run.analyze_dir)
    path = analysis.kmeans(k).labels
    if use_analyze and path.is_file():
        return kmeans_labels(analysis, k, len(run.indices)), str(path)
    from cryoscape.analysis.latent import kmeans

    return kmeans(run.z, k, seed=seed).labels + 1, f"k-means (K={k}, seed {seed}) of z"


def compare_runs(run_a, run_b, config: CompareConfig = CompareConfig()) -> RunComparison:
    """Compare two :class:`~cryoscape.analysis.api.TrainedRun` on the particles they share (module docstring)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from cryoscape.errors import InputError

    common = np.intersect1d(run_a.indices, run_b.indices)
    if common.size < 3:
        raise InputError(f"the runs share {common.size} particle(s)", path=run_b.path,
                         fix="compare runs trained on the same particle file with overlapping subsets")
    k, seed = config.kmeans, config.seed
    labels_a, source_a = run_labels(run_a, k, seed, not config.recluster)
    labels_b, source_b = run_labels(run_b, k, seed, not config.recluster)
    rows_a, rows_b = run_a.rows_of(common), run_b.rows_of(common)
    la, lb = labels_a[rows_a], labels_b[rows_b]
    z_a, z_b = run_a.z[rows_a], run_b.z[rows_b]
    knn_k = min(config.knn, common.size - 1)
    return RunComparison(
        run_a=str(run_a.path.resolve()), run_b=str(run_b.path.resolve()), epoch_a=int(run_a.epoch),
        epoch_b=int(run_b.epoch), zdim_a=int(z_a.shape[1]), zdim_b=int(z_b.shape[1]), n_a=len(run_a.indices),
        n_b=len(run_b.indices), n_common=int(common.size), common_indices=common, kmeans=k, labels_a=la,
        labels_b=lb, label_source_a=source_a, label_source_b=source_b, match=match_labels(la, lb),
        label_chance=chance_agreement(la, lb, config.permutations, seed),
        adjusted_rand_index=float(adjusted_rand_score(la, lb)),
        normalized_mutual_information=float(normalized_mutual_info_score(la, lb)), knn_k=knn_k,
        knn_agreement=knn_agreement(z_a, z_b, k=knn_k, max_queries=config.knn_queries, seed=seed),
        knn_random=knn_k / (common.size - 1), latent=latent_agreement(z_a, z_b, config.permutations, seed),
        permutations=config.permutations)


def _latent_sentence(result: RunComparison) -> str:
    latent = result.latent
    first, chance = float(latent.canonical_correlations[0]), latent.chance_first_correlation
    strong = int(np.sum(latent.canonical_correlations >= 0.9))
    numbers = f"first canonical correlation {first:.2f} (unrelated latents: {chance:.2f})"
    if first >= 0.9:
        head = f"the two latent spaces agree: {numbers}, {strong} of {latent.canonical_correlations.size} " \
               "shared directions correlate above 0.9"
    elif first >= 0.5 and first > chance + 0.1:
        head = f"the two latent spaces agree partly: {numbers}"
    else:
        head = f"the two latent spaces do not agree beyond chance: {numbers}"
    return (f"{head}; a linear map predicts RUN2's latent from RUN1's with R² {latent.r2_b_from_a:.2f} and RUN1's "
            f"from RUN2's with R² {latent.r2_a_from_b:.2f}")


def verdict(result: RunComparison) -> str:
    """One paragraph a biologist can read: do the two runs agree, and how far above chance."""
    parts = [_latent_sentence(result)]
    pct, chance = 100 * result.match.agreement, 100 * result.label_chance
    parts.append(f"cluster labels {pct:.0f} % identical vs {chance:.0f} % by chance (adjusted Rand index "
                 f"{result.adjusted_rand_index:.2f}, 0 = chance)")
    parts.append(f"{result.knn_agreement:.2f} of the {result.knn_k} nearest neighbours are shared vs "
                 f"{result.knn_random:.2f} for unrelated runs")
    text = "; ".join(parts) + "."
    if result.latent.canonical_correlations[0] >= 0.9 and result.match.agreement < 0.5:
        text += (" Low label identity with agreeing latents means the same continuum cut into clusters at "
                 "different places, not a disagreement: compare the latents, not the cluster numbers.")
    if result.zdim_a != result.zdim_b:
        text += (f" The zdims differ ({result.zdim_a} and {result.zdim_b}): the larger latent may hold directions "
                 "the smaller one lacks, so its R² from the smaller one is lower.")
    return text[0].upper() + text[1:]


def _summary(result: RunComparison) -> dict:
    """``comparison.json``: the measures, their chance levels and the verdict."""
    latent = result.latent
    return {
        "run1": result.run_a, "epoch1": result.epoch_a, "run2": result.run_b, "epoch2": result.epoch_b,
        "n_run1": result.n_a, "n_run2": result.n_b, "n_common": result.n_common, "kmeans": result.kmeans,
        "labels_run1": result.label_source_a, "labels_run2": result.label_source_b,
        "identical_labels_fraction": result.match.agreement,
        "matching_run2_to_run1": {str(k): v for k, v in sorted(result.match.mapping.items())},
        "knn": result.knn_k, "knn_agreement": result.knn_agreement, "knn_random_expectation": result.knn_random,
        "identical_labels_chance_fraction": result.label_chance,
        "adjusted_rand_index": result.adjusted_rand_index,
        "normalized_mutual_information": result.normalized_mutual_information,
        "zdim1": result.zdim_a, "zdim2": result.zdim_b,
        "canonical_correlations": [float(c) for c in latent.canonical_correlations],
        "canonical_correlation_chance": latent.chance_first_correlation,
        "linear_r2_run2_from_run1": latent.r2_b_from_a, "linear_r2_run1_from_run2": latent.r2_a_from_b,
        "linear_r2_chance_run2_from_run1": latent.chance_r2_b_from_a,
        "linear_r2_chance_run1_from_run2": latent.chance_r2_a_from_b,
        "chance_permutations": result.permutations,
        "verdict": verdict(result),
    }


def write_comparison(result: RunComparison, layout: ComparisonLayout | str | os.PathLike) -> list[Path]:
    """Write ``comparison.json``, ``confusion.csv`` and ``confusion.png`` into ``layout`` (a folder, created), each
    atomically; returns the paths written."""
    from cryoscape.io.atomic import atomic_open

    out = layout if isinstance(layout, ComparisonLayout) else ComparisonLayout(Path(layout))
    out.root.mkdir(parents=True, exist_ok=True)
    names = (f"{Path(result.run_a).name} (epoch {result.epoch_a})", f"{Path(result.run_b).name} (epoch "
             f"{result.epoch_b})")
    with atomic_open(out.summary, "w") as handle:
        json.dump(_summary(result), handle, indent=1)
    header = ",".join(f"run2_cluster_{j + 1}" for j in range(result.match.confusion.shape[1]))
    with atomic_open(out.confusion_csv, "w") as handle:
        np.savetxt(handle, result.match.confusion, fmt="%d", delimiter=",",
                   header="rows: run1 clusters 1..K; " + header, comments="# ")
    plot_confusion(result.match, out.confusion_png, names=names, title=f"{100 * result.match.agreement:.1f} % "
                   f"identical labels after matching (chance {100 * result.label_chance:.1f} %; "
                   f"{result.n_common} particles)")
    return [out.summary, out.confusion_csv, out.confusion_png]
