"""The demo pipeline: simulate a continuous dataset, train a VAE, look at the latent space, make maps.

Used by ``cryoscape demo`` / ``make demo``. Everything is made here from nothing: a ``hinge`` dataset (a
two-domain pseudo-molecule whose second domain swings about a hinge), particles with CTF and noise, a VAE
trained on them, and maps generated along the first principal component of the latents. The score that says
whether it worked is the rank correlation between that component and the true hinge angle.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cryoscape.analysis.latent import first_component, pc_traversal, spearman_with_truth
from cryoscape.analysis.plots import plot_latent_vs_truth


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demo (defaults: a few minutes on two CPU cores)."""

    n_particles: int = 4000
    box_size: int = 32
    snr: float = 0.3
    num_epochs: int = 15
    zdim: int = 1
    n_maps: int = 8
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    """Where the demo's results are and how well the latent recovered the motion."""

    out_dir: Path
    dataset_dir: Path
    run_dir: Path
    maps_dir: Path
    plot_path: Path
    spearman: float
    seconds: float


def run_demo(out_dir: str | os.PathLike, config: DemoConfig = DemoConfig()) -> DemoResult:
    """Run the whole pipeline into ``out_dir`` (dataset/, run/, maps/, latent_vs_truth.png)."""
    from cryoscape.io.mrc import write_mrc
    from cryoscape.models.config import ModelConfig
    from cryoscape.runs import RunDir
    from cryoscape.simulate import preset_config, run_simulation
    from cryoscape.training.config import DataConfig, TrainConfig, load_trained
    from cryoscape.training.loop import fit

    start = time.perf_counter()
    out = Path(out_dir)
    data_dir, run_dir, maps_dir = out / "dataset", out / "run", out / "maps"
    sim = preset_config("hinge-64", n_particles=config.n_particles, box_size=config.box_size, snr=config.snr,
                        seed=config.seed)
    print(f"[1/4] simulating {config.n_particles} hinge particles ({config.box_size} px, SNR {config.snr:g}, "
          f"CTF) → {data_dir}", flush=True)
    dataset = run_simulation(sim, data_dir)

    print(f"[2/4] training a VAE (zdim {config.zdim}, {config.num_epochs} epochs) → {run_dir}", flush=True)
    train = TrainConfig(model=replace(ModelConfig(), zdim=config.zdim),
                        data=replace(DataConfig(), particles=str(dataset.star_path)),
                        num_epochs=config.num_epochs, seed=config.seed,
                        checkpoint_every=max(1, config.num_epochs // 3))
    fit(train, run_dir)

    print("[3/4] latent space vs the true hinge angle", flush=True)
    run = RunDir(run_dir)
    z = run.load_z().mean
    with open(dataset.ground_truth_path) as handle:
        angle = np.array([float(row["hinge_angle_deg"]) for row in csv.DictReader(handle)])
    pc1 = first_component(z)
    rho = spearman_with_truth(z, angle)
    plot_path = plot_latent_vs_truth(pc1, angle, out / "latent_vs_truth.png",
                                     xlabel="true hinge angle (°)", ylabel="latent PC1",
                                     title=f"Spearman ρ = {rho:+.3f}")

    print(f"[4/4] {config.n_maps} maps along latent PC1 (5th–95th percentile) → {maps_dir}", flush=True)
    model, trained, _ = load_trained(run, None, device="cpu")
    points = pc_traversal(z, pc=0, n_points=config.n_maps)  # zdim 1: percentiles of z itself
    import torch

    with torch.no_grad():
        vols = model.decoder.eval_volumes(torch.as_tensor(points, dtype=torch.float32),
                                          box_size=trained.data.box_size, radius_px=trained.volume_radius_px,
                                          scale=float(trained.data.data_std or 1.0)).numpy()
    maps_dir.mkdir(parents=True, exist_ok=True)
    for i, vol in enumerate(vols):
        write_mrc(maps_dir / f"vol_{i:03d}.mrc", vol, voxel_size_angstrom=float(trained.data.pixel_size_angstrom))
    np.savetxt(maps_dir / "z_values.txt", points)
    return DemoResult(out_dir=out, dataset_dir=data_dir, run_dir=run_dir, maps_dir=maps_dir, plot_path=plot_path,
                      spearman=rho, seconds=time.perf_counter() - start)
