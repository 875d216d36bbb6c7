"""Decoder roofline per ISA: achieved FLOP/s of the decoder (forward + backward) vs this machine's matmul peak.

For each ISA level the machine has, from its own down (AMX → AVX-512 BF16 → AVX2), each width (default 256 and
1024) and each precision (fp32; bf16 autocast where the level has native bf16, else the row says "not native:
skipped"):

1. Peak: the median time of an (M x W) @ (W x W) product, the shape of one hidden decoder layer on the batch
   (M = rows the network is evaluated on), in that precision (bf16 inputs for bf16); FLOP/s = 2 M W² / t.
   The peak, the decoder step and the step's matrix products alone (3a) are timed in turn (A, B, C, A, B, C ...)
   so that a changing load on a shared machine affects all three alike.
2. Decoder: forward + backward of the decoder on a training batch (B images x P half-disc points of box D), as
   the training step calls it (``Decoder.forward`` with latents, under ``torch.autocast`` for bf16). FLOPs are
   those of the linear layers on the rows the network actually sees (counted by wrapping ``Decoder.network``, so
   the seam band's extra rows and ``hartley_full``'s mirrored rows count): forward 2·in·out per row; backward
   twice that, except the first layer, whose input (the positional encoding of data coordinates) needs no
   gradient. fraction = decoder FLOP/s / peak FLOP/s: what the non-matmul work costs.
3. Breakdown of the decoder step, two ways: (a) the step's matrix products run alone (same shapes, precision
   and count, nothing else) as a fraction of the step time, the rest being element-wise work and overhead;
   (b) ``torch.profiler`` self CPU time per operator over 3 steps, by category: matrix products vs the
   element-wise chain (positional encoding sin/cos, bias and residual adds, ReLU and its backward, dtype casts
   and copies). The fused decoder work targets the element-wise part.

Lower ISA levels are measured by re-running this script in a subprocess with the ISA capped: oneDNN (bf16
matrix products) with ``ONEDNN_MAX_CPU_ISA`` (``AVX512_CORE_BF16`` hides AMX, ``AVX2`` hides AVX-512); for AVX2
also MKL (fp32 matrix products) with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ATen's element-wise kernels with
``ATEN_CPU_CAPABILITY=avx2``. One command gives the whole table; the JSON holds the CPU model, its ISA flags,
each row's level and environment, and precision.

    python benchmarks/roofline.py                                  # writes benchmarks/results/roofline.json
    python benchmarks/roofline.py --widths 256 --box 32 --repeats 3  # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: ISA levels of the table, highest first: name -> (environment of a run capped at this level, native bf16)
LEVELS = {
    "AMX": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True),
    "AVX512_CORE_BF16": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, True),
    "AVX512_CORE": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, False),
    "AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
             False),
}
#: Levels re-measured below the machine's own (AVX512_CORE is only measured where it is the machine's level)
TABLE_LEVELS = ("AMX", "AVX512_CORE_BF16", "AVX2")
GOAL_BF16_FRACTION = 0.60

#: Profiler operator names (after ``aten::``) by category of the step breakdown; anything else is "other"
MATMUL_OPS = {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_mkldnn_matmul", "mkldnn_linear",
              "_addmm_activation", "addmv", "mv", "dot"}
CATEGORIES = {
    "positional_encoding_sin_cos": {"sin", "cos", "sin_", "cos_"},
    "activation_relu": {"relu", "relu_", "threshold_backward", "threshold", "clamp", "clamp_min", "gelu",
                        "gelu_backward", "silu", "silu_backward", "leaky_relu", "tanh", "tanh_backward"},
    "bias_residual_add_and_reductions": {"add", "add_", "sum", "mean", "mul", "mul_", "sub", "neg", "square",
                                         "pow", "div", "div_"},
    "casts_copies_indexing": {"to", "_to_copy", "copy_", "cat", "stack", "clone", "contiguous", "where", "flip",
                              "index", "index_put_", "empty", "empty_like", "empty_strided", "zeros",
                              "zeros_like", "fill_", "zero_", "select", "slice", "t", "transpose", "view",
                              "reshape", "expand", "unsqueeze", "all", "eq", "gt", "lt", "ge", "le", "bitwise_or",
                              "bitwise_and", "logical_or", "logical_and", "nonzero", "any", "ones_like",
                              "as_strided", "_unsafe_view", "detach", "result_type", "resolve_conj",
                              "resolve_neg"},
}


def cpu_model() -> str:
    from machine import cpu_model_and_flags

    return cpu_model_and_flags()[0]


def cpu_flags() -> set[str]:
    from machine import cpu_model_and_flags

    return cpu_model_and_flags()[1]


def machine_level(flags: set[str]) -> str:
    """The highest level of :data:`LEVELS` this CPU has (from its flags, else from torch's own checks)."""
    import torch

    if "amx_bf16" in flags or (not flags and torch.cpu._is_amx_tile_supported()):
        return "AMX"
    if "avx512_bf16" in flags or (not flags and torch.cpu._is_avx512_bf16_supported()):
        return "AVX512_CORE_BF16"
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512_CORE"
    return "AVX2"


def levels_to_measure(own: str) -> list[str]:
    """The machine's own level, then every table level below it."""
    order = list(LEVELS)
    below = [lv for lv in TABLE_LEVELS if order.index(lv) > order.index(own)]
    return [own, *below]


def autocast(bf16: bool):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median time of each function, timed in turn (A, B, C, A, B, C, ...) so that a changing machine load
    affects them alike; one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def matmul_fn(m: int, k: int, n: int, bf16: bool):
    """An (m x k) @ (k x n) product (inputs in bf16 when ``bf16``), to time."""
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(m, k, dtype=dtype)
    b = torch.randn(k, n, dtype=dtype)
    return lambda: torch.mm(a, b)


def op_category(name: str) -> str:
    base = name.split("::", 1)[-1]
    if base in MATMUL_OPS:
        return "matmul"
    for category, names in CATEGORIES.items():
        if base in names:
            return category
    return "other"


def breakdown(step, steps: int = 3) -> dict:
    """Shares of the self CPU time of ``steps`` profiled steps by :func:`op_category`, and the largest operators."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    by_cat: dict[str, float] = {}
    by_op: dict[str, float] = {}
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue  # autograd / python wrappers: their work is in the aten ops they call
        us = float(evt.self_cpu_time_total)
        by_cat[op_category(evt.key)] = by_cat.get(op_category(evt.key), 0.0) + us
        by_op[evt.key] = by_op.get(evt.key, 0.0) + us
    total = sum(by_cat.values()) or 1.0
    shares = {k: v / total for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])}
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
    return {
        "matmul_share": shares.get("matmul", 0.0),
        "elementwise_share": 1.0 - shares.get("matmul", 0.0),
        "shares": shares,
        "top_ops_share": {k: v / total for k, v in top},
    }


def gemm_only_fn(rows: int, in_dim: int, width: int, layers: int, n_out: int, bf16: bool):
    """The matrix products of one decoder step alone (same shapes and precision, no other work), to time.

    Forward: first layer (rows x in) @ (in x W), ``layers`` hidden (rows x W) @ (W x W), output (rows x W) @
    (W x n_out); backward: input and weight gradients of the output and hidden layers, weight gradient of the
    first layer.
    """
    import torch

    dtype = torch.bfloat16 if bf16 else torch.float32
    x0, w0 = torch.randn(rows, in_dim, dtype=dtype), torch.randn(width, in_dim, dtype=dtype)
    h, wh = torch.randn(rows, width, dtype=dtype), torch.randn(width, width, dtype=dtype)
    wo, go = torch.randn(n_out, width, dtype=dtype), torch.randn(rows, n_out, dtype=dtype)
    g = torch.randn(rows, width, dtype=dtype)

    def products():
        torch.mm(x0, w0.t())
        for _ in range(layers):
            torch.mm(h, wh.t())
        torch.mm(h, wo.t())
        torch.mm(go, wo)
        torch.mm(go.t(), h)
        for _ in range(layers):
            torch.mm(g, wh)
            torch.mm(g.t(), h)
        torch.mm(g.t(), x0)

    return products


def decoder_row(box: int, width: int, layers: int, zdim: int, batch: int, bf16: bool, repeats: int) -> dict:
    """Decoder forward + backward on one batch: FLOPs, seconds per step, rows, and the profiled breakdown."""
    import torch

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

    rows = []
    network = decoder.network

    def counting_network(c, zz=None):
        rows.append(c.numel() // 3)
        return network(c, zz)

    decoder.network = counting_network

    def step():
        decoder.zero_grad(set_to_none=True)
        with autocast(bf16):
            out = decoder(coords, z)
        out.square().mean().backward()

    step()
    n_rows = sum(rows)
    in_dim, n_out = decoder.pe.out_dim, decoder.output.out_features
    # forward 2·in·out per row; backward 2× forward, but the first layer needs no input gradient
    flops = 2.0 * n_rows * (2 * in_dim * width + 3 * layers * width * width + 3 * width * n_out)
    t = interleaved_medians({"step": step, "peak": matmul_fn(n_rows, width, width, bf16),
                             "gemm": gemm_only_fn(n_rows, in_dim, width, layers, n_out, bf16)}, repeats)
    parts = breakdown(step, steps=min(3, repeats))
    parts["matmul_only_seconds"] = t["gemm"]
    parts["matmul_only_fraction_of_step"] = t["gemm"] / t["step"]
    return {"flops_per_step": flops, "seconds_per_step": t["step"], "rows_per_step": n_rows,
            "peak_flops": 2.0 * n_rows * width * width / t["peak"],
            "points_per_step": batch * pts.shape[0], "domain": config.domain, "breakdown": parts}


def measure_level(level: str, args) -> list[dict]:
    """Every (width, precision) row at ``level``, measured in this process."""
    import torch

    from cryoscape.cli._process import configure_process

    configure_process()  # as the cryoscape command does (before torch's first MKL call)
    if args.threads:
        torch.set_num_threads(args.threads)
    _, native_bf16 = LEVELS[level]
    rows = []
    for width in args.widths:
        for precision in ("fp32", "bf16"):
            row = {"isa_level": level, "precision": precision, "width": width,
                   "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                   "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
            if precision == "bf16" and not native_bf16:
                row["skipped"] = "not native: skipped"
                rows.append(row)
                continue
            dec = decoder_row(args.box, width, args.layers, args.zdim, args.batch_size, precision == "bf16",
                              args.repeats)
            peak = dec["peak_flops"]
            achieved = dec["flops_per_step"] / dec["seconds_per_step"]
            row.update(
                matmul_peak_gflops=peak / 1e9,
                decoder_gflops=achieved / 1e9,
                fraction_of_matmul_peak=achieved / peak,
                decoder_seconds_per_step=dec["seconds_per_step"],
                decoder_gflop_per_step=dec["flops_per_step"] / 1e9,
                rows_per_step=dec["rows_per_step"],
                points_per_step=dec["points_per_step"],
                domain=dec["domain"],
                breakdown=dec["breakdown"],
            )
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    head = f"{row['isa_level']:17s} {row['precision']:5s} width {row['width']:5d}: "
    if "skipped" in row:
        return head + row["skipped"]
    b = row["breakdown"]["shares"]
    pe = b.get("positional_encoding_sin_cos", 0.0)
    goal = ""
    if row["precision"] == "bf16" and row["width"] >= 1024:
        goal = f" (goal >= {100 * GOAL_BF16_FRACTION:.0f}%)"
    return (head + f"matmul peak {row['matmul_peak_gflops']:7.1f} GFLOP/s, decoder {row['decoder_gflops']:7.1f} "
            f"GFLOP/s = {100 * row['fraction_of_matmul_peak']:4.0f}% of peak{goal}; "
            f"{row['decoder_seconds_per_step'] * 1e3:7.1f} ms/step, of which the same matrix products alone take "
            f"{100 * row['breakdown']['matmul_only_fraction_of_step']:.0f}%; profiled: matmul "
            f"{100 * b.get('matmul', 0.0):.0f}%, "
            f"element-wise {100 * row['breakdown']['elementwise_share']:.0f}% (sin/cos {100 * pe:.0f}%, "
            f"ReLU {100 * b.get('activation_relu', 0.0):.0f}%, adds/reductions "
            f"{100 * b.get('bias_residual_add_and_reductions', 0.0):.0f}%, casts/copies "
            f"{100 * b.get('casts_copies_indexing', 0.0):.0f}%, other {100 * b.get('other', 0.0):.0f}%)")


def child_argv(args, level: str, out: Path) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--level", level, "--rows-out", str(out),
            "--box", str(args.box), "--layers", str(args.layers), "--zdim", str(args.zdim),
            "-b", str(args.batch_size), "--repeats", str(args.repeats), "--widths", *map(str, args.widths)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    return argv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("-b", "--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "roofline.json"),
                        help="output JSON (default benchmarks/results/roofline.json)")
    parser.add_argument("--level", choices=list(LEVELS), default=None,
                        help="measure only this level, in this process (used by the subprocesses)")
    parser.add_argument("--rows-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.level is not None and args.rows_out is not None:  # a subprocess of the table
        rows = measure_level(args.level, args)
        Path(args.rows_out).write_text(json.dumps(rows))
        return 0

    import torch

    flags = cpu_flags()
    own = machine_level(flags)
    levels = [args.level] if args.level else levels_to_measure(own)
    print(f"CPU {cpu_model()}: ISA level {own}; measuring {', '.join(levels)}", flush=True)
    rows, environments = [], {}
    for level in levels:
        if level == own:
            environments[level] = {}
            rows += measure_level(level, args)
            continue
        env_changes, _ = LEVELS[level]
        environments[level] = env_changes
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            proc = subprocess.run(child_argv(args, level, out), env={**os.environ, **env_changes})
            if proc.returncode or not out.exists():
                rows.append({"isa_level": level, "error": f"subprocess failed with status {proc.returncode}"})
                continue
            rows += json.loads(out.read_text())
    report = {
        "benchmark": "roofline",
        "command": "python benchmarks/roofline.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpu_model": cpu_model(),
        "isa": own,
        "isa_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": args.threads or torch.get_num_threads(),
        "box": args.box,
        "widths": args.widths,
        "layers": args.layers,
        "zdim": args.zdim,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "level_environment": environments,
        "goal_bf16_fraction_at_width_1024": GOAL_BF16_FRACTION,
        "flop_count": "linear layers on the rows the network sees: forward 2*in*out per row, backward twice that "
                      "except the first layer (no input gradient)",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
