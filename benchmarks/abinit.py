"""Ab initio poses and pose refinement against the truth: angular and shift errors, map FSC, time per epoch.

Simulates one rigid state of the ``hinge`` built-in (box ``--box``, SNR ``--snr``, CTF, shifts up to
``--max-shift-px``), then

* ``homogeneous``: ab initio projection matching (``cryoscape.reconstruct.abinit``, the defaults of
  ``cryoscape abinit`` unless overridden) from a random-rotation start. After every epoch the poses are aligned to
  the true ones (``reconstruct.pose_scoring.align_poses``: global rotation, hand and map translation) and the
  per-particle angular and shift errors are reported, with the FSC of the epoch's map against the true map after
  the same alignment. The reference is the back-projection with the true poses (same particles, same
  back-projection): ``fsc05_ratio`` is the FSC-0.5 resolution of the ab initio map over that of the reference
  (1.0 = as good as the true poses).
* ``refinement`` (unless ``--refine-n 0``): the true poses of the first ``--refine-n`` particles perturbed by
  ``--perturb-deg`` (rotation about a random axis) and ``--perturb-px`` (shift of that length in a random
  direction), then ``reconstruct.abinit.refine_poses`` for ``--refine-epochs`` epochs; errors before and after.

Per epoch the cost per image of each search level (multiply-adds) and the wall time are recorded. Prints one line
per epoch and writes everything to ``--json``.

The runs behind ``benchmarks/results/abinit*.json`` (one CPU thread, shared machine):

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/abinit.py --n 1000 --refine-n 0 --cross-half 1 \
        --fsc-weighting 1 --json benchmarks/results/abinit.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/abinit.py --n 1000 --refine-n 0 --cross-half 0 \
        --fsc-weighting 1 --json benchmarks/results/abinit_full_map_reference.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/abinit.py --n 1000 --skip-abinit --refine-n 1000 \
        --refine-epochs 4 --json benchmarks/results/abinit_refinement.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/abinit.py --n 5000 --epochs 8 --local-epochs 4 \
        --refine-n 0 --json benchmarks/results/abinit_n5000.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from cryoscape.data.particles import load_particles
from cryoscape.geometry.rotations import axis_angle_to_matrix
from cryoscape.io.records import Poses
from cryoscape.reconstruct.abinit import AbinitConfig, describe_cost, initial_map, refine_poses, run_epoch
from cryoscape.reconstruct.backproject import BackprojectConfig, backproject
from cryoscape.reconstruct.fsc import fsc_curve
from cryoscape.reconstruct.pose_scoring import align_poses, aligned_fsc, rotation_angle_deg
from cryoscape.reconstruct.pose_search import PoseSearchConfig
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import GroundTruthVolumes, run_simulation


def _simulate(args) -> tuple[Path, object]:
    cfg = preset_config("hinge-64", box_size=args.box, n_particles=args.n, snr=args.snr,
                        hinge_angles_deg=(30.0, 30.0), max_shift_px=args.max_shift_px, seed=args.seed)
    folder = Path(args.workdir) / f"hinge_rigid_box{args.box}_n{args.n}_snr{args.snr}_seed{args.seed}"
    if not (folder / "particles.star").is_file():
        run_simulation(cfg, folder, show_progress=False)
    return folder / "particles.star", cfg


def perturb_poses(true: Poses, degrees: float, pixels: float, seed: int) -> Poses:
    """``true`` with every rotation turned by ``degrees`` about a random axis and every shift moved by ``pixels``
    in a random direction (one generator seeded with ``seed``)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(len(true), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angle = rng.uniform(0, 2 * np.pi, len(true))
    return Poses(axis_angle_to_matrix(axes * np.radians(degrees)) @ true.rotations,
                 true.shifts_px + pixels * np.stack([np.cos(angle), np.sin(angle)], 1), true.box_size)


def _errors(poses: Poses, truth: Poses, volume, true_map, apix) -> dict:
    al = align_poses(poses.rotations, poses.shifts_px, truth.rotations, truth.shifts_px)
    out = al.summary()
    curve = aligned_fsc(volume, true_map, al, apix)
    out.update(fsc05_angstrom=curve.resolution_angstrom(0.5), fsc_auc=curve.area_under_curve())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--max-shift-px", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=AbinitConfig().num_epochs)
    parser.add_argument("--local-epochs", type=int, default=AbinitConfig().local_epochs)
    parser.add_argument("--grid-level", type=int, default=PoseSearchConfig().base_level)
    parser.add_argument("--refine-levels", type=int, default=PoseSearchConfig().refine_levels)
    parser.add_argument("--search-max-shift-px", type=float, default=PoseSearchConfig().max_shift_px)
    parser.add_argument("--shift-step-px", type=float, default=PoseSearchConfig().shift_step_px)
    parser.add_argument("--refine-n", type=int, default=1000)
    parser.add_argument("--refine-epochs", type=int, default=3)
    parser.add_argument("--perturb-deg", type=float, default=5.0)
    parser.add_argument("--perturb-px", type=float, default=2.0)
    parser.add_argument("--skip-abinit", action="store_true")
    parser.add_argument("--cross-half", type=int, choices=(0, 1), default=int(AbinitConfig().cross_half_reference),
                        help="search each half against the other half's map (AbinitConfig.cross_half_reference)")
    parser.add_argument("--fsc-weighting", type=int, choices=(0, 1), default=int(AbinitConfig().fsc_weighting),
                        help="FSC-weighted search references (AbinitConfig.fsc_weighting)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp") + "/cryoscape_bench_abinit")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    star, cfg = _simulate(args)
    particles = load_particles(star)
    truth_poses = particles.poses
    true_map = GroundTruthVolumes(cfg)(0, 0.0)
    apix = particles.pixel_size_angstrom
    ref = backproject(particles, BackprojectConfig(device=args.device), show_progress=False).full
    ref_res = fsc_curve(ref, true_map, apix).resolution_angstrom(0.5)
    print(f"true-pose back-projection: FSC 0.5 at {ref_res:.2f} Å ({args.n} particles, box {args.box}, "
          f"SNR {args.snr})")
    report = {"dataset": {"box": args.box, "n": args.n, "snr": args.snr, "max_shift_px": args.max_shift_px,
                          "seed": args.seed, "pixel_size_angstrom": apix},
              "true_pose_backprojection_fsc05_angstrom": ref_res,
              "machine": {"cpu": platform.processor() or platform.machine(), "device": args.device,
                          "threads": torch.get_num_threads()}}
    search = PoseSearchConfig(base_level=args.grid_level, refine_levels=args.refine_levels,
                              max_shift_px=args.search_max_shift_px, shift_step_px=args.shift_step_px)
    config = AbinitConfig(num_epochs=args.epochs, local_epochs=args.local_epochs, search=search,
                          device=args.device, seed=args.seed, cross_half_reference=bool(args.cross_half),
                          fsc_weighting=bool(args.fsc_weighting))
    if not args.skip_abinit:
        epochs = []
        t0 = time.perf_counter()
        volume, previous, halves = initial_map(particles, config), None, None
        for epoch in range(1, config.num_epochs + 1):
            t = time.perf_counter()
            result = run_epoch(particles, volume, epoch, config, previous, halves=halves)
            seconds = time.perf_counter() - t
            volume, previous = result.reference, result.poses
            halves = (result.reference_half1, result.reference_half2)
            row = {"epoch": epoch, "local": config.is_local(epoch), "k_max_px": result.k_max_px,
                   "seconds": seconds, "ms_per_image": 1e3 * seconds / args.n,
                   "multiply_adds_per_image": result.cost, **_errors(result.poses, truth_poses, result.volume,
                                                                      true_map, apix)}
            epochs.append(row)
            print(f"epoch {epoch}: {describe_cost(result)}; {seconds:.1f} s ({row['ms_per_image']:.2f} ms/image); "
                  f"median angular error {row['median_angular_error_deg']:.2f}°, shift "
                  f"{row['median_shift_error_px']:.2f} px, hand flipped {row['flipped_hand']}; FSC 0.5 "
                  f"{row['fsc05_angstrom']:.2f} Å ({row['fsc05_angstrom'] / ref_res:.2f}x true poses)", flush=True)
        final = epochs[-1]
        report["homogeneous"] = {"config": {"epochs": args.epochs, "local_epochs": args.local_epochs,
                                            "cross_half_reference": bool(args.cross_half),
                                            "fsc_weighting": bool(args.fsc_weighting),
                                            "grid_level": args.grid_level, "refine_levels": args.refine_levels},
                                 "epochs": epochs, "total_seconds": time.perf_counter() - t0,
                                 "median_angular_error_deg": final["median_angular_error_deg"],
                                 "median_shift_error_px": final["median_shift_error_px"],
                                 "fsc05_angstrom": final["fsc05_angstrom"],
                                 "fsc05_ratio": final["fsc05_angstrom"] / ref_res}
    report["refinement_config"] = {"cross_half_reference": bool(args.cross_half),
                                   "fsc_weighting": bool(args.fsc_weighting)}
    if args.refine_n > 0:
        sub = particles.subset(np.arange(min(args.refine_n, len(particles))))
        true = sub.poses
        start = perturb_poses(true, args.perturb_deg, args.perturb_px, args.seed + 1)
        t = time.perf_counter()
        rows = []

        def record(epoch, result):
            err = rotation_angle_deg(result.poses.rotations, true.rotations)
            sh = np.linalg.norm(result.poses.shifts_px - true.shifts_px, axis=1)
            rows.append({"epoch": epoch, "median_angular_error_deg": float(np.median(err)),
                         "median_shift_error_px": float(np.median(sh))})
            print(f"refinement epoch {epoch}: median angular error {np.median(err):.2f}°, shift {np.median(sh):.2f} px",
                  flush=True)

        refine_poses(sub, start, config, args.refine_epochs, on_epoch=record)
        report["refinement"] = {"n": len(sub), "perturbation_deg": args.perturb_deg,
                                "perturbation_px": args.perturb_px, "epochs": rows,
                                "seconds": time.perf_counter() - t,
                                "median_angular_error_deg": rows[-1]["median_angular_error_deg"],
                                "median_shift_error_px": rows[-1]["median_shift_error_px"]}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
