"""Resident memory of loading a stack into memory for training, against what ``--max-memory-gb`` counts.

For each box, writes a float32 stack of about ``--stack-gib`` GiB, then in a fresh process with the
``cryoscape`` command's allocator settings (``cli._process.configure_process``) builds the in-memory
``HartleyDataset`` and reports how much the resident peak (VmHWM, reset before the load) grew, next to
``data.memory.in_memory_bytes`` (the prepared stack plus the loading transient). Linux only (/proc). Prints a
table and writes JSON.

    python benchmarks/memory_budget.py            # writes benchmarks/results/memory_budget.json
    python benchmarks/memory_budget.py --boxes 64 --stack-gib 0.1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import sys, time
from cryoscape.cli._process import configure_process
configure_process()
import numpy as np
from cryoscape.data.dataset import HartleyDataset, in_memory_bytes
from cryoscape.data.particles import load_particles

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

ps = load_particles(sys.argv[1])
ps.read(np.arange(2))
ps.images.close()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS")
t0 = time.perf_counter()
HartleyDataset(ps, data_std=1.0, in_memory=True, chunk_size=1024)
seconds = time.perf_counter() - t0
print(status("VmHWM") - before, in_memory_bytes(len(ps), ps.box_size), seconds)
"""


def measure(box: int, stack_gib: float, folder: Path) -> dict:
    """Peak growth of one in-memory load of a ``stack_gib`` stack of ``box`` px images."""
    from cryoscape.io.mrc import write_mrc

    n = max(1, int(stack_gib * 2**30 // (box * box * 4)))
    path = folder / f"stack_{box}.mrcs"
    rng = np.random.default_rng(0)
    write_mrc(path, rng.standard_normal((n, box, box), dtype=np.float32), voxel_size_angstrom=2.0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True,
                         env=env)
    growth, estimate, seconds = out.stdout.split()
    path.unlink()
    stack_bytes = n * box * box * 4
    return {
        "box": box,
        "n_images": n,
        "stack_gib": stack_bytes / 2**30,
        "estimate_gib": int(estimate) / 2**30,
        "peak_growth_gib": int(growth) / 2**30,
        "estimate_covers_peak": int(growth) <= int(estimate),
        "load_seconds": float(seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--stack-gib", type=float, default=0.4, help="size of each test stack (GiB)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "memory_budget.json"),
                        help="output JSON (default benchmarks/results/memory_budget.json)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(box, args.stack_gib, Path(tmp)) for box in args.boxes]
    report = {
        "benchmark": "memory_budget",
        "what": "growth of the resident peak while loading a float32 stack into memory (HartleyDataset, "
                "in_memory=True, the cryoscape command's allocator settings) vs data.memory.in_memory_bytes",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "results": results,
    }
    print(f"{'box':>5} {'images':>8} {'stack GiB':>10} {'estimate GiB':>13} {'peak growth GiB':>16} {'load s':>7}")
    for r in results:
        print(f"{r['box']:>5} {r['n_images']:>8} {r['stack_gib']:>10.3f} {r['estimate_gib']:>13.3f} "
              f"{r['peak_growth_gib']:>16.3f} {r['load_seconds']:>7.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
