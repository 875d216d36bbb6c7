"""Accuracy of the trajectory and landscape commands on simulated data, and the time of ``analyze-landscape``.

Three parts (each simulates and trains what is missing in --workdir; results printed and saved as JSON):

* ``hinge``: hinge preset at box 32 (1500 particles, SNR 1, CTF), VAE zdim 8 (encoder 64x2, decoder 64x2,
  batch 16, lr 1e-3, 30 epochs: what finishes on the shared 2-core machine).
  ``cryoscape pc-traversal RUN --volumes``: each traversal map is matched by FSC (area under the curve) to the
  true map on a fine grid of hinge angles; goal |Spearman(traversal position, matched angle)| ≥ 0.95.
  ``cryoscape graph-traversal RUN --anchors A B --volumes`` between the particles with the smallest and largest
  true angle in the largest component of the graph: goal the true angles along the path are monotone. Reported
  for the path particles' true angles and for the maps (matched to the truth as for PC1), both along the default
  smoothed path and at the particles' own encodings (--smooth 1): fraction of forward steps, largest backward
  step, Spearman.
* ``assembly``: assembly preset (core, core+A, core+A+B) at box 32 (1500 particles, SNR 1), the same VAE.
  ``cryoscape analyze-landscape RUN --sketch-size 100 -M 3``: goal ARI(landscape states, true states) ≥ 0.95 on
  particles; ``cryoscape analyze RUN --ksample 3`` style check: the map at each k-means (k = 3) on-data centre
  against the true map of its state (FSC 0.5 resolution) vs back-projecting that state's true particles
  (goal ≤ 1.25×).
* ``timing``: ``cryoscape analyze-landscape`` with 500 maps at box 64 on a default-architecture (256x3) run
  (1 epoch on 600 particles: the time does not depend on training); prints the wall time (goal ≤ 180 s on an
  idle 2-core machine).

    python benchmarks/analysis_accuracy.py prepare          # simulate + train both datasets
    python benchmarks/analysis_accuracy.py hinge
    python benchmarks/analysis_accuracy.py assembly
    python benchmarks/analysis_accuracy.py timing
    python benchmarks/analysis_accuracy.py all      # all parts; JSON: benchmarks/results/analysis_accuracy.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import ROOT, cli, shown

NET = ["--enc-dim", "64", "--enc-layers", "2", "--dec-dim", "64", "--dec-layers", "2"]


def dataset(args, preset: str, name: str) -> Path:
    data = args.workdir / f"{name}_{args.n}_box{args.box}_snr{args.snr:g}"
    if not (data / "particles.star").exists():
        cli("simulate", "--preset", preset, "-n", str(args.n), "--box-size", str(args.box), "--snr",
            str(args.snr), "--seed", "11", "--no-progress", "-o", str(data), log=args.workdir / "simulate.log")
    return data


def trained(args, data: Path, name: str) -> tuple[Path, float | None]:
    """The VAE run on ``data`` (trained unless it already has ``args.epochs`` epochs) and its training time."""
    from cryoscape.runs import RunDir

    run = args.workdir / f"{name}_vae_z{args.zdim}"
    if run.exists() and (run / "config.yaml").exists() and RunDir(run).latest_epoch() is not None:
        done = RunDir(run).latest_epoch()
        if done == args.epochs:
            return run, None
        if done < args.epochs:  # continue the same run to more epochs
            return run, cli("train-vae", "--resume", str(run), "-n", str(args.epochs),
                            log=args.workdir / f"train_{name}.log")
    seconds = cli("train-vae", str(data / "particles.star"), "--zdim", str(args.zdim), "-n", str(args.epochs),
                  *NET, "-b", "16", "--lr", "1e-3", "--seed", "0", "--overwrite", "-o", str(run),
                  log=args.workdir / f"train_{name}.log")
    return run, seconds


def ground_truth(data: Path) -> dict[str, np.ndarray]:
    with open(data / "ground_truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    out = {"index": np.array([int(r["index"]) for r in rows]), "state": np.array([int(r["state"]) for r in rows])}
    if rows and rows[0].get("hinge_angle_deg"):
        out["hinge_angle_deg"] = np.array([float(r["hinge_angle_deg"]) for r in rows])
        out["coordinate"] = np.array([float(r["coordinate"]) for r in rows])
    return out


def prepare(args) -> dict:
    out = {}
    for preset, name in (("hinge-64", "hinge"), ("assembly-64", "assembly")):
        if args.only and name != args.only:
            continue
        data = dataset(args, preset, name)
        run, seconds = trained(args, data, name)
        out[name] = {"dataset": shown(data), "run": shown(run), "train_seconds": seconds}
    return out


def truth_maps(data: Path, coordinates: np.ndarray, state: int = 0) -> list[np.ndarray]:
    from cryoscape.simulate import GroundTruthVolumes, SimulationConfig

    truth = GroundTruthVolumes(SimulationConfig.load_yaml(data / "config.yaml"))
    return [np.asarray(truth(state, float(c)), dtype=np.float32) for c in coordinates]


def match_to_truth(maps: list[Path], truths: list[np.ndarray], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each map, the truth value (e.g. hinge angle) of the true map with the highest FSC AUC, and that AUC."""
    from cryoscape.io.mrc import read_mrc
    from cryoscape.reconstruct.fsc import fsc_curve

    matched, best = [], []
    for path in maps:
        vol, header = read_mrc(path)
        aucs = [fsc_curve(vol, t, header.voxel_size_angstrom).area_under_curve() for t in truths]
        matched.append(values[int(np.argmax(aucs))])
        best.append(max(aucs))
    return np.asarray(matched), np.asarray(best)


