"""Traversals of a trained run: what to compute (configs), the computed series (no files), and one writer.

Three kinds, one result type (:class:`Traversal`: latent points, a label per point, a title, what the path is):

* :func:`pc_traversals` — along principal components (:class:`PcTraversalConfig`), one traversal per PC;
* :func:`direct_traversal` — straight lines between anchors (:class:`DirectTraversalConfig`);
* :func:`graph_traversal` — the shortest path through the particles between anchors
  (:class:`GraphTraversalConfig`), with the graph's bridges and the gaps the path crosses.

Computing writes nothing; :func:`write_traversal` writes a traversal to a :class:`~cryoscape.runs.layout.SeriesLayout`
(default: :func:`default_series`, ``RUN/traversals.N/<name>``): the latent points, the original particle indices
of a graph path, a ``series.json`` summary and, with maps, the maps, a montage (at most :data:`MAX_MONTAGE_ROWS`
rows, evenly spaced) and a ChimeraX script.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoscape.analysis import trajectories as tj
from cryoscape.configio import check_range, option
from cryoscape.errors import InputError
from cryoscape.runs.layout import AnalysisLayout, SeriesLayout, TraversalsLayout

if TYPE_CHECKING:
    from cryoscape.analysis.api import TrainedRun

#: A long bridge with at least this many particles on its smaller side joins separate clouds (fewer: outliers).
MIN_CLOUD = 5
#: Rows of a montage at most: longer series show an evenly spaced subset (first and last map included).
MAX_MONTAGE_ROWS = 20
KINDS = ("pc", "direct", "graph")


def _ints(values: Any) -> tuple[int, ...]:
    if isinstance(values, int | np.integer):
        values = (values,)
    return tuple(int(v) for v in values)


# --- configs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PcTraversalConfig:
    """Points along principal components of the latent means (pc-traversal)."""

    pc: tuple[int, ...] = option((1,), flags=("--dim",), metavar="I",
                                 help="principal component(s), 1-based (default 1)")
    n_points: int = option(10, flags=("-n",), help="points per PC (default %(default)s)")
    lim: tuple[float, ...] = option((5.0, 95.0), metavar="PCT",
                                    help="end points: LOW HIGH percentiles of the data on the PC (default 5 95)")
    percentile_spacing: bool = option(False, flags=("--use-percentile-spacing",),
                                      help="points at evenly spaced percentiles (denser where the data are)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "pc", _ints(self.pc))
        object.__setattr__(self, "lim", tuple(float(v) for v in self.lim))
        if not self.pc:
            raise InputError("no principal component given", fix="give --pc 1 (or several: --pc 1 2)")
        for pc in self.pc:
            check_range(pc, "--pc", minimum=1)
        check_range(self.n_points, "-n/--n-points", minimum=2)
        if len(self.lim) != 2 or not 0.0 <= self.lim[0] < self.lim[1] <= 100.0:
            raise InputError(f"--lim takes two percentiles LOW HIGH with 0 <= LOW < HIGH <= 100, got "
                             f"{' '.join(f'{v:g}' for v in self.lim)}", fix="e.g. --lim 5 95")


@dataclass(frozen=True)
class AnchorConfig:
    """Anchors of a traversal: particles, or k-means clusters of ``cryoscape analyze``."""

    anchors: tuple[int, ...] = option((), metavar="A", help="0-based original particle indices (or, with "
                                      "--kmeans K, 1-based k-means cluster ids), in the order visited")
    kmeans: int | None = option(None, metavar="K", help="anchors are k-means cluster ids of 'cryoscape analyze "
                                "RUN --ksample K'; their on-data centre particles are used")
    analyze_dir: str | None = option(None, help="where 'cryoscape analyze' wrote (default RUN/analyze.<epoch>)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", _ints(self.anchors))
        if len(self.anchors) < 2:
            raise InputError(f"a traversal between anchors needs at least 2 anchors, got {len(self.anchors)}",
                             fix="give --anchors A B [C …]")
        if self.kmeans is not None:
            check_range(self.kmeans, "--kmeans", minimum=1)
            bad = [a for a in self.anchors if a < 1]
            if bad:
                raise InputError(f"k-means cluster ids are 1-based, got {bad}", fix=f"give ids 1 to {self.kmeans}")
        elif any(a < 0 for a in self.anchors):
            raise InputError(f"particle indices are 0-based and non-negative, got {list(self.anchors)}")


@dataclass(frozen=True)
class DirectTraversalConfig(AnchorConfig):
    """Straight lines in latent space between anchors (direct-traversal)."""

    n_points: int = option(10, flags=("-n",), help="points per segment, both ends included (default %(default)s)")
    loop: bool = option(False, help="go back from the last anchor to the first")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.n_points, "-n/--n-points", minimum=2)


@dataclass(frozen=True)
class GraphTraversalConfig(AnchorConfig):
    """The shortest path through the particles' encodings between anchors (graph-traversal)."""

    max_neighbors: int = option(tj.MAX_NEIGHBOURS, help="most neighbour edges of a particle (default %(default)s)")
    avg_neighbors: float = option(tj.AVG_NEIGHBOURS, help="mean number of neighbours that sets the distance cutoff "
                                  "(default %(default)s)")
    connect: bool = option(True, negative="--no-connect", help="no bridges: keep the neighbour edges only (two "
                           "anchors in separate parts are then an error)")
    smooth: int = option(10, metavar="K", help="maps at the mean of the K nearest encodings of each path node, "
                         "evenly resampled; 1 = at the path particles' own encodings (default %(default)s)")
    n_points: int | None = option(None, flags=("-n",), help="points (maps) along the path, evenly spaced in latent "
                                  "arc length (default: one per path particle)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.max_neighbors, "--max-neighbors", minimum=1)
        check_range(self.avg_neighbors, "--avg-neighbors", minimum=0, exclusive_minimum=True)
        check_range(self.smooth, "--smooth", minimum=1)
        check_range(self.n_points, "-n/--n-points", minimum=2)


# --- results ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphSummary:
    """The neighbour graph and the path of a graph traversal (lengths in latent units)."""

    n_particles: int
    cutoff: float
    mean_degree: float
    max_degree: int
    n_parts: int
    n_bridges: int
    longest_bridge_ratio: float
    long_bridges: int
    largest_separated: int
    median_edge: float
    path_particles: int
    path_length: float
    longest_step_ratio: float
    bridge_steps: int
    gap: str | None

    def describe(self) -> list[str]:
        """Lines for the terminal: the graph, its bridges (and whether the data are separate clouds), the path."""
        lines = [f"neighbour graph: {self.n_particles} particles, cutoff {self.cutoff:.3g}, mean degree "
                 f"{self.mean_degree:.2f}, max degree {self.max_degree}, median edge {self.median_edge:.3g}"]
        if self.n_bridges:
            line = (f"{self.n_bridges} bridge(s) join its {self.n_parts} parts (longest "
                    f"{self.longest_bridge_ratio:.1f}× the median edge)")
            if self.largest_separated >= MIN_CLOUD:
                line += (f"; {self.long_bridges} long bridge(s) cross gaps with no particles, one separating "
                         f"{self.largest_separated} particles from the rest: the data form separate clouds")
            elif self.long_bridges:
                line += (f"; {self.long_bridges} long bridge(s) join lone outlier particles (at most "
                         f"{self.largest_separated} particle(s) behind each)")
            lines.append(line)
        lines.append(f"path: {self.path_particles} particles, latent length {self.path_length:.4g}, longest step "
                     f"{self.longest_step_ratio:.1f}× the median edge, {self.bridge_steps} step(s) along bridges")
        if self.gap:
            lines.append(f"warning: {self.gap}")
        return lines


@dataclass(frozen=True)
class Traversal:
    """A latent path of a run, ready to write: its points, a label per point and what the path is.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    run_name, epoch : str, int
        The run folder's name and the epoch of the encodings.
    points : ndarray (n, zdim) float32
        The latent points (one map each).
    labels : tuple of str (n,)
        What each point is (``PC1 = -0.3``, ``particle 540``, ``≈ particle 540`` near a smoothed path's point).
    title : str
        One line naming the run, epoch, kind and anchors (the montage's title).
    pc, pc_values : int and ndarray (n,), pc traversals
        The 1-based component and the coordinate of each point on it.
    anchors, kmeans, loop : anchored traversals
        The anchors as given (particle indices, or cluster ids with ``kmeans``), whether the path loops back.
    anchor_particles : tuple of int
        Original 0-based particle index of each anchor.
    path_particles : ndarray (P,) int64 or None
        Graph paths: original 0-based particle index of every path node, in order.
    graph : GraphSummary or None
    """

    kind: str
    run_name: str
    epoch: int
    points: np.ndarray
    labels: tuple[str, ...]
    title: str
    pc: int | None = None
    pc_values: np.ndarray | None = None
    anchors: tuple[int, ...] = ()
    kmeans: int | None = None
    loop: bool = False
    anchor_particles: tuple[int, ...] = ()
    path_particles: np.ndarray | None = None
    graph: GraphSummary | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (``series.json``)."""
        out: dict[str, Any] = {"kind": self.kind, "title": self.title, "run": self.run_name, "epoch": self.epoch,
                               "points": len(self.points), "zdim": int(self.points.shape[1]),
                               "labels": list(self.labels)}
        if self.pc is not None:
            out.update(pc=self.pc, pc_values=[float(v) for v in self.pc_values])
        if self.anchors:
            out.update(anchors=list(self.anchors), kmeans=self.kmeans, loop=self.loop,
                       anchor_particles=list(self.anchor_particles))
        if self.path_particles is not None:
            out["path_particles"] = [int(p) for p in self.path_particles]
        if self.graph is not None:
            out["graph"] = dataclasses.asdict(self.graph)
        return out


# --- computing --------------------------------------------------------------------------------------------------
def _header(run: TrainedRun) -> str:
    return f"{run.path.name}, epoch {run.epoch}"


def pc_traversals(run: TrainedRun, config: PcTraversalConfig) -> list[Traversal]:
    """One traversal per principal component of ``config`` (all checked before any is computed)."""
    z = run.z
    for pc in config.pc:
        if pc > z.shape[1]:
            raise InputError(f"principal component {pc} does not exist: the latent space has {z.shape[1]} "
                             f"dimension(s), so {z.shape[1]} PCs", path=run.path,
                             fix=f"give --pc between 1 and {z.shape[1]}")
    low, high = config.lim
    spacing = "at evenly spaced percentiles" if config.percentile_spacing else "evenly spaced"
    out = []
    for pc in config.pc:
        points, coords = tj.pc_points(z, pc=pc, n_points=config.n_points, low_percentile=low,
                                      high_percentile=high, percentile_spacing=config.percentile_spacing)
        title = (f"{_header(run)}: PC{pc} traversal, {config.n_points} points {spacing}, {low:g}th to "
                 f"{high:g}th percentile")
        out.append(Traversal(kind="pc", run_name=run.path.name, epoch=run.epoch, points=points,
                             labels=tuple(f"PC{pc} = {c:.3g}" for c in coords), title=title, pc=pc,
                             pc_values=coords))
    return out


def direct_traversal(run: TrainedRun, config: DirectTraversalConfig) -> Traversal:
    """Straight lines between the anchors of ``config``; each point labelled by its segment and position."""
    rows, original, _ = anchor_rows(run, config.anchors, kmeans=config.kmeans, analyze_dir=config.analyze_dir)
    points = tj.direct_points(run.z[rows], n_points=config.n_points, loop=config.loop)
    short = _short_names(config.anchors, config.kmeans, original)
    ends = [*short, short[0]] if config.loop else short
    labels = []
    for j in range(len(points)):
        seg, step = divmod(j, config.n_points - 1)
        if step == 0:
            labels.append(ends[seg])
        else:
            labels.append(f"{ends[seg]}→{ends[seg + 1]} {step / (config.n_points - 1):.2f}")
    title = f"{_header(run)}: straight lines {' → '.join(ends)}"
    return Traversal(kind="direct", run_name=run.path.name, epoch=run.epoch, points=points, labels=tuple(labels),
                     title=title, anchors=config.anchors, kmeans=config.kmeans, loop=config.loop,
                     anchor_particles=tuple(int(o) for o in original))


def graph_traversal(run: TrainedRun, config: GraphTraversalConfig) -> Traversal:
    """The shortest path through the particles between the anchors of ``config``, and its map points."""
    rows, original, names = anchor_rows(run, config.anchors, kmeans=config.kmeans, analyze_dir=config.analyze_dir)
    z = run.z
    graph = tj.neighbour_graph(z, max_neighbours=config.max_neighbors, avg_neighbours=config.avg_neighbors,
                               connect=config.connect)
    path = tj.graph_path(graph, rows, names)
    if len(path.rows) < 2:
        raise InputError(f"the anchors are all one particle ({names[0]}): the path has a single point",
                         fix="give anchors at different particles")
    particles = run.indices[path.rows].astype(np.int64)
    n_points = config.n_points or len(path.rows)
    if config.smooth == 1 and n_points == len(path.rows):
        points, nearest, near = z[path.rows].astype(np.float32), np.arange(len(path.rows)), ""
    else:
        points = tj.smooth_path(z, path.rows, neighbours=config.smooth, n_points=n_points)
        nearest, near = _nearest_rows(points, z[path.rows]), "≈ "
    is_anchor = np.isin(np.arange(len(path.rows)), path.anchor_positions)
    labels = tuple(f"{near}particle {particles[j]}" + (" (anchor)" if is_anchor[j] else "") for j in nearest)
    chain = " → ".join(_short_names(config.anchors, config.kmeans, original))
    title = f"{_header(run)}: graph path {chain} through {len(path.rows)} particles"
    return Traversal(kind="graph", run_name=run.path.name, epoch=run.epoch, points=points, labels=labels,
                     title=title, anchors=config.anchors, kmeans=config.kmeans,
                     anchor_particles=tuple(int(o) for o in original), path_particles=particles,
                     graph=_graph_summary(graph, path, particles))


def _short_names(anchors: tuple[int, ...], kmeans: int | None, original: np.ndarray) -> list[str]:
    if kmeans is None:
        return [f"particle {int(o)}" for o in original]
    return [f"cluster {a} (particle {int(o)})" for a, o in zip(anchors, original)]


def _nearest_rows(points: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Index of the nearest of ``nodes`` (P, zdim) to each of ``points`` (n, zdim)."""
    from scipy.spatial import cKDTree

    return np.asarray(cKDTree(np.asarray(nodes, dtype=np.float64)).query(points, k=1)[1], dtype=np.int64)


def _graph_summary(graph: tj.NeighbourGraph, path: tj.GraphPath, particles: np.ndarray) -> GraphSummary:
    median = graph.median_edge
    ratios = path.steps / median if median > 0 and len(path.steps) else np.zeros(len(path.steps))
    gap = None
    if len(ratios) and ratios.max() > tj.LONG_EDGE_RATIO:
        j = int(np.argmax(ratios))
        gap = (f"the path crosses a gap: its step from particle {particles[j]} to particle {particles[j + 1]} is "
               f"{path.steps[j]:.3g} latent units, {ratios[j]:.0f}× the median neighbour edge ({median:.3g}), with "
               "no particles between (an outlier anchor, or anchors in separate clouds); maps across the gap "
               "interpolate between states no particle shows")
    long = graph.long_bridges()
    return GraphSummary(n_particles=graph.matrix.shape[0], cutoff=graph.cutoff, mean_degree=graph.mean_degree,
                        max_degree=graph.max_degree, n_parts=graph.n_parts, n_bridges=len(graph.bridge_lengths),
                        longest_bridge_ratio=graph.longest_bridge_ratio, long_bridges=len(long),
                        largest_separated=int(graph.bridge_sides[long].max(initial=0)), median_edge=median,
                        path_particles=len(path.rows), path_length=path.length,
                        longest_step_ratio=float(ratios.max(initial=0.0)),
                        bridge_steps=int(path.bridge_steps.sum()), gap=gap)


def anchor_rows(run: TrainedRun, anchors: tuple[int, ...] | list[int], kmeans: int | None = None,
                analyze_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Resolve anchors to rows of ``run.z``.

    Parameters
    ----------
    run : TrainedRun
    anchors : sequence of int
        Original 0-based particle indices, or with ``kmeans`` 1-based k-means cluster ids.
    kmeans : int or None
        K of ``cryoscape analyze RUN --ksample K``: anchors are the on-data centre particles of those clusters
        (the k-means folder's ``centers_ind.txt``).
    analyze_dir : path or None
        Where ``cryoscape analyze`` wrote (default: the run's analysis folder of this epoch).

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
        layout = AnalysisLayout(Path(analyze_dir) if analyze_dir is not None else Path(run.analyze_dir))
        path = layout.kmeans(kmeans).centers_ind
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
    return run.rows_of(original), original, names


# --- writing ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MapOptions:
    """How the maps of a traversal are made: box (None = the training box), maps per batch, hand, sign."""

    box_size: int | None = None
    batch_size: int = 8
    flip: bool = False
    invert: bool = False


def series_in(layout: TraversalsLayout, traversal: Traversal) -> SeriesLayout:
    """The folder of ``traversal`` in a traversals folder (``pc1``, ``graph_k10_1-5``, ``direct_3-7`` …)."""
    if traversal.kind == "pc":
        return layout.pc(traversal.pc)
    if traversal.kind == "graph":
        return layout.graph(traversal.anchors, traversal.kmeans)
    return layout.direct(traversal.anchors, traversal.kmeans, traversal.loop)


def default_series(run: TrainedRun, traversal: Traversal) -> SeriesLayout:
    """``RUN/traversals.<epoch>/<name>``: where a traversal goes by default."""
    return series_in(run.run_dir.traversals(run.epoch), traversal)


def montage_rows(count: int, max_rows: int = MAX_MONTAGE_ROWS) -> np.ndarray:
    """Rows shown in a montage of ``count`` maps: all, or ``max_rows`` evenly spaced (first and last included)."""
    if count <= max_rows:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, max_rows)).astype(np.int64))


def write_traversal(run: TrainedRun, traversal: Traversal, series: SeriesLayout, maps: MapOptions | None = None,
                    *, show_progress: bool = False) -> list[Path]:
    """Write ``traversal`` into ``series``; the paths written, in order.

    Always ``z_values.txt`` (the points, one per line), ``series.json`` (:meth:`Traversal.summary`) and, for a
    graph path, ``path_ind.txt`` (original particle indices along the path). With ``maps``: the maps
    ``vol_001.mrc`` …, ``montage.png`` (an evenly spaced subset of at most :data:`MAX_MONTAGE_ROWS` rows, each
    labelled) and ``<folder>.cxc``; maps of an earlier, longer series in the folder beyond this one's are removed.
    When writing fails, the folders this call created are removed again.
    """
    created = [p for p in (series.root, *series.root.parents) if not p.exists()]
    try:
        return _write(run, traversal, series, maps, show_progress)
    except BaseException:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)
        raise


