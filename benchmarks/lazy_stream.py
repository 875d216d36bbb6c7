"""Streaming (``--lazy``) against in-memory training: images/s and peak resident memory on a stack larger than RAM
budget.

Writes a float32 stack of ``--n`` images of ``--box`` px (default 200,000 × 128², 12.2 GiB) in chunks, split over
files of ``--per-file`` images listed by a ``.txt`` file (as RELION splits particles by micrograph), with a
cryoDRGN pose pickle. Then, each in a fresh process with the ``cryoscape`` command's process settings, trains
``--steps`` optimisation steps (after ``--warmup`` untimed ones) of a small VAE (fp32) with the library's own
pieces (``training.loop.make_dataset``, ``build_loss_module``, ``data.streaming.epoch_batches``):

- ``memory``: the first ``--subset`` images (``--ind``), held in memory (a random permutation per epoch);
- ``lazy-subset``: the same subset streamed from disk (the fair ratio against ``memory``);
- ``lazy-full``: the whole stack streamed from disk.

The modes run ``--repeats`` times, interleaved (memory, lazy-subset, lazy-full, memory, ...), so that a change of
load on the machine hits every mode alike; the ratio is taken between medians. Before every lazy run the stack
files are dropped from the page cache (``posix_fadvise(DONTNEED)``), so the reads come from the disk.

Reported per run: images/s over the timed steps; the time the training process waited for batches; peak
resident memory of the training process (VmHWM), and the peak of the sum over the process and its data-loading
workers of RSS and of PSS (shared pages counted once), sampled every 0.25 s. The stack is deleted at the end.

    python benchmarks/lazy_stream.py                       # writes benchmarks/results/lazy_stream.json
    python benchmarks/lazy_stream.py --n 20000 --steps 40  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "lazy_stream.json"
MODES = ("memory", "lazy-subset", "lazy-full")


def machine() -> dict:
    """CPU model, core count and the vector ISA flags that matter for the timings."""
    from machine import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa, "platform": platform.platform(),
            "load_average_at_start": os.getloadavg()}


def write_stack(folder: Path, n: int, box: int, per_file: int, chunk: int = 1000, seed: int = 0) -> Path:
    """Stacks of ``per_file`` images (noisy discs, float32) written ``chunk`` images at a time, a ``.txt``
    listing them, and ``pose.pkl`` (uniform rotations, small shifts). Returns the listing."""
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.io.legacy import write_pose_pickle
    from cryoscape.io.mrc_stream import MrcStackWriter
    from cryoscape.io.records import Poses

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:box, :box] - box // 2
    disc = (np.hypot(xx, yy) < box / 5).astype(np.float32)
    pool = (disc + rng.standard_normal((chunk, box, box), dtype=np.float32)).astype(np.float32)
    names = []
    for f, start in enumerate(range(0, n, per_file)):
        count = min(per_file, n - start)
        name = f"stack_{f:04d}.mrcs"
        with MrcStackWriter(folder / name, count, box, voxel_size_angstrom=2.0) as writer:
            for s in range(0, count, chunk):
                k = min(chunk, count - s)
                writer.write(s, pool[:k] * np.float32(1.0 + 0.1 * rng.standard_normal()))
        names.append(name)
    listing = folder / "particles.txt"
    listing.write_text("\n".join(names) + "\n")
    write_pose_pickle(folder / "pose.pkl", Poses(random_rotations(n, rng), rng.uniform(-2, 2, (n, 2)), box))
    os.sync()
    return listing


def drop_from_page_cache(folder: Path) -> None:
    """Evict the (clean, synced) stack files from the page cache, so the next reads come from the disk."""
    for path in folder.glob("*.mrcs"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class MemoryMonitor(threading.Thread):
    """Samples RSS and PSS of this process and its descendants (the data-loading workers) every 0.25 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_rss = 0
        self.peak_pss = 0
        self.most_workers = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop_event.is_set():
            rss = pss = 0
            procs = [me]
            try:
                procs = [me, *me.children(recursive=True)]
                for p in procs:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss += info.pss
            except psutil.Error:  # a worker that just exited
                pass
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.most_workers = max(self.most_workers, len(procs) - 1)
            time.sleep(0.25)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def vm_hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(args) -> None:
    """One timed run (in its own process); prints a JSON line."""
    from cryoscape.cli._process import configure_process

    configure_process()
    import torch

    from cryoscape.data.particles import load_particles
    from cryoscape.data.streaming import epoch_batches
    from cryoscape.models import ModelConfig
    from cryoscape.training.config import DataConfig, TrainConfig
    from cryoscape.training.loop import build_loss_module, make_dataset, resolve_data

    folder = Path(args.folder)
    ind = None if args.child == "lazy-full" else str(folder / "subset.npy")
    data = DataConfig(particles=str(folder / "particles.txt"), poses=str(folder / "pose.pkl"), ind=ind,
                      lazy=args.child != "memory", max_memory_gb=args.max_memory_gb, num_workers=args.workers,
                      data_std=args.data_std)
    model = ModelConfig(zdim=8, enc_dim=args.width, enc_layers=2, dec_dim=args.width, dec_layers=2)
    config = TrainConfig(model=model, data=data, batch_size=args.batch_size, lr=1e-4, amp=False, seed=0)
    monitor = MemoryMonitor()
    monitor.start()
    t_start = time.perf_counter()
    particles = load_particles(data.particles, poses=data.poses, ind=data.ind)
    config = resolve_data(config, particles)
    dataset = make_dataset(config, particles)
    loss_module = build_loss_module(config)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=config.lr)
    batches = epoch_batches(dataset, config.batch_size, chunk_size=config.data.chunk_size, seed=config.seed,
                            num_workers=config.data.num_workers)
    batches.set_epoch(0)
    generator = torch.Generator().manual_seed(0)
    startup = time.perf_counter() - t_start
    total = args.warmup + args.steps
    if len(batches) < total:
        raise SystemExit(f"{len(dataset)} images give {len(batches)} batches, fewer than {total} steps")
    waited, t0, it = 0.0, None, iter(batches)
    for step in range(total):
        if step == args.warmup:
            t0, waited = time.perf_counter(), 0.0
        tw = time.perf_counter()
        batch = next(it)
        waited += time.perf_counter() - tw
        parts = loss_module(batch.images, batch.rotations, batch.shifts_px, batch.ctf, beta=1.0 / 8,
                            generator=generator, sample=True, amp=False)
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - t0
    del it, batch  # stops the data-loading workers
    monitor.stop()
    print(json.dumps({
        "mode": args.child, "particles": len(dataset), "in_memory": dataset.in_memory, "steps": args.steps,
        "images_per_s": args.steps * config.batch_size / seconds, "seconds": seconds,
        "data_wait_fraction": waited / seconds, "startup_s": startup,
        "chunk_images": getattr(batches, "chunk", None), "workers": getattr(batches, "workers", 0),
        "peak_rss_main_mib": vm_hwm() / 2**20, "peak_rss_sum_mib": monitor.peak_rss / 2**20,
        "peak_pss_sum_mib": monitor.peak_pss / 2**20, "most_workers_seen": monitor.most_workers,
        "data_std": config.data.data_std,
    }))


