"""Options and output shared by the trajectory commands (pc-traversal, graph-traversal, direct-traversal)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cryoscape.cli import options
from cryoscape.training.evaluation import MAX_MAPS_UNASKED, check_map_count  # eval-vol's rule: more need --yes

if TYPE_CHECKING:
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.traversals import Traversal


def add_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """RUN [EPOCH], the config's options, output (-o, --volumes, --yes) and the map options."""
    options.add_run(parser)
    options.add_config_options(parser, config_cls)
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--outdir", default=None, help="output folder (default RUN/traversals.<epoch>/<name>)")
    out.add_argument("--volumes", action="store_true",
                     help="also generate the map at every point, with montage.png and <folder>.cxc")
    out.add_argument("--yes", "-y", action="store_true",
                     help=f"allow more than {MAX_MAPS_UNASKED} maps (they can fill a disk)")
    maps = parser.add_argument_group("maps (with --volumes)")
    options.add_map_output(maps)
    options.add_device(maps)


def open_run(args: argparse.Namespace) -> TrainedRun:
    from cryoscape.analysis.api import TrainedRun

    return TrainedRun.open(args.run, epoch=options.chosen_epoch(args), device=args.device,
                           pixel_size_angstrom=args.apix)


def write(args: argparse.Namespace, run: TrainedRun, traversals: list[Traversal]) -> None:
    """Write each traversal to -o (a subfolder each when several) or its default folder; print where."""
    from cryoscape.analysis import traversals as tv
    from cryoscape.runs.layout import SeriesLayout, TraversalsLayout

    maps = None
    if args.volumes:
        check_map_count(sum(len(t.points) for t in traversals), args.downsample or run.box_size, args.yes,
                        fix="ask for fewer points (-n N)")
        maps = tv.MapOptions(box_size=args.downsample, batch_size=args.batch_size, flip=args.flip,
                             invert=args.invert)
    for t in traversals:
        if args.outdir is None:
            series = tv.default_series(run, t)
        elif len(traversals) > 1:
            series = tv.series_in(TraversalsLayout(Path(args.outdir)), t)
        else:
            series = SeriesLayout(Path(args.outdir))
        if t.graph is not None:
            print("\n".join(t.graph.describe()))
        tv.write_traversal(run, t, series, maps, show_progress=True)
        print(f"{t.title}\n  {len(t.points)} points: {series.z_values}")
        if t.path_particles is not None:
            print(f"  path particles (original indices): {series.path_ind}")
        if maps is not None:
            print(f"  {len(t.points)} maps in {series.root}/, montage {series.montage.name}; play: chimerax "
                  f"{series.chimerax_script}")