def hinge(args) -> dict:
    from scipy.sparse.csgraph import connected_components
    from scipy.stats import spearmanr

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.latent import spearman_with_truth
    from cryoscape.analysis.trajectories import neighbour_graph
    from cryoscape.runs import SeriesLayout

    data = dataset(args, "hinge-64", "hinge")
    run_path, train_seconds = trained(args, data, "hinge")
    gt = ground_truth(data)
    run = TrainedRun.open(run_path)
    angle = gt["hinge_angle_deg"][run.indices]
    coords = np.linspace(0.0, 1.0, 61)
    from cryoscape.simulate import SimulationConfig

    a0, a1 = SimulationConfig.load_yaml(data / "config.yaml").hinge_angles_deg
    grid_angle = a0 + coords * (a1 - a0)  # the simulator's law (linear in the coordinate)
    truths = truth_maps(data, coords)
    log = args.workdir / "hinge_analysis.log"

    pc_out = args.workdir / "hinge_pc"
    pc_seconds = cli("pc-traversal", str(run_path), "-n", "10", "--volumes", "-o", str(pc_out), log=log)
    pc_maps = sorted((pc_out).glob("vol_*.mrc"))
    pc_angle, pc_auc = match_to_truth(pc_maps, truths, grid_angle)
    pc_rho = float(spearmanr(np.arange(len(pc_maps)), pc_angle).statistic)

    # anchors: the particles with the most extreme true angles inside the largest component of the graph
    graph = neighbour_graph(run.z)
    _, comp = connected_components(graph.matrix, directed=False)
    giant = np.flatnonzero(comp == np.bincount(comp).argmax())
    lo_row = int(giant[angle[giant].argmin()])
    hi_row = int(giant[angle[giant].argmax()])
    a, b = int(run.indices[lo_row]), int(run.indices[hi_row])
    g_out = args.workdir / f"hinge_graph_{a}-{b}"
    g_seconds = cli("graph-traversal", str(run_path), "--anchors", str(a), str(b), "--volumes", "-o", str(g_out),
                    log=log)
    path = np.loadtxt(SeriesLayout(g_out).path_ind, dtype=np.int64, ndmin=1)
    path_angle = gt["hinge_angle_deg"][path]
    g_maps = SeriesLayout(g_out).existing_maps()
    g_matched, g_auc = match_to_truth(g_maps, truths, grid_angle)
    # the same path with maps at the path particles' own encodings (--smooth 1), for comparison
    raw_out = args.workdir / f"hinge_graph_{a}-{b}_raw"
    cli("graph-traversal", str(run_path), "--anchors", str(a), str(b), "--volumes", "--smooth", "1", "-o",
        str(raw_out), log=log)
    raw_matched, raw_auc = match_to_truth(sorted(raw_out.glob("vol_*.mrc")), truths, grid_angle)
    return {
        "dataset": shown(data), "run": shown(run_path), "train_seconds": train_seconds,
        "latent_pc1_spearman_vs_angle": abs(spearman_with_truth(run.z, angle)),
        "pc_traversal": {
            "folder": shown(pc_out), "seconds": pc_seconds, "matched_true_angle_deg": pc_angle.tolist(),
            "best_auc": pc_auc.tolist(), "abs_spearman_position_vs_matched_angle": abs(pc_rho), "goal": 0.95,
            "pass": abs(pc_rho) >= 0.95,
        },
        "graph_traversal": {
            "folder": shown(g_out), "seconds": g_seconds, "anchors": [a, b],
            "anchor_true_angles_deg": [float(angle[lo_row]), float(angle[hi_row])],
            "graph_cutoff": graph.cutoff, "graph_mean_degree": graph.mean_degree,
            "graph_max_degree": graph.max_degree, "graph_components": graph.n_components,
            "largest_component": len(giant), "path_nodes": len(path),
            "particles": {"true_angles_deg": path_angle.tolist(), **monotonicity(path_angle)},
            "maps_smoothed_path": {"smooth_neighbours": 10, "matched_true_angle_deg": g_matched.tolist(),
                                   "best_auc": g_auc.tolist(), **monotonicity(g_matched)},
            "maps_at_particles": {"smooth_neighbours": 1, "matched_true_angle_deg": raw_matched.tolist(),
                                  "best_auc": raw_auc.tolist(), **monotonicity(raw_matched)},
        },
    }


