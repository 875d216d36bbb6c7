"""``cryoscape demo``: the whole pipeline on a built-in simulated dataset, from nothing."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "simulate a hinge dataset, train a VAE, analyse it and compare its maps with the truth (a few minutes)"
DESCRIPTION = """\
Run the main pipeline on data it makes itself: simulate a continuous 'hinge' dataset (two-domain
pseudo-molecule, second domain swinging over a range of angles; CTF and noise), train a VAE on it, run the
cryoscape analyze pipeline on the run (plots, k-means maps, maps along the latent coordinate), then compare with
the truth: the latent coordinate against the true hinge angle (Spearman rank correlation) and a montage of the
generated maps along the latent coordinate next to the true maps of the nearest hinge angle (motion.png).
Prints where everything is, with the analysis report (PCA and UMAP plots, clusters, maps) to open in a browser.
With --zdim 1 the motion is shown by the maps at the 5th, 15th … 95th percentiles of z; with a larger zdim
(default 8) by --n-maps maps along PC1.

examples:
  cryoscape demo -o demo_out
  cryoscape demo -o demo_1d --zdim 1           # a one-dimensional latent: histograms instead of PCA/UMAP
  cryoscape demo -o demo_big -n 20000 --box-size 64 --epochs 25
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.demo import DemoConfig
    from cryoscape.cli.options import add_config_options

    parser.add_argument("-o", "--outdir", default="demo_out", help="output folder (default %(default)s)")
    add_config_options(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.demo import DemoConfig, run_demo
    from cryoscape.cli.common import check_outputs
    from cryoscape.cli.options import config_from_args
    from cryoscape.runs.layout import AnalysisLayout, SeriesLayout

    config = config_from_args(DemoConfig, args)
    check_outputs(folders=[args.outdir])
    result = run_demo(args.outdir, config)
    layout = AnalysisLayout(result.analyze_dir)
    report = f"\n  report (open in a browser): {layout.report}" if layout.report.exists() else ""
    series = SeriesLayout(result.maps_dir)
    print(f"""
done in {result.seconds / 60:.1f} min. Results:
  the motion — generated maps along the latent coordinate next to the true maps: {result.motion_path}
  latent coordinate vs true hinge angle: {result.plot_path}
  learning curve: {result.learning_curve_path}
  Spearman rank correlation (|ρ| near 1 = the motion was recovered): {result.spearman:+.3f}
  analysis (plots, {layout.kmeans(config.ksample).name}/ maps, {series.name}/ maps, ChimeraX .cxc movies, notebook):
    {result.analyze_dir}{report}
  dataset (particles.star, ground_truth.csv, gt_volumes/): {result.dataset_dir}
  trained run (config.yaml, run.log, weights.N.pt, z.N.npz): {result.run_dir}
next: chimerax {series.chimerax_script}   |   cryoscape analyze {result.run_dir} --help""")
    return 0
