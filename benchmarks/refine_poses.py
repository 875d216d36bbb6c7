"""Pose refinement during training (``train-nn --refine-poses``) against the truth: errors per epoch, map FSC, time.

Simulates one rigid state of the ``hinge`` built-in (as ``benchmarks/abinit.py``: box ``--box``, SNR ``--snr``,
CTF, shifts), perturbs the true poses of the particles by ``--perturb-deg`` (rotation about a random axis) and
``--perturb-px`` (shift of that length in a random direction), writes them as the input pose file and trains
``train-nn --refine-poses`` on them (``--pose-warmup-epochs`` epochs on the input poses first). After every epoch
the median angular error of ``RUN/poses.N.npz`` against the true rotations (no global alignment: refinement keeps
the frame of the input poses) and the median shift error are reported, with the FSC-0.5 of ``reconstruct.N.mrc``
against the true map; for reference, the same FSC of the voxel back-projection with the true poses and with the
perturbed poses. Prints one line per epoch and writes ``--json``.

    python benchmarks/refine_poses.py --n 2000 --epochs 16 --json benchmarks/results/refine_poses.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--max-shift-px", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--perturb-deg", type=float, default=5.0)
    parser.add_argument("--perturb-px", type=float, default=2.0)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--pose-warmup-epochs", type=int, default=1)
    parser.add_argument("--pose-lr-px", type=float, default=None, help="default: TrainConfig's")
    parser.add_argument("--pose-prior-px", type=float, default=None)
    parser.add_argument("--dec-dim", type=int, default=256)
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/cryoscape_bench_refine")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from abinit import _simulate, perturb_poses
    from cryoscape.data.particles import load_particles
    from cryoscape.io.legacy import write_pose_pickle
    from cryoscape.io.mrc import read_mrc
    from cryoscape.models import ModelConfig
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject
    from cryoscape.reconstruct.fsc import fsc_curve
    from cryoscape.reconstruct.pose_scoring import rotation_angle_deg
    from cryoscape.runs import RunDir
    from cryoscape.simulate.simulator import GroundTruthVolumes
    from cryoscape.training import loop
    from cryoscape.training.config import DataConfig, TrainConfig
    from cryoscape.training.pose_files import load_run_poses

    star, cfg = _simulate(args)
    particles = load_particles(star)
    true = particles.poses
    true_map = GroundTruthVolumes(cfg)(0, 0.0)
    apix = particles.pixel_size_angstrom
    start = perturb_poses(true, args.perturb_deg, args.perturb_px, args.seed + 1)
    work = Path(args.workdir) / f"box{args.box}_n{args.n}_snr{args.snr}_p{args.perturb_deg}_{args.perturb_px}"
    work.mkdir(parents=True, exist_ok=True)
    start_file = write_pose_pickle(work / "start.pkl", start)

    def bp_res(poses) -> float:
        vol = backproject(dataclasses.replace(particles, poses=poses), BackprojectConfig(), show_progress=False).full
        return fsc_curve(vol, true_map, apix).resolution_angstrom(0.5)

    ref_true, ref_start = bp_res(true), bp_res(start)
    print(f"back-projection FSC 0.5: true poses {ref_true:.2f} Å, perturbed poses {ref_start:.2f} Å")

    changes = {} if args.pose_lr_px is None else {"pose_lr_px": args.pose_lr_px}
    config = TrainConfig(model=ModelConfig(zdim=0, dec_dim=args.dec_dim), num_epochs=args.epochs,
                         data=DataConfig(particles=str(star), poses=str(start_file)), refine_poses=True,
                         pose_warmup_epochs=args.pose_warmup_epochs, pose_prior_px=args.pose_prior_px,
                         seed=args.seed, **changes)
    run = work / f"run_lr{config.pose_lr_px}_w{args.pose_warmup_epochs}_e{args.epochs}"
    t0 = time.perf_counter()
    loop.fit(config, run, overwrite=True)
    seconds = time.perf_counter() - t0
    rows = []
    for epoch in range(1, args.epochs + 1):
        found = load_run_poses(run, epoch)
        rot = rotation_angle_deg(found.rotations, true.rotations[found.indices])
        shift = np.linalg.norm(found.shifts_px - true.shifts_px[found.indices], axis=1)
        res = fsc_curve(read_mrc(run / f"reconstruct.{epoch}.mrc")[0], true_map, apix).resolution_angstrom(0.5)
        rows.append({"epoch": epoch, "median_angular_error_deg": float(np.median(rot)),
                     "median_shift_error_px": float(np.median(shift)), "fsc05_angstrom": float(res)})
        print(f"epoch {epoch}: median angular error {np.median(rot):.2f}°, shift {np.median(shift):.2f} px; "
              f"map FSC 0.5 {res:.2f} Å", flush=True)
    print(f"{seconds:.0f} s in all")
    report = {"dataset": {"box": args.box, "n": args.n, "snr": args.snr, "max_shift_px": args.max_shift_px,
                          "seed": args.seed, "pixel_size_angstrom": apix},
              "perturbation": {"deg": args.perturb_deg, "px": args.perturb_px},
              "config": {"epochs": args.epochs, "pose_warmup_epochs": args.pose_warmup_epochs,
                         "pose_lr_px": config.pose_lr_px, "pose_prior_px": args.pose_prior_px,
                         "dec_dim": args.dec_dim, "precision": RunDir(run).load_config_dict().get("precision")},
              "backprojection_fsc05_angstrom": {"true_poses": ref_true, "perturbed_poses": ref_start},
              "epochs": rows, "seconds": seconds,
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
