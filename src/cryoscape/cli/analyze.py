"""``cryoscape analyze``: plots, k-means clusters, PC traversals and maps of a trained run's latent space."""

from __future__ import annotations

import argparse

NAME = "analyze"
HELP = "analyse the latent space of a trained VAE: PCA, UMAP, k-means maps, PC traversals, plots, notebook"
DESCRIPTION = """\
Analyse the latent encodings of a trained run (cryoscape train-vae or import-cryodrgn) at one epoch and write
everything into RUN/analyze.<epoch>/ (or -o DIR):

  analysis.json           what was computed (N, zdim, explained variance, cluster sizes, files)
  pca.npy, umap.npy       PC and UMAP coordinates of every particle (rows aligned with z.<epoch>.npz)
  *.png                   explained variance; scatter, hexbin and density-contour plots with marginals in PCA
                          and UMAP coordinates; the learning curve from run.log
  kmeans<K>/              labels.txt (1-based cluster of each particle), centers.txt (on-data centre z),
                          centers_ind.txt (0-based particle index of each centre), vol_001.mrc … (map of
                          cluster i), montage.png, kmeans<K>.cxc (ChimeraX: plays the maps as a movie)
  pc1/, pc2/ …            maps at --n-per-pc points from the 5th to the 95th percentile of each PC
  percentiles/            zdim 1: maps at the 5th, 15th … 95th percentiles of z (plus z_hist.png, z_vs_index.png)
  analyze.ipynb           a Jupyter notebook that redoes the figures with the Python API

Maps carry the voxel size in their header. k-means runs to convergence (cryoDRGN stops at 10 iterations); each
centre is then moved to the nearest particle of its cluster (on-data) and clusters are numbered 1..K in the
leaf order of a hierarchical clustering of the centres, so neighbouring ids look alike. UMAP (15 neighbours,
min_dist 0.1) is fitted on at most --umap-fit-max particles; each other particle is placed at the weighted
mean of its 15 nearest fitted particles (the start of UMAP.transform; --umap-transform runs transform itself).

examples:
  cryoscape analyze run/                          # latest epoch → run/analyze.<N>/
  cryoscape analyze run/ --epoch 20 --ksample 50  # 50 clusters at epoch 20
  cryoscape analyze run/ --skip-vol --skip-umap   # plots and clusters only (fast)
  chimerax run/analyze.20/kmeans20/kmeans20.cxc   # play the cluster maps
  cryoscape analyze 00_vae/ 50                    # a cryoDRGN run folder as it is: weights.50.pkl, z.50.pkl

A cryoDRGN train_vae folder (config.yaml, weights.N.pkl, z.N.pkl) is read as it is, with cryoDRGN's epoch
numbers (cryoDRGN 4 counts from 1; z.50.pkl is the 50th epoch) and nothing in it is changed; the analysis goes to
00_vae/analyze.50/ (00_vae/analyze.50.cryoscape/ when cryoDRGN's own analysis is there). The pixel size comes
from the run's CTF pickle; give --Apix when it is not found.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.analyze import AnalyzeConfig

    d = AnalyzeConfig()
    from cryoscape.cli.common import add_positional_epoch

    parser.add_argument("run", metavar="RUN",
                        help="run folder (or one of its weights.N.pt), or a cryoDRGN run folder as it is")
    add_positional_epoch(parser)
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    parser.add_argument("-o", "--outdir", default=None, help="output folder (default RUN/analyze.<epoch>)")
    parser.add_argument("--ksample", type=int, default=d.ksample,
                        help="number of k-means clusters, one map each (default %(default)s)")
    parser.add_argument("--pc", type=int, default=d.pc, help="principal components to traverse (default %(default)s)")
    parser.add_argument("--n-per-pc", dest="n_per_pc", type=int, default=d.n_per_pc,
                        help="maps per PC traversal, 5th to 95th percentile (default %(default)s)")
    parser.add_argument("--skip-umap", dest="skip_umap", action="store_true", help="do not compute UMAP")
    parser.add_argument("--skip-vol", dest="skip_vol", action="store_true", help="do not generate maps")
    parser.add_argument("-d", "--downsample", type=int, default=None, metavar="D",
                        help="box of the maps (even, at most the training box; default the training box)")
    parser.add_argument("--Apix", "--apix", dest="apix", type=float, default=None,
                        help="pixel size of the training images in Å (default: from the run; needed only for an "
                        "imported run without one)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (reverse the z axis)")
    parser.add_argument("--invert", action="store_true", help="multiply the maps by -1")
    parser.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=d.batch_size,
                        help="maps decoded per batch (default %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of k-means and UMAP (default %(default)s)")
    parser.add_argument("--umap-fit-max", dest="umap_fit_max", type=int, default=d.umap_fit_max,
                        help="particles UMAP is fitted on; the others are placed at the weighted mean of their 15 "
                        "nearest fitted particles (default %(default)s)")
    parser.add_argument("--umap-transform", dest="umap_transform", action="store_true",
                        help="place the particles beyond --umap-fit-max with UMAP.transform (slower)")
    parser.add_argument("--no-notebook", dest="notebook", action="store_false", help="do not write analyze.ipynb")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to decode maps (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.cli.common import chosen_epoch

    config = AnalyzeConfig(ksample=args.ksample, pc=args.pc, n_per_pc=args.n_per_pc, skip_umap=args.skip_umap,
                           skip_vol=args.skip_vol, downsample=args.downsample, flip=args.flip, invert=args.invert,
                           batch_size=args.batch_size, seed=args.seed, umap_fit_max=args.umap_fit_max,
                           umap_transform=args.umap_transform, notebook=args.notebook)
    trained = TrainedRun.open(args.run, epoch=chosen_epoch(args), device=args.device,
                              pixel_size_angstrom=args.apix)
    result = run_analysis(trained, config, out_dir=args.outdir)
    s = result.summary
    print(f"analysed {s['n_particles']} particles (zdim {s['zdim']}, epoch {s['epoch']}) in "
          f"{s['seconds']['total']:.1f} s → {result.out_dir}")
    print(f"  k-means: {result.out_dir / s['kmeans']['folder']}  (cluster sizes {s['kmeans']['sizes']})")
    if (result.out_dir / "report.html").exists():
        print(f"  report: {result.out_dir / 'report.html'}")
    print(f"  notebook: {result.out_dir / 'analyze.ipynb'}" if config.notebook else "")
    return 0
