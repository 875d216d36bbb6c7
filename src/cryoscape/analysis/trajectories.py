"""Paths through latent space: along a principal component, straight between anchors, or along the data.

Three kinds of trajectory, each a sequence of latent points (n, zdim) from which a map series is made:

* :func:`pc_points` — evenly spaced points along one principal component of the encodings (the other
  principal coordinates at the mean), between two percentiles of the data or at its percentiles.
* :func:`direct_points` — straight lines between anchor points, ``n`` points per segment (optionally back to the
  first anchor).
* :func:`graph_path` — the shortest path *through the particles* between anchor particles, in order: Dijkstra on
  a nearest-neighbour graph of the encodings (:func:`neighbour_graph`: neighbour edges under a degree cap and a
  global cutoff, joined into one graph by the shortest bridges), so the path stays where the data are and says
  where it crosses a gap; :func:`smooth_path` turns it into the points of its map series (local means of the
  encodings, evenly resampled).

Pure computation on arrays; :mod:`cryoscape.analysis.traversals` turns a run into a traversal and writes it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryoscape.errors import InputError

#: Default graph settings: each node keeps at most this many of its nearest neighbours…
MAX_NEIGHBOURS = 10
#: …and one global distance cutoff is chosen so that the mean degree of the graph is about this.
AVG_NEIGHBOURS = 5.0
#: A bridge or path step longer than this many median neighbour edges crosses a gap with no particles.
LONG_EDGE_RATIO = 6.0


# --- principal-component and straight-line paths ----------------------------------------------------------------
def pc_points(z: np.ndarray, pc: int = 1, n_points: int = 10, low_percentile: float = 5.0,
              high_percentile: float = 95.0, percentile_spacing: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Latent points along principal component ``pc`` (1-based) of the encodings ``z`` (N, zdim).

    Parameters
    ----------
    z : ndarray (N, zdim)
    pc : int
        Principal component, 1-based (1 = largest variance).
    n_points : int
    low_percentile, high_percentile : float
        The end points: these percentiles of the data's coordinate on the component.
    percentile_spacing : bool
        Points at evenly spaced percentiles of the data (denser where the data are) instead of evenly spaced
        coordinates.

    Returns
    -------
    points : ndarray (n_points, zdim) float32
        Other principal coordinates at the mean of the data.
    coords : ndarray (n_points,) float64
        The coordinate of each point on the component.
    """
    from cryoscape.analysis.latent import fit_pca

    z = np.asarray(z, dtype=np.float64)
    zdim = z.shape[1]
    if not 1 <= pc <= zdim:
        raise InputError(f"principal component {pc} does not exist: the latent space has {zdim} dimension(s), "
                         f"so {zdim} PCs", fix=f"give --pc between 1 and {zdim}")
    if n_points < 2:
        raise InputError(f"a traversal needs at least 2 points, got {n_points}", fix="give -n/--n-points 2 or more")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InputError(f"percentile limits {low_percentile} {high_percentile} must satisfy 0 <= low < high <= 100")
    pca = fit_pca(z)
    data_coords = pca.transform(z)[:, pc - 1]
    if percentile_spacing:
        coords = np.percentile(data_coords, np.linspace(low_percentile, high_percentile, n_points))
    else:
        lo, hi = np.percentile(data_coords, [low_percentile, high_percentile])
        coords = np.linspace(lo, hi, n_points)
    pcs = np.zeros((n_points, zdim))
    pcs[:, pc - 1] = coords
    return pca.inverse_transform(pcs).astype(np.float32), coords


