"""``cryoscape analyze-landscape``: cluster the maps of a run into states (the volume landscape)."""

from __future__ import annotations

import argparse

NAME = "analyze-landscape"
HELP = "cluster the run's maps (at k-means centres) into states: state maps, particle indices, plots"

DESCRIPTION = """\
The landscape analysis of the cryoDRGN paper: k-means of the latent means into K clusters (--sketch-size); a
map at each cluster's on-data centre (the particle nearest the centre); a mask from the union of the maps
(each thresholded at --threshold-fraction of its 99.99th percentile, dilated by --dilate voxels); PCA of the
masked maps; agglomerative clustering (--linkage) of their first --pc-dim principal coordinates into M states.
Each particle gets the state of its k-means cluster.

Writes RUN/landscape.<epoch>/ (or -o):
  labels.txt                N lines: the state (1..M) of particle row i (rows in increasing original index)
  state_01_indices.txt …    original 0-based particle indices of each state (use with --ind)
  state_01_mean.mrc, state_01_std.mrc …  particle-weighted mean and spread of the state's centre maps
  montage.png, landscape.<epoch>.cxc     the state means at a glance / in ChimeraX
  centers/                  the K centre maps vol_001.mrc …, z_values.txt, centers_ind.txt, labels.txt
                            (1-based k-means cluster of each particle), states.txt, montage.png, centers.cxc
  mask.mrc, volume_pca.npy, landscape.json (settings, populations, timings)
  state_populations.png, volume_pca_states.png, z_pca_states.png, z_umap_states.png (UMAP from
  RUN/analyze.<epoch>/umap.npy when analyze wrote it, else computed unless --skip-umap)

examples:
  cryoscape analyze-landscape run/                         # 500 maps at the training box, 10 states
  cryoscape analyze-landscape run/ --downsample 64 -M 5    # faster: 64^3 maps
  cryoscape analyze-landscape run/ --sketch-size 200 --linkage average --skip-umap
  cryoscape train-vae particles.star --ind run/landscape.25/state_03_indices.txt ...   # one state
  cryoscape analyze-landscape 00_vae/ 50                   # a cryoDRGN run folder as it is (epoch 50)

Memory: maps are written as they are generated and read back one at a time; the largest array is
K x (voxels in the mask). Differences from cryoDRGN: the maps are generated in the same command (no separate
eval step); defaults --sketch-size 500, --linkage ward; state numbers are 1-based and ordered by the first
principal coordinate of their maps; mean/std maps are weighted by the particles of each centre.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.common import add_positional_epoch

    parser.add_argument("run", metavar="RUN",
                        help="run folder (or one of its weights.N.pt), or a cryoDRGN run folder as it is")
    add_positional_epoch(parser)
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    parser.add_argument("-o", "--outdir", default=None, help="output folder (default RUN/landscape.<epoch>)")
    parser.add_argument("--sketch-size", dest="sketch_size", type=int, default=500,
                        help="K: k-means clusters, one map each (default %(default)s)")
    parser.add_argument("-M", "--n-states", dest="n_states", type=int, default=10,
                        help="M: states (default %(default)s)")
    parser.add_argument("--pc-dim", dest="pc_dim", type=int, default=20,
                        help="principal components of the masked maps used for clustering (default %(default)s)")
    parser.add_argument("--linkage", default="ward", choices=("ward", "average", "complete", "single"),
                        help="agglomerative clustering linkage (default %(default)s)")
    parser.add_argument("--downsample", "-d", dest="box_size", type=int, default=None, metavar="D",
                        help="box of the maps (even, at most the training box; default the training box)")
    parser.add_argument("--threshold-fraction", dest="threshold_fraction", type=float, default=0.5,
                        help="mask: each map thresholded at this fraction of its 99.99th percentile "
                        "(default %(default)s)")
    parser.add_argument("--dilate", dest="dilate_px", type=int, default=5,
                        help="mask dilation in voxels of the map box (default %(default)s)")
    parser.add_argument("--Apix", "--apix", dest="apix", type=float, default=None,
                        help="pixel size of the training images in Å (default: from the run; needed only for a "
                        "cryoDRGN run whose CTF file is not found)")
    parser.add_argument("-b", "--batch-size", dest="batch_size", type=int, default=8,
                        help="maps decoded per batch (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="k-means seed (default %(default)s)")
    parser.add_argument("--skip-umap", dest="skip_umap", action="store_true",
                        help="no UMAP plot unless analyze already wrote umap.npy")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to decode maps (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.landscape import LandscapeConfig, analyze_landscape, landscape_dir
    from cryoscape.cli.common import chosen_epoch

    run_ = TrainedRun.open(args.run, epoch=chosen_epoch(args), device=args.device, pixel_size_angstrom=args.apix)
    config = LandscapeConfig(sketch_size=args.sketch_size, n_states=args.n_states, pc_dim=args.pc_dim,
                             linkage=args.linkage, box_size=args.box_size,
                             threshold_fraction=args.threshold_fraction, dilate_px=args.dilate_px,
                             batch_size=args.batch_size, seed=args.seed, skip_umap=args.skip_umap)
    out = Path(args.outdir) if args.outdir else landscape_dir(run_)
    summary = analyze_landscape(run_, out, config, show_progress=True)
    pops = ", ".join(f"{s}: {p}" for s, p in summary["state_populations"].items())
    print(f"{summary['sketch_size']} maps at box {summary['box_size']}, mask {summary['mask_voxels']} voxels, "
          f"{summary['n_states']} states (particles {pops}) in {summary['timings']['total_seconds']:.1f} s: {out}")
    return 0
