"""Paths through latent space: along a principal component, straight between anchors, or along the data.

Three kinds of trajectory, each a sequence of latent points (n, zdim) from which a map series is made:

* :func:`pc_points` — evenly spaced points along one principal component of the encodings (the other
  principal coordinates at the mean), between two percentiles of the data or at its percentiles.
* :func:`direct_points` — straight lines between anchor points, ``n`` points per segment (optionally back to the
  first anchor).
* :func:`graph_path` — the shortest path *through the particles* between anchor particles, in order: Dijkstra on
  a nearest-neighbour graph of the encodings (:func:`neighbour_graph`), so every step is between two encodings
  closer than a global cutoff and the path stays where the data are; :func:`smooth_path` turns it into the
  points of its map series (local means of the encodings, evenly resampled).

:func:`write_trajectory` writes a path as commands do (``z_values.txt``; with maps, ``vol_001.mrc`` …,
``montage.png`` and ``<folder>.cxc``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError

#: Default graph settings: each node keeps at most this many of its nearest neighbours…
MAX_NEIGHBOURS = 10
#: …and one global distance cutoff is chosen so that the mean degree of the graph is about this.
AVG_NEIGHBOURS = 5.0


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
        raise InputError(f"principal component {pc} does not exist for zdim {zdim}", fix=f"give 1 to {zdim}")
    if n_points < 2:
        raise InputError(f"a traversal needs at least 2 points, got {n_points}")
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
        No edge is longer than this (latent units).
    mean_degree : float
        Mean number of neighbours per node.
    max_degree : int
        Largest number of neighbours of a node.
    n_components : int
        Connected components.
    """

    matrix: Any
    cutoff: float
    mean_degree: float
    max_degree: int
    n_components: int