def direct_points(anchors_z: np.ndarray, n_points: int = 10, loop: bool = False) -> np.ndarray:
    """Straight-line interpolation between consecutive anchors.

    Parameters
    ----------
    anchors_z : ndarray (A, zdim), A ≥ 2
    n_points : int
        Points per segment, both ends included; consecutive segments share their joint (it appears once).
    loop : bool
        Add a segment from the last anchor back to the first (the first point is not repeated at the end).

    Returns
    -------
    ndarray ((A - 1) (n_points - 1) + 1, zdim) float32 (or A (n_points - 1) with ``loop``)
    """
    anchors_z = np.asarray(anchors_z, dtype=np.float64)
    if anchors_z.ndim != 2 or len(anchors_z) < 2:
        raise InputError("a direct traversal needs at least 2 anchors")
    if n_points < 2:
        raise InputError(f"--n must be at least 2 points per segment, got {n_points}")
    ends = np.concatenate([anchors_z, anchors_z[:1]]) if loop else anchors_z
    t = np.linspace(0.0, 1.0, n_points)[:, None]
    pieces = [(1 - t[:-1]) * a + t[:-1] * b for a, b in itertools.pairwise(ends)]
    if not loop:
        pieces.append(ends[-1:])
    return np.concatenate(pieces).astype(np.float32)


