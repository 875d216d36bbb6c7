"""Accuracy of the neural reconstruction against ground truth (simulated data), printed and saved as JSON.

Three benchmarks (each simulates its dataset and trains its model unless they exist already in --workdir):

* ``continuous``: ``hinge`` preset (box 64, 20k particles, SNR 0.1, CTF), VAE zdim 8. |Spearman| between the
  first principal component of the latent means and the true hinge angle (goal ≥ 0.98), and per-image FSC of
  100 particles (map generated at the particle's z vs its true map).
* ``compositional``: ``assembly`` preset (3 states), VAE zdim 8. Adjusted Rand index of k-means (k = 3) on z vs
  the true state (goal ≥ 0.95); the map at each on-data cluster centre against the true map of the cluster's
  state (FSC 0.5 resolution) compared with back-projection of that state's true particles (goal: ≤ 1.25× the
  back-projection resolution); per-image FSC of 100 particles.
* ``homogeneous``: the particles of one state of the assembly set; ``train-nn`` map vs ``backproject`` map,
  both against the true map (FSC 0.5 resolution, AUC; goal: train-nn at least as good).

    python benchmarks/accuracy.py continuous --epochs 25
    python benchmarks/accuracy.py compositional --epochs 25
    python benchmarks/accuracy.py homogeneous --epochs 20
    python benchmarks/accuracy.py continuous --n 2000 --epochs 2 --workdir /tmp/acc   # quick check

``--backproject-only`` (compositional, homogeneous) recomputes only the back-projection references with the
current ``backproject`` default, on the dataset re-simulated from its seed (the simulator is deterministic), and
rewrites the back-projection figures and ratios of the existing JSON, keeping the trained-model figures and the
previous back-projection figures (``previous_backproject``):

    python benchmarks/accuracy.py compositional --backproject-only
    python benchmarks/accuracy.py homogeneous --backproject-only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cryoscape.analysis.latent import spearman_with_truth

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("cryoscape"))


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (results JSON holds no machine-specific prefix)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cli(*args: str, log: Path | None = None) -> float:
    """Run a cryoscape command; return its wall time (s)."""
    start = time.perf_counter()
    with open(log or os.devnull, "a") as out:
        out.write(f"$ cryoscape {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run([CLI, *args], stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "CRYOSCAPE_NO_PROGRESS": "1"})
    if proc.returncode:
        raise SystemExit(f"failed: cryoscape {' '.join(args)} (see {log})")
    return time.perf_counter() - start


def dataset(work: Path, preset: str, n: int, snr: float) -> Path:
    data = work / f"{preset}_{n}_snr{snr:g}"
    if not (data / "particles.star").exists():
        cli("simulate", "--preset", preset, "-n", str(n), "--snr", str(snr), "-o", str(data),
            log=work / "simulate.log")
    return data


def ground_truth(data: Path) -> dict[str, np.ndarray]:
    with open(data / "ground_truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    out = {"state": np.array([int(r["state"]) for r in rows])}
    if rows and rows[0].get("hinge_angle_deg"):
        out["hinge_angle_deg"] = np.array([float(r["hinge_angle_deg"]) for r in rows])
        out["coordinate"] = np.array([float(r["coordinate"]) for r in rows])
    return out


def train(kind: str, data: Path, run: Path, epochs: int, extra: list[str], log: Path,
          ind: Path | None = None) -> float | None:
    """Train unless the run already has ``epochs`` epochs; return the training wall time (None if reused)."""
    from cryoscape.runs import RunDir

    if run.exists() and RunDir(run).latest_epoch() == epochs:
        return None
    args = [kind, str(data / "particles.star"), "-n", str(epochs), "-o", str(run), "--overwrite", *extra]
    if ind is not None:
        args += ["--ind", str(ind)]
    return cli(*args, log=log)


def generator(run: Path):
    """``z (B, zdim) -> maps (B, D, D, D)`` of a trained run, and its voxel size (Å)."""
    import torch

    from cryoscape.runs import RunDir
    from cryoscape.training.config import load_trained

    model, config, _ = load_trained(RunDir(run), None)
    box, scale = int(config.data.box_size), float(config.data.data_std or 1.0)

    def generate(z):
        with torch.no_grad():
            zt = None if z is None else torch.as_tensor(np.asarray(z), dtype=torch.float32)
            return model.decoder.eval_volumes(zt, box_size=box, radius_px=config.volume_radius_px,
                                              scale=scale).numpy()

    return generate, float(config.data.pixel_size_angstrom)


def per_image(run: Path, data: Path, z: np.ndarray, gt: dict[str, np.ndarray]) -> dict[str, float]:
    from cryoscape.reconstruct.scoring import per_image_fsc, truth_from_table
    from cryoscape.simulate import GroundTruthVolumes, SimulationConfig

    generate, voxel = generator(run)
    truth = GroundTruthVolumes(SimulationConfig.load_yaml(data / "config.yaml"))
    true_map = truth_from_table(truth, gt["state"], gt.get("coordinate"))
    return per_image_fsc(generate, z, true_map, voxel, n_images=100, batch_size=10).summary()


def trained_vae(args, preset: str, name: str) -> tuple[Path, Path, float | None]:
    """(dataset, run, training seconds) of the VAE benchmark on ``preset``, simulating/training what is missing."""
    work = args.workdir
    data = args.data or dataset(work, preset, args.n, args.snr)
    run = args.run or work / f"{name}_vae_z{args.zdim}"
    seconds = train("train-vae", data, run, args.epochs, ["--zdim", str(args.zdim)], work / f"train_{name}.log")
    return data, run, seconds


def state_subset(work: Path, states: np.ndarray, state: int) -> Path:
    """A 0-based index file of the particles of ``state``."""
    ind = work / f"assembly_state{state}.txt"
    np.savetxt(ind, np.flatnonzero(states == state), fmt="%d")
    return ind


def backprojected_state(work: Path, data: Path, states: np.ndarray, state: int, fresh: bool = False) -> np.ndarray:
    """Back-projection of the true particles of ``state`` (computed once, then read from disk; ``fresh``:
    recomputed with the current default even if a map of an earlier run is on disk)."""
    from cryoscape.io.mrc import read_mrc

    bp_dir = work / f"assembly_bp_state{state}"
    if fresh or not (bp_dir / "map.mrc").exists():
        cli("backproject", str(data / "particles.star"), "--ind", str(state_subset(work, states, state)),
            "-o", str(bp_dir), log=work / "backproject.log")
    return read_mrc(bp_dir / "map.mrc")[0]


def continuous(args) -> dict:
    from cryoscape.runs import RunDir

    data, run, seconds = trained_vae(args, "hinge-64", "hinge")

    gt = ground_truth(data)
    run_dir = RunDir(run)
    angle = gt["hinge_angle_deg"]
    per_epoch = {e: abs(spearman_with_truth(run_dir.load_z(e).mean, angle)) for e in run_dir.epochs()}
    z = run_dir.load_z().mean
    return {"dataset": shown(data), "run": shown(run), "epochs": args.epochs, "train_seconds": seconds,
            "spearman_pc1_by_epoch": per_epoch, "spearman_pc1": per_epoch[max(per_epoch)],
            "goal_spearman": 0.98, "per_image_fsc": per_image(run, data, z, gt)}


def resolution_vs_truth(vol: np.ndarray, truth: np.ndarray, voxel: float) -> tuple[float, float]:
    from cryoscape.reconstruct.fsc import fsc_curve

    curve = fsc_curve(vol, truth, voxel)
    return curve.resolution_angstrom(0.5), curve.area_under_curve()


def compositional(args) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from cryoscape.analysis.latent import kmeans
    from cryoscape.io.mrc import read_mrc
    from cryoscape.runs import RunDir

    data, run, seconds = trained_vae(args, "assembly-64", "assembly")
    gt = ground_truth(data)
    states = gt["state"]
    n_states = int(states.max()) + 1
    z = RunDir(run).load_z().mean
    km = kmeans(z, n_states, seed=0)
    ari = float(adjusted_rand_score(states, km.labels))
    generate, voxel = generator(run)
    centre_maps = generate(z[km.on_data_indices])
    result = {"dataset": shown(data), "run": shown(run), "epochs": args.epochs, "train_seconds": seconds,
              "ari_kmeans": ari, "goal_ari": 0.95, "states": []}
    for cluster in range(n_states):
        members = states[km.labels == cluster]
        state = int(np.bincount(members, minlength=n_states).argmax())
        truth, _ = read_mrc(data / "gt_volumes" / f"state_{state:02d}.mrc")
        res_vae, auc_vae = resolution_vs_truth(centre_maps[cluster], truth, voxel)
        bp = backprojected_state(args.workdir, data, states, state)
        res_bp, auc_bp = resolution_vs_truth(bp, truth, voxel)
        result["states"].append({"cluster": cluster, "state": state, "cluster_size": int(members.size),
                                 "vae_res05_angstrom": res_vae, "vae_auc": auc_vae,
                                 "backproject_res05_angstrom": res_bp, "backproject_auc": auc_bp,
                                 "ratio": res_vae / res_bp, "goal_ratio": 1.25})
    result["per_image_fsc"] = per_image(run, data, z, gt)
    return result


def homogeneous(args) -> dict:
    from cryoscape.io.mrc import read_mrc
    from cryoscape.runs import RunDir

    work = args.workdir
    data = args.data or dataset(work, "assembly-64", args.n, args.snr)
    states = ground_truth(data)["state"]
    state = int(np.bincount(states).argmax())
    run = work / f"assembly_nn_state{state}"
    seconds = train("train-nn", data, run, args.epochs, [], work / "train_nn.log",
                    ind=state_subset(work, states, state))
    truth, _ = read_mrc(data / "gt_volumes" / f"state_{state:02d}.mrc")
    nn_map, header = read_mrc(RunDir(run).volume_path(RunDir(run).latest_epoch()))
    voxel = float(header.voxel_size_angstrom)
    bp = backprojected_state(work, data, states, state)
    res_nn, auc_nn = resolution_vs_truth(nn_map, truth, voxel)
    res_bp, auc_bp = resolution_vs_truth(bp, truth, voxel)
    return {"dataset": shown(data), "state": state, "n_particles": int((states == state).sum()),
            "epochs": args.epochs, "train_seconds": seconds, "train_nn_res05_angstrom": res_nn,
            "train_nn_auc": auc_nn, "backproject_res05_angstrom": res_bp, "backproject_auc": auc_bp,
            "goal": "train-nn resolution <= backproject resolution"}


def backproject_only(args, path: Path) -> dict:
    """The saved result of ``compositional`` or ``homogeneous`` with its back-projection figures recomputed."""
    from cryoscape.io.mrc import read_mrc

    if not path.exists():
        raise SystemExit(f"{path} missing: run the full benchmark first")
    result = json.loads(path.read_text())
    data = args.data or dataset(args.workdir, "assembly-64", args.n, args.snr)
    states = ground_truth(data)["state"]
    entries = result["states"] if args.benchmark == "compositional" else [result]
    for entry in entries:
        state = int(entry["state"])
        truth, header = read_mrc(data / "gt_volumes" / f"state_{state:02d}.mrc")
        res_bp, auc_bp = resolution_vs_truth(backprojected_state(args.workdir, data, states, state, fresh=True), truth,
                                             float(header.voxel_size_angstrom))
        entry["previous_backproject"] = {"res05_angstrom": entry["backproject_res05_angstrom"],
                                         "auc": entry["backproject_auc"]}
        entry["backproject_res05_angstrom"], entry["backproject_auc"] = res_bp, auc_bp
        if "vae_res05_angstrom" in entry:
            entry["previous_backproject"]["ratio"] = entry["ratio"]
            entry["ratio"] = entry["vae_res05_angstrom"] / res_bp
    result["backproject_rerun"] = ("back-projection figures recomputed with the current backproject default "
                                   "(--backproject-only); previous_backproject holds the earlier default's; "
                                   "trained-model figures are from the earlier full run")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=("continuous", "compositional", "homogeneous"))
    parser.add_argument("--n", type=int, default=20000, help="particles (default 20000)")
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "accuracy")
    parser.add_argument("--data", type=Path, default=None, help="use this simulated dataset folder")
    parser.add_argument("--run", type=Path, default=None, help="use this run folder (trained if incomplete)")
    parser.add_argument("--json", type=Path, default=None,
                        help="output JSON (default benchmarks/results/accuracy_<benchmark>.json)")
    parser.add_argument("--backproject-only", action="store_true",
                        help="compositional/homogeneous: recompute only the back-projection figures of the JSON")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.json or ROOT / "benchmarks" / "results" / f"accuracy_{args.benchmark}.json"
    if args.backproject_only:
        if args.benchmark == "continuous":
            raise SystemExit("--backproject-only applies to compositional and homogeneous")
        result = backproject_only(args, path)
    else:
        result = {"continuous": continuous, "compositional": compositional, "homogeneous": homogeneous}[
            args.benchmark](args)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
