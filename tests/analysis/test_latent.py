"""Latent analysis: PCA against numpy's covariance eigenvectors, traversal, on-data k-means centres."""

from __future__ import annotations

import numpy as np

from cryoscape.analysis.latent import fit_pca, kmeans, pc_traversal, spearman_with_truth


def test_pca_matches_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((500, 4)) @ np.diag([3.0, 1.5, 0.5, 0.1]) @ np.linalg.qr(rng.standard_normal((4, 4)))[0]
    pca = fit_pca(z)
    values, vectors = np.linalg.eigh(np.cov(z.T))
    np.testing.assert_allclose(pca.explained_variance, values[::-1], rtol=1e-8)
    np.testing.assert_allclose(np.abs(pca.components @ vectors[:, ::-1]), np.eye(4), atol=1e-8)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(z)), z, atol=1e-10)


def test_traversal_spans_the_percentiles_of_pc1():
    rng = np.random.default_rng(1)
    t = rng.uniform(-2, 2, 1000)
    z = np.stack([t, 0.5 * t, 0.01 * rng.standard_normal(1000)], axis=1)
    points = pc_traversal(z, n_points=5)
    coord = fit_pca(z).transform(points)[:, 0]
    lo, hi = np.percentile(fit_pca(z).transform(z)[:, 0], [5, 95])
    np.testing.assert_allclose(coord, np.linspace(lo, hi, 5), atol=1e-9)
    assert abs(spearman_with_truth(z, t)) > 0.999
    assert abs(spearman_with_truth(z[:, :1], -t)) > 0.999  # zdim 1 uses z itself


def test_kmeans_on_data_centres_are_members_nearest_their_centre():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(c, 0.1, (100, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    result = kmeans(z, 3)
    for k, index in enumerate(result.on_data_indices):
        assert result.labels[index] == k
        distances = np.linalg.norm(z - result.centers[k], axis=1)
        assert distances[index] == distances.min()


def test_traversal_of_a_one_dimensional_latent_is_its_percentile_range():
    z = np.random.default_rng(3).normal(size=(400, 1))
    np.testing.assert_allclose(pc_traversal(z, n_points=4)[:, 0], np.linspace(*np.percentile(z[:, 0], [5, 95]), 4),
                               atol=1e-12)
