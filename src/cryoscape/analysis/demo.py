"""The demo pipeline: simulate a continuous dataset, train a VAE, analyse it, compare its maps with the truth.

Used by ``cryoscape demo`` / ``make demo``. Everything is made here from nothing: a ``hinge`` dataset (a
two-domain pseudo-molecule whose second domain swings about a hinge), particles with CTF and noise, a VAE
trained on them, and the ``cryoscape analyze`` pipeline on the result. On top of the analysis the demo draws
what only a simulation can show: the latent coordinate against the true hinge angle, and the generated maps
along the latent coordinate side by side with the true maps of the nearest hinge angle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import first_component, spearman_with_truth
from cryoscape.configio import check_range, option
from cryoscape.plotting.latent import plot_latent_vs_truth
from cryoscape.plotting.maps import write_paired_montage
from cryoscape.runs.layout import AnalysisLayout, SeriesLayout


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demo (defaults: a few minutes on two CPU cores).

    ``n_maps`` is the number of maps along PC1 and PC2 when ``zdim`` ≥ 2; with zdim 1 the motion is shown by the
    ten maps of the analysis at the 5th, 15th … 95th percentiles of z.
    """

    n_particles: int = option(4000, flags=("-n",), help="particles to simulate (default %(default)s)")
    box_size: int = option(32, help="box in pixels (default %(default)s)")
    snr: float = option(0.3, help="signal-to-noise ratio (default %(default)s)")
    num_epochs: int = option(10, flags=("--epochs",), help="training epochs (default %(default)s)")
    zdim: int = option(8, help="latent dimension (default %(default)s)")
    enc_dim: int = option(128, help="encoder width (default %(default)s)")
    dec_dim: int = option(128, help="decoder width (default %(default)s)")
    n_maps: int = option(8, help="maps along PC1 and PC2 when zdim ≥ 2 (default %(default)s)")
    ksample: int = option(20, help="k-means clusters of the analysis (default %(default)s)")
    seed: int = option(0, help="random seed (default %(default)s)")

    def __post_init__(self) -> None:
        check_range(self.n_particles, "--n-particles", minimum=100)
        check_range(self.box_size, "--box-size", minimum=16)
        check_range(self.snr, "--snr", minimum=0.0, exclusive_minimum=True)
        check_range(self.num_epochs, "--epochs", minimum=1)
        check_range(self.zdim, "--zdim", minimum=1)
        check_range(self.n_maps, "--n-maps", minimum=2)
        check_range(self.ksample, "--ksample", minimum=1)


@dataclass(frozen=True)
class DemoResult:
    """Where the demo's results are and how well the latent recovered the motion."""

    out_dir: Path
    dataset_dir: Path
    run_dir: Path
    analyze_dir: Path
    maps_dir: Path
    motion_path: Path
    learning_curve_path: Path
    plot_path: Path
    spearman: float
    seconds: float


