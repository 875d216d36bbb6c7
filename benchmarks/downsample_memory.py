"""Peak memory of ``cryoscape downsample`` as the stack grows (it should not grow with the stack).

Writes random stacks of N images of 128² (N = 2,500 / 5,000 / 10,000 by default; 164 MB – 655 MB on disk) and
runs ``cryoscape downsample STACK -D 64 --chunk 1000`` on each in a child process, reporting the child's peak
resident memory (``ru_maxrss``) and its anonymous resident memory at exit (``RssAnon``). Bounded memory means the
peak does not grow with N. (The peak includes the process baseline, ~380 MiB, most of it torch, which
``cryoscape.geometry.fourier`` imports.)

Usage::

    .venv/bin/python benchmarks/downsample_memory.py [--sizes 2500 5000 10000] [--box 128] [--workdir DIR]

Prints one line per size and writes benchmarks/results/downsample_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import resource, sys
from cryoscape.cli.main import main
code = main(sys.argv[1:])
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, status['VmHWM'].split()[0],
      status['RssAnon'].split()[0], file=sys.stderr)
sys.exit(code)
"""


def make_stack(path: Path, n: int, box: int) -> None:
    from cryoscape.io.mrc_stream import MrcStackWriter

    rng = np.random.default_rng(0)
    with MrcStackWriter(path, n, box, 1.0) as writer:
        for start in range(0, n, 1000):
            k = min(1000, n - start)
            writer.write(start, rng.normal(size=(k, box, box)).astype(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000])
    parser.add_argument("--box", type=int, default=128)
    parser.add_argument("--new-box", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "downsample_memory.json"))
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cryoscape-dsmem-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    env = {**os.environ, "CRYOSCAPE_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    for n in args.sizes:
        stack = work / f"in_{n}.mrcs"
        make_stack(stack, n, args.box)
        out = work / f"out_{n}.mrcs"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, "downsample", str(stack), "-D", str(args.new_box),
                               "--chunk", str(args.chunk), "-o", str(out)], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        peak_line = [line for line in proc.stderr.splitlines() if line.startswith("PEAK")][-1].split()
        maxrss_kib, _hwm_kib, anon_kib = (int(v) for v in peak_line[1:])
        row = {"n_images": n, "box": args.box, "new_box": args.new_box, "chunk": args.chunk,
               "input_mib": stack.stat().st_size / 2**20, "peak_rss_mib": maxrss_kib / 1024,
               "rss_anon_at_exit_mib": anon_kib / 1024, "seconds": seconds}
        rows.append(row)
        print(f"N={n:6d} {args.box}²→{args.new_box}²: input {row['input_mib']:.0f} MiB, peak RSS "
              f"{row['peak_rss_mib']:.0f} MiB (anonymous at exit {row['rss_anon_at_exit_mib']:.0f} MiB), "
              f"{seconds:.1f} s")
        stack.unlink()
        out.unlink()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"benchmark": "downsample_memory", "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
