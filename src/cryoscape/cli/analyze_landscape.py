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

Writes RUN/landscape.<epoch>/ (or -o; an earlier result there is replaced only with --overwrite):
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

Every map is written to disk (a warning states the disk needed above 100 maps; -d/--downsample makes smaller
maps). Memory: maps are written as they are generated and read back one at a time; the largest array is
K x (voxels in the mask). Differences from cryoDRGN: the maps are generated in the same command (no separate
eval step); defaults --sketch-size 500, --linkage ward; state numbers are 1-based and ordered by the first
principal coordinate of their maps; mean/std maps are weighted by the particles of each centre.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.analysis.landscape import LandscapeConfig
    from cryoscape.cli.options import add_config_options, add_device, add_map_output, add_run

    add_run(parser)
    parser.add_argument("-o", "--outdir", default=None, help="output folder (default RUN/landscape.<epoch>)")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier landscape there")
    add_config_options(parser, LandscapeConfig)
    add_map_output(parser, batch_size=LandscapeConfig.batch_size)
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.landscape import LandscapeConfig, analyze_landscape, landscape_dir
    from cryoscape.cli.options import chosen_epoch, config_from_args
    from cryoscape.training.evaluation import MAX_MAPS_UNASKED, map_disk_text

    config = config_from_args(LandscapeConfig, args, box_size=args.downsample, flip=args.flip, invert=args.invert,
                              batch_size=args.batch_size)
    run_ = TrainedRun.open(args.run, epoch=chosen_epoch(args), device=args.device, pixel_size_angstrom=args.apix)
    out = Path(args.outdir) if args.outdir else landscape_dir(run_)
    if config.sketch_size > MAX_MAPS_UNASKED:
        box = config.box_size or run_.box_size
        print(f"note: writing {config.sketch_size} maps of {box}^3 voxels ({map_disk_text(config.sketch_size, box)} "
              f"on disk) into "
              f"{out}; -d/--downsample makes smaller maps, --sketch-size fewer", flush=True)
    summary = analyze_landscape(run_, out, config, show_progress=True, overwrite=args.overwrite)
    pops = ", ".join(f"{s}: {p}" for s, p in summary["state_populations"].items())
    print(f"{summary['sketch_size']} maps at box {summary['box_size']}, mask {summary['mask_voxels']} voxels, "
          f"{summary['n_states']} states (particles {pops}) in {summary['timings']['total_seconds']:.1f} s: {out}")
    return 0
