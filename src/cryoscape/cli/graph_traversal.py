"""``cryoscape graph-traversal``: the shortest path through the particles' encodings between anchors."""

from __future__ import annotations

import argparse

from cryoscape.cli import _traversal

NAME = "graph-traversal"
HELP = "shortest path through the latent encodings between anchor particles (and its maps)"

DESCRIPTION = """\
Joins each particle's latent mean to its nearest neighbours, then finds the shortest path (Dijkstra,
Euclidean edge lengths) through the anchors in order, so the path stays where the particles are. The graph:
  neighbour edges  a pair is kept when each particle is among the --max-neighbors nearest of the other (no
                   particle has more), up to one distance cutoff set for --avg-neighbors neighbours on average
                   (raised where needed so that the cutoff alone splits nothing);
  bridges          the shortest links joining the parts the neighbour edges leave apart (the degree cap splits
                   a cloud where mutual neighbours are rare, e.g. in 8 dimensions); a bridge far longer than the
                   median edge means separate clouds of particles, and a path across it is reported.
--no-connect leaves the bridges out (two anchors in separate parts are then an error). Maps are made at a
smoothed path: each node replaced by the mean of its --smooth nearest encodings, resampled evenly in latent arc
length (-n points; default one per path particle; --smooth 1 -n default: at the particles' own encodings).
Writes RUN/traversals.<epoch>/graph_<a>-<b>…/ (graph_k<K>_<a>-<b>… with --kmeans):
  path_ind.txt   the original 0-based particle index of every path node
  z_values.txt   the latent points of the maps (one per line)
  series.json    the graph (bridges), the path and the point labels
  with --volumes vol_001.mrc …, montage.png (rows labelled with the nearest path particle; at most 20
                 rows, evenly spaced), graph_<a>-<b>.cxc; more than 100 maps need --yes (or fewer: -n 20)

examples:
  cryoscape graph-traversal run/ --anchors 120 5021 --volumes -n 20    # particle indices (0-based)
  cryoscape analyze run/ --ksample 20
  cryoscape graph-traversal run/ --kmeans 20 --anchors 3 7 12 --volumes  # k-means clusters 3 -> 7 -> 12
  cryoscape graph-traversal 00_vae/z.50.pkl --anchors 120 5021         # a cryoDRGN run as it is

Differences from cryoDRGN: the run folder replaces the z file (a cryoDRGN run's z.N.pkl names its folder);
--kmeans K takes cluster ids (1-based, as analyze shows them) instead of particle indices; the graph is
undirected with a degree cap, a cutoff and bridges that keep it connected; maps are made directly with
--volumes, along the smoothed path.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.traversals import GraphTraversalConfig

    _traversal.add_arguments(parser, GraphTraversalConfig)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.traversals import GraphTraversalConfig, graph_traversal
    from cryoscape.cli.options import config_from_args

    config = config_from_args(GraphTraversalConfig, args)
    run_ = _traversal.open_run(args)
    _traversal.write(args, run_, [graph_traversal(run_, config)])
    return 0
