"""Time to accuracy against cryoDRGN 4.3.1: wall time for cryoscape to reach cryoDRGN's epoch-by-epoch accuracy.

On a simulated ``hinge`` dataset (continuous motion, CTF, noise; ``cryoscape simulate --preset hinge-64``) the
reference ``cryodrgn train_vae`` (from ``.venv-ref``, see ``benchmarks/vs_cryodrgn.py``) and cryoscape's
``train-vae`` (one run per ``--variant``: default settings plus the chosen levers) train the same architecture
(width × depth, zdim, batch size, seed) one after the other. After every epoch of both programs the benchmark
scores

* |Spearman| between the first principal component of the latent means and the true hinge angle, and
* per-image FSC against the truth (``--n-fsc`` particles, the same for both programs): the map decoded at each
  particle's latent mean vs its true map, mean FSC-AUC (cryoDRGN's maps from its own ``eval_vol``,
  sign-matched),

and records each epoch's training wall time from the program's own log (start-up, data loading and the
end-of-epoch outputs are left out of both). For each cryoDRGN epoch e in ``--from-epoch``..``--epochs`` it reports
the cumulative training time at which cryoscape first reached cryoDRGN's epoch-e |Spearman|, its FSC-AUC, and
both, and the ratio (cryoDRGN's time / cryoscape's). Accuracy is checked at cryoscape's epoch ends only, so
cryoscape's time is rounded up to a whole epoch (the ratio is a lower bound).

The CPU model and ISA are recorded; ``ONEDNN_MAX_CPU_ISA`` (e.g. ``AVX512_CORE_BF16`` to hide AMX) is honoured by
both programs, which inherit the environment. Run it on an otherwise idle machine; figures taken under load are
only good to check that it works.

    python benchmarks/time_to_accuracy.py --dim 256                       # 4000 particles, box 64, epochs 2..8
    python benchmarks/time_to_accuracy.py --dim 1024 --n 2000
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python benchmarks/time_to_accuracy.py --dim 256
    python benchmarks/time_to_accuracy.py --dim 256 --n 1000 --epochs 4 --n-fsc 20   # shortened check
    python benchmarks/time_to_accuracy.py --variant default= --variant "march=--freq-march-epochs 2"
    python benchmarks/time_to_accuracy.py --reference-domain fourier --dim 256 --n 2000   # cryoDRGN's default decoder
    python benchmarks/time_to_accuracy.py --reuse-reference --variant "march=--freq-march-epochs 2" \
        --json benchmarks/results/time_to_accuracy_march.json   # another variant against the same cryoDRGN run
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryoscape.analysis.latent import spearman_with_truth
from train_throughput import cpu_description
from vs_cryodrgn import (
    ROOT,
    ensure_reference,
    epoch_files,
    epoch_seconds_cryodrgn,
    epoch_seconds_cryoscape,
    fsc_positions,
    per_image_fsc_cryodrgn,
    per_image_fsc_cryoscape,
    sh,
)


def epoch_of(path: Path) -> int:
    """N of a ``name.N.ext`` file."""
    return int(path.name.split(".")[1])


def per_image_fsc_cryoscape_epoch(run: Path, epoch: int, data: Path, positions: np.ndarray) -> float:
    """Mean per-image FSC-AUC of a cryoscape run's checkpoint ``epoch`` (maps at the latent means)."""
    return float(per_image_fsc_cryoscape(run, data, positions, epoch)["auc_mean"])


def curve_cryoscape(run: Path, data: Path, truth: np.ndarray, positions: np.ndarray) -> dict:
    """Per-epoch seconds, |Spearman| and FSC-AUC of a cryoscape run."""
    from cryoscape.runs import load_z_file

    seconds = epoch_seconds_cryoscape(run)
    spearman, fsc = {}, {}
    for f in epoch_files(run, "z.*.npz"):
        e = epoch_of(f)
        spearman[e] = abs(spearman_with_truth(load_z_file(f).mean, truth))
        fsc[e] = per_image_fsc_cryoscape_epoch(run, e, data, positions)
    return {"epoch_seconds": seconds, "spearman_by_epoch": spearman, "fsc_auc_by_epoch": fsc}


def curve_cryodrgn(exe: Path, run: Path, log: Path, data: Path, truth: np.ndarray, positions: np.ndarray,
                   work: Path, first_epoch: int) -> dict:
    """Per-epoch seconds, |Spearman| and FSC-AUC of a cryoDRGN run (FSC from epoch ``first_epoch`` on)."""
    from cryoscape.io.legacy import read_z_pickle

    seconds = epoch_seconds_cryodrgn(log)
    spearman, fsc = {}, {}
    for f in epoch_files(run, "z.*.pkl"):
        e = epoch_of(f)
        z = read_z_pickle(f)
        spearman[e] = abs(spearman_with_truth(z, truth))
        if e >= first_epoch:
            fsc[e] = float(per_image_fsc_cryodrgn(exe, run / f"weights.{e}.pkl", run / "config.yaml", z, data,
                                                  positions, work)["auc_mean"])
    return {"epoch_seconds": seconds, "spearman_by_epoch": spearman, "fsc_auc_by_epoch": fsc}


