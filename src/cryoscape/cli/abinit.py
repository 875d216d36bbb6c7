"""``cryoscape abinit``: poses and a map from particles without poses (projection matching), then training."""

from __future__ import annotations

import argparse

NAME = "abinit"
ALIASES = ("abinit_homo", "abinit_het")
HELP = "ab initio reconstruction: find every particle's pose (no input poses), then train-nn/train-vae on them"
DESCRIPTION = """\
Find the pose (rotation and in-plane shift) of every particle and a map, from images with CTF but no poses, by
projection matching: each epoch projects the current voxel map on a HEALPix × in-plane SO(3) grid and a shift
grid, scores every image against every projection with its CTF (batched matrix products), refines the best few
poses on finer local grids, and back-projects the images with the poses found. The scored frequencies march from
--k-start-px to --k-end-px over the epochs; the last --local-epochs epochs refine each pose locally. Then a
train-nn run (--zdim 0) or a train-vae run (--zdim N, a latent per particle from the encoder, KL regulariser
towards N(0, I) with beta = 1/zdim) is trained on the poses found for --train-epochs epochs in RUN, so every
command that reads a training run (eval-vol, analyze, select, ...) reads RUN.

The hand of an ab initio map is arbitrary (the images do not tell a map from its mirror image): check it against
known structure and mirror with `cryoscape flip-hand` if needed. The orientation is arbitrary as well.

RUN/abinit/ holds poses.N.npz (poses after epoch N), map.N.mrc, log.txt (cost per image per search level and
time per epoch), poses.pkl (last poses, cryoDRGN pose pickle) and config.yaml. Give the same command again to
resume a killed run. Write the poses for RELION/cryoSPARC with
`cryoscape write-star PARTICLES.star --poses-from RUN -o out.star` (or write-cs).

--refine-input-poses refines given poses instead (the poses of PARTICLES as the start, a local search around
each every epoch, the map back-projected in between): e.g. consensus poses before training.

examples:
  cryoscape abinit particles.star -o run_abinit/
  cryoscape abinit consensus.star -o run_refined/ --refine-input-poses -n 3
  cryoscape abinit particles.cs -o run_het/ --zdim 8 --train-epochs 25
  cryoscape abinit particles.star -o run_abinit/ -n 16 --grid-level 3 --max-shift-px 6
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.common import positive_int

    parser.add_argument("particles", metavar="PARTICLES",
                        help="particle images with CTF: RELION .star, cryoSPARC .cs, or a stack with --ctf")
    parser.add_argument("-o", "--outdir", required=True, help="run folder to write")
    parser.add_argument("--ctf", help="CTF parameters (.star, .cs or cryoDRGN .pkl); default: from PARTICLES")
    parser.add_argument("--ind", help="0-based particle indices to use (.txt, .npy or .pkl)")
    parser.add_argument("--datadir", help="folder holding the image stacks named in a .star/.cs")
    s = parser.add_argument_group("pose search")
    s.add_argument("-n", "--num-epochs", type=positive_int, default=10, help="search epochs (default 10)")
    s.add_argument("--local-epochs", type=int,
                   help="last epochs that refine each pose locally instead of a global search (default: half)")
    s.add_argument("--k-start-px", type=float, help="frequency radius of the first epoch (default max(4, D/10))")
    s.add_argument("--k-end-px", type=float, help="frequency radius of the last epochs (default D/2 - 1)")
    s.add_argument("--grid-level", type=int, default=2,
                   help="HEALPix order of the global grid: 72·8^L rotations, step 60°/2^L (default 2: 15°)")
    s.add_argument("--refine-levels", type=int, default=3, help="local levels, each halving the step (default 3)")
    s.add_argument("--keep-poses", type=positive_int, default=8, help="poses kept per image between levels")
    s.add_argument("--max-shift-px", type=float, default=4.0, help="largest in-plane shift searched (pixels)")
    s.add_argument("--shift-step-px", type=float, default=2.0, help="step of the global shift grid (pixels)")
    s.add_argument("--invert-data", action="store_true", help="particles are black: multiply images by -1")
    s.add_argument("--seed", type=int, default=0, help="seed of the first map and the half split")
    s.add_argument("--refine-input-poses", action="store_true",
                   help="refine the poses of PARTICLES (.star/.cs) locally every epoch instead of an ab initio search")
    t = parser.add_argument_group("training on the poses found")
    t.add_argument("--zdim", type=int, default=0, help="latent dimension (0: homogeneous train-nn; default 0)")
    t.add_argument("--train-epochs", type=int, default=5, help="train-nn/train-vae epochs (0: none; default 5)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--overwrite", action="store_true", help="delete an earlier run in the folder first")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.reconstruct.abinit import AbinitConfig
    from cryoscape.reconstruct.pose_search import PoseSearchConfig
    from cryoscape.training.abinit_run import AbinitRunConfig, run_abinit

    check_outputs(inputs=[args.particles, args.ctf, args.ind], folders=[args.outdir])
    search = PoseSearchConfig(base_level=args.grid_level, refine_levels=args.refine_levels,
                              keep_poses=args.keep_poses, max_shift_px=args.max_shift_px,
                              shift_step_px=args.shift_step_px)
    local = args.num_epochs // 2 if args.local_epochs is None else args.local_epochs
    local = 0 if args.refine_input_poses else local
    abinit = AbinitConfig(num_epochs=args.num_epochs, local_epochs=local, k_start_px=args.k_start_px,
                          k_end_px=args.k_end_px, search=search, invert_contrast=args.invert_data, seed=args.seed)
    config = AbinitRunConfig(particles=args.particles, ctf=args.ctf, ind=args.ind, datadir=args.datadir,
                             abinit=abinit, train_epochs=args.train_epochs, zdim=args.zdim,
                             refine_input_poses=args.refine_input_poses, device=args.device)
    run_dir = run_abinit(config, args.outdir, overwrite=args.overwrite, show_progress=not args.no_progress)
    print(f"ab initio done; poses in {run_dir.path}/abinit/, training run in {run_dir.path}")
    return 0