def monotonicity(values: np.ndarray) -> dict:
    """How monotone a sequence is along its position: forward/backward step fractions (ties neither), the
    largest step against the overall direction, Spearman(position, value)."""
    from scipy.stats import spearmanr

    values = np.asarray(values, dtype=np.float64)
    steps = np.diff(values)
    direction = 1.0 if values[-1] >= values[0] else -1.0
    steps = steps * direction
    return {"monotone": bool(np.all(steps >= 0)), "fraction_steps_forward": float(np.mean(steps > 0)),
            "fraction_steps_backward": float(np.mean(steps < 0)),
            "largest_backward_step_deg": float(max(0.0, -steps.min(initial=0.0))),
            "spearman_position_vs_value": float(spearmanr(np.arange(len(values)), values).statistic)}


def assembly(args) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.latent import kmeans
    from cryoscape.io.mrc import read_mrc
    from cryoscape.reconstruct.fsc import fsc_curve
    from cryoscape.runs import LandscapeLayout

    data = dataset(args, "assembly-64", "assembly")
    run_path, train_seconds = trained(args, data, "assembly")
    gt = ground_truth(data)
    run = TrainedRun.open(run_path)
    states = gt["state"][run.indices]
    n_states = int(states.max()) + 1
    log = args.workdir / "assembly_analysis.log"
    out = args.workdir / "assembly_landscape"
    seconds = cli("analyze-landscape", str(run_path), "--sketch-size", "100", "-M", str(n_states), "--skip-umap",
                  "--overwrite", "-o", str(out), log=log)  # a rerun replaces its own earlier result
    labels = np.loadtxt(LandscapeLayout(out).labels, dtype=np.int64)
    ari = float(adjusted_rand_score(states, labels))
    voxel = run.voxel_size_angstrom()

    def resolution(vol, truth):
        curve = fsc_curve(vol, truth, voxel)
        return curve.resolution_angstrom(0.5), curve.area_under_curve()

    truths = [read_mrc(data / "gt_volumes" / f"state_{s:02d}.mrc")[0] for s in range(n_states)]
    backprojected = []
    for s in range(n_states):
        bp_dir = args.workdir / f"assembly_bp_state{s}"
        if not (bp_dir / "map.mrc").exists():
            ind = args.workdir / f"assembly_state{s}.txt"
            np.savetxt(ind, np.flatnonzero(gt["state"] == s), fmt="%d")
            cli("backproject", str(data / "particles.star"), "--ind", str(ind), "-o", str(bp_dir), log=log)
        backprojected.append(resolution(read_mrc(bp_dir / "map.mrc")[0], truths[s]))

    km = kmeans(run.z, n_states, seed=0)
    centre_maps = run.volumes(run.z[km.on_data_indices])
    centres = []
    for c in range(n_states):
        state = int(np.bincount(states[km.labels == c], minlength=n_states).argmax())
        res, auc = resolution(centre_maps[c], truths[state])
        centres.append({"cluster": c + 1, "state": state, "cluster_size": int((km.labels == c).sum()),
                        "vae_res05_angstrom": res, "vae_auc": auc,
                        "backproject_res05_angstrom": backprojected[state][0],
                        "backproject_auc": backprojected[state][1], "ratio": res / backprojected[state][0],
                        "goal_ratio": 1.25, "pass": res / backprojected[state][0] <= 1.25})
    state_means = []
    for s in range(1, n_states + 1):
        members = states[labels == s]
        if members.size == 0:
            continue
        true_state = int(np.bincount(members, minlength=n_states).argmax())
        res, auc = resolution(read_mrc(out / f"state_{s:02d}_mean.mrc")[0], truths[true_state])
        state_means.append({"landscape_state": s, "true_state": true_state, "particles": int(members.size),
                            "purity": float(np.mean(members == true_state)), "mean_map_res05_angstrom": res,
                            "mean_map_auc": auc})
    return {"dataset": shown(data), "run": shown(run_path), "train_seconds": train_seconds,
            "landscape": {"folder": shown(out), "seconds": seconds, "ari": ari, "goal_ari": 0.95,
                          "pass": ari >= 0.95, "states": state_means},
            "kmeans_centres": {"ari_kmeans": float(adjusted_rand_score(states, km.labels)), "centres": centres,
                               "pass": all(c["pass"] for c in centres)}}