def first_time(curve: dict, key: str, target: float) -> tuple[int | None, float | None]:
    """(epoch, cumulative seconds) at which ``curve[key]`` (by epoch) first reaches ``target``."""
    cumulative = np.cumsum(curve["epoch_seconds"])
    for e in sorted(curve[key]):
        if curve[key][e] >= target and e <= len(cumulative):
            return e, float(cumulative[e - 1])
    return None, None


def time_to_accuracy_rows(ours: dict, ref: dict, first_epoch: int) -> list[dict]:
    """For each reference epoch ≥ ``first_epoch``: when cryoscape reached its |Spearman|, FSC-AUC, and both."""
    ref_cum = np.cumsum(ref["epoch_seconds"])
    rows = []
    for e in sorted(ref["fsc_auc_by_epoch"]):
        if e < first_epoch or e > len(ref_cum):
            continue
        row = {"reference_epoch": e, "reference_seconds": float(ref_cum[e - 1]),
               "spearman": ref["spearman_by_epoch"][e], "fsc_auc": ref["fsc_auc_by_epoch"][e]}
        both_epochs = []
        for key, target in (("spearman", row["spearman"]), ("fsc_auc", row["fsc_auc"])):
            epoch, seconds = first_time(ours, f"{key}_by_epoch", target)
            row[f"{key}_cryoscape_epoch"] = epoch
            row[f"{key}_cryoscape_seconds"] = seconds
            row[f"{key}_ratio"] = None if seconds is None else row["reference_seconds"] / seconds
            both_epochs.append(epoch)
        if None in both_epochs:
            row["both_cryoscape_seconds"] = row["both_ratio"] = None
        else:
            seconds = float(np.cumsum(ours["epoch_seconds"])[max(both_epochs) - 1])
            row["both_cryoscape_seconds"] = seconds
            row["both_ratio"] = row["reference_seconds"] / seconds
        rows.append(row)
    return rows