# --- the nearest-neighbour graph and its shortest paths ---------------------------------------------------------
@dataclass(frozen=True)
class NeighbourGraph:
    """Undirected nearest-neighbour graph of latent encodings.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix (N, N)
        Symmetric; entry (i, j) is the Euclidean distance between z_i and z_j for an edge, absent otherwise.
    cutoff : float
        No neighbour edge is longer than this (latent units); bridges may be.
    mean_degree : float
        Mean number of neighbours per node.
    max_degree : int
        Largest number of neighbours of a node.
    n_components : int
        Connected components of the graph (1 when bridged, unless there is a single encoding).
    n_parts : int
        Connected components of the neighbour edges alone, before bridging.
    bridges : ndarray (B, 2) int64
        Row pairs (i < j) of the bridges: the edges added to join the parts (B = n_parts - 1 when bridged).
    bridge_lengths : ndarray (B,) float64
    bridge_sides : ndarray (B,) int64
        Particles on the smaller side of each bridge (the graph without it falls in two): 1 for a lone outlier,
        a cloud's size where bridges join separate clouds.
    median_edge : float
        Median length of the neighbour edges (the typical step; 0 when there are none).
    """

    matrix: Any
    cutoff: float
    mean_degree: float
    max_degree: int
    n_components: int
    n_parts: int
    bridges: np.ndarray
    bridge_lengths: np.ndarray
    bridge_sides: np.ndarray
    median_edge: float

    @property
    def longest_bridge_ratio(self) -> float:
        """Longest bridge / median edge (0 without bridges): far above 1 where the data are separate clouds."""
        if len(self.bridge_lengths) == 0 or self.median_edge <= 0:
            return 0.0
        return float(self.bridge_lengths.max() / self.median_edge)

    def long_bridges(self, ratio: float = LONG_EDGE_RATIO) -> np.ndarray:
        """Indices of the bridges longer than ``ratio`` median edges (gaps with no particles)."""
        if self.median_edge <= 0:
            return np.flatnonzero(self.bridge_lengths > 0)
        return np.flatnonzero(self.bridge_lengths > ratio * self.median_edge)

    def is_bridge(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether each edge a[i]–b[i] (rows) is a bridge: bool (len(a),)."""
        n = self.matrix.shape[0]
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        keys = np.minimum(a, b) * n + np.maximum(a, b)
        return np.isin(keys, self.bridges[:, 0] * n + self.bridges[:, 1])


def neighbour_graph(z: np.ndarray, max_neighbours: int = MAX_NEIGHBOURS,
                    avg_neighbours: float = AVG_NEIGHBOURS, connect: bool = True,
                    workers: int = -1) -> NeighbourGraph:
    """Graph joining each encoding to nearby encodings, for shortest paths along the data.

    The rule, exactly (``k = max_neighbours``):

    1. Candidate pairs: i–j where j is among the k nearest encodings of i or i among the k nearest of j
       (exact Euclidean neighbours; ties at the k-th distance broken by the search order).
    2. Degree cap: each node ranks its candidate pairs by length (ties by the other node's row); a pair is kept
       only when it is among the k shortest of *both* its nodes (mutual neighbours under the cap). The rule does
       not depend on the cutoff (a pair's rank counts only shorter pairs, which any cutoff keeps too).
    3. One global cutoff: the smallest length that keeps ``avg_neighbours · N / 2`` of the capped pairs
       (mean degree ``avg_neighbours``), or all of them when they are fewer. With ``connect`` (default) the
       cutoff is raised, when needed, to the longest edge of a minimum spanning forest of the capped pairs, so
       that the cutoff never splits what the capped pairs join (a mean-degree cutoff alone leaves sparse
       particles isolated); the mean degree is then above ``avg_neighbours``. The capped pairs under the cutoff
       are the *neighbour edges*; no node has more than k of them.
    4. With ``connect``, bridges join the parts that the neighbour edges leave apart (the degree cap splits a
       cloud where mutual neighbours are rare: in 8 dimensions, hubs take the neighbours of their surroundings):
       a minimum spanning tree over the parts, first along the candidate pairs (the shortest candidate between
       two parts), then, for parts that no candidate pair joins (separate clouds), along the closest pair of
       encodings of two parts. The graph is then connected and holds ``n_parts - 1`` bridges, each the shortest
       link available; a bridge may exceed the cap and the cutoff. A bridge much longer than
       :attr:`NeighbourGraph.median_edge` crosses a gap where there are no particles: separate clouds.

    Exact neighbours come from a k-d tree (``scipy.spatial.cKDTree``, ``workers`` threads, -1 = all); memory
    O(N k). Joining P separate clouds compares every pair of clouds (O(P² ) closest-pair searches).

    Parameters
    ----------
    z : ndarray (N, zdim)
    max_neighbours : int
        k, the most neighbour edges of any node.
    avg_neighbours : float
        Mean degree that sets the cutoff.
    connect : bool
        Add the bridges.
    workers : int
        Threads of the neighbour search.

    Returns
    -------
    NeighbourGraph
    """
    from scipy.sparse import coo_matrix

    z = np.ascontiguousarray(z, dtype=np.float64)
    n = len(z)
    if n < 2:
        raise InputError(f"a neighbour graph needs at least 2 encodings, got {n}")
    if max_neighbours < 1 or avg_neighbours <= 0:
        raise InputError(f"neighbour counts must be positive (max {max_neighbours}, average {avg_neighbours})")
    k = min(int(max_neighbours), n - 1)
    a, b, d = _candidate_pairs(z, k, workers)
    capped = _mutual_under_cap(a, b, d, n, k)
    ka, kb, kd = a[capped], b[capped], d[capped]
    cutoff = _mean_degree_cutoff(kd, n, avg_neighbours)
    if connect and len(kd) and cutoff < kd.max():
        cutoff = max(cutoff, float(kd[_spanning_links(n, ka, kb, kd)].max(initial=0.0)))
    near = kd <= cutoff
    ka, kb, kd = ka[near], kb[near], kd[near]
    n_parts, parts = _components(ka, kb, n)
    ba = bb = sides = np.zeros(0, dtype=np.int64)
    bd = np.zeros(0)
    if connect and n_parts > 1:
        ba, bb, bd = _bridges(z, parts, a, b, d, workers)
        sides = _bridge_sides(parts, ba, bb)
    ea, eb, ed = np.concatenate([ka, ba]), np.concatenate([kb, bb]), np.concatenate([kd, bd])
    # zero-length edges (duplicate encodings) would vanish from a sparse matrix: give them a tiny length
    w = np.where(ed > 0, ed, np.finfo(np.float64).tiny)
    matrix = coo_matrix((np.concatenate([w, w]), (np.concatenate([ea, eb]), np.concatenate([eb, ea]))),
                        shape=(n, n)).tocsr()
    degree = np.diff(matrix.indptr)
    n_comp, _ = _components(ea, eb, n)
    return NeighbourGraph(matrix=matrix, cutoff=cutoff, mean_degree=float(degree.mean()),
                          max_degree=int(degree.max(initial=0)), n_components=n_comp, n_parts=n_parts,
                          bridges=np.stack([np.minimum(ba, bb), np.maximum(ba, bb)], axis=1).reshape(-1, 2),
                          bridge_lengths=bd, bridge_sides=sides, median_edge=float(np.median(kd)) if len(kd) else 0.0)


def _candidate_pairs(z: np.ndarray, k: int, workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected k-nearest-neighbour pairs, each once: rows a < b (M,) and lengths (M,)."""
    from scipy.spatial import cKDTree

    n = len(z)
    dist, idx = cKDTree(z).query(z, k=k + 1, workers=workers)
    # drop each point itself (normally column 0; with duplicate encodings it may be elsewhere)
    rows = np.repeat(np.arange(n, dtype=np.int64), k + 1)
    cols = idx.ravel().astype(np.int64)
    d = dist.ravel()
    keep = cols != rows
    rows, cols, d = rows[keep], cols[keep], d[keep]
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    pair_key, first = np.unique(lo * n + hi, return_index=True)
    return pair_key // n, pair_key % n, d[first]


def _mutual_under_cap(a: np.ndarray, b: np.ndarray, d: np.ndarray, n: int, k: int) -> np.ndarray:
    """Bool (M,): the pair is among the k shortest pairs (by length, then other row) of both its nodes."""
    ends = np.concatenate([a, b])
    others = np.concatenate([b, a])
    lengths = np.concatenate([d, d])
    order = np.lexsort((others, lengths, ends))
    starts = np.searchsorted(ends[order], np.arange(n))
    rank = np.empty(len(ends), dtype=np.int64)
    rank[order] = np.arange(len(ends)) - starts[ends[order]]
    return np.maximum(rank[: len(a)], rank[len(a):]) < k


def _mean_degree_cutoff(d: np.ndarray, n: int, avg_neighbours: float) -> float:
    """The smallest length keeping ``avg_neighbours · n / 2`` of the pairs ``d`` (all when fewer)."""
    target = round(avg_neighbours * n / 2.0)
    if len(d) == 0:
        return 0.0
    if target >= len(d):
        return float(d.max())
    return float(np.partition(d, max(target, 1) - 1)[max(target, 1) - 1])


def _components(a: np.ndarray, b: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """Connected components of the undirected edges a–b over n nodes: count and label of each node."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    count, labels = connected_components(m, directed=False)
    return int(count), labels


def _spanning_links(n_nodes: int, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Indices into u, v, w of a minimum spanning forest of the multigraph u–v (n_nodes nodes, weights w)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    lo, hi = np.minimum(u, v).astype(np.int64), np.maximum(u, v).astype(np.int64)
    order = np.lexsort((w, lo * n_nodes + hi))  # shortest link of each node pair first
    key = (lo * n_nodes + hi)[order]
    first = np.concatenate([[True], key[1:] != key[:-1]]) if len(order) else np.zeros(0, dtype=bool)
    best, best_key = order[first], key[first]  # best_key increasing
    weight = np.where(w[best] > 0, w[best], np.finfo(np.float64).tiny)
    tree = minimum_spanning_tree(coo_matrix((weight, (lo[best], hi[best])), shape=(n_nodes, n_nodes))).tocoo()
    pairs = np.minimum(tree.row, tree.col).astype(np.int64) * n_nodes + np.maximum(tree.row, tree.col)
    return best[np.searchsorted(best_key, pairs)]


def _bridges(z: np.ndarray, parts: np.ndarray, a: np.ndarray, b: np.ndarray, d: np.ndarray,
             workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shortest links joining the parts (labels ``parts`` (N,)): candidate pairs first, then closest pairs."""
    n_parts = int(parts.max()) + 1
    across = parts[a] != parts[b]
    a, b, d = a[across], b[across], d[across]
    chosen = _spanning_links(n_parts, parts[a], parts[b], d)
    ba, bb, bd = a[chosen], b[chosen], d[chosen]
    # clouds that no candidate pair joins: their closest pairs of encodings
    n_groups, group_of_part = _components(parts[ba], parts[bb], n_parts)
    if n_groups > 1:
        ga, gb, gd = _closest_pairs(z, group_of_part[parts], n_groups, workers)
        chosen = _spanning_links(n_groups, group_of_part[parts[ga]], group_of_part[parts[gb]], gd)
        ba, bb, bd = (np.concatenate([ba, ga[chosen]]), np.concatenate([bb, gb[chosen]]),
                      np.concatenate([bd, gd[chosen]]))
    return ba, bb, bd


def _bridge_sides(parts: np.ndarray, ba: np.ndarray, bb: np.ndarray) -> np.ndarray:
    """Particles on the smaller side of each bridge: the bridges are a tree over the parts (labels (N,))."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order

    n_parts = int(parts.max()) + 1
    size = np.bincount(parts, minlength=n_parts).astype(np.int64)
    u, v = parts[ba], parts[bb]
    tree = coo_matrix((np.ones(len(u)), (u, v)), shape=(n_parts, n_parts)).tocsr()
    order, parent = breadth_first_order(tree, 0, directed=False, return_predecessors=True)
    below = size.copy()
    for node in order[::-1][:-1]:  # leaves first: the particles below each part, root excluded
        below[parent[node]] += below[node]
    child = np.where(parent[v] == u, v, u)
    return np.minimum(below[child], len(parts) - below[child])


def _closest_pairs(z: np.ndarray, groups: np.ndarray, n_groups: int,
                   workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every two groups (labels ``groups`` (N,)), their closest pair of encodings: rows a, b and lengths."""
    from scipy.spatial import cKDTree

    members = [np.flatnonzero(groups == g) for g in range(n_groups)]
    trees = [cKDTree(z[m]) for m in members]
    out_a, out_b, out_d = [], [], []
    for g, h in itertools.combinations(range(n_groups), 2):
        small, large = (g, h) if len(members[g]) <= len(members[h]) else (h, g)
        dist, idx = trees[large].query(z[members[small]], k=1, workers=workers)
        j = int(np.argmin(dist))
        out_a.append(members[small][j])
        out_b.append(members[large][idx[j]])
        out_d.append(float(dist[j]))
    return np.asarray(out_a, dtype=np.int64), np.asarray(out_b, dtype=np.int64), np.asarray(out_d)


@dataclass(frozen=True)
class GraphPath:
    """A shortest path through the encodings.

    Attributes
    ----------
    rows : ndarray (P,) int64
        Row positions (in z) of the path nodes, in order; anchors included, each node once per visit.
    steps : ndarray (P - 1,) float64
        Latent distance of each step.
    bridge_steps : ndarray (P - 1,) bool
        Whether each step is a bridge of the graph (see :func:`neighbour_graph`).
    anchor_positions : ndarray (A,) int64
        Position of each anchor in ``rows``.
    length : float
        Total latent length.
    """

    rows: np.ndarray
    steps: np.ndarray
    bridge_steps: np.ndarray
    anchor_positions: np.ndarray
    length: float


def graph_path(graph: NeighbourGraph, anchor_rows: np.ndarray, anchor_names: list[str] | None = None) -> GraphPath:
    """Shortest path (Dijkstra) through anchors ``anchor_rows`` (A,) in order, on ``graph``.

    Raises
    ------
    InputError
        When two consecutive anchors are in disconnected components of the graph (the message names them and
        the option that joins them).
    """
    from scipy.sparse.csgraph import dijkstra

    anchor_rows = np.asarray(anchor_rows, dtype=np.int64).ravel()
    if len(anchor_rows) < 2:
        raise InputError("a graph traversal needs at least 2 anchors")
    names = anchor_names or [f"row {r}" for r in anchor_rows]
    path = [int(anchor_rows[0])]
    anchor_positions = [0]
    matrix = graph.matrix
    for i in range(len(anchor_rows) - 1):
        src, dst = int(anchor_rows[i]), int(anchor_rows[i + 1])
        if src == dst:
            anchor_positions.append(len(path) - 1)
            continue
        dist, pred = dijkstra(matrix, directed=False, indices=src, return_predecessors=True)
        if not np.isfinite(dist[dst]):
            raise InputError(
                f"anchors {names[i]} and {names[i + 1]} are in separate parts of the neighbour graph "
                f"({graph.n_components} parts: the neighbour edges alone do not join them)",
                fix="leave out --no-connect (connect=True): bridges then join the parts by their closest "
                "particles, and a long bridge is reported; or choose anchors in the same part")
        segment = [dst]
        while segment[-1] != src:
            segment.append(int(pred[segment[-1]]))
        path.extend(reversed(segment[:-1]))
        anchor_positions.append(len(path) - 1)
    rows = np.asarray(path, dtype=np.int64)
    steps = np.asarray(matrix[rows[:-1], rows[1:]]).ravel().astype(np.float64) if len(rows) > 1 else np.zeros(0)
    return GraphPath(rows=rows, steps=steps, bridge_steps=graph.is_bridge(rows[:-1], rows[1:]),
                     anchor_positions=np.asarray(anchor_positions), length=float(steps.sum()))


def smooth_path(z: np.ndarray, rows: np.ndarray, neighbours: int = MAX_NEIGHBOURS,
                n_points: int | None = None, workers: int = -1) -> np.ndarray:
    """Latent points for the map series of a graph path: each node replaced by a local mean, evenly resampled.

    One encoding is a noisy estimate of its particle's state (on the hinge benchmark the true angle of
    particles with neighbouring encodings scatters by a few degrees), so maps at consecutive path particles can
    step backwards. Each path node is replaced by the mean of its ``neighbours`` nearest encodings (itself
    included: the local average a map at that state represents), and the smoothed polyline is resampled at
    ``n_points`` points evenly spaced in latent arc length (ends included), so consecutive maps differ by
    equal amounts.

    Parameters
    ----------
    z : ndarray (N, zdim)
        All encodings.
    rows : ndarray (P,) int
        The path (rows of z), e.g. :attr:`GraphPath.rows`.
    neighbours : int
        Encodings averaged per node; 1 keeps the particles' own encodings.
    n_points : int or None
        Points of the result (default P).
    workers : int
        Threads of the neighbour search (-1 = all).

    Returns
    -------
    ndarray (n_points, zdim) float32
    """
    from scipy.spatial import cKDTree

    z = np.asarray(z, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64).ravel()
    n_points = len(rows) if n_points is None else int(n_points)
    if n_points < 2 or len(rows) < 2:
        raise InputError(f"a smoothed path needs at least 2 nodes and 2 points, got {len(rows)} and {n_points}")
    k = max(1, min(int(neighbours), len(z)))
    if k == 1:
        nodes = z[rows]
    else:
        _, near = cKDTree(z).query(z[rows], k=k, workers=workers)
        nodes = z[near].mean(axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(nodes, axis=0), axis=1))])
    if arc[-1] == 0:
        return np.repeat(nodes[:1], n_points, axis=0).astype(np.float32)
    targets = np.linspace(0.0, arc[-1], n_points)
    out = np.stack([np.interp(targets, arc, nodes[:, j]) for j in range(z.shape[1])], axis=1)
    return out.astype(np.float32)
