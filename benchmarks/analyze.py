"""Benchmark of ``cryoscape analyze``: wall time on a 100k-particle zdim-8 latent file without maps (UMAP
included), k-means at 1M × zdim 8, the graph-traversal neighbour graph at 1M × zdim 8, maps per second at box 64
and 128, and ``cryodrgn analyze RUN N --skip-vol`` on the same latents.

The run is synthetic: an untrained decoder of the default size (map speed does not depend on the weights) and
latents drawn from a mixture of curved clusters (so k-means and UMAP do real work). Prints the figures and writes
benchmarks/results/analyze.json (with CPU model and ISA). Goal (idle 2-core machine): analyze ≤ 60 s at 100k.

``cryoscape analyze RUN --skip-vol`` runs as a user runs it, a fresh process, twice: "cold" with an empty numba
cache directory (NUMBA_CACHE_DIR; every numba function of umap-learn/pynndescent is compiled: the first analyze on
a machine) and "warm" with the cache the cold run left (every later analyze). The UMAP share of each is printed.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/analyze.py [--n 100000] [--kmeans-n 1000000] [--skip-maps]
        [--graph-n 1000000] [--cryodrgn] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def synthetic_latents(n: int, zdim: int, seed: int = 0) -> np.ndarray:
    """(n, zdim) float32: 6 clusters, each a noisy arc in a random 2-D plane of the latent space."""
    rng = np.random.default_rng(seed)
    k = 6
    which = rng.integers(0, k, n)
    t = rng.uniform(-1, 1, n)
    centres = rng.normal(0, 3, (k, zdim))
    axes = np.linalg.qr(rng.standard_normal((zdim, zdim)))[0]
    u, v = axes[:, 0], axes[:, 1]
    z = centres[which] + np.outer(t, u) * 2 + np.outer(t**2, v) + 0.2 * rng.standard_normal((n, zdim))
    return z.astype(np.float32)


def make_run(folder: Path, n: int, zdim: int, box: int) -> Path:
    """A run folder with a default-size untrained VAE decoder (box ``box``) and ``n`` synthetic latents."""
    from cryoscape.models.config import ModelConfig
    from cryoscape.models.vae import build_model
    from cryoscape.runs import RunDir
    from cryoscape.training.config import DataConfig, TrainConfig, to_dict

    config = TrainConfig(model=replace(ModelConfig(), zdim=zdim),
                         data=replace(DataConfig(), box_size=box, pixel_size_angstrom=1.5, data_std=1.0))
    model = build_model(config.model, box)
    run = RunDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run.save_config(config)
    run.save_checkpoint(1, {"model": model.state_dict(), "config": to_dict(config)})
    z = synthetic_latents(n, zdim)
    run.save_z(1, z, np.full_like(z, -3.0), np.arange(n))
    return folder


def cpu_description() -> dict:
    """CPU model and the SIMD extensions that matter here (from /proc/cpuinfo when present)."""
    from machine import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu_model": model, "isa": isa, "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}


def time_cli_analyze(run: Path, out: Path, numba_cache: Path | None) -> dict:
    """``cryoscape analyze RUN --skip-vol`` in a fresh process (NUMBA_CACHE_DIR=``numba_cache`` when given)."""
    env = {**os.environ, **({"NUMBA_CACHE_DIR": str(numba_cache)} if numba_cache else {})}
    cmd = [sys.executable, "-m", "cryoscape.cli.main", "analyze", str(run), "--skip-vol", "--no-notebook",
           "-o", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    steps = json.loads((out / "analysis.json").read_text())["seconds"]
    return {"wall_seconds": round(seconds, 2), "steps_seconds": steps,
            "umap_share": round(steps.get("umap", 0.0) / seconds, 3)}


def make_cryodrgn_run(folder: Path, z: np.ndarray) -> Path:
    """A cryoDRGN-format run folder that ``cryodrgn analyze RUN 1 --skip-vol`` accepts for latents ``z``.

    With --skip-vol, cryodrgn analyze reads z.1.pkl, config.yaml (for the pixel size: no CTF file given, so
    1 Å/px) and run.log (learning curve); weights.1.pkl is not opened. cryoDRGN 4.3.1 with --skip-vol fails
    writing analyze.1/pc1/pca_traversal.png (the pc folders are made only when maps are), so they are made here.
    """
    for pc in (1, 2):  # cryodrgn analyze's default --pc 2
        (folder / "analyze.1" / f"pc{pc}").mkdir(parents=True, exist_ok=True)
    with open(folder / "z.1.pkl", "wb") as handle:
        pickle.dump(np.asarray(z, dtype=np.float32), handle)
    (folder / "config.yaml").write_text(
        f"dataset_args:\n  ctf: null\nlattice_args:\n  D: 65\nmodel_args:\n  zdim: {z.shape[1]}\n")
    (folder / "run.log").write_text("".join(f"# =====> Epoch: {e} Average gen loss = 0.1, total loss = 0.{9 - e}"
                                            f"00000; Finished in 0:00:01\n" for e in range(1, 3)))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--kmeans-n", dest="kmeans_n", type=int, default=1_000_000)
    parser.add_argument("--graph-n", dest="graph_n", type=int, default=0,
                        help="time the graph-traversal neighbour graph on this many points (e.g. 1000000)")
    parser.add_argument("--cryodrgn", default=None, nargs="?", const=str(Path(__file__).resolve().parents[1]
                                                                          / ".venv-ref" / "bin" / "cryodrgn"),
                        help="also time 'cryodrgn analyze RUN 1 --skip-vol' on the same latents (path of the "
                        "cryodrgn executable; default .venv-ref/bin/cryodrgn)")
    parser.add_argument("--no-cold", dest="cold", action="store_false",
                        help="skip the cold-cache analyze (it compiles umap-learn's numba code: minutes)")
    parser.add_argument("--skip-maps", dest="skip_maps", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/analyze.json")
    args = parser.parse_args()

    from cryoscape.cli._process import configure_process

    configure_process()
    import torch

    from cryoscape.analysis.api import TrainedRun
    from cryoscape.analysis.latent import kmeans

    results: dict = {**cpu_description(), "torch_threads": torch.get_num_threads(), "n": args.n,
                     "zdim": args.zdim, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_run(tmp / "run", args.n, args.zdim, box=64)
        # cold/warm: a fresh numba cache directory for both; with --no-cold the user's usual cache (warm after
        # any earlier analyze on this machine)
        cache = tmp / "numba_cache" if args.cold else None
        for label in ("cold", "warm") if args.cold else ("warm",):
            timing = time_cli_analyze(tmp / "run", tmp / f"analyze_{label}", cache)
            results[f"analyze_{label}"] = timing
            print(f"cryoscape analyze, {args.n} particles, zdim {args.zdim}, no maps, fresh process, {label} numba "
                  f"cache: {timing['wall_seconds']:.1f} s, UMAP {timing['steps_seconds'].get('umap', 0):.1f} s "
                  f"({100 * timing['umap_share']:.0f} %)  (goal ≤ 60 s on an idle 2-core machine)")
            print("  steps (s):", timing["steps_seconds"])
        if not args.cold:
            print("  (--no-cold: numba's usual cache; warm only if an earlier analyze ran on this machine)")

        if args.cryodrgn:
            z = synthetic_latents(args.n, args.zdim)
            folder = make_cryodrgn_run(tmp / "cryodrgn_run", z)
            t0 = time.perf_counter()
            subprocess.run([args.cryodrgn, "analyze", str(folder), "1", "--skip-vol"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            results["cryodrgn_analyze"] = {"command": "cryodrgn analyze RUN 1 --skip-vol", "seconds": round(seconds, 2),
                                           "umap_fitted_on": args.n}
            print(f"cryodrgn analyze RUN 1 --skip-vol, same {args.n} latents (UMAP on all of them, its numba cache "
                  f"as installed): {seconds:.1f} s")

        if args.kmeans_n:
            z = synthetic_latents(args.kmeans_n, args.zdim, seed=1)
            t0 = time.perf_counter()
            km = kmeans(z, 20, seed=0)
            seconds = time.perf_counter() - t0
            results["kmeans_1m"] = {"n": args.kmeans_n, "k": 20, "seconds": round(seconds, 2),
                                    "iterations": km.n_iter}
            print(f"k-means K=20 on {args.kmeans_n} × {args.zdim} to convergence: {seconds:.1f} s, "
                  f"{km.n_iter} iterations")

        if args.graph_n:
            from cryoscape.analysis.trajectories import neighbour_graph

            z = synthetic_latents(args.graph_n, args.zdim, seed=2)
            t0 = time.perf_counter()
            graph = neighbour_graph(z)
            seconds = time.perf_counter() - t0
            results["neighbour_graph"] = {"n": args.graph_n, "seconds": round(seconds, 2),
                                          "mean_degree": graph.mean_degree, "max_degree": graph.max_degree,
                                          "components": graph.n_components}
            print(f"graph-traversal neighbour graph on {args.graph_n} × {args.zdim}: {seconds:.1f} s (mean degree "
                  f"{graph.mean_degree:.2f}, max {graph.max_degree}, {graph.n_components} components)")

        if not args.skip_maps:
            results["maps_per_second"] = {}
            for box in (64, 128):
                make_run(tmp / f"maps{box}", 100, args.zdim, box=box)
                mrun = TrainedRun.open(tmp / f"maps{box}", device="cpu")
                points = mrun.z[:8]
                next(mrun.iter_volumes(points[:1]))  # load the model, warm up
                count = 8 if box == 64 else 4
                t0 = time.perf_counter()
                for _ in mrun.iter_volumes(points[:count], batch_size=8):
                    pass
                rate = count / (time.perf_counter() - t0)
                results["maps_per_second"][str(box)] = round(rate, 3)
                print(f"maps at box {box} (default decoder, eval-vol path, default precision): {rate:.2f} maps/s")
    results["load_average_1min_at_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