def parse_variant(text: str) -> tuple[str, str]:
    """``NAME=train-vae options`` → (name, options)."""
    name, sep, options = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"a variant is NAME=OPTIONS (options may be empty), got {text!r}")
    return name, options


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="particles (default 4000)")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of both programs (default 8)")
    parser.add_argument("--from-epoch", type=int, default=2, help="first cryoDRGN epoch to reach (default 2)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width (256 or 1024)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-fsc", type=int, default=50, help="particles scored by per-image FSC (default 50)")
    parser.add_argument("--variant", action="append", type=parse_variant, default=None,
                        help="NAME=extra train-vae options of one cryoscape run; repeatable (default: 'default=', "
                             "cryoscape's default settings)")
    parser.add_argument("--reference-domain", default="hartley", choices=("hartley", "fourier"),
                        help="cryoDRGN's decoder: hartley (the same network as cryoscape's hartley_full; default) "
                             "or fourier (cryoDRGN's default, a pair decoder like cryoscape's default hartley)")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="score the cryoDRGN run already in WORKDIR (same dataset and architecture, all its "
                             "epochs) instead of training it again; its epoch times are read from its log, so "
                             "compare only with variants timed on the same machine in the same state")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "time_to_accuracy")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "time_to_accuracy.json")
    args = parser.parse_args(argv)
    variants = dict(args.variant or [("default", "")])

    ours = str(Path(sys.executable).with_name("cryoscape"))
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"hinge_{args.box}_{args.n}_snr{args.snr:g}"
    if not (data / "particles.star").exists():
        sh([ours, "simulate", "--preset", "hinge-64", "-n", str(args.n), "--box-size", str(args.box),
            "--snr", str(args.snr), "-o", str(data)], work / "simulate.log")
        sh([ours, "export-cryodrgn", str(data / "particles.star"), "-o", str(data / "cryodrgn") + "/"])
    with open(data / "ground_truth.csv") as handle:
        truth = np.array([float(row["hinge_angle_deg"]) for row in csv.DictReader(handle)])
    positions = fsc_positions(len(truth), args.n_fsc)
    arch = ["--zdim", str(args.zdim), "-n", str(args.epochs), "-b", str(args.batch_size),
            "--enc-dim", str(args.dim), "--enc-layers", str(args.layers), "--dec-dim", str(args.dim),
            "--dec-layers", str(args.layers), "--seed", str(args.seed)]
    tag = f"d{args.dim}" if args.reference_domain == "hartley" else f"{args.reference_domain}_d{args.dim}"

    exe, version = ensure_reference()
    run_ref = work / f"run_cryodrgn_{tag}"
    log_ref = work / f"train_cryodrgn_{tag}.log"
    pickles = data / "cryodrgn"
    if args.reuse_reference:
        if not (run_ref / f"weights.{args.epochs}.pkl").exists() or not log_ref.exists():
            raise SystemExit(f"--reuse-reference: no finished {args.epochs}-epoch cryoDRGN run in {run_ref}")
        print(f"cryoDRGN {version}: reusing {run_ref}", flush=True)
    else:
        shutil.rmtree(run_ref, ignore_errors=True)
        print(f"cryoDRGN {version}: training {args.epochs} epochs ...", flush=True)
        sh([str(exe), "train_vae", str(data / "particles.mrcs"), "--poses", str(pickles / "pose.pkl"),
            "--ctf", str(pickles / "ctf.pkl"), *arch, "--domain", args.reference_domain, "--no-analysis",
            "-o", str(run_ref)],
           log_ref)
    scored_ref = work / f"curve_cryodrgn_{tag}.json"  # the reference's scores, kept for --reuse-reference
    key = {"n_fsc": args.n_fsc, "from_epoch": args.from_epoch, "epochs": args.epochs}
    saved = json.loads(scored_ref.read_text()) if args.reuse_reference and scored_ref.exists() else None
    if saved is not None and saved.get("key") == key:
        ref = {name: ({int(e): v for e, v in value.items()} if name.endswith("_by_epoch") else value)
               for name, value in saved["curve"].items()}
    else:
        ref = curve_cryodrgn(exe, run_ref, log_ref, data, truth, positions, work, args.from_epoch)
        scored_ref.write_text(json.dumps({"key": key, "curve": ref}))
    ref.update({"program": "cryodrgn", "version": version})

    results = {"benchmark": "time_to_accuracy", "machine": cpu_description(),
               "dataset": {"source": "hinge-64 preset", "n": args.n, "box": args.box, "snr": args.snr},
               "architecture": {"dim": args.dim, "layers": args.layers, "zdim": args.zdim,
                                "batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed},
               "n_fsc": args.n_fsc, "reference_domain": args.reference_domain, "reference": ref, "cryoscape": {}}
    for name, options in variants.items():
        run = work / f"run_cryoscape_{tag}_{name}"
        shutil.rmtree(run, ignore_errors=True)
        print(f"cryoscape {name} ({options or 'default settings'}): training {args.epochs} epochs ...", flush=True)
        sh([ours, "train-vae", str(data / "particles.star"), *arch, "-o", str(run), *options.split()],
           work / f"train_cryoscape_{tag}_{name}.log")
        curve = curve_cryoscape(run, data, truth, positions)
        curve["options"] = options
        curve["time_to_accuracy"] = time_to_accuracy_rows(curve, ref, args.from_epoch)
        results["cryoscape"][name] = curve

    m = results["machine"]
    print(f"\nbox {args.box}, {args.dim}x{args.layers}, zdim {args.zdim}, {args.n} particles; {m['cpu_model']} "
          f"({', '.join(m['isa_flags'])}; ONEDNN_MAX_CPU_ISA {m['onednn_max_cpu_isa']})")
    names = ["cryoDRGN", *variants]
    curves = [ref, *results["cryoscape"].values()]
    print("epoch  " + "  ".join(f"{n + ' s / |Sp| / FSC':>30s}" for n in names))
    for e in range(1, args.epochs + 1):
        cells = []
        for c in curves:
            t = float(np.sum(c["epoch_seconds"][:e])) if e <= len(c["epoch_seconds"]) else None
            cells.append(f"{fmt(t, '8.0f')} / {fmt(c['spearman_by_epoch'].get(e), '.3f')} / "
                         f"{fmt(c['fsc_auc_by_epoch'].get(e), '.4f')}")
        print(f"{e:5d}  " + "  ".join(f"{x:>30s}" for x in cells))
    for name, curve in results["cryoscape"].items():
        print(f"time to cryoDRGN's accuracy, cryoscape {name}: ratio (cryoDRGN s / cryoscape s) for |Spearman|, "
              "FSC-AUC, both")
        for row in curve["time_to_accuracy"]:
            print(f"  epoch {row['reference_epoch']} ({row['reference_seconds']:.0f} s): "
                  f"{fmt(row['spearman_ratio'], '.2f')}x  {fmt(row['fsc_auc_ratio'], '.2f')}x  "
                  f"{fmt(row['both_ratio'], '.2f')}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
