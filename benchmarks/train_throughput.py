"""Training throughput (images/s) of the cryoscape VAE step, fp32 and bf16 autocast, on synthetic data.

Times full optimisation steps (batch from the in-memory dataset, encoder, decoder on the Hermitian half of the
disc, CTF, loss, backward, Adam) after a warm-up, at the issue's reference architecture by default: box 64,
encoder and decoder 256 x 3, zdim 8, batch 8. Prints a table and writes JSON.

    python benchmarks/train_throughput.py  # writes benchmarks/results/train_throughput.json
    python benchmarks/train_throughput.py --box 32 --steps 10 --warmup 2      # a quick check

``--levers`` instead compares the speed levers of issue 15 at one precision (``--precision``), each variant's
steps interleaved with the others' in one process (rounds A, B, C, A, B, C, ...), so a loaded machine slows all
alike and the ratios stay meaningful: for each decoder domain the plain first layer (``decoder.fused = False``)
against the hand-fused one (``models.fused``: one encoding for k and −k in ``hartley_full``), optionally
``torch.compile`` of the plain decoder (``--compile``; its compile time is reported), the step at the start of
frequency marching (loss disc of ``--march-start-px``), and the encoder's share of the step (a step that
encodes and back-propagates the latents only). Writes ``benchmarks/results/train_levers.json`` (CPU model, ISA).

    python benchmarks/train_throughput.py --levers --dim 256           # box 64, fp32, hartley_full and hartley
    python benchmarks/train_throughput.py --levers --dim 1024 --rounds 3 --steps 4
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
    parser.add_argument("--levers", action="store_true", help="compare the speed levers (see above)")
    parser.add_argument("--domains", default="hartley_full,hartley", help="decoder domains for --levers")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="for --levers")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds for --levers")
    parser.add_argument("--compile", action="store_true", help="--levers: also time torch.compile")
    parser.add_argument("--march-start-px", type=float, default=8.0, help="--levers: marching start radius")
    args = parser.parse_args(argv)
    if args.levers:
        return levers_main(args)
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


def cpu_description() -> dict:
    """CPU model, the ISA oneDNN may use (``ONEDNN_MAX_CPU_ISA`` if set), flags that matter here, torch."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    import os

    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"cpu_model": model, "isa_flags": [f for f in wanted if f in flags],
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "(not set: all the CPU has)"),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def _lever_variants(particles, args) -> dict:
    """name -> (step function, extra info) for --levers; each variant has its own model and optimiser."""
    from cryoscape.data.dataset import EpochSampler, HartleyDataset
    from cryoscape.models import ModelConfig, build_model
    from cryoscape.training.step import ReconstructionObjective

    box = particles.box_size
    dataset = HartleyDataset(particles, data_std=float(box), in_memory=True)
    beta = 1.0 / max(args.zdim, 1)
    amp = args.precision == "bf16"
    variants = {}

    def make(domain: str, fused: bool, compiled: bool = False, march_px: float | None = None,
             encoder_only: bool = False):
        config = ModelConfig(zdim=args.zdim, enc_dim=args.dim, enc_layers=args.layers, dec_dim=args.dim,
                             dec_layers=args.layers, domain=domain)
        torch.manual_seed(0)
        module = ReconstructionObjective(build_model(config, box), box, box / 2)
        module.model.decoder.fused = fused
        info = {"points_per_image": int(module.points_2d.shape[0])}
        if march_px is not None:
            module.set_active_radius_px(march_px)
            info["points_per_image"] = int(module.active.numel())
        if compiled:
            module.model.decoder = torch.compile(module.model.decoder)
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
        sampler = EpochSampler(len(dataset), args.batch_size, seed=0)
        generator = torch.Generator().manual_seed(0)
        state = {"batches": iter([]), "epoch": 0}

        def step() -> None:
            try:
                positions = next(state["batches"])
            except StopIteration:
                state["epoch"] += 1
                sampler.set_epoch(state["epoch"])
                state["batches"] = iter(sampler)
                positions = next(state["batches"])
            batch = dataset.get_batch(positions)
            parts = module(batch.images, batch.rotations, batch.shifts_px, batch.ctf, beta=beta, generator=generator,
                           amp=amp, decode=not encoder_only)
            optimizer.zero_grad(set_to_none=True)
            loss = parts.mu.square().sum() + parts.logvar.sum() if encoder_only else parts.loss
            loss.backward()
            optimizer.step()

        if compiled:  # the first calls compile (forward and backward); timed apart
            t0 = time.perf_counter()
            step()
            info["compile_seconds"] = time.perf_counter() - t0
        return step, info

    for domain in args.domains.split(","):
        variants[f"{domain} plain"] = make(domain, fused=False)
        variants[f"{domain} fused"] = make(domain, fused=True)
        if args.compile:
            variants[f"{domain} compiled (plain decoder)"] = make(domain, fused=False, compiled=True)
        variants[f"{domain} fused, marching start r={args.march_start_px:g} px"] = make(
            domain, fused=True, march_px=args.march_start_px)
    variants["encoder only (encode + backward of the latents)"] = make("hartley", fused=True, encoder_only=True)
    return variants


def levers_main(args) -> int:
    """--levers: interleaved A/B timing of the speed levers; prints a table and writes JSON."""
    from cryoscape.cli._process import configure_process

    configure_process()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        particles = make_particles(Path(tmp), args.n_images, args.box)
        variants = _lever_variants(particles, args)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for step, _ in variants.values():
            for _ in range(args.warmup):
                step()
        for _ in range(args.rounds):
            for name, (step, _) in variants.items():
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t0)
        for name, (_, info) in variants.items():
            per_step = float(np.median(times[name]))
            results[name] = {"seconds_per_step_median": per_step, "images_per_second": args.batch_size / per_step,
                             **info}
    for domain in args.domains.split(","):
        base = results[f"{domain} plain"]["seconds_per_step_median"]
        for name, row in results.items():
            if name.startswith(domain + " "):
                row["speedup_vs_plain"] = base / row["seconds_per_step_median"]
    full_step = results.get("hartley fused", next(iter(results.values())))["seconds_per_step_median"]
    encoder = results["encoder only (encode + backward of the latents)"]
    encoder["share_of_hartley_fused_step"] = encoder["seconds_per_step_median"] / full_step
    report = {"benchmark": "train_levers", "box": args.box, "dim": args.dim, "layers": args.layers,
              "zdim": args.zdim, "batch_size": args.batch_size, "precision": args.precision,
              "rounds": args.rounds, "steps_per_round": args.steps, "machine": cpu_description(),
              "note": "variants interleaved in one process; ratios hold under load, absolute times do not",
              "results": results}
    print(f"box {args.box}, {args.dim}x{args.layers}, {args.precision}, batch {args.batch_size}, "
          f"{report['machine']['cpu_model']} ({', '.join(report['machine']['isa_flags'])})")
    for name, row in results.items():
        extra = f"  {row['speedup_vs_plain']:.2f}x plain" if "speedup_vs_plain" in row else ""
        if "share_of_hartley_fused_step" in row:
            extra = f"  {100 * row['share_of_hartley_fused_step']:.0f} % of a hartley fused step"
        if "compile_seconds" in row:
            extra += f"  (compile {row['compile_seconds']:.0f} s)"
        print(f"{name:55s} {row['seconds_per_step_median'] * 1e3:8.1f} ms/step  {row['images_per_second']:7.1f} "
              f"images/s  {row['points_per_image']:5d} points{extra}")
    out = Path(args.out)
    if out.name == "train_throughput.json":
        out = out.with_name("train_levers.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