def neighbour_graph(z: np.ndarray, max_neighbours: int = MAX_NEIGHBOURS,
                    avg_neighbours: float = AVG_NEIGHBOURS, connect: bool = True,
                    workers: int = -1) -> NeighbourGraph:
    """Graph joining each encoding to nearby encodings, for shortest paths along the data.

    The rule, exactly (``k = max_neighbours``):

    1. Candidate pairs: i–j where j is among the k nearest encodings of i or i among the k nearest of j
       (exact Euclidean neighbours; ties at the k-th distance broken by the search order).
    2. Degree cap: each node ranks its candidate pairs by length (ties by the other node's row); a pair is kept
       only when it is among the k shortest of *both* its nodes. No node of the final graph has more than k
       edges, and the rule does not depend on the cutoff (a pair's rank counts only shorter pairs, which any
       cutoff keeps too).
    3. One global cutoff: the smallest length that keeps ``avg_neighbours · N / 2`` of the capped pairs
       (mean degree ``avg_neighbours``), or all of them when they are fewer. With ``connect`` (default) the
       cutoff is raised, when needed, to the longest edge of a minimum spanning forest of the capped pairs,
       so that the cutoff never splits a cloud that the capped neighbour graph joins (a mean-degree cutoff
       alone leaves sparse particles isolated and fragments a 1 500-particle run into hundreds of pieces); the
       mean degree is then above ``avg_neighbours``.

    Exact neighbours come from a k-d tree (``scipy.spatial.cKDTree``, ``workers`` threads, -1 = all):
    1M × zdim 8 takes about a minute of 2 cores; memory O(N k).

    Parameters
    ----------
    z : ndarray (N, zdim)
    max_neighbours : int
        k, the most edges of any node.
    avg_neighbours : float
        Mean degree that sets the cutoff.
    connect : bool
        Raise the cutoff to keep the capped neighbour graph's connected components.
    workers : int
        Threads of the neighbour search.

    Returns
    -------
    NeighbourGraph
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    z = np.ascontiguousarray(z, dtype=np.float64)
    n = len(z)
    if n < 2:
        raise InputError(f"a neighbour graph needs at least 2 encodings, got {n}")
    if max_neighbours < 1 or avg_neighbours <= 0:
        raise InputError(f"neighbour counts must be positive (max {max_neighbours}, average {avg_neighbours})")
    k = min(int(max_neighbours), n - 1)
    dist, idx = cKDTree(z).query(z, k=k + 1, workers=workers)
    # drop each point itself (normally column 0; with duplicate encodings it may be elsewhere)
    rows = np.repeat(np.arange(n, dtype=np.int64), k + 1)
    cols = idx.ravel().astype(np.int64)
    d = dist.ravel()
    keep = cols != rows
    rows, cols, d = rows[keep], cols[keep], d[keep]
    # undirected candidate pairs, each once
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    pair_key, first = np.unique(lo * n + hi, return_index=True)
    pair_d = d[first]
    a, b = pair_key // n, pair_key % n
    # degree cap: rank of each pair among the pairs of each of its two nodes (by length, then other node)
    ends = np.concatenate([a, b])
    others = np.concatenate([b, a])
    lengths = np.concatenate([pair_d, pair_d])
    order = np.lexsort((others, lengths, ends))
    starts = np.searchsorted(ends[order], np.arange(n))
    rank = np.empty(len(ends), dtype=np.int64)
    rank[order] = np.arange(len(ends)) - starts[ends[order]]
    capped = np.maximum(rank[: len(a)], rank[len(a):]) < k
    a, b, pair_d = a[capped], b[capped], pair_d[capped]
    target_edges = round(avg_neighbours * n / 2.0)
    if len(pair_d) == 0:
        cutoff = 0.0
    elif target_edges >= len(pair_d):
        cutoff = float(pair_d.max())
    else:
        cutoff = float(np.partition(pair_d, target_edges - 1)[target_edges - 1])
    # zero-length edges (duplicate encodings) would vanish from a sparse matrix: give them a tiny length
    w = np.where(pair_d > 0, pair_d, np.finfo(np.float64).tiny)
    if connect and len(pair_d) and cutoff < pair_d.max():
        forest = minimum_spanning_tree(coo_matrix((w, (a, b)), shape=(n, n)).tocsr())
        cutoff = max(cutoff, float(forest.data.max(initial=0.0)))
    chosen = pair_d <= cutoff
    a, b, w = a[chosen], b[chosen], w[chosen]
    matrix = coo_matrix((np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                        shape=(n, n)).tocsr()
    degree = np.diff(matrix.indptr)
    n_comp, _ = connected_components(matrix, directed=False)
    return NeighbourGraph(matrix=matrix, cutoff=cutoff, mean_degree=float(degree.mean()),
                          max_degree=int(degree.max(initial=0)), n_components=int(n_comp))


@dataclass(frozen=True)
class GraphPath:
    """A shortest path through the encodings.

    Attributes
    ----------
    rows : ndarray (P,) int64
        Row positions (in z) of the path nodes, in order; anchors included, each node once per visit.
    steps : ndarray (P - 1,) float64
        Latent distance of each step (each ≤ the graph cutoff).
    anchor_positions : ndarray (A,) int64
        Position of each anchor in ``rows``.
    length : float
        Total latent length.
    """

    rows: np.ndarray
    steps: np.ndarray
    anchor_positions: np.ndarray
    length: float


def graph_path(graph: NeighbourGraph, anchor_rows: np.ndarray, anchor_names: list[str] | None = None) -> GraphPath:
    """Shortest path (Dijkstra) through anchors ``anchor_rows`` (A,) in order, on ``graph``.

    Raises
    ------
    InputError
        When two consecutive anchors are in disconnected components of the graph (the message names them).
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
                f"anchors {names[i]} and {names[i + 1]} are in disconnected components of the neighbour graph "
                f"(cutoff {graph.cutoff:.4g}, {graph.n_components} components)",
                fix="choose anchors in the same cloud of particles, or raise --avg-neighbors/--max-neighbors "
                "for a longer cutoff")
        segment = [dst]
        while segment[-1] != src:
            segment.append(int(pred[segment[-1]]))
        path.extend(reversed(segment[:-1]))
        anchor_positions.append(len(path) - 1)
    rows = np.asarray(path, dtype=np.int64)
    steps = np.asarray(matrix[rows[:-1], rows[1:]]).ravel() if len(rows) > 1 else np.zeros(0)
    return GraphPath(rows=rows, steps=steps.astype(np.float64), anchor_positions=np.asarray(anchor_positions),
                     length=float(steps.sum()))


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


