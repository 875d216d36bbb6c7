"""Latent-space analysis: PCA, UMAP, traversal points along principal components, k-means with on-data centres.

Every function takes latent encodings ``z`` (N, zdim) (rows in the order of :attr:`TrainedRun.z`) and returns
numpy arrays; nothing here reads or writes files. Costs are linear in N (chunked distance computations), so
1M particles of zdim 8 are fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows per chunk of the (chunk, k) distance matrices (bounded memory whatever N is).
_CHUNK_ROWS = 65536
# Above this many particles UMAP is fitted on a random subsample and the others are embedded with .transform.
UMAP_FIT_MAX = 20000
# Above this many particles k-means runs one k-means++ initialisation instead of three.
KMEANS_MULTI_INIT_MAX = 200000


@dataclass(frozen=True)
class PCA:
    """Principal components of latent encodings.

    Attributes
    ----------
    mean : ndarray, shape (zdim,)
    components : ndarray, shape (zdim, zdim)
        Rows are unit principal axes, in order of decreasing variance; the sign of each is fixed so that its
        largest-magnitude entry is positive (reproducible across runs).
    explained_variance : ndarray, shape (zdim,)
    explained_variance_ratio : ndarray, shape (zdim,)
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Coordinates of ``z`` (N, zdim) on the principal axes, (N, zdim)."""
        return (np.asarray(z, dtype=np.float64) - self.mean) @ self.components.T

    def inverse_transform(self, pcs: np.ndarray) -> np.ndarray:
        """Latent points (N, zdim) at principal-axis coordinates ``pcs`` (N, k), k ≤ zdim."""
        pcs = np.atleast_2d(np.asarray(pcs, dtype=np.float64))
        return self.mean + pcs @ self.components[: pcs.shape[1]]


def fit_pca(z: np.ndarray) -> PCA:
    """PCA of latent encodings ``z`` (N, zdim) (eigen-decomposition of the covariance; O(N zdim²))."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"PCA needs an (N ≥ 2, zdim) array, got shape {z.shape}")
    mean = z.mean(axis=0)
    centred = z - mean
    cov = centred.T @ centred / (z.shape[0] - 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    var = np.clip(values[order], 0.0, None)
    vt = vectors[:, order].T
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    return PCA(mean=mean, components=vt, explained_variance=var, explained_variance_ratio=ratio)


def pc_traversal(z: np.ndarray, pc: int = 0, n_points: int = 10, low_percentile: float = 5.0,
                 high_percentile: float = 95.0, pca: PCA | None = None) -> np.ndarray:
    """Latent points along principal component ``pc`` (0-based) from the low to the high percentile.

    The points are evenly spaced in PC coordinate; the other principal coordinates are held at the mean.
    Returns (n_points, zdim).
    """
    z = np.asarray(z, dtype=np.float64)
    pca = fit_pca(z) if pca is None else pca
    coords = pca.transform(z)[:, pc]
    lo, hi = np.percentile(coords, [low_percentile, high_percentile])
    pcs = np.zeros((n_points, z.shape[1]))
    pcs[:, pc] = np.linspace(lo, hi, n_points)
    return pca.inverse_transform(pcs)


def percentile_points(z: np.ndarray, percentiles=tuple(range(5, 100, 10))) -> np.ndarray:
    """Points of a one-dimensional latent ``z`` (N, 1) at the given percentiles (default 5, 15, …, 95): (k, 1)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 1:
        raise ValueError(f"percentile points need zdim 1, got shape {z.shape}")
    return np.percentile(z[:, 0], list(percentiles))[:, None]


@dataclass(frozen=True)
class KMeansResult:
    """k-means clustering of latent encodings.

    Cluster ``j`` (0-based here) is the one users see as cluster ``j + 1`` (``vol_00{j+1}.mrc``). Clusters are
    ordered by hierarchical clustering of their centres (neighbouring ids have similar centres) unless
    :func:`kmeans` was called with ``reorder=False``.

    Attributes
    ----------
    labels : ndarray, shape (N,), int64
        0-based cluster of each row of z.
    centers : ndarray, shape (k, zdim)
        The on-data centres: ``centers[j] == z[on_data_indices[j]]``.
    on_data_indices : ndarray, shape (k,), int64
        Row position in z of the member of cluster j nearest its mean (maps are generated there).
    means : ndarray, shape (k, zdim)
        The cluster means (the k-means centres before they were moved onto the data).
    n_iter : int
        Lloyd iterations of the returned solution (converged when below the iteration limit).
    """

    labels: np.ndarray
    centers: np.ndarray
    on_data_indices: np.ndarray
    means: np.ndarray | None = None
    n_iter: int = 0

    @property
    def sizes(self) -> np.ndarray:
        """Members of each cluster (k,)."""
        return np.bincount(self.labels, minlength=len(self.on_data_indices))


def kmeans(z: np.ndarray, k: int, seed: int = 0, reorder: bool = True, max_iter: int = 1000) -> KMeansResult:
    """k-means to convergence with on-data centres, clusters ordered by hierarchical clustering of the centres.

    scikit-learn's Lloyd k-means with k-means++ starts (3 starts up to 200 000 particles, 1 above; the best
    inertia is kept), iterated until the centres move less than 1e-6 of the data variance or ``max_iter``
    iterations (cryoDRGN stops after 10). 1M × zdim 8 with k = 20 takes seconds. Each centre is then replaced by
    the member of its cluster nearest the cluster mean ("on-data": a map is generated at a real particle's z).

    Parameters
    ----------
    z : (N, zdim) latent encodings
    k : number of clusters (1 ≤ k ≤ N)
    seed : random seed of the initialisation
    reorder : order clusters by the leaf order of an average-linkage tree of the centres
    max_iter : iteration limit

    Returns
    -------
    KMeansResult
    """
    from sklearn.cluster import KMeans

    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 ≤ k ≤ N, got k = {k}, N = {n}")
    n_init = 3 if n <= KMEANS_MULTI_INIT_MAX else 1
    model = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, tol=1e-6, random_state=seed,
                   algorithm="lloyd").fit(z)
    labels = model.labels_.astype(np.int64)
    means = model.cluster_centers_
    if reorder and k > 2:
        order = hierarchical_order(means)
        rank = np.empty(k, dtype=np.int64)
        rank[order] = np.arange(k)
        labels = rank[labels]
        means = means[order]
    on_data = nearest_member(z, labels, means)
    return KMeansResult(labels=labels, centers=z[on_data].copy(), on_data_indices=on_data, means=means,
                        n_iter=int(model.n_iter_))


def hierarchical_order(points: np.ndarray) -> np.ndarray:
    """Leaf order (k,) of an average-linkage tree of ``points`` (k, d) (optimal ordering: neighbours similar)."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering

    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3:
        return np.arange(len(points))
    tree = linkage(points, method="average")
    tree = optimal_leaf_ordering(tree, points)
    return leaves_list(tree).astype(np.int64)


def nearest_member(z: np.ndarray, labels: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Row of the member of each cluster nearest that cluster's mean (k,); -1 for an empty cluster.

    Chunked: memory O(chunk), time O(N zdim).
    """
    z = np.asarray(z, dtype=np.float64)
    k = len(means)
    best = np.full(k, -1, dtype=np.int64)
    best_d = np.full(k, np.inf)
    for start in range(0, len(z), _CHUNK_ROWS):
        zc = z[start:start + _CHUNK_ROWS]
        lc = labels[start:start + _CHUNK_ROWS]
        d = ((zc - means[lc]) ** 2).sum(axis=1)
        for j in np.unique(lc):
            rows = np.flatnonzero(lc == j)
            i = rows[d[rows].argmin()]
            if d[i] < best_d[j]:
                best_d[j] = d[i]
                best[j] = start + i
    return best


def nearest_rows(z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Row of z nearest each of ``points`` (m, zdim) (Euclidean), (m,). Chunked over z."""
    z = np.asarray(z, dtype=np.float64)
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    best = np.zeros(len(points), dtype=np.int64)
    best_d = np.full(len(points), np.inf)
    for start in range(0, len(z), _CHUNK_ROWS):
        zc = z[start:start + _CHUNK_ROWS]
        d = ((zc[:, None, :] - points[None]) ** 2).sum(-1)
        i = d.argmin(axis=0)
        di = d[i, np.arange(len(points))]
        better = di < best_d
        best[better] = start + i[better]
        best_d[better] = di[better]
    return best


def fit_umap(z: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
             fit_max: int = UMAP_FIT_MAX, transform: bool = False) -> np.ndarray:
    """2-D UMAP embedding (N, 2) float32 of ``z`` (umap-learn, ``n_neighbors`` 15, ``min_dist`` 0.1).

    Up to ``fit_max`` particles the embedding is fitted on all of them. Above, it is fitted on a random subsample
    of ``fit_max`` and every other particle is placed at the inverse-distance-weighted mean of the embeddings of
    its ``n_neighbors`` nearest fitted particles (in z) — the starting point of ``UMAP.transform`` without its
    refinement epochs, ~20× cheaper and within a few % of the embedding's spread of it. ``transform=True`` uses
    ``UMAP.transform`` itself. Either way 1M particles finish in minutes. The seed fixes subsample and layout.

    The k-nearest-neighbour graph UMAP starts from is computed exactly here (k-d tree, ``scipy.spatial.cKDTree``)
    and handed to umap-learn (``precomputed_knn``) instead of its approximate NN-descent: exact, and it avoids
    pynndescent's numba functions, which take a function argument and so cannot be cached on disk — they were
    recompiled in every process (minutes of a loaded 2-core machine). umap-learn's other numba functions are
    cached on disk by :func:`enable_umap_compile_cache`, so only the first ``cryoscape analyze`` on a machine
    compiles them. ``transform=True`` needs umap-learn's own search index and still uses NN-descent.
    """
    import warnings

    from scipy.spatial import cKDTree

    z = np.asarray(z, dtype=np.float32)
    n = len(z)
    if n < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {n}")
    k = min(n_neighbors, n - 1)
    rng = np.random.default_rng(seed)
    fit_rows = np.arange(n) if n <= fit_max else np.sort(rng.choice(n, size=fit_max, replace=False))
    z_fit = z[fit_rows]
    tree = cKDTree(z_fit)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        import umap

        enable_umap_compile_cache()
        if transform and n > fit_max:
            reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, n_components=2, random_state=seed)
        else:
            dist, idx = tree.query(z_fit, k=k, workers=-1)  # each point first, as umap-learn's own graph
            reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, n_components=2, random_state=seed,
                                precomputed_knn=(idx.astype(np.int32), dist.astype(np.float32)))
        fitted = reducer.fit_transform(z_fit).astype(np.float32)
        if n <= fit_max:
            return fitted
        out = np.empty((n, 2), dtype=np.float32)
        out[fit_rows] = fitted
        rest = np.ones(n, dtype=bool)
        rest[fit_rows] = False
        rest_rows = np.flatnonzero(rest)
        if transform:
            for start in range(0, len(rest_rows), 200000):
                rows = rest_rows[start:start + 200000]
                out[rows] = reducer.transform(z[rows])
            return out
    for start in range(0, len(rest_rows), _CHUNK_ROWS):
        rows = rest_rows[start:start + _CHUNK_ROWS]
        dist, nearest = tree.query(z[rows], k=min(n_neighbors, fit_max), workers=-1)
        weight = 1.0 / (dist + 1e-6)
        out[rows] = (fitted[nearest] * weight[..., None]).sum(axis=1) / weight.sum(axis=1, keepdims=True)
    return out


