"""Decoder roofline: achieved FLOP/s of the decoder (forward + backward) vs this machine's matmul FLOP/s.

1. Peak: the median time of an (M x K) @ (K x N) matrix product the size of one decoder layer
   (M = batch x points, K = N = width), fp32 and bf16; FLOP/s = 2 M K N / t.
2. Decoder: forward + backward of the decoder on a training batch (B images x P half-disc points, width x
layers)
   under the same precision; FLOPs counted for the linear layers only (2 x in x out per point for the forward,
   twice that for the backward), so the fraction shows how much the non-matmul work (positional encoding,
   activations, memory traffic) costs.

    python benchmarks/roofline.py          # writes benchmarks/results/roofline.json
    python benchmarks/roofline.py --box 32 --repeats 3      # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def autocast(amp: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def matmul_flops(m: int, k: int, n: int, amp: bool, repeats: int) -> float:
    """Measured FLOP/s of an (m x k) @ (k x n) product (inputs in bf16 when ``amp``)."""
    dtype = torch.bfloat16 if amp else torch.float32
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    t = median_time(lambda: torch.mm(a, b), repeats)
    return 2.0 * m * k * n / t


def decoder_flops(box: int, width: int, layers: int, zdim: int, batch: int, amp: bool, repeats: int):
    """(achieved FLOP/s, FLOPs per step, seconds per step) of decoder forward + backward on one batch."""
    from cryoscape.geometry.lattice import frequencies_2d, hermitian_half
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.models import ModelConfig
    from cryoscape.models.decoders import Decoder

    torch.manual_seed(0)
    config = ModelConfig(zdim=zdim, dec_dim=width, dec_layers=layers)
    decoder = Decoder(config, box)
    idx_half, _ = hermitian_half(box, box / 2 - 1)
    pts = torch.tensor(frequencies_2d(box).reshape(-1, 2)[idx_half], dtype=torch.float32)
    rots = torch.tensor(random_rotations(batch, np.random.default_rng(0)), dtype=torch.float32)
    coords = torch.matmul(pts, rots[:, :2, :])
    z = torch.randn(batch, zdim) if zdim else None
    n_points = batch * pts.shape[0]
    in_dim = decoder.pe.out_dim
    macs_per_point = in_dim * width + layers * width * width + width * 2
    flops = 3 * 2 * macs_per_point * n_points  # forward + backward (2x forward)

    def step():
        decoder.zero_grad(set_to_none=True)
        with autocast(amp):
            out = decoder(coords, z)
        out.square().mean().backward()

    t = median_time(step, repeats)
    return flops / t, flops, t, n_points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("-b", "--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "roofline.json"),
                        help="output JSON (default benchmarks/results/roofline.json)")
    args = parser.parse_args(argv)
    from cryoscape.cli._process import configure_process

    configure_process()  # as the cryoscape command does (before torch's first MKL call)
    if args.threads:
        torch.set_num_threads(args.threads)
    from cryoscape.models.precision import cpu_supports_bf16

    results = []
    for amp in (False, True):
        name = "bf16" if amp else "fp32"
        if amp and not cpu_supports_bf16():
            results.append({"precision": name, "skipped": "no native bf16 on this CPU"})
            continue
        achieved, flops, seconds, n_points = decoder_flops(
            args.box, args.width, args.layers, args.zdim, args.batch_size, amp, args.repeats
        )
        peak = matmul_flops(n_points, args.width, args.width, amp, args.repeats)
        results.append(
            {
                "precision": name,
                "matmul_gflops": peak / 1e9,
                "decoder_gflops": achieved / 1e9,
                "fraction_of_matmul": achieved / peak,
                "decoder_seconds_per_step": seconds,
                "decoder_gflop_per_step": flops / 1e9,
                "points_per_step": n_points,
            }
        )
    report = {
        "benchmark": "roofline",
        "box": args.box,
        "width": args.width,
        "layers": args.layers,
        "zdim": args.zdim,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    for r in results:
        if "skipped" in r:
            print(f"{r['precision']}: skipped ({r['skipped']})")
        else:
            print(
                f"{r['precision']}: matmul {r['matmul_gflops']:.1f} GFLOP/s, "
                f"decoder {r['decoder_gflops']:.1f} "
                f"GFLOP/s = {100 * r['fraction_of_matmul']:.0f}% of matmul "
                f"({r['decoder_seconds_per_step'] * 1e3:.1f} ms/step)"
            )
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
