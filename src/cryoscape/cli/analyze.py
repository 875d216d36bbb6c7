"""``cryoscape analyze``: plots, k-means clusters, PC traversals and maps of a trained run's latent space."""

from __future__ import annotations

import argparse

NAME = "analyze"
HELP = "analyse the latent space of a trained VAE: PCA, UMAP, k-means maps, PC traversals, plots, notebook"
DESCRIPTION = """\
Analyse the latent encodings of a trained run (cryoscape train-vae or import-cryodrgn) at one epoch and write
everything into RUN/analyze.<epoch>/ (or -o DIR); an existing analysis there is replaced only with --overwrite:

  analysis.json           what was computed (N, zdim, explained variance, cluster sizes, files)
  pca.npy, umap.npy       PC and UMAP coordinates of every particle (rows aligned with z.<epoch>.npz)
  *.png                   explained variance; scatter, hexbin and density-contour plots with marginals in PCA
                          and UMAP coordinates; the learning curve
  kmeans<K>/              labels.txt (1-based cluster of each particle), centers.txt (on-data centre z),
                          centers_ind.txt (0-based particle index of each centre), vol_001.mrc … (map of
                          cluster i), montage.png, kmeans<K>.cxc (ChimeraX: plays the maps as a movie)
  pc1/, pc2/ …            maps at --n-per-pc points from the 5th to the 95th percentile of each PC
  percentiles/            zdim 1: maps at the 5th, 15th … 95th percentiles of z (plus z_hist.png, z_vs_index.png)
  analyze.ipynb           a Jupyter notebook that redoes the figures with the Python API
  report.html             an offline interactive report (open it in a browser)

Maps carry the voxel size in their header. k-means runs to convergence (cryoDRGN stops at 10 iterations); each
centre is then moved to the nearest particle of its cluster (on-data) and clusters are numbered 1..K in the
leaf order of a hierarchical clustering of the centres, so neighbouring ids look alike. UMAP (15 neighbours,
min_dist 0.1) is fitted on at most --umap-fit-max particles; each other particle is placed at the weighted
mean of its 15 nearest fitted particles (the start of UMAP.transform; --umap-transform runs transform itself).

examples:
  cryoscape analyze run/                          # latest epoch → run/analyze.<N>/
  cryoscape analyze run/ 20 --ksample 50          # 50 clusters at epoch 20 (the same as --epoch 20)
  cryoscape analyze run/ --skip-vol --skip-umap   # plots and clusters only (fast)
  chimerax run/analyze.20/kmeans20/kmeans20.cxc   # play the cluster maps
  cryoscape analyze 00_vae/ 50                    # a cryoDRGN run folder as it is: weights.50.pkl, z.50.pkl

A cryoDRGN train_vae folder (config.yaml, weights.N.pkl, z.N.pkl) is read as it is, with cryoDRGN's epoch
numbers (cryoDRGN 4 counts from 1; z.50.pkl is the 50th epoch) and nothing in it is changed; the analysis goes to
00_vae/analyze.50/ (00_vae/analyze.50.cryoscape/ when cryoDRGN's own analysis is there). The pixel size comes
from the run's CTF pickle; give --Apix when it is not found.
"""

MAP_OPTIONS = ("downsample", "flip", "invert", "batch_size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.analyze import AnalyzeConfig
    from cryoscape.cli.options import add_config_options, add_device, add_map_output, add_run

    add_run(parser)
    parser.add_argument("-o", "--outdir", default=None, help="output folder (default RUN/analyze.<epoch>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier analysis there")
    add_config_options(parser, AnalyzeConfig)
    add_map_output(parser, batch_size=AnalyzeConfig.batch_size)
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.cli.options import chosen_epoch, config_from_args

    config = config_from_args(AnalyzeConfig, args, **{name: getattr(args, name) for name in MAP_OPTIONS})
    trained = TrainedRun.open(args.run, epoch=chosen_epoch(args), device=args.device,
                              pixel_size_angstrom=args.apix)
    result = run_analysis(trained, config, out_dir=args.outdir, overwrite=args.overwrite)
    s, layout = result.summary, result.layout
    print(f"analysed {s['n_particles']} particles (zdim {s['zdim']}, epoch {s['epoch']}) in "
          f"{s['seconds']['total']:.1f} s → {result.out_dir}")
    print(f"  k-means: {layout.kmeans(config.ksample).root}  (cluster sizes {s['kmeans']['sizes']})")
    if layout.report.exists():
        print(f"  report: {layout.report}")
    if config.notebook:
        print(f"  notebook: {layout.notebook}")
    return 0
