"""``cryoscape report``: (re)write the self-contained HTML report of a run's analysis."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write report.html: figures, map montages and an interactive latent scatter with lasso selection"
DESCRIPTION = """\
Write one self-contained HTML page (RUN/analyze.<epoch>/report.html; `cryoscape analyze` writes it too) that
opens offline from disk: all JavaScript (plotly.js) and data are inlined, nothing is fetched from the network.

The page shows the figures and map montages of `cryoscape analyze` (run it first for them; without it the page
has the scatter only) and an interactive WebGL scatter of the latent space (PCA, and UMAP when analyze computed
it), coloured by k-means cluster, ‖z‖, a latent coordinate, defocus, angles or any per-particle column of the
original .star/.cs (e.g. rlnClassNumber). Hover shows the original particle index. Select points with the lasso
or box tool: the page shows how many, downloads an index file (0-based original indices) and prints the
commands to run next (`cryoscape select RUN --from-file …`, `cryoscape write-star …`).

examples:
  cryoscape analyze run/ --ksample 20          # writes run/analyze.<epoch>/report.html at the end
  cryoscape report run/                        # rewrite it (e.g. after adding columns)
  cryoscape report run/ --epoch 25 -o run/analyze.25
  cryoscape report 00_vae/ --epoch 50          # a cryoDRGN run folder as it is (after cryoscape analyze)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="run folder (or one of its weights.N.pt), or a cryoDRGN run folder")
    parser.add_argument("--epoch", type=int, default=None, help="epoch (default: the latest)")
    parser.add_argument("-o", "--outdir", default=None,
                        help="analysis folder to read and write report.html into (default RUN/analyze.<epoch>)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.report import write_report

    trained = TrainedRun.open(args.run, epoch=args.epoch, device="cpu")
    folder = Path(args.outdir) if args.outdir else trained.analyze_dir
    path = write_report(folder, trained)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB; open it in a browser, no network needed)")
    return 0