def _truth_coordinate(points_c: np.ndarray, particle_c: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Median true coordinate of the ``k`` particles nearest each point along the latent coordinate (m,)."""
    out = []
    for c in np.asarray(points_c):
        near = np.argsort(np.abs(particle_c - c))[:k]
        out.append(float(np.median(truth[near])))
    return np.asarray(out)


def run_demo(out_dir: str | os.PathLike, config: DemoConfig = DemoConfig()) -> DemoResult:
    """Run the whole pipeline into ``out_dir``: dataset/, run/, run/analyze.<N>/, motion.png, latent_vs_truth.png,
    learning_curve.png."""
    from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
    from cryoscape.models.config import ModelConfig
    from cryoscape.simulate import preset_config, run_simulation
    from cryoscape.training.config import DataConfig, TrainConfig
    from cryoscape.training.loop import fit

    start = time.perf_counter()
    out = Path(out_dir)
    data_dir, run_dir = out / "dataset", out / "run"
    sim = preset_config("hinge-64", n_particles=config.n_particles, box_size=config.box_size, snr=config.snr,
                        seed=config.seed)
    print(f"[1/4] simulating {config.n_particles} hinge particles ({config.box_size} px, SNR {config.snr:g}, "
          f"CTF) → {data_dir}", flush=True)
    dataset = run_simulation(sim, data_dir)

    print(f"[2/4] training a VAE (zdim {config.zdim}, {config.num_epochs} epochs) → {run_dir}", flush=True)
    train = TrainConfig(model=replace(ModelConfig(), zdim=config.zdim, enc_dim=config.enc_dim,
                                      dec_dim=config.dec_dim),
                        data=replace(DataConfig(), particles=str(dataset.star_path)),
                        num_epochs=config.num_epochs, seed=config.seed,
                        checkpoint_every=max(1, config.num_epochs // 3))
    fit(train, run_dir, overwrite=True)  # a demo rerun replaces its own run

    run = TrainedRun.open(run_dir, device="cpu")
    what = "PCA, UMAP, " if run.zdim >= 2 else ""
    print(f"[3/4] cryoscape analyze ({what}k-means {config.ksample}, maps along the latent coordinate, report) → "
          f"{run.analyze_dir}", flush=True)
    analysis = run_analysis(run, AnalyzeConfig(ksample=config.ksample, pc=min(2, run.zdim), n_per_pc=config.n_maps,
                                               seed=config.seed), overwrite=True)
    adir = analysis.out_dir
    layout = AnalysisLayout(adir)

    print("[4/4] comparing with the ground truth", flush=True)
    maps_dir = (layout.percentiles if run.zdim == 1 else layout.pc(1)).root
    truth = compare_with_truth(run, data_dir, maps_dir, out, curve_png=layout.learning_curve)
    plot_path, motion_path, curve_path, rho = truth
    return DemoResult(out_dir=out, dataset_dir=data_dir, run_dir=run_dir, analyze_dir=adir, maps_dir=maps_dir,
                      motion_path=motion_path, learning_curve_path=curve_path, plot_path=plot_path, spearman=rho,
                      seconds=time.perf_counter() - start)


def compare_with_truth(run: TrainedRun, dataset_dir: str | os.PathLike, maps_dir: str | os.PathLike,
                       out_dir: str | os.PathLike, curve_png: str | os.PathLike | None = None):
    """The demo's ground-truth figures for a run trained on a simulated continuous dataset.

    Writes ``latent_vs_truth.png`` (first latent component against the true hinge angle; epoch, particle count
    and zdim in the title, a plain-language caption), ``motion.png`` (each map of ``maps_dir`` next to the true
    map of ``dataset_dir/gt_volumes`` nearest in hinge angle: the true coordinate of a map is the median true
    coordinate of the 1 % of particles nearest its point along the latent coordinate) and a copy of
    ``curve_png`` as ``learning_curve.png``.

    Returns
    -------
    (latent_vs_truth path, motion path, learning curve path or None, Spearman ρ)
    """
    import pandas as pd

    from cryoscape.analysis.latent import fit_pca
    from cryoscape.io.mrc import read_mrc

    dataset_dir, maps_dir, out = Path(dataset_dir), Path(maps_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    z = run.z
    table = pd.read_csv(dataset_dir / "ground_truth.csv").set_index("index").loc[run.indices]
    angle = table["hinge_angle_deg"].to_numpy()
    coord = table["coordinate"].to_numpy()
    latent = first_component(z)
    rho = spearman_with_truth(z, angle)
    what = "z" if run.zdim == 1 else "latent PC1"
    plot_path = plot_latent_vs_truth(
        latent, angle, out / "latent_vs_truth.png", xlabel="true hinge angle (°)", ylabel=what,
        title=f"{what} vs true hinge angle — epoch {run.epoch}, {len(z)} particles, zdim {run.zdim}\n"
              f"Spearman ρ = {rho:+.3f}",
        caption="Each dot is one particle. If the network learned the motion, the dots follow one rising or "
                "falling curve: the latent coordinate sorts particles by their true hinge angle (|ρ| = 1: "
                "perfectly, 0: not at all).")
    curve_path = None
    if curve_png is not None and Path(curve_png).is_file():
        curve_path = out / Path(curve_png).name
        curve_path.write_bytes(Path(curve_png).read_bytes())

    series = SeriesLayout(maps_dir)
    points = np.loadtxt(series.z_values, ndmin=2)
    generated = [read_mrc(p)[0] for p in series.existing_maps()]
    points_c = points[:, 0] if run.zdim == 1 else fit_pca(z).transform(points)[:, 0]
    true_c = _truth_coordinate(points_c, latent, coord, k=max(5, len(z) // 100))
    gt = pd.read_csv(dataset_dir / "gt_volumes" / "volumes.csv")
    gt_coord = gt["coordinate"].to_numpy()
    nearest = [int(np.abs(gt_coord - c).argmin()) for c in true_c]
    truth_maps = [read_mrc(dataset_dir / "gt_volumes" / gt["file"][j])[0] for j in nearest]
    order = np.argsort(coord)
    truth_angle = np.interp(gt_coord[nearest], coord[order], angle[order])
    labels = [f"{i + 1}: {what}={c:.2g}" for i, c in enumerate(points_c)]
    truth_labels = [f"{gt['file'][j]}\n{a:.0f}°" for j, a in zip(nearest, truth_angle)]
    motion_path = write_paired_montage(
        generated, truth_maps, labels, truth_labels, out / "motion.png",
        title=f"Generated maps along {what} (left, {maps_dir.name}/vol_001…) next to the true map of the nearest "
              f"hinge angle (right)\nepoch {run.epoch}, {len(z)} particles, zdim {run.zdim}")
    return plot_path, motion_path, curve_path, rho
