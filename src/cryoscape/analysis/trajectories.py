"""Paths through latent space: along a principal component, straight between anchors, or along the data.

Three kinds of trajectory, each a sequence of latent points (n, zdim) from which a map series is made:

* :func:`pc_points` — evenly spaced points along one principal component of the encodings (the other
  principal coordinates at the mean), between two percentiles of the data or at its percentiles.
* :func:`direct_points` — straight lines between anchor points, ``n`` points per segment (optionally back to the
  first anchor).
* :func:`graph_path` — the shortest path *through the particles* between anchor particles, in order: Dijkstra on
  a nearest-neighbour graph of the encodings (:func:`neighbour_graph`), so every step is between two encodings
  closer than a global cutoff and the path stays where the data are.

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
                    avg_neighbours: float = AVG_NEIGHBOURS) -> NeighbourGraph:
    """Graph joining each encoding to nearby encodings, for shortest paths along the data.

    Each encoding chooses its neighbours among its ``max_neighbours`` nearest encodings, those no farther than
    one global cutoff; an edge i–j exists when i chose j or j chose i (undirected). The cutoff is the smallest
    distance that gives a mean degree (edges per node, 2E/N) of ``avg_neighbours``, or all candidate pairs
    when they are fewer. A node chooses at most ``max_neighbours``; a node that many others chose can have
    more edges (``max_degree`` reports the largest). Encodings in regions sparser than the cutoff stay
    unconnected: paths go only where the data are dense. Neighbours are found with a space-partitioning tree
    (scikit-learn ``NearestNeighbors``): O(N log N) time, O(N · max_neighbours) memory — a million encodings
    are fine.

    Parameters
    ----------
    z : ndarray (N, zdim)
    max_neighbours : int
    avg_neighbours : float

    Returns
    -------
    NeighbourGraph
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    z = np.ascontiguousarray(z, dtype=np.float64)
    n = len(z)
    if n < 2:
        raise InputError(f"a neighbour graph needs at least 2 encodings, got {n}")
    if max_neighbours < 1 or avg_neighbours <= 0:
        raise InputError(f"neighbour counts must be positive (max {max_neighbours}, average {avg_neighbours})")
    k = min(int(max_neighbours), n - 1)
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="auto").fit(z)
    dist, idx = nn.kneighbors(z)
    # drop each point itself (normally column 0; with duplicate encodings it may be elsewhere)
    rows = np.repeat(np.arange(n), k + 1)
    cols = idx.ravel()
    d = dist.ravel()
    keep = cols != rows
    rows, cols, d = rows[keep], cols[keep], d[keep]
    # undirected pairs: j among the nearest of i, or i among the nearest of j (each pair once)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    pair_key, first = np.unique(lo.astype(np.int64) * n + hi, return_index=True)
    pair_d = d[first]
    target_edges = round(avg_neighbours * n / 2.0)
    if len(pair_d) == 0:
        cutoff = 0.0
        chosen = np.zeros(0, dtype=bool)
    elif target_edges >= len(pair_d):
        cutoff = float(pair_d.max())
        chosen = np.ones(len(pair_d), dtype=bool)
    else:
        cutoff = float(np.partition(pair_d, target_edges - 1)[target_edges - 1])
        chosen = pair_d <= cutoff
    a = (pair_key[chosen] // n).astype(np.int64)
    b = (pair_key[chosen] % n).astype(np.int64)
    w = pair_d[chosen]
    # zero-length edges (duplicate encodings) would vanish from a sparse matrix: give them a tiny length
    w = np.where(w > 0, w, np.finfo(np.float64).tiny)
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
