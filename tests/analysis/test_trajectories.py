"""Trajectories (trajectories helper): the neighbour graph against brute force, Dijkstra paths, the commands."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import fit_pca, pc_traversal
from cryoscape.analysis.trajectories import (
    LONG_EDGE_RATIO,
    direct_points,
    graph_path,
    neighbour_graph,
    pc_points,
    smooth_path,
)
from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.runs.layout import SeriesLayout


def _brute_force_edges(z: np.ndarray, k: int, cutoff: float) -> set[tuple[int, int]]:
    """The documented rule from the full distance matrix: candidate pairs (one among the k nearest of the other),
    kept when among the k shortest candidate pairs of both ends (ties by the other row) and ≤ ``cutoff``."""
    n = len(z)
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    knn = [set(np.argsort(row, kind="stable")[:k].tolist()) for row in d]
    candidates = {(min(i, j), max(i, j)) for i in range(n) for j in knn[i]}
    mine: dict[int, list[tuple[float, int]]] = {i: [] for i in range(n)}
    for i, j in candidates:
        mine[i].append((d[i, j], j))
        mine[j].append((d[i, j], i))
    short = {i: {j for _, j in sorted(pairs)[:k]} for i, pairs in mine.items()}
    return {(i, j) for i, j in candidates if j in short[i] and i in short[j] and d[i, j] <= cutoff}


def _dijkstra_length(edges: dict[int, dict[int, float]], src: int, dst: int) -> float:
    best = {src: 0.0}
    heap = [(0.0, src)]
    while heap:
        dist, node = heapq.heappop(heap)
        if node == dst:
            return dist
        if dist > best.get(node, np.inf):
            continue
        for other, w in edges.get(node, {}).items():
            if dist + w < best.get(other, np.inf):
                best[other] = dist + w
                heapq.heappush(heap, (dist + w, other))
    return np.inf


def test_neighbour_graph_matches_brute_force_knn_with_a_global_cutoff():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((300, 3))
    graph = neighbour_graph(z, max_neighbours=10, avg_neighbours=5.0, connect=False)
    m = graph.matrix.tocoo()
    edges = {(int(i), int(j)) for i, j in zip(m.row, m.col) if i < j}
    assert edges == _brute_force_edges(z, 10, graph.cutoff)
    # symmetric, Euclidean weights, degree cap, mean degree ~5 (exactly round(2.5 N) edges barring ties)
    assert (graph.matrix != graph.matrix.T).nnz == 0
    np.testing.assert_allclose(m.data, np.linalg.norm(z[m.row] - z[m.col], axis=1), rtol=1e-12)
    degree = np.diff(graph.matrix.indptr)
    assert graph.max_degree == degree.max()
    assert len(edges) == round(2.5 * len(z))
    assert graph.mean_degree == pytest.approx(5.0, abs=0.01)
    assert m.data.max() <= graph.cutoff


def test_degree_cap_holds_on_the_final_graph_even_around_hubs():
    # a hub: 40 points at ±0.5 along the 20 axes (0.71 apart) around the origin, their common nearest neighbour
    rng = np.random.default_rng(6)
    z = np.concatenate([np.zeros((1, 20)), 0.5 * np.eye(20), -0.5 * np.eye(20)])
    z += 1e-3 * rng.standard_normal(z.shape)  # no ties
    for k in (3, 10):
        graph = neighbour_graph(z, max_neighbours=k, avg_neighbours=100.0, connect=False)  # every capped pair
        degree = np.diff(graph.matrix.indptr)
        assert degree.max() <= k and graph.max_degree == degree.max()
        m = graph.matrix.tocoo()
        assert {(int(i), int(j)) for i, j in zip(m.row, m.col) if i < j} == _brute_force_edges(z, k, np.inf)
        assert degree[0] == k  # the hub keeps exactly its k shortest pairs (ties by row)


def test_connect_raises_the_cutoff_to_keep_the_capped_graph_connected():
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 6, 300))  # a Poisson-sampled curve: a mean-degree cutoff fragments it
    z = np.stack([t, np.sin(t), 0.01 * rng.standard_normal(300)], axis=1)
    loose = neighbour_graph(z, connect=False)
    joined = neighbour_graph(z)
    assert loose.n_components > 1 and joined.n_components == 1
    assert joined.cutoff > loose.cutoff and joined.max_degree <= 10
    # the cutoff is exactly the longest edge of a minimum spanning tree of the capped pairs
    from scipy.sparse.csgraph import minimum_spanning_tree

    capped = neighbour_graph(z, avg_neighbours=1000.0)
    assert joined.cutoff == pytest.approx(minimum_spanning_tree(capped.matrix).data.max(), rel=1e-12)
    assert capped.cutoff >= joined.cutoff


def test_smooth_path_averages_neighbours_and_resamples_evenly():
    rng = np.random.default_rng(5)
    t = np.linspace(0, 1, 200)
    z = np.stack([t, np.zeros(200)], axis=1) + [0.0, 1.0] * rng.standard_normal((200, 1)) * 0.05
    rows = np.array([0, 50, 60, 199])
    raw = smooth_path(z, rows, neighbours=1, n_points=4)
    np.testing.assert_allclose(raw[[0, -1]], z[[0, 199]], atol=1e-6)  # ends kept
    line = np.stack([t**2, np.zeros(200)], axis=1)  # uneven spacing along a straight line
    even = smooth_path(line, rows, neighbours=1, n_points=9)
    np.testing.assert_allclose(even[:, 0], np.linspace(0, 1, 9), atol=1e-6)  # even in arc length
    smooth = smooth_path(z, rows, neighbours=9, n_points=4)
    d = np.linalg.norm(z[:, None] - z[None, rows[0]], axis=-1)[:, 0]
    np.testing.assert_allclose(smooth[0], z[np.argsort(d)[:9]].mean(axis=0), atol=1e-6)
    assert np.abs(smooth[:, 1]).max() < np.abs(raw[:, 1]).max() + 1e-9  # the noise across the curve averages out


def test_graph_path_is_connected_respects_the_cutoff_and_is_shortest():
    rng = np.random.default_rng(1)
    # a half circle sampled nearly evenly (a global cutoff fragments Poisson samples of a curve: see the docs)
    t = np.linspace(0, np.pi, 400) + rng.uniform(-0.2, 0.2, 400) * np.pi / 400
    z = np.stack([np.cos(t), np.sin(t), np.zeros(400)], axis=1) + 0.002 * rng.standard_normal((400, 3))
    graph = neighbour_graph(z)
    path = graph_path(graph, np.array([0, 399]))
    rows = path.rows
    assert rows[0] == 0 and rows[-1] == 399 and len(set(rows.tolist())) == len(rows)
    dense = graph.matrix.toarray()
    assert np.all(dense[rows[:-1], rows[1:]] > 0)  # every step is an edge of the graph
    assert np.all(path.steps <= graph.cutoff) and np.all(path.steps > 0)
    np.testing.assert_allclose(path.steps, np.linalg.norm(z[rows[1:]] - z[rows[:-1]], axis=1), rtol=1e-12)
    adjacency: dict[int, dict[int, float]] = {}
    m = graph.matrix.tocoo()
    for i, j, w in zip(m.row, m.col, m.data):
        adjacency.setdefault(int(i), {})[int(j)] = float(w)
    assert path.length == pytest.approx(_dijkstra_length(adjacency, 0, 399), rel=1e-12)
    assert np.all(np.diff(t[rows]) > 0)  # the path follows the arc, end to end
    # through a middle anchor: it is visited, in order
    via = graph_path(graph, np.array([0, 200, 399]))
    assert via.rows[via.anchor_positions[1]] == 200 and list(via.anchor_positions) == sorted(via.anchor_positions)


def test_anchors_in_separate_parts_without_bridges_give_an_error_naming_the_option():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.normal(0, 0.1, (100, 2)), rng.normal(50, 0.1, (100, 2))])
    graph = neighbour_graph(z, connect=False)
    assert graph.n_components >= 2 and len(graph.bridges) == 0
    with pytest.raises(InputError, match="anchors particle 3 and particle 150 are in separate parts") as info:
        graph_path(graph, np.array([3, 150]), ["particle 3", "particle 150"])
    assert "--no-connect" in str(info.value)


def test_direct_points_interpolate_between_anchors():
    a = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    points = direct_points(a, n_points=5)
    assert points.shape == (9, 2)
    np.testing.assert_allclose(points[[0, 4, 8]], a)
    np.testing.assert_allclose(points[2], [0.5, 0.0])
    loop = direct_points(a, n_points=3, loop=True)
    assert loop.shape == (6, 2)  # 3 segments of 2 new points; back towards the first anchor, not repeating it
    np.testing.assert_allclose(loop[[0, 2, 4]], a)
    np.testing.assert_allclose(loop[5], [0.5, 1.0])


def test_pc_points_agree_with_latent_pc_traversal():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((500, 3)) * [3.0, 1.0, 0.3]
    points, coords = pc_points(z, pc=1, n_points=7)
    np.testing.assert_allclose(points, pc_traversal(z, pc=0, n_points=7), atol=1e-5)
    np.testing.assert_allclose(fit_pca(z).transform(points)[:, 0], coords, atol=1e-5)
    spaced, coords2 = pc_points(z, pc=2, n_points=5, low_percentile=10, high_percentile=90, percentile_spacing=True)
    on_pc2 = fit_pca(z).transform(z)[:, 1]
    np.testing.assert_allclose(coords2, np.percentile(on_pc2, [10, 30, 50, 70, 90]))
    np.testing.assert_allclose(fit_pca(z).transform(spaced)[:, [0, 2]], 0.0, atol=1e-5)  # others at the mean
    with pytest.raises(InputError, match="principal component 4"):
        pc_points(z, pc=4)


# --- the commands, on the tiny trained runs of conftest.py ------------------------------------------------------
def test_pc_traversal_command_writes_points_maps_montage_and_script(trained_run, tmp_path):
    assert main(["pc-traversal", str(trained_run), "-n", "4", "--volumes", "-d", "16", "--pc", "1", "2",
                 "-o", str(tmp_path / "pcs"), "--device", "cpu"]) == 0
    run = TrainedRun.open(trained_run)
    for pc in (1, 2):
        out = tmp_path / "pcs" / f"pc{pc}"
        z = np.loadtxt(out / "z_values.txt")
        np.testing.assert_allclose(z, pc_points(run.z, pc=pc, n_points=4)[0], atol=1e-5)
        assert [p.name for p in sorted(out.glob("vol_*.mrc"))] == [f"vol_00{i}.mrc" for i in range(1, 5)]
        assert (out / "montage.png").stat().st_size > 0
        assert "vol_001.mrc" in (out / f"pc{pc}.cxc").read_text()
    # default folder and no maps without --volumes
    assert main(["pc-traversal", str(trained_run), "-n", "3"]) == 0
    default = trained_run / "traversals.2" / "pc1"
    assert np.loadtxt(default / "z_values.txt").shape == (3, 2) and not list(default.glob("*.mrc"))


def _far_connected_pair(z: np.ndarray) -> tuple[int, int]:
    """Two rows of the largest connected component of the default graph (all of it: bridged), far apart."""
    from scipy.sparse.csgraph import connected_components

    _, comp = connected_components(neighbour_graph(z).matrix, directed=False)
    rows = np.flatnonzero(comp == np.bincount(comp).argmax())
    coord = fit_pca(z).transform(z)[rows, 0]
    return int(rows[coord.argmin()]), int(rows[coord.argmax()])


def test_graph_traversal_command_between_particles(trained_run, tmp_path):
    run = TrainedRun.open(trained_run)
    ra, rb = _far_connected_pair(run.z)
    a, b = int(run.indices[ra]), int(run.indices[rb])
    out = tmp_path / "g"
    assert main(["graph-traversal", str(trained_run), "--anchors", str(a), str(b), "-o", str(out), "--volumes",
                 "-d", "16", "--device", "cpu", "--smooth", "1"]) == 0
    path = np.loadtxt(SeriesLayout(out).path_ind, dtype=np.int64, ndmin=1)
    assert path[0] == a and path[-1] == b
    z = np.loadtxt(out / "z_values.txt", ndmin=2)
    np.testing.assert_allclose(z, run.z[run.rows_of(path)], atol=1e-5)
    graph = neighbour_graph(run.z)
    rows = run.rows_of(path)
    assert np.all(graph.matrix.toarray()[rows[:-1], rows[1:]] > 0)  # every step is an edge (neighbour or bridge)
    steps = np.linalg.norm(np.diff(run.z[rows].astype(np.float64), axis=0), axis=1)
    bridge = graph.is_bridge(rows[:-1], rows[1:])
    assert np.all(steps[~bridge] <= graph.cutoff * (1 + 1e-6))
    assert len(list(out.glob("vol_*.mrc"))) == len(path) and (out / "g.cxc").exists()
    # default: maps along the smoothed path (same particles, points = smooth_path of them)
    assert main(["graph-traversal", str(trained_run), "--anchors", str(a), str(b), "-o", str(tmp_path / "s")]) == 0
    np.testing.assert_array_equal(np.loadtxt(SeriesLayout(tmp_path / "s").path_ind, dtype=np.int64, ndmin=1), path)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "s" / "z_values.txt", ndmin=2),
                               smooth_path(run.z, run.rows_of(path), neighbours=10), atol=1e-5)


def test_graph_traversal_on_a_subset_run_uses_original_indices(trained_subset_run, tmp_path, capsys):
    run = TrainedRun.open(trained_subset_run)
    ra, rb = _far_connected_pair(run.z)
    a, b = int(run.indices[ra]), int(run.indices[rb])
    out = tmp_path / "odd"
    assert main(["graph-traversal", str(trained_subset_run), "--anchors", str(a), str(b), "-o", str(out)]) == 0
    path = np.loadtxt(SeriesLayout(out).path_ind, dtype=np.int64, ndmin=1)
    assert np.all(path % 2 == 1) and path[0] == a and path[-1] == b
    assert main(["graph-traversal", str(trained_subset_run), "--anchors", "2", str(b), "-o", str(out)]) == 2
    assert "not part of this run" in capsys.readouterr().err


def test_kmeans_anchors_resolve_through_centers_ind_or_say_what_to_run(trained_run, tmp_path, capsys):
    run = TrainedRun.open(trained_run)
    status = main(["direct-traversal", str(trained_run), "--kmeans", "7", "--anchors", "1", "2",
                   "--analyze-dir", str(tmp_path / "nothing")])
    assert status == 2
    assert f"cryoscape analyze {trained_run} --epoch 2 --ksample 7" in capsys.readouterr().err
    km = tmp_path / "an" / "kmeans3"
    km.mkdir(parents=True)
    centres = [int(run.indices[10]), int(run.indices[200]), int(run.indices[390])]
    (km / "centers_ind.txt").write_text("\n".join(map(str, centres)) + "\n")
    out = tmp_path / "d"
    assert main(["direct-traversal", str(trained_run), "--kmeans", "3", "--anchors", "3", "1", "--loop", "-n", "4",
                 "--analyze-dir", str(tmp_path / "an"), "-o", str(out)]) == 0
    z = np.loadtxt(out / "z_values.txt")
    assert z.shape == (6, 2)
    np.testing.assert_allclose(z[0], run.z[390], atol=1e-5)
    np.testing.assert_allclose(z[3], run.z[10], atol=1e-5)
    assert main(["graph-traversal", str(trained_run), "--kmeans", "3", "--anchors", "1", "4",
                 "--analyze-dir", str(tmp_path / "an"), "-o", str(out)]) == 2
    assert "cluster id(s) [4] out of range" in capsys.readouterr().err


# --- bridges: the graph connects wherever the data are one cloud ------------------------------------------------
def test_bridges_join_a_1d_curve_that_the_degree_cap_splits_into_pairs():
    rng = np.random.default_rng(7)
    z = np.sort(rng.uniform(0, 10, 200))[:, None]  # rows in order along the curve
    split = neighbour_graph(z, max_neighbours=1, connect=False)  # mutual nearest neighbours: pairs and triples
    joined = neighbour_graph(z, max_neighbours=1)
    assert split.n_components > 20 and joined.n_components == 1
    assert joined.n_parts == split.n_components and len(joined.bridges) == split.n_components - 1
    # the bridges are the gaps between consecutive points: together, the chain of the curve
    m = joined.matrix.tocoo()
    assert {(int(i), int(j)) for i, j in zip(m.row, m.col) if i < j} == {(i, i + 1) for i in range(199)}
    np.testing.assert_allclose(joined.bridge_lengths, np.abs(np.diff(z[joined.bridges], axis=1)).ravel())
    assert np.all(np.abs(np.diff(joined.bridges, axis=1)) == 1)
    path = graph_path(joined, np.array([0, 199]))
    np.testing.assert_array_equal(path.rows, np.arange(200))
    assert path.bridge_steps.sum() == len(joined.bridges)


def test_bridges_join_an_8d_cloud_that_the_degree_cap_splits():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((800, 8))
    joined = neighbour_graph(z)
    assert joined.n_parts > 1  # the capped graph, even with the raised cutoff, is in pieces (the old failure)
    assert joined.n_components == 1 and len(joined.bridges) == joined.n_parts - 1
    # the neighbour edges are all kept; bridges join different parts, along candidate pairs (k-nearest)
    both = joined.matrix.toarray()
    kept = neighbour_graph(z, connect=False).matrix.toarray()
    assert np.all(both[kept > 0] > 0)
    from scipy.sparse.csgraph import connected_components

    edges = both.copy()
    edges[joined.bridges[:, 0], joined.bridges[:, 1]] = edges[joined.bridges[:, 1], joined.bridges[:, 0]] = 0
    _, part = connected_components(edges, directed=False)
    assert np.all(part[joined.bridges[:, 0]] != part[joined.bridges[:, 1]])
    tenth = np.sort(np.linalg.norm(z[:, None] - z[None], axis=-1), axis=1)[:, 10]
    assert np.all(joined.bridge_lengths <= np.maximum(tenth[joined.bridges[:, 0]], tenth[joined.bridges[:, 1]]))
    assert 0 < joined.longest_bridge_ratio < LONG_EDGE_RATIO  # one cloud: no bridge far longer than typical


def test_far_clusters_are_bridged_by_their_closest_pair_and_the_long_bridge_is_flagged():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 0.1, (100, 2)), rng.normal(5, 0.1, (100, 2))
    z = np.concatenate([a, b])
    graph = neighbour_graph(z)
    assert graph.n_components == 1 and graph.n_parts >= 2
    closest = np.linalg.norm(a[:, None] - b[None], axis=-1).min()
    assert graph.bridge_lengths.max() == pytest.approx(closest, rel=1e-12)
    assert graph.longest_bridge_ratio > 10 * LONG_EDGE_RATIO
    path = graph_path(graph, np.array([3, 150]))
    assert path.bridge_steps.sum() >= 1 and path.steps.max() == pytest.approx(closest, rel=1e-12)
    # the particles behind each bridge, against removing it and counting
    from scipy.sparse.csgraph import connected_components

    dense = graph.matrix.toarray()
    for (i, j), side in zip(graph.bridges, graph.bridge_sides):
        cut = dense.copy()
        cut[i, j] = cut[j, i] = 0
        _, label = connected_components(cut, directed=False)
        assert side == min((label == label[i]).sum(), (label == label[j]).sum())
    assert graph.bridge_sides[graph.long_bridges()].tolist() == [100]
