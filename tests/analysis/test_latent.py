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


def test_kmeans_on_data_centres_are_members_nearest_their_mean():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(c, 0.1, (100, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    result = kmeans(z, 3)
    for k, index in enumerate(result.on_data_indices):
        assert result.labels[index] == k
        np.testing.assert_array_equal(result.centers[k], z[index])  # an actual particle latent
        members = np.flatnonzero(result.labels == k)
        np.testing.assert_allclose(result.means[k], z[members].mean(axis=0), atol=1e-9)
        distances = np.linalg.norm(z[members] - result.means[k], axis=1)
        assert members[distances.argmin()] == index
    assert sorted(result.sizes.tolist()) == [100, 100, 100]


def test_kmeans_runs_to_convergence_where_ten_iterations_do_not():
    # Lloyd from k-means++ on elongated, touching clusters needs many iterations; the result must be a fixed point:
    # every point is assigned to its nearest mean and every mean is the mean of its members.
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4000, 3)) * np.array([4.0, 1.0, 0.3])
    result = kmeans(z, 12, seed=0)
    d = ((z[:, None, :] - result.means[None]) ** 2).sum(-1)
    assert (d.argmin(axis=1) == result.labels).mean() > 0.999
    for k in range(12):
        np.testing.assert_allclose(result.means[k], z[result.labels == k].mean(axis=0), atol=1e-3)
    assert result.n_iter > 10  # more than cryoDRGN's fixed 10 iterations were needed here


def test_kmeans_clusters_are_ordered_along_the_data():
    # Clusters of points on a line: hierarchical ordering of the centres numbers them along the line
    # (increasing or decreasing), whatever order k-means found them in.
    rng = np.random.default_rng(7)
    centres = np.arange(8) * 5.0
    z = np.concatenate([np.stack([rng.normal(c, 0.3, 50), rng.normal(0, 0.3, 50)], axis=1) for c in centres])
    order = kmeans(z, 8, seed=3).means[:, 0]
    steps = np.diff(order)
    assert (steps > 0).all() or (steps < 0).all()


def test_nearest_member_is_chunked_and_exact():
    from cryoscape.analysis import latent

    rng = np.random.default_rng(8)
    z = rng.standard_normal((1000, 4))
    labels = rng.integers(0, 5, 1000)
    means = np.stack([z[labels == k].mean(0) for k in range(5)])
    saved = latent._CHUNK_ROWS
    latent._CHUNK_ROWS = 97
    try:
        rows = latent.nearest_member(z, labels, means)
    finally:
        latent._CHUNK_ROWS = saved
    for k in range(5):
        members = np.flatnonzero(labels == k)
        assert rows[k] == members[np.linalg.norm(z[members] - means[k], axis=1).argmin()]


def test_umap_subsample_fit_and_transform_keeps_clusters_apart():
    from cryoscape.analysis.latent import fit_umap

    rng = np.random.default_rng(9)
    z = np.concatenate([rng.normal(c, 0.2, (300, 4)) for c in (0.0, 5.0)]).astype(np.float32)
    for transform in (False, True):  # 200 fitted, 400 placed from neighbours / by UMAP.transform
        emb = fit_umap(z, seed=0, fit_max=200, transform=transform)
        assert emb.shape == (600, 2) and emb.dtype == np.float32 and np.isfinite(emb).all()
        a, b = emb[:300], emb[300:]
        gap = np.linalg.norm(a.mean(0) - b.mean(0))
        assert gap > 3 * max(a.std(0).max(), b.std(0).max())


def test_traversal_of_a_one_dimensional_latent_is_its_percentile_range():
    z = np.random.default_rng(3).normal(size=(400, 1))
    np.testing.assert_allclose(pc_traversal(z, n_points=4)[:, 0], np.linspace(*np.percentile(z[:, 0], [5, 95]), 4),
                               atol=1e-12)


def test_umap_starts_from_the_exact_neighbour_graph_is_reproducible_and_caches_compiled_code(monkeypatch):
    import umap
    import umap.layouts
    from numba.core.caching import NullCache

    from cryoscape.analysis import latent

    rng = np.random.default_rng(10)
    z = np.concatenate([rng.normal(c, 0.3, (150, 5)) for c in (0.0, 4.0)]).astype(np.float32)
    seen = {}
    real = umap.UMAP

    def recording(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(umap, "UMAP", recording)
    first = latent.fit_umap(z, seed=3)
    idx, dist = seen["precomputed_knn"]
    d = np.linalg.norm(z[:, None].astype(np.float64) - z[None], axis=-1)
    brute = np.sort(d, axis=1)[:, :15]  # each point itself first, then its 14 nearest
    np.testing.assert_allclose(dist, brute, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d[np.arange(len(z))[:, None], idx], brute, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(latent.fit_umap(z, seed=3), first)  # same seed, same embedding
    assert not isinstance(umap.layouts._nb_optimize_layout_euclidean_single_epoch._cache, NullCache)
    assert latent.enable_umap_compile_cache() == 0  # already on
