"""CPU training speed against cryoDRGN 4.3.1 on the same particles: images/s per box, width and CPU kind.

For each box and width it writes one set of random particles (random images, poses and CTF:
``train_throughput.make_particles``; speed does not depend on the content) and trains, each for two epochs at
batch 8 with zdim 8 and ``--dim``-wide 3-layer encoder and decoder:

- cryoDRGN 4.3.1 with its defaults (its ``fourier`` decoder evaluates half the lattice, as cryoscape's default
  pair decoder does: the same FLOPs per image), from ``.venv-ref`` (``vs_cryodrgn.ensure_reference``);
- cryoscape with its defaults (``auto`` precision: the faster of bf16 and fp32 measured at the start; the choice
  is read back from the run's config), and with ``--amp`` and ``--no-amp`` forced.

The figure is the images/s of the second epoch from each program's log. A CPU kind is the machine as it is
(``native``) or restricted to AVX2 (``avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2`` and ``MKL_ENABLE_INSTRUCTIONS=AVX2``
for both programs, as on a CPU without AVX-512 and its bf16 instructions). Each case runs ``--repeats`` times
(medians reported). Run on an otherwise idle machine.

    python benchmarks/cpu_speed.py                              # boxes 32,64,128 x 256; writes cpu_speed.json
    python benchmarks/cpu_speed.py --boxes 32 --dims 64 --n 64 --kinds native --repeats 1   # a quick check
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

KINDS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
#: Particles per case by box (an epoch of tens of seconds at 256 x 3), divided by (dim / 256) for wider nets.
DEFAULT_N = {32: 2000, 64: 800, 128: 240}


def run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "w") as out:
        status = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}\n{log.read_text()[-2000:]}")


def cryoscape_rate(run_dir: Path) -> tuple[float, str]:
    """(images/s of epoch 2, the precision it trained in) of a cryoscape run."""
    import yaml

    text = (run_dir / "run.log").read_text()
    rate = float(re.search(r"epoch 2/\d+: .*\([\d.]+ s, ([\d.]+) images/s\)", text).group(1))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return rate, str(config.get("precision"))


def cryodrgn_rate(log: Path, n: int) -> float:
    """images/s of epoch 2 from cryoDRGN's log (its epoch lines give the wall time of each epoch)."""
    from vs_cryodrgn import epoch_seconds_cryodrgn

    seconds = epoch_seconds_cryodrgn(log)
    return n / seconds[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", default="32,64,128")
    parser.add_argument("--dims", default="256", help="widths (default 256; 1024 is slow on a CPU)")
    parser.add_argument("--kinds", default="native,avx2", help="native,avx2")
    parser.add_argument("--n", type=int, default=None, help="particles per case (default by box)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true", help="cryoscape only")
    parser.add_argument("--variants", default="default,bf16,fp32",
                        help="cryoscape runs: default (auto precision), bf16 (--amp), fp32 (--no-amp); on a CPU "
                             "without native bf16 the forced bf16 run is emulated and very slow (the default's "
                             "own timing of both precisions is in its run.log)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "cpu_speed.json")
    args = parser.parse_args(argv)

    from machine import cpu_model_and_flags
    from train_throughput import make_particles
    from vs_cryodrgn import ensure_reference

    cryodrgn = None if args.skip_reference else str(ensure_reference()[0])
    model, flags = cpu_model_and_flags()
    report = {"benchmark": "cpu_speed", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "machine": {"cpu_model": model, "cpus": os.cpu_count(),
                          "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]},
              "cases": []}
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", *KINDS["avx2"])}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for box in (int(b) for b in args.boxes.split(",")):
            for dim in (int(d) for d in args.dims.split(",")):
                n = args.n or max(32, int(DEFAULT_N.get(box, 200) * 256 / dim))
                data = work / f"data_{box}_{dim}"
                data.mkdir()
                make_particles(data, n, box)
                arch = ["--zdim", "8", "-n", "2", "-b", "8", "--enc-dim", str(dim), "--enc-layers", "3",
                        "--dec-dim", str(dim), "--dec-layers", "3"]
                for kind in args.kinds.split(","):
                    env = {**base_env, **KINDS[kind], "CRYOSCAPE_NO_PROGRESS": "1",
                           "CRYOSCAPE_CACHE_DIR": str(work / f"cache_{kind}")}
                    case = {"box": box, "dim": dim, "n": n, "kind": kind, "images_per_s": {}, "precision": {}}
                    rates: dict[str, list[float]] = {}
                    for repeat in range(args.repeats):
                        variants = {"default": ("cryoscape", []), "bf16": ("cryoscape_bf16", ["--amp"]),
                                    "fp32": ("cryoscape_fp32", ["--no-amp"])}
                        for name, extra in (variants[v] for v in args.variants.split(",")):
                            out = work / f"{box}_{dim}_{kind}_{name}_{repeat}"
                            run([sys.executable, "-m", "cryoscape.cli.main", "train-vae", str(data / "p.mrcs"),
                                 "--poses", str(data / "pose.pkl"), "--ctf", str(data / "ctf.pkl"), *arch, *extra,
                                 "-o", str(out)], env, work / f"{out.name}.log")
                            rate, precision = cryoscape_rate(out)
                            rates.setdefault(name, []).append(rate)
                            case["precision"][name] = precision
                            if name == "cryoscape":  # the default's own timing of each precision
                                found = re.search(r"precision: .*\((measured per step: [^)]*)\)",
                                                  (out / "run.log").read_text())
                                if found:
                                    case.setdefault("precision_measured", []).append(found.group(1))
                        if cryodrgn is not None:
                            out = work / f"{box}_{dim}_{kind}_cryodrgn_{repeat}"
                            log = work / f"{out.name}.log"
                            run([cryodrgn, "train_vae", str(data / "p.mrcs"), "--poses", str(data / "pose.pkl"),
                                 "--ctf", str(data / "ctf.pkl"), *arch, "--no-analysis", "-o", str(out)], env, log)
                            rates.setdefault("cryodrgn", []).append(cryodrgn_rate(log, n))
                    case["images_per_s"] = {name: statistics.median(values) for name, values in rates.items()}
                    case["runs"] = rates
                    if "cryodrgn" in case["images_per_s"]:
                        ref = case["images_per_s"]["cryodrgn"]
                        case["ratio_to_cryodrgn"] = {name: value / ref for name, value in case["images_per_s"].items()}
                    report["cases"].append(case)
                    shown = ", ".join(f"{name} {value:.1f}" for name, value in case["images_per_s"].items())
                    ratio = case.get("ratio_to_cryodrgn", {}).get("cryoscape")
                    print(f"box {box:3d} dim {dim:4d} {kind:6s}: {shown} images/s; default chose "
                          f"{case['precision']['cryoscape']}"
                          + (f"; default / cryoDRGN {ratio:.2f}x" if ratio else ""), flush=True)
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
