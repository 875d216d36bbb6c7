"""Benchmark of ``cryoscape analyze``: wall time on a 100k-particle zdim-8 latent file without maps (UMAP
included), k-means at 1M × zdim 8, and maps per second at box 64 and 128.

The run is synthetic: an untrained decoder of the default size (map speed does not depend on the weights) and
latents drawn from a mixture of curved clusters (so k-means and UMAP do real work). Prints the figures and writes
benchmarks/results/analyze.json. Goal (idle 2-core machine): analyze ≤ 60 s at 100k particles.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/analyze.py [--n 100000] [--kmeans-n 1000000] [--skip-maps]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def synthetic_latents(n: int, zdim: int, seed: int = 0) -> np.ndarray:
    """(n, zdim) float32: 6 clusters, each a noisy arc in a random 2-D plane of the latent space."""
    rng = np.random.default_rng(seed)
    k = 6
    which = rng.integers(0, k, n)
    t = rng.uniform(-1, 1, n)
    centres = rng.normal(0, 3, (k, zdim))
    axes = np.linalg.qr(rng.standard_normal((zdim, zdim)))[0]
    u, v = axes[:, 0], axes[:, 1]
    z = centres[which] + np.outer(t, u) * 2 + np.outer(t**2, v) + 0.2 * rng.standard_normal((n, zdim))
    return z.astype(np.float32)


def make_run(folder: Path, n: int, zdim: int, box: int) -> Path:
    """A run folder with a default-size untrained VAE decoder (box ``box``) and ``n`` synthetic latents."""
    from cryoscape.models.config import ModelConfig
    from cryoscape.models.vae import build_model
    from cryoscape.runs import RunDir
    from cryoscape.training.config import DataConfig, TrainConfig, to_dict

    config = TrainConfig(model=replace(ModelConfig(), zdim=zdim),
                         data=replace(DataConfig(), box_size=box, pixel_size_angstrom=1.5, data_std=1.0))
    model = build_model(config.model, box)
    run = RunDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run.save_config(config)
    run.save_checkpoint(1, {"model": model.state_dict(), "config": to_dict(config)})
    z = synthetic_latents(n, zdim)
    run.save_z(1, z, np.full_like(z, -3.0), np.arange(n))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--kmeans-n", dest="kmeans_n", type=int, default=1_000_000)
    parser.add_argument("--skip-maps", dest="skip_maps", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/analyze.json")
    args = parser.parse_args()

    from cryoscape.cli._process import configure_process

    configure_process()
    import torch

    from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.latent import kmeans

    results: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                     "torch_threads": torch.get_num_threads(), "n": args.n, "zdim": args.zdim}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_run(tmp / "run", args.n, args.zdim, box=64)
        run = TrainedRun.open(tmp / "run", device="cpu")
        t0 = time.perf_counter()
        result = run_analysis(run, AnalyzeConfig(skip_vol=True))
        seconds = time.perf_counter() - t0
        results["analyze_seconds"] = round(seconds, 2)
        results["analyze_steps_seconds"] = result.summary["seconds"]
        print(f"analyze, {args.n} particles, zdim {args.zdim}, no maps (UMAP fitted on "
              f"{result.summary['umap']['fitted_on']}): {seconds:.1f} s  (goal ≤ 60 s on an idle 2-core machine)")
        print("  steps (s):", result.summary["seconds"])

        if args.kmeans_n:
            z = synthetic_latents(args.kmeans_n, args.zdim, seed=1)
            t0 = time.perf_counter()
            km = kmeans(z, 20, seed=0)
            seconds = time.perf_counter() - t0
            results["kmeans_1m"] = {"n": args.kmeans_n, "k": 20, "seconds": round(seconds, 2),
                                    "iterations": km.n_iter}
            print(f"k-means K=20 on {args.kmeans_n} × {args.zdim} to convergence: {seconds:.1f} s, "
                  f"{km.n_iter} iterations")

        if not args.skip_maps:
            results["maps_per_second"] = {}
            for box in (64, 128):
                make_run(tmp / f"maps{box}", 100, args.zdim, box=box)
                mrun = TrainedRun.open(tmp / f"maps{box}", device="cpu")
                points = mrun.z[:8]
                next(mrun.iter_volumes(points[:1]))  # load the model, warm up
                count = 8 if box == 64 else 4
                t0 = time.perf_counter()
                for _ in mrun.iter_volumes(points[:count], batch_size=8):
                    pass
                rate = count / (time.perf_counter() - t0)
                results["maps_per_second"][str(box)] = round(rate, 3)
                print(f"maps at box {box} (default decoder, eval-vol path, default precision): {rate:.2f} maps/s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
