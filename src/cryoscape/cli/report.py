"""``cryoscape report``: (re)write the self-contained HTML page to explore a run's analysis."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write report.html: latent scatter with selection, cluster maps, particle gallery and the analysis figures"
DESCRIPTION = """\
Write one self-contained HTML page (default RUN/analyze.<epoch>/report.html; `cryoscape analyze` writes it too)
that opens offline from disk: all JavaScript (plotly.js) and data are inlined, nothing is fetched from the network.

The page is built from what `cryoscape analyze` computed (run it first): a WebGL scatter of the latent space (any
pair of PCs, or UMAP) coloured by k-means cluster, ‖z‖, a latent coordinate or any per-particle column of the
original .star/.cs, with the k-means centres numbered on it. Select particles with the lasso or box tool, or click
a centre to select its cluster (its map views, map file and ChimeraX command appear); the selection stays across
projections. The page shows the count, downloads an index file (0-based original indices) and prints the commands
to make the selection's map (`cryoscape backproject`, `cryoscape eval-vol` at its mean z) and star file. A gallery
shows phase-flipped images of the selected particles among a random sample embedded in the page (about 2.3 kB per
particle at 48 px: 1000 particles add about 3 MB), with their average.

examples:
  cryoscape analyze run/ --ksample 20          # writes run/analyze.<epoch>/report.html at the end
  cryoscape report run/                        # rewrite it (e.g. after adding columns)
  cryoscape report run/ 25 -o run25.html       # epoch 25, written to run25.html
  cryoscape report 00_vae/ 49                  # a cryoDRGN run folder as it is (after cryoscape analyze)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.report import ReportConfig
    from cryoscape.cli.options import add_config_options, add_run

    add_run(parser)
    parser.add_argument("-o", "--output", default=None, metavar="HTML",
                        help="the page to write (default RUN/analyze.<epoch>/report.html)")
    parser.add_argument("--analysis", default=None, metavar="DIR",
                        help="analysis folder to read (default RUN/analyze.<epoch>)")
    add_config_options(parser.add_argument_group("particle gallery"), ReportConfig)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.report import ReportConfig, write_report
    from cryoscape.cli.options import chosen_epoch, config_from_args

    config = config_from_args(ReportConfig, args)
    trained = TrainedRun.open(args.run, epoch=chosen_epoch(args), device="cpu")
    folder = Path(args.analysis) if args.analysis else trained.run_dir.analysis(trained.epoch).root
    path = write_report(folder, trained, out_path=args.output, config=config)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB; open it in a browser, no network needed)")
    return 0