def enable_umap_compile_cache() -> int:
    """Turn on numba's on-disk cache for the compiled functions of umap-learn and pynndescent (once per process).

    umap-learn declares most of its numba functions without ``cache=True``, so each new process recompiles
    them. This enables caching on every numba dispatcher of the loaded ``umap``/``pynndescent`` modules that
    does not cache yet (``Dispatcher.enable_caching``, what ``cache=True`` does). Where the files go is
    numba's rule: ``NUMBA_CACHE_DIR`` if the user set it, else ``__pycache__`` beside the package when
    writable, else the user cache directory (``~/.cache/numba``); the directory is not overridden here,
    because moving it would also discard pynndescent's own existing cache (a one-time full recompilation).
    Cached code is keyed by numba on the function source, signature and CPU, so a changed package or machine
    recompiles. Results are unchanged (same machine code). Called by :func:`fit_umap` after importing umap,
    never at import of cryoscape.

    Returns
    -------
    int
        Dispatchers switched to caching by this call (0 when already done).
    """
    import sys
    import warnings

    try:
        from numba.core.caching import NullCache
        from numba.core.registry import CPUDispatcher
    except ImportError:  # a numba without these internals: UMAP still works, uncached
        return 0
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba warns for functions it cannot cache; they stay uncached
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] not in ("umap", "pynndescent") or module is None:
                continue
            for obj in list(vars(module).values()):
                if isinstance(obj, CPUDispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                    obj.enable_caching()
                    count += 1
    return count


def first_component(z: np.ndarray) -> np.ndarray:
    """The latent coordinate along the first principal component (N,); z itself when zdim = 1."""
    z = np.asarray(z, dtype=np.float64)
    return z[:, 0] if z.shape[1] == 1 else fit_pca(z).transform(z)[:, 0]


def spearman_with_truth(z: np.ndarray, truth: np.ndarray) -> float:
    """Spearman rank correlation (signed) between the first latent component and a true coordinate (N,)."""
    from scipy.stats import spearmanr

    return float(spearmanr(first_component(z), np.asarray(truth)).statistic)
