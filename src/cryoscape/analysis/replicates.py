"""Compare two runs on the same particles (the paper's replicate analysis).

Particles are matched by their original index; when the runs were trained on different subsets, only the
intersection is compared (and its size is reported). Two measures:

* **label agreement**: cluster each run (the k-means labels ``cryoscape analyze`` wrote, else k-means here),
  match the clusters of run 2 to those of run 1 by the permutation that maximises the number of identical labels
  (Hungarian algorithm on the confusion matrix), report the % of particles whose labels agree;
* **k-NN agreement** (no clustering): for each particle, the fraction of its k nearest neighbours in run 1's
  latent space that are also among its k nearest neighbours in run 2's (1 = the same neighbourhoods; a random
  embedding gives about k / n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class RunComparison:
    """Result of :func:`compare_runs`.

    Attributes
    ----------
    n_a, n_b, n_common : int
        Particles of each run and of their intersection (compared).
    common_indices : ndarray (n_common,)
        Original indices compared.
    labels_a, labels_b : ndarray (n_common,)
        1-based cluster labels on the intersection.
    match : LabelMatch
    knn_k : int
    knn_agreement : float
    knn_random : float
        The value expected for unrelated embeddings (k / (n_common - 1)).
    label_source_a, label_source_b : str
        Where the labels came from.
    """

    n_a: int
    n_b: int
    n_common: int
    common_indices: np.ndarray
    labels_a: np.ndarray
    labels_b: np.ndarray
    match: LabelMatch
    knn_k: int
    knn_agreement: float
    knn_random: float
    label_source_a: str
    label_source_b: str


def run_labels(run, k: int, seed: int = 0, use_analyze: bool = True) -> tuple[np.ndarray, str]:
    """1-based k-means labels of every particle of ``run``: ``analyze``'s when present, else k-means here."""
    from cryoscape.analysis.filtering import kmeans_dir, kmeans_labels

    path = kmeans_dir(run.analyze_dir, k) / "labels.txt"
    if use_analyze and path.is_file():
        return kmeans_labels(run.analyze_dir, k, len(run.indices)), str(path)
    from cryoscape.analysis.latent import kmeans

    return kmeans(run.z, k, seed=seed).labels + 1, f"k-means (K={k}, seed {seed}) of z"


def compare_runs(run_a, run_b, k: int = 20, knn: int = 10, seed: int = 0, use_analyze: bool = True,
                 max_queries: int = 20000) -> RunComparison:
    """Compare two :class:`~cryoscape.analysis.api.TrainedRun` on the particles they share (module docstring)."""
    from cryoscape.errors import InputError

    common = np.intersect1d(run_a.indices, run_b.indices)
    if common.size < 2:
        raise InputError(f"the runs share {common.size} particle(s)", path=run_b.path,
                         fix="compare runs trained on the same particle file with overlapping subsets")
    labels_a, source_a = run_labels(run_a, k, seed, use_analyze)
    labels_b, source_b = run_labels(run_b, k, seed, use_analyze)
    rows_a, rows_b = run_a.rows_of(common), run_b.rows_of(common)
    la, lb = labels_a[rows_a], labels_b[rows_b]
    match = match_labels(la, lb)
    knn_k = min(knn, common.size - 1)
    agree = knn_agreement(run_a.z[rows_a], run_b.z[rows_b], k=knn_k, max_queries=max_queries, seed=seed)
    return RunComparison(n_a=len(run_a.indices), n_b=len(run_b.indices), n_common=int(common.size),
                         common_indices=common, labels_a=la, labels_b=lb, match=match, knn_k=knn_k,
                         knn_agreement=agree, knn_random=knn_k / (common.size - 1),
                         label_source_a=source_a, label_source_b=source_b)


def plot_confusion(match: LabelMatch, path, title: str = "", names: tuple[str, str] = ("run 1", "run 2")):
    """Confusion matrix (rows: run-1 clusters; columns: run-2 clusters in the order matched to rows), PNG."""
    from cryoscape.analysis.plots import pyplot

    plt = pyplot()
    ka, kb = match.confusion.shape
    inverse = {a: b for b, a in match.mapping.items()}
    order = [inverse[a] - 1 for a in range(1, ka + 1) if a in inverse]
    order += [j for j in range(kb) if j not in order]
    matrix = match.confusion[:, order]
    size = max(4.0, 0.35 * max(ka, kb) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(kb), [str(j + 1) for j in order], fontsize=8)
    ax.set_yticks(range(ka), [str(i + 1) for i in range(ka)], fontsize=8)
    ax.set_xlabel(f"{names[1]} cluster (ordered by the optimal matching)")
    ax.set_ylabel(f"{names[0]} cluster")
    if max(ka, kb) <= 25:
        top = matrix.max() if matrix.size else 0
        for i in range(ka):
            for j in range(kb):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] > 0.6 * top else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, label="particles")
    ax.set_title(title or f"{100 * match.agreement:.1f} % identical labels after matching", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
