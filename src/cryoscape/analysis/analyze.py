"""The ``cryoscape analyze`` pipeline: plots, clusters, traversals and maps of a trained run's latent space.

:func:`run_analysis` writes into ``RUN/analyze.<epoch>/`` (or any folder)::

    analysis.json                 what was computed: N, zdim, explained variance, cluster sizes, files
    pca.npy                       (N, zdim) float32 PC coordinates, rows aligned with z
    umap.npy                      (N, 2) float32 (not with skip_umap)
    *.png                         explained variance, scatter / hexbin / density contour (PCA and UMAP), learning curve
    kmeans<K>/labels.txt          N lines: the 1-based cluster id of row i of z
    kmeans<K>/centers.txt         K rows: on-data centre z of clusters 1..K
    kmeans<K>/centers_ind.txt     K lines: original 0-based particle index of each centre
    kmeans<K>/vol_001.mrc …       map of cluster i = vol_00i; montage.png; kmeans<K>.cxc
    pc1/, pc2/ …                  z_values.txt, maps, montage.png, pc<i>.cxc (points 5th..95th percentile)
    percentiles/                  zdim 1: maps at the 5th, 15th … 95th percentiles of z
    analyze.ipynb                 a notebook that reproduces the figures with the Python API

zdim 1 replaces the PCA/UMAP plots by a histogram of z and z against the particle index. Memory is O(N zdim)
plus ``batch_size`` maps: maps are streamed through the decoder's inference path one batch at a time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.analysis import plots
from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import (
    UMAP_FIT_MAX,
    fit_pca,
    fit_umap,
    kmeans,
    pc_traversal,
    percentile_points,
)
from cryoscape.analysis.volumes import describe_series
from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open

log = logging.getLogger("cryoscape.analysis")

PERCENTILES = tuple(range(5, 100, 10))


@dataclass(frozen=True)
class AnalyzeConfig:
    """Options of ``cryoscape analyze`` (flag = field: ``--ksample`` = ``ksample`` …).

    Attributes
    ----------
    ksample : int
        Number of k-means clusters (maps at their on-data centres).
    pc : int
        Principal components to traverse (``pc1/`` … ``pc<pc>/``), at most zdim.
    n_per_pc : int
        Points (maps) per PC traversal, evenly spaced from the 5th to the 95th percentile.
    skip_umap : bool
        Do not compute UMAP (no ``umap.npy``, no UMAP plots).
    skip_vol : bool
        Do not generate maps (z values, labels and plots are still written).
    downsample : int or None
        Box of the maps (even, ≤ training box; voxel size scales by D_train/D); None = the training box.
    flip, invert : bool
        Mirror the maps (reverse z) / multiply them by -1.
    batch_size : int
        Maps decoded per batch.
    seed : int
        Seed of k-means and UMAP.
    umap_fit_max : int
        Particles UMAP is fitted on; the rest are placed from their nearest fitted neighbours.
    umap_transform : bool
        Place the rest with ``UMAP.transform`` instead (slower).
    notebook : bool
        Write ``analyze.ipynb``.
    """

    ksample: int = 20
    pc: int = 2
    n_per_pc: int = 10
    skip_umap: bool = False
    skip_vol: bool = False
    downsample: int | None = None
    flip: bool = False
    invert: bool = False
    batch_size: int = 8
    seed: int = 0
    umap_fit_max: int = UMAP_FIT_MAX
    umap_transform: bool = False
    notebook: bool = True

    def validate(self) -> AnalyzeConfig:
        if self.ksample < 1:
            raise InputError(f"--ksample must be at least 1, got {self.ksample}")
        if self.pc < 0:
            raise InputError(f"--pc must be ≥ 0, got {self.pc}")
        if self.n_per_pc < 2:
            raise InputError(f"--n-per-pc must be at least 2, got {self.n_per_pc}")
        if self.umap_fit_max < 100:
            raise InputError(f"--umap-fit-max must be at least 100, got {self.umap_fit_max}")
        return self


@dataclass(frozen=True)
class AnalyzeResult:
    """What :func:`run_analysis` wrote: the folder and the content of its ``analysis.json``."""

    out_dir: Path
    summary: dict[str, Any]


def kmeans_dir_name(k: int) -> str:
    """``kmeans<K>``: the folder of the k-means results."""
    return f"kmeans{k}"


class _Writer:
    """Records every file written (relative to the output folder) and the time of each step."""

    def __init__(self, out: Path):
        self.out = out
        self.files: list[str] = []
        self.seconds: dict[str, float] = {}

    def add(self, *paths: Path) -> None:
        for p in paths:
            self.files.append(os.path.relpath(Path(p), self.out))

    def step(self, name: str, t0: float) -> None:
        self.seconds[name] = round(time.perf_counter() - t0, 3)


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_open(path, "wb") as handle:
        np.save(handle, array)
    return path


def _save_txt(path: Path, array: np.ndarray, fmt: str) -> Path:
    with atomic_open(path, "w") as handle:
        np.savetxt(handle, array, fmt=fmt)
    return path


def _map_series(run: TrainedRun, z: np.ndarray, folder: Path, config: AnalyzeConfig, writer: _Writer,
                title: str, labels: list[str] | None = None) -> dict[str, Any]:
    """z_values.txt, and unless skip_vol: maps, montage.png and <folder>.cxc. Returns a summary."""
    folder.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"points": len(z)}
    if config.skip_vol:
        writer.add(_save_txt(folder / "z_values.txt", np.atleast_2d(z), "%.6g"))
        return info
    files = run.write_volumes(z, folder, box_size=config.downsample, batch_size=config.batch_size,
                              flip=config.flip, invert=config.invert, show_progress=True)
    montage, script = describe_series(files.maps, folder / "montage.png", folder / f"{folder.name}.cxc",
                                      title=title, labels=labels)
    writer.add(files.z_path, *files.maps, montage, script)
    info.update(maps=len(files.maps), voxel_size_angstrom=files.voxel_size_angstrom)
    return info


def run_analysis(run: TrainedRun, config: AnalyzeConfig = AnalyzeConfig(),
                 out_dir: str | os.PathLike | None = None) -> AnalyzeResult:
    """Analyse the latent space of ``run`` and write everything into ``out_dir`` (default ``run.analyze_dir``).

    Parameters
    ----------
    run : an opened :class:`TrainedRun` (a VAE: zdim ≥ 1)
    config : :class:`AnalyzeConfig`
    out_dir : output folder (created)

    Returns
    -------
    AnalyzeResult
    """
    config = config.validate()
    if run.zdim == 0:
        raise InputError("this run is homogeneous (zdim 0): there is no latent space to analyse", path=run.path,
                         fix="use cryoscape eval-vol for its map")
    if config.downsample is not None:
        run._check_box(config.downsample)
    if not config.skip_vol and run.voxel_size_angstrom() is None:
        raise InputError("the run has no pixel size, so maps cannot carry one", path=run.path,
                         fix="give --Apix (Å per pixel of the training images) or use --skip-vol")
    out = Path(out_dir) if out_dir is not None else run.analyze_dir
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out)
    t_start = time.perf_counter()
    z = np.asarray(run.z, dtype=np.float32)
    n, zdim = z.shape
    if n < max(2, config.ksample):
        raise InputError(f"the run has {n} particles; k-means needs at least --ksample {config.ksample}",
                         path=run.path, fix="lower --ksample")
    header = f"{run.path.name}, epoch {run.epoch}: {n} particles, zdim {zdim}"
    summary: dict[str, Any] = {
        "run": str(run.path.resolve()), "epoch": run.epoch, "n_particles": int(n), "zdim": int(zdim),
        "box_size": run.box_size, "pixel_size_angstrom": run.pixel_size_angstrom,
        "map_box_size": config.downsample or run.box_size,
        "voxel_size_angstrom": run.voxel_size_angstrom(config.downsample or run.box_size),
        "options": asdict(config),
    }
    log.info("analysing %s", header)

    # --- learning curve -------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    curve = plots.read_learning_curve(run.run_dir.log_path)
    if len(curve["epoch"]):
        writer.add(plots.plot_learning_curve(curve, out / "learning_curve.png", mark_epoch=run.epoch,
                                             title=f"learning curve ({run.path.name}; analysed epoch dotted)"))
    summary["learning_curve"] = {k: v.tolist() for k, v in curve.items()}
    writer.step("learning_curve", t0)

    # --- PCA / 1-D plots ------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    pca = fit_pca(z)
    pcs = pca.transform(z).astype(np.float32)
    writer.add(_save_npy(out / "pca.npy", pcs))
    summary["pca"] = {"explained_variance": pca.explained_variance.tolist(),
                      "explained_variance_ratio": pca.explained_variance_ratio.tolist()}
    if zdim == 1:
        marks = percentile_points(z, PERCENTILES)[:, 0]
        writer.add(plots.plot_histogram_1d(z[:, 0], out / "z_hist.png", xlabel="z", marks=marks,
                                           title=f"{header}\nred lines: the 5th, 15th … 95th percentiles (maps)"),
                   plots.plot_z_vs_index(run.indices, z[:, 0], out / "z_vs_index.png", ylabel="z",
                                         title=f"latent z against particle index ({header})"))
    else:
        writer.add(plots.plot_explained_variance(pca.explained_variance_ratio, out / "pca_explained_variance.png",
                                                 title=f"PCA of the latent space ({header})"))
        for kind in ("scatter", "hexbin", "contour"):
            writer.add(plots.plot_joint(pcs[:, :2], out / f"z_pca_{kind}.png", kind=kind,
                                        xlabel=f"PC1 ({100 * pca.explained_variance_ratio[0]:.1f} %)",
                                        ylabel=f"PC2 ({100 * pca.explained_variance_ratio[1]:.1f} %)",
                                        title=f"latent PCA ({kind}) — {header}"))
    writer.step("pca", t0)

    # --- UMAP -----------------------------------------------------------------------------------------------
    embedding = None
    if zdim >= 2 and not config.skip_umap:
        t0 = time.perf_counter()
        log.info("UMAP of %d points (fitted on %d)", n, min(n, config.umap_fit_max))
        embedding = fit_umap(z, seed=config.seed, fit_max=config.umap_fit_max,
                             transform=config.umap_transform)
        writer.add(_save_npy(out / "umap.npy", embedding))
        for kind in ("scatter", "hexbin", "contour"):
            writer.add(plots.plot_joint(embedding, out / f"umap_{kind}.png", kind=kind, xlabel="UMAP1",
                                        ylabel="UMAP2", title=f"latent UMAP ({kind}) — {header}"))
        placed = "UMAP.transform" if config.umap_transform else "nearest fitted neighbours"
        summary["umap"] = {"n_neighbors": 15, "min_dist": 0.1, "fitted_on": int(min(n, config.umap_fit_max)),
                           "others_placed_by": placed}
        writer.step("umap", t0)

    # --- k-means --------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    k = config.ksample
    km = kmeans(z, k, seed=config.seed)
    kdir = out / kmeans_dir_name(k)
    kdir.mkdir(parents=True, exist_ok=True)
    centers_ind = run.indices[km.on_data_indices]
    writer.add(_save_txt(kdir / "labels.txt", km.labels + 1, "%d"),
               _save_txt(kdir / "centers.txt", np.atleast_2d(km.centers), "%.6g"),
               _save_txt(kdir / "centers_ind.txt", centers_ind, "%d"))
    sizes = km.sizes
    if zdim >= 2:
        writer.add(plots.plot_clusters(pcs[:, :2], km.labels, pcs[km.on_data_indices, :2], kdir / "z_pca.png",
                                       xlabel="PC1", ylabel="PC2",
                                       title=f"k-means K = {k} in PCA coordinates — {header}"))
        if embedding is not None:
            writer.add(plots.plot_clusters(embedding, km.labels, embedding[km.on_data_indices], kdir / "umap.png",
                                           xlabel="UMAP1", ylabel="UMAP2",
                                           title=f"k-means K = {k} in UMAP coordinates — {header}"))
    else:
        writer.add(plots.plot_histogram_1d(z[:, 0], kdir / "z_hist.png", xlabel="z", marks=km.centers[:, 0],
                                           title=f"k-means K = {k}: red lines at the on-data centres"))
    writer.step("kmeans", t0)
    t0 = time.perf_counter()
    series = _map_series(run, km.centers, kdir, config, writer,
                         title=f"k-means centres (K = {k}) — {header}",
                         labels=[f"{j + 1} (n={int(sizes[j])})" for j in range(k)])
    summary["kmeans"] = {"k": k, "folder": kdir.name, "sizes": sizes.tolist(), "centers_ind": centers_ind.tolist(),
                         "centers_row": km.on_data_indices.tolist(), "iterations": km.n_iter, **series}
    writer.step("kmeans_maps", t0)

    # --- traversals -----------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    if zdim == 1:
        points = percentile_points(z, PERCENTILES)
        series = _map_series(run, points, out / "percentiles", config, writer,
                             title=f"z at the 5th … 95th percentiles — {header}",
                             labels=[f"{p}th: {v:.3g}" for p, v in zip(PERCENTILES, points[:, 0])])
        summary["percentiles"] = {"percentiles": list(PERCENTILES), "z": points[:, 0].tolist(), **series}
    summary["pc_traversals"] = []
    for i in range(min(config.pc, zdim) if zdim >= 2 else 0):
        points = pc_traversal(z, pc=i, n_points=config.n_per_pc, pca=pca)
        folder = out / f"pc{i + 1}"
        coords = pca.transform(points)[:, i]
        series = _map_series(run, points, folder, config, writer,
                             title=f"PC{i + 1} traversal (5th → 95th percentile) — {header}",
                             labels=[f"{j + 1}: PC{i + 1}={c:.2g}" for j, c in enumerate(coords)])
        other = 1 if i == 0 else 0
        writer.add(plots.plot_traversal_points(
            pcs[:, [i, other]], pca.transform(points)[:, [i, other]], folder / "traversal.png",
            xlabel=f"PC{i + 1}", ylabel=f"PC{other + 1}", title=f"PC{i + 1} traversal points (numbered as the maps)"))
        summary["pc_traversals"].append({"pc": i + 1, "folder": folder.name, "pc_values": coords.tolist(),
                                         **series})
    writer.step("traversals", t0)

    # --- notebook, summary, report --------------------------------------------------------------------------
    if config.notebook:
        from cryoscape.analysis.notebook import write_notebook

        writer.add(write_notebook(out / "analyze.ipynb", run.path, run.epoch, out, k=k, seed=config.seed,
                                  zdim=zdim))
    summary["seconds"] = {**writer.seconds, "total": round(time.perf_counter() - t_start, 3)}
    summary["files"] = sorted({*writer.files, "analysis.json"})
    with atomic_open(out / "analysis.json", "w") as handle:
        json.dump(summary, handle, indent=1)
    from cryoscape.analysis.report import write_report

    write_report(out, run)
    return AnalyzeResult(out_dir=out, summary=summary)
