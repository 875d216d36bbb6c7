"""Throughput (images/s) of voxel back-projection at box 64 and 128, and of the dataset simulator.

Back-projection is timed end to end on a stack on disk (reading, FFT, shift, CTF, trilinear insertion into
two half-set grids, final division and inverse FFT), with the default options (Wiener CTF correction,
no padding, the default since the map-fidelity fix). The simulator is timed writing a complete ``hinge`` dataset with
CTF and noise (two passes over the images: signal variance, then the noisy images) at box 64. Prints a table
and writes JSON.

    python benchmarks/backproject.py                                  # 2000 images per box
    python benchmarks/backproject.py --n 50 --sim-n 50 --json /tmp/bp.json   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_particles(folder: Path, n: int, box: int, seed: int = 0):
    """Random images with random poses and CTF (mrcs + cryoDRGN pickles), loaded as a ParticleSet."""
    from cryoscape.data.particles import load_particles
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.io.legacy import write_ctf_pickle, write_pose_pickle
    from cryoscape.io.mrc import write_mrc
    from cryoscape.io.records import CTFParams, Poses

    rng = np.random.default_rng(seed)
    write_mrc(folder / "p.mrcs", rng.normal(size=(n, box, box)).astype(np.float32), voxel_size_angstrom=2.0)
    write_pose_pickle(folder / "pose.pkl", Poses(random_rotations(n, rng), rng.normal(size=(n, 2)), box))
    dfu = rng.uniform(1e4, 2e4, n)
    ctf = CTFParams(pixel_size_angstrom=np.full(n, 2.0), defocus_u_angstrom=dfu, defocus_v_angstrom=dfu - 100,
                    defocus_angle_deg=rng.uniform(0, 90, n), voltage_kv=np.full(n, 300.0),
                    cs_mm=np.full(n, 2.7), amplitude_contrast=np.full(n, 0.1), phase_shift_deg=np.zeros(n),
                    box_size=box)
    write_ctf_pickle(folder / "ctf.pkl", ctf)
    return load_particles(folder / "p.mrcs", poses=folder / "pose.pkl", ctf=folder / "ctf.pkl")


def time_backprojection(n: int, box: int, pad: int | None, chunk: int) -> dict:
    """images/s of back-projecting ``n`` random images of ``box`` pixels."""
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject

    config = BackprojectConfig(pad_factor=pad, chunk_size=chunk)
    with tempfile.TemporaryDirectory() as tmp:
        particles = make_particles(Path(tmp), n, box)
        start = time.perf_counter()
        backproject(particles, config, show_progress=False)
        seconds = time.perf_counter() - start
    return {"box": box, "n_images": n, "pad_factor": config.pad_for(box), "seconds": seconds,
            "images_per_s": n / seconds}


def time_simulation(n: int, box: int) -> dict:
    """images/s of writing a complete simulated dataset (``run_simulation``)."""
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.simulator import run_simulation

    config = preset_config("hinge-64", n_particles=n, box_size=box)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_simulation(config, tmp, show_progress=False)
        seconds = time.perf_counter() - start
    return {"box": box, "n_images": n, "source": config.source, "ctf": config.ctf, "snr": config.snr,
            "seconds": seconds, "images_per_s": n / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000,
                        help="images per back-projection benchmark (default 2000)")
    parser.add_argument("--boxes", type=int, nargs="+", default=[64, 128], help="boxes (default 64 128)")
    parser.add_argument("--pad", type=int, default=None, help="padding factor (default: the library default, 1)")
    parser.add_argument("--chunk", type=int, default=256, help="images per chunk (default 256)")
    parser.add_argument("--sim-n", type=int, default=2000,
                        help="images of the simulator benchmark (default 2000)")
    parser.add_argument("--sim-box", type=int, default=64, help="box of the simulator benchmark (default 64)")
    parser.add_argument("--json", default="benchmarks/results/backproject.json", help="output JSON path")
    args = parser.parse_args(argv)

    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "backproject": [],
        "simulate": None,
    }
    print(f"{'what':<22}{'box':>6}{'pad':>5}{'images':>9}{'seconds':>10}{'images/s':>11}")
    for box in args.boxes:
        row = time_backprojection(args.n, box, args.pad, args.chunk)
        results["backproject"].append(row)
        print(f"{'backproject (wiener)':<22}{box:>6}{row['pad_factor']:>5}{args.n:>9}{row['seconds']:>10.2f}"
              f"{row['images_per_s']:>11.1f}")
    sim = time_simulation(args.sim_n, args.sim_box)
    results["simulate"] = sim
    print(f"{'simulate (hinge, CTF)':<22}{args.sim_box:>6}{'-':>5}{args.sim_n:>9}{sim['seconds']:>10.2f}"
          f"{sim['images_per_s']:>11.1f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