# --- anchors ----------------------------------------------------------------------------------------------------
def anchor_rows(run: Any, anchors: list[int], kmeans: int | None = None,
                analyze_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Resolve anchors to rows of ``run.z``.

    Parameters
    ----------
    run : cryoscape.analysis.api.TrainedRun
    anchors : list of int
        Original 0-based particle indices, or with ``kmeans`` 1-based k-means cluster ids.
    kmeans : int or None
        K of ``cryoscape analyze RUN --ksample K``: anchors are the on-data centre particles of those clusters,
        read from ``<analyze_dir>/kmeans<K>/centers_ind.txt``.
    analyze_dir : path or None
        Where ``cryoscape analyze`` wrote (default ``RUN/analyze.<epoch>``).

    Returns
    -------
    rows : ndarray (A,) int64
    original : ndarray (A,) int64
        The original particle index of each anchor.
    names : list of str
        How to name each anchor in messages (``particle 12`` / ``k-means cluster 3 (particle 12)``).
    """
    anchors = [int(a) for a in anchors]
    if kmeans is None:
        if any(a < 0 for a in anchors):
            raise InputError(f"particle indices are 0-based and non-negative, got {anchors}")
        original = np.asarray(anchors, dtype=np.int64)
        names = [f"particle {a}" for a in anchors]
    else:
        folder = Path(analyze_dir) if analyze_dir is not None else Path(run.analyze_dir)
        path = folder / f"kmeans{int(kmeans)}" / "centers_ind.txt"
        if not path.is_file():
            raise InputError(f"no k-means centres for K = {kmeans}", path=path,
                             fix=f"run: cryoscape analyze {run.path} --epoch {run.epoch} --ksample {kmeans}")
        try:
            centres = np.loadtxt(path, dtype=np.int64, ndmin=1)
        except ValueError as exc:
            raise InputError(f"cannot read the k-means centre indices ({exc})", path=path) from None
        bad = [a for a in anchors if not 1 <= a <= len(centres)]
        if bad:
            raise InputError(f"k-means cluster id(s) {bad} out of range", path=path,
                             fix=f"cluster ids are 1 to {len(centres)}")
        original = centres[np.asarray(anchors) - 1]
        names = [f"k-means cluster {a} (particle {o})" for a, o in zip(anchors, original)]
    rows = run.rows_of(original)
    return rows, original, names


# --- writing ----------------------------------------------------------------------------------------------------
def traversals_dir(run: Any) -> Path:
    """``RUN/traversals.<epoch>``: where trajectory commands write by default."""
    return Path(run.path) / f"traversals.{run.epoch}"


def write_trajectory(run: Any, z: np.ndarray, out_dir: str | os.PathLike, *, volumes: bool = False,
                     box_size: int | None = None, batch_size: int = 8, flip: bool = False, invert: bool = False,
                     title: str = "", labels: list[str] | None = None,
                     show_progress: bool = False) -> dict[str, Any]:
    """Write a latent path: ``z_values.txt``; with ``volumes`` the maps, ``montage.png`` and ``<folder>.cxc``.

    Returns a dict of what was written (``z_path``, ``maps``, ``montage``, ``script``, ``voxel_size_angstrom``).
    """
    from cryoscape.io.atomic import atomic_open

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    written: dict[str, Any] = {"z_path": out / "z_values.txt", "maps": [], "montage": None, "script": None,
                               "voxel_size_angstrom": None}
    if volumes:
        from cryoscape.analysis.volumes import describe_series

        files = run.write_volumes(z, out, box_size=box_size, batch_size=batch_size, flip=flip, invert=invert,
                                  show_progress=show_progress)
        montage, script = describe_series(files.maps, out / "montage.png", out / f"{out.name}.cxc", title=title,
                                          labels=labels)
        written.update(maps=files.maps, montage=montage, script=script,
                       voxel_size_angstrom=files.voxel_size_angstrom)
    with atomic_open(out / "z_values.txt", "w") as handle:
        np.savetxt(handle, z, fmt="%.6g")
    return written
