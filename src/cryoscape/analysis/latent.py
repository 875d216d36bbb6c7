"""Latent-space analysis: PCA, traversal points along principal components, k-means with on-data centres."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """PCA of latent encodings ``z`` (N, zdim) by SVD of the centred data."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"PCA needs an (N ≥ 2, zdim) array, got shape {z.shape}")
    mean = z.mean(axis=0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    var = s**2 / (z.shape[0] - 1)
    total = var.sum()
    ratio = var / total if total > 0 else np.zeros_like(var)
    return PCA(mean=mean, components=vt, explained_variance=var, explained_variance_ratio=ratio)


def pc_traversal(z: np.ndarray, pc: int = 0, n_points: int = 10, low_percentile: float = 5.0,
                 high_percentile: float = 95.0) -> np.ndarray:
    """Latent points along principal component ``pc`` (0-based) from the low to the high percentile.

    The other principal coordinates are held at the mean. Returns (n_points, zdim).
    """
    pca = fit_pca(z)
    coords = pca.transform(z)[:, pc]
    lo, hi = np.percentile(coords, [low_percentile, high_percentile])
    pcs = np.zeros((n_points, z.shape[1]))
    pcs[:, pc] = np.linspace(lo, hi, n_points)
    return pca.inverse_transform(pcs)


@dataclass(frozen=True)
class KMeansResult:
    """k-means clustering of latent encodings.

    Attributes
    ----------
    labels : ndarray, shape (N,), int64
    centers : ndarray, shape (k, zdim)
    on_data_indices : ndarray, shape (k,), int64
        Position of the data point nearest each centre (maps are generated there: "on-data" centres).
    """

    labels: np.ndarray
    centers: np.ndarray
    on_data_indices: np.ndarray


def kmeans(z: np.ndarray, k: int, seed: int = 0) -> KMeansResult:
    """k-means (scikit-learn, k-means++ with 10 restarts) with on-data centres."""
    from sklearn.cluster import KMeans

    z = np.asarray(z, dtype=np.float64)
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    d2 = ((z[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1)
    return KMeansResult(labels=model.labels_.astype(np.int64), centers=model.cluster_centers_,
                        on_data_indices=d2.argmin(axis=0).astype(np.int64))


def first_component(z: np.ndarray) -> np.ndarray:
    """The latent coordinate along the first principal component (N,); z itself when zdim = 1."""
    z = np.asarray(z, dtype=np.float64)
    return z[:, 0] if z.shape[1] == 1 else fit_pca(z).transform(z)[:, 0]


def spearman_with_truth(z: np.ndarray, truth: np.ndarray) -> float:
    """Spearman rank correlation (signed) between the first latent component and a true coordinate (N,)."""
    from scipy.stats import spearmanr

    return float(spearmanr(first_component(z), np.asarray(truth)).statistic)