def timing(args) -> dict:
    """``analyze-landscape`` with 500 maps at box 64 on a default-architecture run."""
    work = args.workdir
    data = work / "timing_assembly64_600"
    if not (data / "particles.star").exists():
        cli("simulate", "--preset", "assembly-64", "-n", "600", "--seed", "5", "--no-progress", "-o", str(data),
            log=work / "simulate.log")
    run_path = work / "timing_vae_default"
    from cryoscape.runs import LandscapeLayout, RunDir

    if not (run_path / "config.yaml").exists() or RunDir(run_path).latest_epoch() != 1:
        cli("train-vae", str(data / "particles.star"), "--zdim", "8", "-n", "1", "-b", "32", "--overwrite", "-o",
            str(run_path), log=work / "train_timing.log")
    out = work / "timing_landscape"
    seconds = cli("analyze-landscape", str(run_path), "--sketch-size", "500", "--skip-umap", "--overwrite", "-o",
                  str(out), log=work / "timing.log")  # a rerun replaces its own earlier result
    summary = json.loads(LandscapeLayout(out).summary.read_text())
    return {"run": shown(run_path), "architecture": "default (enc/dec 256x3), zdim 8", "maps": 500, "box": 64,
            "wall_seconds": seconds, "internal_timings": summary["timings"], "goal_seconds_idle_2_cores": 180,
            "load_average_1min_at_end": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("prepare", "hinge", "assembly", "timing", "all"))
    parser.add_argument("--n", type=int, default=1500, help="particles per dataset (default 1500)")
    parser.add_argument("--box", type=int, default=32, help="simulation box (default 32)")
    parser.add_argument("--snr", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--only", choices=("hinge", "assembly"), default=None, help="prepare one dataset only")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "analysis_accuracy")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "analysis_accuracy.json")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    parts = {"prepare": prepare, "hinge": hinge, "assembly": assembly, "timing": timing}
    names = ["hinge", "assembly", "timing"] if args.part == "all" else [args.part]
    for name in names:
        result = parts[name](args)
        print(json.dumps({name: result}, indent=2, default=float))
        if name != "prepare":  # merge with the parts stored by other invocations (read now, not at start)
            stored = json.loads(args.json.read_text()) if args.json.exists() else {}
            stored[name] = result
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(stored, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
