"""CPU trainings sharing cores: images/s of 1, 2 and 3 concurrent ``cryoscape train-vae`` runs per thread setting.

Each run trains the same small set (random images with random poses and CTF, ``train_throughput.make_particles``)
for two epochs; its figure is the images/s of the second epoch from its own ``run.log``. A setting is a set of
environment variables given to every process of a case:

- ``default``: what the ``cryoscape`` command does by itself (idle OpenMP threads spin briefly, then sleep:
  ``cryoscape.cli._process.short_openmp_spin``);
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once);
- ``spin``: ``GOMP_SPINCOUNT=300000``, GNU OpenMP's own default when nothing is set, i.e. the behaviour before
  cryoscape chose a wait policy (idle threads spin for a while before sleeping);
- ``active``: ``OMP_WAIT_POLICY=ACTIVE`` (idle threads spin).

For each setting it prints the solo images/s and, for k concurrent runs, each run's images/s and its ratio to the
solo figure (a fair share of the cores is 1/k). Run it on an otherwise idle machine.

    python benchmarks/cpu_contention.py --n 2048 --repeats 2    # box 32, 256 x 3, writes results/cpu_contention.json
    python benchmarks/cpu_contention.py --n 256 --dim 64 --settings default,spin     # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin": {"GOMP_SPINCOUNT": "300000"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE"},
    "spin3k": {"GOMP_SPINCOUNT": "3000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}
#: Variables of the caller that would change a setting; removed from every child's environment.
THREAD_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def epoch_rate(run: Path, epoch: int) -> float:
    """images/s of ``epoch`` from a run's run.log."""
    pattern = re.compile(rf"epoch {epoch}/\d+: .*\([\d.]+ s, ([\d.]+) images/s\)")
    match = pattern.search((run / "run.log").read_text())
    if match is None:
        raise SystemExit(f"no epoch {epoch} in {run / 'run.log'}")
    return float(match.group(1))


def run_case(data: Path, work: Path, setting: dict[str, str], k: int, args) -> list[float]:
    """Start ``k`` trainings at once with ``setting``; their second-epoch images/s."""
    env = {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}
    env.update(setting, CRYOSCAPE_NO_PROGRESS="1")
    procs, runs = [], []
    for i in range(k):
        run = work / f"run{i}"
        runs.append(run)
        cmd = [sys.executable, "-m", "cryoscape.cli.main", "train-vae", str(data / "p.mrcs"), "--poses",
               str(data / "pose.pkl"), "--ctf", str(data / "ctf.pkl"), "--zdim", "8", "-n", "2", "-b", "8",
               "--enc-dim", str(args.dim), "--enc-layers", "3", "--dec-dim", str(args.dim), "--dec-layers", "3",
               "--seed", str(i), "-o", str(run), "--overwrite"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env))
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a training failed (exit {proc.returncode}) in {work}")
    return [epoch_rate(run, 2) for run in runs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--n", type=int, default=1024, help="particles per run (default 1024)")
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width (default 256)")
    parser.add_argument("--concurrent", default="1,2,3", help="numbers of concurrent runs (default 1,2,3)")
    parser.add_argument("--settings", default="default,passive,spin,active", help=", ".join(SETTINGS))
    parser.add_argument("--repeats", type=int, default=1, help="cases run this many times (medians kept)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "cpu_contention.json")
    args = parser.parse_args(argv)

    from machine import cpu_model_and_flags
    from train_throughput import make_particles

    model, flags = cpu_model_and_flags()
    machine = {"cpu_model": model, "cpus": os.cpu_count(),
               "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]}
    report = {"benchmark": "cpu_contention", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "machine": machine, "box": args.box, "n": args.n, "dim": args.dim, "cases": {}}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        make_particles(data, args.n, args.box)
        # the first training measures the CPU precision once (cached): keep that out of the timed cases
        cache = Path(folder) / "cache"
        os.environ["CRYOSCAPE_CACHE_DIR"] = str(cache)
        run_case(data, Path(folder) / "warm", {}, 1, args)
        names = args.settings.split(",")
        counts = [int(c) for c in args.concurrent.split(",")]
        runs: dict[tuple[str, int], list[list[float]]] = {}
        for repeat in range(args.repeats):  # rounds over every case, so drifts of the machine hit all alike
            for name in names:
                for k in counts:
                    rates = run_case(data, Path(folder) / f"{name}_{k}_{repeat}", SETTINGS[name], k, args)
                    runs.setdefault((name, k), []).append(rates)
                    print(f"{name:8s} {k} run(s), round {repeat + 1}: "
                          + ", ".join(f"{r:.1f}" for r in rates) + " images/s", flush=True)
        for name in names:
            solo = statistics.median(r[0] for r in runs[(name, 1)]) if (name, 1) in runs else None
            for k in counts:
                per_run = [statistics.median(r[i] for r in runs[(name, k)]) for i in range(k)]
                ratios = [r / solo for r in per_run] if solo else None
                report["cases"][f"{name}/{k}"] = {"environment": SETTINGS[name], "images_per_s": per_run,
                                                   "rounds": runs[(name, k)], "ratio_to_solo": ratios}
                ratio = "" if ratios is None else " (" + ", ".join(f"{x:.2f}" for x in ratios) + " of solo)"
                print(f"{name:8s} {k} run(s), median: " + ", ".join(f"{r:.1f}" for r in per_run)
                      + f" images/s{ratio}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
