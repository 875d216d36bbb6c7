"""Training throughput (images/s) of the cryoscape VAE step, fp32 and bf16 autocast, on synthetic data.

Times full optimisation steps (batch from the in-memory dataset, encoder, decoder on the Hermitian half of the
disc, CTF, loss, backward, Adam) after a warm-up, at the issue's reference architecture by default: box 64,
encoder and decoder 256 x 3, zdim 8, batch 8. Prints a table and writes JSON.

    python benchmarks/train_throughput.py  # writes benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --box 32 --steps 10 --warmup 2      # a quick check
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_particles(folder: Path, n: int, box: int, seed: int = 0):
    """Random images with random poses and CTF, written as mrcs + cryoDRGN pickles, loaded as a
    ParticleSet.
    """
    from cryoscape.data.particles import load_particles
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.io.legacy import write_ctf_pickle, write_pose_pickle
    from cryoscape.io.mrc import write_mrc
    from cryoscape.io.records import CTFParams, Poses

    rng = np.random.default_rng(seed)
    write_mrc(folder / "p.mrcs", rng.normal(size=(n, box, box)).astype(np.float32), voxel_size_angstrom=2.0)
    write_pose_pickle(folder / "pose.pkl", Poses(random_rotations(n, rng), rng.normal(size=(n, 2)), box))
    dfu = rng.uniform(1e4, 2e4, n)
    write_ctf_pickle(
        folder / "ctf.pkl",
        CTFParams(
            np.full(n, 2.0),
            dfu,
            dfu - 100,
            rng.uniform(0, 90, n),
            np.full(n, 300.0),
            np.full(n, 2.7),
            np.full(n, 0.1),
            np.zeros(n),
            box,
        ),
    )
    return load_particles(folder / "p.mrcs", poses=folder / "pose.pkl", ctf=folder / "ctf.pkl")


def measure(particles, args, amp: bool) -> dict:
    """images/s of ``args.steps`` timed training steps."""
    from cryoscape.data.dataset import EpochSampler, HartleyDataset
    from cryoscape.models import ModelConfig, build_model
    from cryoscape.training.step import ReconstructionObjective

    box = particles.box_size
    config = ModelConfig(
        zdim=args.zdim, enc_dim=args.dim, enc_layers=args.layers, dec_dim=args.dim, dec_layers=args.layers
    )
    torch.manual_seed(0)
    module = ReconstructionObjective(build_model(config, box), box, box / 2 - 1)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    dataset = HartleyDataset(particles, data_std=float(box), in_memory=True)
    sampler = EpochSampler(len(dataset), args.batch_size, seed=0)
    generator = torch.Generator().manual_seed(0)
    beta = 1.0 / max(args.zdim, 1)
    batches = iter([])
    times = []
    for step in range(args.warmup + args.steps):
        try:
            positions = next(batches)
        except StopIteration:
            sampler.set_epoch(step)
            batches = iter(sampler)
            positions = next(batches)
        t0 = time.perf_counter()
        batch = dataset.get_batch(positions)
        parts = module(
            batch.images, batch.rotations, batch.shifts_px, batch.ctf, beta=beta, generator=generator, amp=amp
        )
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    per_step = float(np.median(times))
    return {
        "precision": "bf16" if amp else "fp32",
        "seconds_per_step_median": per_step,
        "images_per_second": args.batch_size / per_step,
        "points_per_image": int(module.points_2d.shape[0]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder hidden layers")
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("-b", "--batch-size", type=int, default=8)
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_throughput.json"),
                        help="output JSON (default benchmarks/results/train_throughput.json)")
    args = parser.parse_args(argv)
    from cryoscape.cli._process import configure_process

    configure_process()  # as the cryoscape command does (before torch's first MKL call)
    if args.threads:
        torch.set_num_threads(args.threads)
    from cryoscape.models.precision import cpu_supports_bf16

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        particles = make_particles(Path(tmp), args.n_images, args.box)
        for amp in (False, True):
            if amp and not cpu_supports_bf16():
                results.append({"precision": "bf16", "skipped": "no native bf16 on this CPU"})
                continue
            results.append(measure(particles, args, amp))
    report = {
        "benchmark": "train_throughput",
        "box": args.box,
        "dim": args.dim,
        "layers": args.layers,
        "zdim": args.zdim,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    fp32 = next((r for r in results if r.get("precision") == "fp32"), None)
    bf16 = next((r for r in results if r.get("precision") == "bf16" and "images_per_second" in r), None)
    if fp32 and bf16:
        report["bf16_speedup"] = bf16["images_per_second"] / fp32["images_per_second"]
    for r in results:
        if "images_per_second" in r:
            print(
                f"{r['precision']}: {r['images_per_second']:.1f} images/s "
                f"({r['seconds_per_step_median'] * 1e3:.1f} ms/step, {r['points_per_image']} points/image)"
            )
        else:
            print(f"{r['precision']}: skipped ({r['skipped']})")
    if "bf16_speedup" in report:
        print(f"bf16 / fp32: {report['bf16_speedup']:.2f}x")
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
