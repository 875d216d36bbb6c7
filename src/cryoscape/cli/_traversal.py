"""Options and output shared by the trajectory commands (pc-traversal, graph-traversal, direct-traversal)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """RUN, --epoch, -o, --volumes and the map options."""
    parser.add_argument("run", metavar="RUN", help="run folder (or one of its weights.N.pt), or a cryoDRGN run "
                        "folder or its z.N.pkl")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    parser.add_argument("-o", "--outdir", default=None,
                        help="output folder (default RUN/traversals.<epoch>/<name>)")
    parser.add_argument("--volumes", action="store_true",
                        help="also generate the map at every point, with montage.png and <folder>.cxc")
    parser.add_argument("--downsample", "-d", type=int, default=None, metavar="D",
                        help="box of the maps (even, at most the training box; default the training box)")
    parser.add_argument("--Apix", "--apix", dest="apix", type=float, default=None,
                        help="pixel size of the training images in Å (default: from the run; needed only for a "
                        "cryoDRGN run whose CTF file is not found)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (reverse the z axis)")
    parser.add_argument("--invert", action="store_true", help="multiply the maps by -1")
    parser.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=8,
                        help="maps decoded per batch (default %(default)s)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to decode maps (default %(default)s)")


def add_anchor_arguments(parser: argparse.ArgumentParser) -> None:
    """--anchors, --kmeans, --analyze-dir."""
    parser.add_argument("--anchors", type=int, nargs="+", required=True, metavar="A",
                        help="0-based original particle indices (or, with --kmeans K, 1-based k-means cluster ids)")
    parser.add_argument("--kmeans", type=int, default=None, metavar="K",
                        help="anchors are k-means cluster ids of 'cryoscape analyze RUN --ksample K'; their "
                        "on-data centre particles are used")
    parser.add_argument("--analyze-dir", dest="analyze_dir", default=None,
                        help="where 'cryoscape analyze' wrote (default RUN/analyze.<epoch>)")


def open_run(args: argparse.Namespace):
    from cryoscape.analysis.api import TrainedRun

    return TrainedRun.open(args.run, epoch=args.epoch, device=args.device, pixel_size_angstrom=args.apix)


def output_dir(args: argparse.Namespace, run, name: str) -> Path:
    from cryoscape.analysis.trajectories import traversals_dir

    return Path(args.outdir) if args.outdir else traversals_dir(run) / name


def write(args: argparse.Namespace, run, z, out: Path, title: str, labels: list[str] | None = None) -> dict:
    """Write the path (and maps with --volumes); print where."""
    from cryoscape.analysis.trajectories import write_trajectory

    written = write_trajectory(run, z, out, volumes=args.volumes, box_size=args.downsample,
                               batch_size=args.batch_size, flip=args.flip, invert=args.invert, title=title,
                               labels=labels, show_progress=True)
    print(f"{len(z)} points: {written['z_path']}")
    if args.volumes:
        print(f"{len(written['maps'])} maps in {out}/ (montage.png, {out.name}.cxc: chimerax {written['script']})")
    return written