def run_child(args, folder: Path, mode: str, data_std: float | None) -> dict:
    if mode != "memory":
        drop_from_page_cache(folder)
    cmd = [sys.executable, __file__, "--child", mode, "--folder", str(folder), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--width", str(args.width),
           "--workers", str(args.workers), "--max-memory-gb", str(args.max_memory_gb)]
    if data_std is not None:
        cmd += ["--data-std", repr(data_std)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CRYOSCAPE_NO_PROGRESS": "1"})
    if out.returncode:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="images in the stack (default %(default)s)")
    parser.add_argument("--box", type=int, default=128, help="box size, px (default %(default)s)")
    parser.add_argument("--per-file", type=int, default=2000, help="images per stack file (default %(default)s)")
    parser.add_argument("--subset", type=int, default=16384,
                        help="images of the in-memory run and of lazy-subset (default %(default)s: 1 GiB at 128²)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per run (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=128, help="encoder and decoder width, 2 layers each")
    parser.add_argument("--workers", type=int, default=0, help="--num-workers of the runs (0: the default)")
    parser.add_argument("--max-memory-gb", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of each mode")
    parser.add_argument("--tmp", default=None, help="folder for the stack (default: the system's temp folder)")
    parser.add_argument("--out", default=str(RESULTS), help="output JSON (default %(default)s)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--data-std", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    info = machine()
    folder = Path(tempfile.mkdtemp(prefix="lazy_stream_", dir=args.tmp))
    try:
        t0 = time.perf_counter()
        write_stack(folder, args.n, args.box, args.per_file)
        write_s = time.perf_counter() - t0
        stack_gib = args.n * args.box**2 * 4 / 2**30
        print(f"wrote {args.n:,} images of {args.box}² ({stack_gib:.1f} GiB) in {write_s:.0f} s to {folder}",
              flush=True)
        np.save(folder / "subset.npy", np.arange(min(args.subset, args.n), dtype=np.int64))
        runs, data_std = [], None
        for repeat in range(args.repeats):
            for mode in MODES:
                result = run_child(args, folder, mode, data_std)
                data_std = result["data_std"] if data_std is None else data_std  # one normalisation for all
                result["repeat"] = repeat
                runs.append(result)
                print(f"{mode:>12} #{repeat}: {result['images_per_s']:7.1f} images/s, waited "
                      f"{100 * result['data_wait_fraction']:4.1f} %, peak RSS main {result['peak_rss_main_mib']:6.0f}"
                      f" MiB, sum {result['peak_rss_sum_mib']:6.0f} MiB, PSS sum {result['peak_pss_sum_mib']:6.0f} "
                      f"MiB ({result['particles']:,} particles)", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    median = {m: statistics.median(r["images_per_s"] for r in runs if r["mode"] == m) for m in MODES}
    peak = {m: max(r["peak_rss_sum_mib"] for r in runs if r["mode"] == m) for m in MODES}
    summary = {
        "images_per_s_median": median,
        "ratio_lazy_subset_to_memory": median["lazy-subset"] / median["memory"],
        "ratio_lazy_full_to_memory": median["lazy-full"] / median["memory"],
        "peak_rss_sum_mib": peak,
        "peak_pss_sum_mib": {m: max(r["peak_pss_sum_mib"] for r in runs if r["mode"] == m) for m in MODES},
    }
    report = {
        "benchmark": "lazy_stream",
        "command": "python benchmarks/lazy_stream.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "stack": {"n": args.n, "box": args.box, "per_file": args.per_file, "gib": stack_gib, "write_s": write_s,
                  "subset": min(args.subset, args.n)},
        "training": {"steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                     "width": args.width, "precision": "fp32", "workers_option": args.workers},
        "summary": summary,
        "runs": runs,
    }
    print(f"median images/s: memory {median['memory']:.1f}, lazy-subset {median['lazy-subset']:.1f}, lazy-full "
          f"{median['lazy-full']:.1f}; lazy/memory {summary['ratio_lazy_subset_to_memory']:.3f} (same subset), "
          f"{summary['ratio_lazy_full_to_memory']:.3f} (whole stack); peak RSS sum (MiB) "
          + ", ".join(f"{m} {v:.0f}" for m, v in peak.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
