"""Multi-process training parity: ``torchrun --nproc-per-node 2`` against one process at the same global batch.

Simulates a small continuous dataset (``hinge-64`` Fourier-cropped to box 32) unless it exists in --workdir, then
trains ``train-vae`` twice with the same seed and epochs:

* ``one``: one process at global batch B (``-b B``);
* ``two``: ``torchrun --standalone --nproc-per-node 2 -m cryoscape.cli.main train-vae ... -b B/2`` (per-process
  batch; each global batch of B images is split between the two processes).

Every process runs with ``OMP_NUM_THREADS=1``, so ``two`` uses two cores and ``one`` one core (``--one-threads 2``
adds a run of one process with two threads, the other way to use the machine). For each run it reports the final
training loss, |Spearman| of latent PC1 against the true hinge angle (every epoch), the per-image FSC of the map
generated at each scored particle's latent against its true map (mean AUC, 100 particles), and training images/s
(median over epochs 2.., from ``provenance.yaml``; wall time of the whole command beside it). The noise of the
reparameterisation differs between the two layouts, so the runs agree in accuracy, not bit for bit: compare the
differences with the spread of seeds (``--seeds 0 1`` runs each layout at each seed).

    python benchmarks/distributed_parity.py                     # writes benchmarks/results/distributed_parity.json
    python benchmarks/distributed_parity.py --n 600 --epochs 2  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import ROOT, cli, ground_truth, per_image, shown
from cryoscape.analysis.latent import spearman_with_truth

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def cpu_model() -> str:
    from machine import cpu_model_and_flags

    return cpu_model_and_flags()[0]


def simulate(work: Path, n: int, box: int) -> Path:
    data = work / f"hinge64_n{n}_box{box}"
    if not (data / "particles.star").exists():
        cli("simulate", "--preset", "hinge-64", "-n", str(n), "--downsample-box", str(box), "-o", str(data),
            log=work / "simulate.log")
    return data


def train(data: Path, run: Path, *, processes: int, threads: int, batch: int, epochs: int, seed: int,
          extra: list[str], log: Path) -> float:
    """Train ``run`` with ``processes`` processes of ``threads`` threads each; return the command's wall time."""
    args = ["train-vae", str(data / "particles.star"), "-n", str(epochs), "-b", str(batch), "--seed", str(seed),
            "-o", str(run), "--overwrite", *extra]
    if processes == 1:
        command = [str(Path(sys.executable).with_name("cryoscape")), *args]
    else:
        command = [TORCHRUN, "--standalone", "--nproc-per-node", str(processes), "-m", "cryoscape.cli.main", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "CRYOSCAPE_NO_PROGRESS": "1"}
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"$ OMP_NUM_THREADS={threads} {' '.join(command)}\n")
        out.flush()
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(command)} (see {log})")
    return time.perf_counter() - start


def measure(run: Path, data: Path, gt: dict, n_images: int) -> dict:
    from cryoscape.runs import RunDir
    from cryoscape.training.provenance import read_provenance

    run_dir = RunDir(run)
    angle = gt["hinge_angle_deg"]
    spearman = {e: abs(spearman_with_truth(run_dir.load_z(e).mean, angle)) for e in run_dir.epochs()}
    epochs = [e for record in read_provenance(run_dir) for e in record.get("epochs", [])]
    seconds = [float(e["seconds"]) for e in epochs]
    n = len(gt["hinge_angle_deg"])
    later = seconds[1:] or seconds
    z = run_dir.load_z().mean
    fsc = per_image(run, data, z, gt)
    return {
        "final_loss": float(epochs[-1]["loss"]),
        "loss_by_epoch": [float(e["loss"]) for e in epochs],
        "spearman_pc1": spearman[max(spearman)],
        "spearman_pc1_by_epoch": spearman,
        "per_image_fsc": fsc,
        "per_image_fsc_auc_mean": float(fsc["auc_mean"]),
        "images_per_s": n / statistics.median(later),
        "epoch_seconds": seconds,
        "n_fsc_images": n_images,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="particles (default 2000)")
    parser.add_argument("--box", type=int, default=32, help="--downsample-box of the simulation (default 32)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("-b", "--global-batch", type=int, default=16,
                        help="global batch B: one process at B, two processes at B/2 each (default 16)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--one-threads", type=int, nargs="+", default=[1],
                        help="threads of the single-process runs (default 1; e.g. 1 2 adds a 2-thread run)")
    parser.add_argument("--train-args", default="--zdim 8 --enc-dim 128 --dec-dim 128 --dec-layers 3 --no-amp",
                        help="further train-vae options, the same for every run")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "distributed_parity")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "distributed_parity.json")
    args = parser.parse_args(argv)
    if args.global_batch % 2:
        parser.error("--global-batch must be even (two processes at B/2)")
    import torch

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = simulate(work, args.n, args.box)
    gt = ground_truth(data)
    extra = args.train_args.split()
    layouts = [(f"one_process_{t}thread", 1, t, args.global_batch) for t in args.one_threads]
    layouts.append(("two_processes_1thread", 2, 1, args.global_batch // 2))
    runs = []
    for seed in args.seeds:
        for name, processes, threads, batch in layouts:
            run = work / f"{name}_seed{seed}"
            wall = train(data, run, processes=processes, threads=threads, batch=batch, epochs=args.epochs,
                         seed=seed, extra=extra, log=work / f"{name}_seed{seed}.log")
            result = {"layout": name, "processes": processes, "threads_per_process": threads,
                      "batch_per_process": batch, "global_batch": batch * processes, "seed": seed,
                      "run": shown(run), "command_wall_s": wall, **measure(run, data, gt, 100)}
            runs.append(result)
            print(f"seed {seed} {name:24s} loss {result['final_loss']:.5f}  |Spearman| "
                  f"{result['spearman_pc1']:.3f}  per-image FSC AUC {result['per_image_fsc_auc_mean']:.4f}  "
                  f"{result['images_per_s']:.0f} images/s (loaded)  command {wall:.0f} s", flush=True)
    report = {
        "benchmark": "distributed_parity",
        "command": "python benchmarks/distributed_parity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": shown(data), "n_particles": args.n, "box": args.box, "epochs": args.epochs,
        "train_args": args.train_args, "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
        "note": "images/s taken on a shared machine unless stated; the noise streams differ between layouts",
        "runs": runs,
    }
    base = {(r["seed"]): r for r in runs if r["processes"] == 1 and r["threads_per_process"] == 1}
    for r in runs:
        ref = base.get(r["seed"])
        if ref is not None and r is not ref:
            r["vs_one_process_1thread"] = {
                "loss_ratio": r["final_loss"] / ref["final_loss"],
                "spearman_difference": r["spearman_pc1"] - ref["spearman_pc1"],
                "fsc_auc_difference": r["per_image_fsc_auc_mean"] - ref["per_image_fsc_auc_mean"],
                "speedup": r["images_per_s"] / ref["images_per_s"],
            }
            d = r["vs_one_process_1thread"]
            print(f"seed {r['seed']} {r['layout']} vs one process: loss x{d['loss_ratio']:.4f}, |Spearman| "
                  f"{d['spearman_difference']:+.3f}, FSC AUC {d['fsc_auc_difference']:+.4f}, "
                  f"speed x{d['speedup']:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
