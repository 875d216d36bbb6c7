"""Heterogeneous ab initio (``cryoscape abinit --zdim N``) on the ``assembly`` preset: pose error and state ARI.

Simulates the ``assembly-64`` preset (states core, core+A, core+A+B; SNR, CTF, shifts as the preset) with
``--n`` particles, Fourier-cropped to ``--box``, runs ``training.abinit_run.run_abinit`` (projection matching of
one consensus map, then train-vae on the poses found for ``--train-epochs`` epochs), and scores

* the poses against the truth after the global rotation and hand (``reconstruct.pose_scoring.align_poses``);
* the latent: k-means with k = number of states on the encoder means (``analysis.latent.kmeans``), adjusted Rand
  index against the true states.

Prints the figures and writes ``--json``.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/abinit_het.py --n 2000 --box 32 --epochs 8 --zdim 8 \
        --train-epochs 20 --json benchmarks/results/abinit_het.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from cryoscape.analysis.latent import kmeans
from cryoscape.data.particles import load_particles
from cryoscape.reconstruct.abinit import AbinitConfig
from cryoscape.reconstruct.pose_scoring import align_poses
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import run_simulation
from cryoscape.training.abinit_run import AbinitRunConfig, run_abinit
from cryoscape.training.pose_files import load_run_poses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--box", type=int, default=32, help="box of the particles (Fourier crop of 64)")
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--train-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/cryoscape_bench_abinit_het")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    cfg = preset_config("assembly-64", n_particles=args.n, snr=args.snr, seed=args.seed,
                        downsample_box=None if args.box == 64 else args.box)
    data = Path(args.workdir) / f"assembly_n{args.n}_box{args.box}_snr{args.snr}_seed{args.seed}"
    if not (data / "particles.star").is_file():
        run_simulation(cfg, data, show_progress=False)
    particles = load_particles(data / "particles.star")
    truth = pd.read_csv(data / "ground_truth.csv")
    run_dir = Path(args.workdir) / f"run_n{args.n}_box{args.box}_z{args.zdim}"
    config = AbinitRunConfig(particles=str(data / "particles.star"),
                             abinit=AbinitConfig(num_epochs=args.epochs, local_epochs=args.epochs // 2,
                                                 seed=args.seed),
                             train_epochs=args.train_epochs, zdim=args.zdim, device="cpu")
    t0 = time.perf_counter()
    run = run_abinit(config, run_dir, overwrite=True, show_progress=False)
    seconds = time.perf_counter() - t0
    poses = load_run_poses(run.path)
    al = align_poses(poses.rotations, poses.shifts_px, particles.poses.rotations, particles.poses.shifts_px)
    z = run.load_z().mean
    states = truth["state"].to_numpy()
    k = int(np.unique(states).size)
    labels = kmeans(z, k, seed=args.seed).labels
    ari = float(adjusted_rand_score(states, labels))
    report = {"dataset": {"preset": "assembly-64", "n": args.n, "box": args.box, "snr": args.snr},
              "abinit_epochs": args.epochs, "zdim": args.zdim, "train_epochs": args.train_epochs,
              "seconds": seconds, "poses": al.summary(), "ari_kmeans": ari}
    print(f"assembly, {args.n} particles, box {args.box}, SNR {args.snr}: median angular error "
          f"{al.summary()['median_angular_error_deg']:.2f}°, shift {al.summary()['median_shift_error_px']:.2f} px; "
          f"k-means ({k}) on z (zdim {args.zdim}, {args.train_epochs} epochs) ARI {ari:.3f}; {seconds:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
