"""``cryoscape graph-traversal``: the shortest path through the particles' encodings between anchors."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "graph-traversal"
HELP = "shortest path through the latent encodings between anchor particles (and its maps)"

DESCRIPTION = """\
Joins each particle's latent mean to its nearest neighbours (each particle picks at most --max-neighbors of
its nearest, none farther than one global distance cutoff chosen so that particles have --avg-neighbors
neighbours on average; edges are undirected), then finds the shortest path (Dijkstra, Euclidean edge lengths)
through the anchors in order. The path visits only particles, so it stays where the data are; particles in
regions sparser than the cutoff are left unconnected. Writes RUN/traversals.<epoch>/graph_<a>-<b>…/:
  z_values.txt      the latent mean of every path node (one per line)
  path_indices.txt  the original 0-based particle index of every path node
  with --volumes    vol_001.mrc … (one map per node), montage.png, graph_<a>-<b>.cxc
Two anchors in disconnected parts of the graph are an error (choose other anchors or raise the neighbour
counts).

examples:
  cryoscape graph-traversal run/ --anchors 120 5021 --volumes          # particle indices (0-based)
  cryoscape analyze run/ --ksample 20
  cryoscape graph-traversal run/ --kmeans 20 --anchors 3 7 12 --volumes  # k-means clusters 3 -> 7 -> 12

Differences from cryoDRGN: the run folder replaces the z file; --kmeans K takes cluster ids (1-based, as
analyze shows them) instead of particle indices; maps are made directly with --volumes.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _traversal.add_run_arguments(parser)
    _traversal.add_anchor_arguments(parser)
    parser.add_argument("--max-neighbors", dest="max_neighbors", type=int, default=10,
                        help="most neighbours of a particle (default %(default)s)")
    parser.add_argument("--avg-neighbors", dest="avg_neighbors", type=float, default=5.0,
                        help="mean number of neighbours that sets the distance cutoff (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cryoscape.analysis.trajectories import anchor_rows, graph_path, neighbour_graph

    run_ = _traversal.open_run(args)
    rows, _, names = anchor_rows(run_, args.anchors, kmeans=args.kmeans, analyze_dir=args.analyze_dir)
    z = run_.z
    graph = neighbour_graph(z, max_neighbours=args.max_neighbors, avg_neighbours=args.avg_neighbors)
    print(f"neighbour graph: {len(z)} particles, cutoff {graph.cutoff:.4g}, mean degree {graph.mean_degree:.2f}, "
          f"max degree {graph.max_degree}, {graph.n_components} component(s)")
    path = graph_path(graph, rows, names)
    tag = "-".join(str(a) for a in args.anchors)
    name = f"graph_k{args.kmeans}_{tag}" if args.kmeans is not None else f"graph_{tag}"
    out = _traversal.output_dir(args, run_, name)
    out.mkdir(parents=True, exist_ok=True)
    path_indices = run_.indices[path.rows]
    from cryoscape.io.atomic import atomic_open

    with atomic_open(out / "path_indices.txt", "w") as handle:
        np.savetxt(handle, path_indices, fmt="%d")
    labels = [f"#{int(i)}" for i in path_indices]
    _traversal.write(args, run_, z[path.rows], out, title=f"{run_.path.name}: graph path {tag}", labels=labels)
    print(f"path of {len(path.rows)} particles, latent length {path.length:.4g} (longest step "
          f"{path.steps.max(initial=0):.4g}): {out / 'path_indices.txt'}")
    return 0