def _write(run: TrainedRun, traversal: Traversal, series: SeriesLayout, maps: MapOptions | None,
           show_progress: bool) -> list[Path]:
    from cryoscape.io.atomic import atomic_open

    series.root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if maps is not None:
        files = run.write_volumes(traversal.points, series.root, box_size=maps.box_size,
                                  batch_size=maps.batch_size, flip=maps.flip, invert=maps.invert,
                                  show_progress=show_progress)
        written += [Path(p) for p in files.maps]
        written += _write_pictures(written, traversal, series, files.voxel_size_angstrom)
    with atomic_open(series.z_values, "w") as handle:
        np.savetxt(handle, traversal.points, fmt="%.6g")
    written.append(series.z_values)
    if traversal.path_particles is not None:
        with atomic_open(series.path_ind, "w") as handle:
            np.savetxt(handle, traversal.path_particles, fmt="%d")
        written.append(series.path_ind)
    written.append(series.summary)
    summary = {**traversal.summary(), "files": [p.name for p in written]}
    with atomic_open(series.summary, "w") as handle:
        json.dump(summary, handle, indent=1)
    if maps is not None:  # maps of a longer earlier series here would read as part of this one
        for p in series.existing_maps():
            if p not in written:
                p.unlink()
    return written


def _write_pictures(map_paths: list[Path], traversal: Traversal, series: SeriesLayout,
                    voxel_size_angstrom: float | None) -> list[Path]:
    """Montage (an evenly spaced subset of rows, each labelled with its map number) and ChimeraX script."""
    from cryoscape.io.mrc import read_mrc
    from cryoscape.plotting.chimerax import write_chimerax_script
    from cryoscape.plotting.maps import contour_level, write_montage

    rows = montage_rows(len(map_paths))
    shown = [np.asarray(read_mrc(map_paths[i])[0], dtype=np.float32) for i in rows]
    title = traversal.title
    if len(rows) < len(map_paths):
        title += f"\n{len(rows)} of {len(map_paths)} maps shown, evenly spaced"
    labels = [f"{i + 1}: {traversal.labels[i]}" for i in rows]
    montage = write_montage(shown, series.montage, labels=labels, title=title)
    script = write_chimerax_script(map_paths, series.chimerax_script, contour_level(shown),
                                   voxel_size_angstrom=voxel_size_angstrom)
    return [Path(montage), Path(script)]
