"""``cryoscape graph-traversal``: the shortest path through the particles' encodings between anchors."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "graph-traversal"
HELP = "shortest path through the latent encodings between anchor particles (and its maps)"

DESCRIPTION = """\
Joins each particle's latent mean to its nearest neighbours, then finds the shortest path (Dijkstra,
Euclidean edge lengths) through the anchors in order. The graph: a pair of particles is a candidate when one is
among the --max-neighbors nearest of the other; a pair is kept only when it is among the --max-neighbors
shortest pairs of both its particles (so no particle has more than --max-neighbors edges), and no longer than
one global cutoff chosen for --avg-neighbors neighbours on average, raised when needed so that the cutoff does
not split the particle cloud (--no-connect keeps the mean-degree cutoff). The path visits only particles, so it
stays where the data are. One encoding is a noisy estimate of its particle's state, so the maps are made at a
smoothed path: each node replaced by the mean of its --smooth nearest encodings, resampled evenly in latent
arc length (--smooth 1: at the particles' own encodings). Writes RUN/traversals.<epoch>/graph_<a>-<b>…/:
  path_indices.txt  the original 0-based particle index of every path node
  z_values.txt      the latent points of the maps (the smoothed path; one per line, as many as path nodes)
  with --volumes    vol_001.mrc … (one map per point), montage.png, graph_<a>-<b>.cxc
Two anchors in disconnected parts of the graph are an error (choose other anchors or raise the neighbour
counts).

examples:
  cryoscape graph-traversal run/ --anchors 120 5021 --volumes          # particle indices (0-based)
  cryoscape analyze run/ --ksample 20
  cryoscape graph-traversal run/ --kmeans 20 --anchors 3 7 12 --volumes  # k-means clusters 3 -> 7 -> 12
  cryoscape graph-traversal 00_vae/z.50.pkl --anchors 120 5021         # a cryoDRGN run as it is

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder);
--kmeans K takes cluster ids (1-based, as analyze shows them) instead of particle indices; the graph is
undirected with a degree cap and a cutoff that keeps the cloud connected; maps are made directly with --volumes,
along the smoothed path.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _traversal.add_run_arguments(parser)
    _traversal.add_anchor_arguments(parser)
    parser.add_argument("--max-neighbors", dest="max_neighbors", type=int, default=10,
                        help="most neighbours of a particle (default %(default)s)")
    parser.add_argument("--avg-neighbors", dest="avg_neighbors", type=float, default=5.0,
                        help="mean number of neighbours that sets the distance cutoff (default %(default)s)")
    parser.add_argument("--no-connect", dest="connect", action="store_false",
                        help="do not raise the cutoff to keep the neighbour graph's cloud connected")
    parser.add_argument("--smooth", type=int, default=10, metavar="K",
                        help="maps at the mean of the K nearest encodings of each path node, evenly resampled; "
                        "1 = at the path particles' own encodings (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from cryoscape.analysis.trajectories import anchor_rows, graph_path, neighbour_graph, smooth_path
    from cryoscape.errors import InputError

    if args.smooth < 1:
        raise InputError(f"--smooth must be at least 1, got {args.smooth}")

    run_ = _traversal.open_run(args)
    rows, _, names = anchor_rows(run_, args.anchors, kmeans=args.kmeans, analyze_dir=args.analyze_dir)
    z = run_.z
    graph = neighbour_graph(z, max_neighbours=args.max_neighbors, avg_neighbours=args.avg_neighbors,
                            connect=args.connect)
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
    points = smooth_path(z, path.rows, neighbours=args.smooth) if args.smooth > 1 else z[path.rows]
    labels = [f"#{int(i)}" for i in path_indices] if args.smooth == 1 else None
    _traversal.write(args, run_, points, out, title=f"{run_.path.name}: graph path {tag}", labels=labels)
    print(f"path of {len(path.rows)} particles, latent length {path.length:.4g} (longest step "
          f"{path.steps.max(initial=0):.4g}): {out / 'path_indices.txt'}")
    return 0
