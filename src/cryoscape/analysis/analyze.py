"""The ``cryoscape analyze`` pipeline: plots, clusters, traversals and maps of a trained run's latent space.

Three steps: :func:`compute_analysis` (PCA, UMAP, k-means, traversal points; no files) returns a frozen
:class:`AnalysisResult`; :func:`write_analysis` writes it into an :class:`~cryoscape.runs.layout.AnalysisLayout`
(``RUN/analyze.<epoch>/`` by default; maps are decoded batch by batch while they are written);
:func:`run_analysis` does both into a folder that appears only when complete, then writes the report. Contents::

    analysis.json                 what was computed: N, zdim, explained variance, cluster sizes, files, seconds
    pca.npy                       (N, zdim) float32 PC coordinates, rows aligned with z
    umap.npy                      (N, 2) float32 (not with skip_umap)
    *.png                         explained variance, scatter / hexbin / density contour (PCA and UMAP), learning curve
    kmeansK/                      labels.txt (1-based cluster of each row of z), centers.txt, centers_ind.txt
                                  (0-based original particle index of each on-data centre), maps, montage, .cxc
    pc1/, pc2/ …                  z_values.txt, maps, montage, .cxc (points from the 5th to the 95th percentile)
    percentiles/                  zdim 1: maps at the 5th, 15th … 95th percentiles of z
    analyze.ipynb                 a notebook that reproduces the figures with the Python API

zdim 1 replaces the PCA/UMAP plots by a histogram of z and z against the particle index. Memory is O(N zdim)
plus ``batch_size`` maps.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.latent import (
    PCA,
    UMAP_FIT_MAX,
    KMeansResult,
    fit_pca,
    fit_umap,
    kmeans,
    pc_traversal,
    percentile_points,
)
from cryoscape.analysis.outputs import OutputRecorder, check_new_folder, staged_folder
from cryoscape.analysis.volumes import describe_series
from cryoscape.configio import check_range, option
from cryoscape.errors import InputError
from cryoscape.plotting.curves import plot_explained_variance, plot_learning_curve
from cryoscape.plotting.labels import pc_label, umap_label
from cryoscape.plotting.latent import plot_clusters, plot_histogram_1d, plot_joint, plot_pc_traversal, plot_z_vs_index
from cryoscape.runs.layout import AnalysisLayout, SeriesLayout, series_names
from cryoscape.training.learning_curve import read_learning_curve

log = logging.getLogger("cryoscape.analysis")

PERCENTILES = tuple(range(5, 100, 10))
JOINT_KINDS = ("scatter", "hexbin", "contour")
UMAP_NEIGHBOURS = 15
UMAP_MIN_DIST = 0.1


@dataclass(frozen=True)
class AnalyzeConfig:
    """Options of ``cryoscape analyze`` (field = flag: ``ksample`` = ``--ksample`` …).

    ``downsample`` (map box, even, ≤ training box; None = the training box), ``flip`` (reverse the maps' z axis),
    ``invert`` (multiply by -1) and ``batch_size`` (maps decoded per batch) are the shared map options
    (:func:`cryoscape.cli.options.add_map_output`).
    """

    ksample: int = option(20, help="number of k-means clusters, one map each (default %(default)s)")
    pc: int = option(2, help="principal components to traverse, 1 to zdim (default %(default)s)")
    n_per_pc: int = option(10, help="maps per PC traversal, 5th to 95th percentile (default %(default)s)")
    skip_umap: bool = option(False, help="do not compute UMAP")
    skip_vol: bool = option(False, help="do not generate maps (z values, labels and plots are still written)")
    seed: int = option(0, help="seed of k-means and UMAP (default %(default)s)")
    umap_fit_max: int = option(UMAP_FIT_MAX, help="particles UMAP is fitted on; the others are placed at the "
                               "weighted mean of their 15 nearest fitted particles (default %(default)s)")
    umap_transform: bool = option(False, help="place the particles beyond --umap-fit-max with UMAP.transform "
                                  "(slower)")
    notebook: bool = option(True, help="do not write analyze.ipynb", negative="--no-notebook")
    downsample: int | None = None
    flip: bool = False
    invert: bool = False
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_range(self.ksample, "--ksample", minimum=1)
        check_range(self.pc, "--pc", minimum=1)
        check_range(self.n_per_pc, "--n-per-pc", minimum=2)
        check_range(self.umap_fit_max, "--umap-fit-max", minimum=100)
        check_range(self.batch_size, "--batch-size", minimum=1)
        check_range(self.downsample, "--downsample", minimum=2)


@dataclass(frozen=True)
class MapSeries:
    """Latent points of one map series (k-means centres, a PC traversal, the percentiles of a 1-D latent).

    Attributes
    ----------
    folder : callable
        The series' folder in an :class:`AnalysisLayout`.
    points : ndarray (n, zdim) float32
    title : str
        Title of the montage.
    labels : tuple of str
        Label of each map in the montage.
    """

    folder: Callable[[AnalysisLayout], SeriesLayout]
    points: np.ndarray
    title: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Traversal:
    """Points along one principal component.

    Attributes
    ----------
    pc : int
        1-based principal component.
    pc_values : ndarray (n,)
        Coordinate of each point on that component.
    series : MapSeries
    """

    pc: int
    pc_values: np.ndarray
    series: MapSeries


@dataclass(frozen=True)
class AnalysisResult:
    """Everything :func:`write_analysis` writes, computed by :func:`compute_analysis`.

    Attributes
    ----------
    run : TrainedRun
        The run (its decoder generates the maps while they are written).
    config : AnalyzeConfig
    z : ndarray (N, zdim) float32
    learning_curve : dict of str to ndarray
        ``epoch``, ``loss``, ``mse``, ``kl`` per epoch (empty arrays when none was recorded).
    pca : PCA
    pcs : ndarray (N, zdim) float32
        PC coordinates of every row of z.
    umap : ndarray (N, 2) float32 or None
    kmeans : KMeansResult
    centers_ind : ndarray (K,) int64
        Original particle index of each on-data centre.
    series : tuple of MapSeries
        k-means centres first, then the percentiles (zdim 1) or the PC traversals.
    traversals : tuple of Traversal
    seconds : dict of str to float
        Seconds per computing step.
    """

    run: TrainedRun
    config: AnalyzeConfig
    z: np.ndarray
    learning_curve: dict[str, np.ndarray]
    pca: PCA
    pcs: np.ndarray
    umap: np.ndarray | None
    kmeans: KMeansResult
    centers_ind: np.ndarray
    series: tuple[MapSeries, ...]
    traversals: tuple[Traversal, ...]
    seconds: dict[str, float]

    @property
    def zdim(self) -> int:
        return int(self.z.shape[1])

    @property
    def header(self) -> str:
        """``RUN, epoch E: N particles, zdim Z`` (figure titles)."""
        return _header(self.run, *self.z.shape)


@dataclass(frozen=True)
class AnalyzeResult:
    """What :func:`run_analysis` wrote: the folder and the content of its ``analysis.json``."""

    out_dir: Path
    summary: dict[str, Any]

    @property
    def layout(self) -> AnalysisLayout:
        return AnalysisLayout(self.out_dir)


def check_analysis(run: TrainedRun, config: AnalyzeConfig) -> None:
    """Refuse, before any work, what the run cannot give: no latent space, a bad box, too few particles …"""
    if run.zdim == 0:
        raise InputError("this run is homogeneous (zdim 0): there is no latent space to analyse", path=run.path,
                         fix="use cryoscape eval-vol for its map")
    if config.downsample is not None:
        run._check_box(config.downsample)
    if not config.skip_vol and run.voxel_size_angstrom() is None:
        raise InputError("the run has no pixel size, so maps cannot carry one", path=run.path,
                         fix="give --Apix (Å per pixel of the training images) or use --skip-vol")
    if run.zdim >= 2 and config.pc > run.zdim:
        raise InputError(f"--pc must be between 1 and zdim {run.zdim}, got {config.pc}", path=run.path,
                         fix=f"give --pc a value between 1 and {run.zdim}")
    n = len(run.indices)
    if n < max(2, config.ksample):
        raise InputError(f"the run has {n} particles; k-means needs at least --ksample {config.ksample}",
                         path=run.path, fix="lower --ksample")


def compute_analysis(run: TrainedRun, config: AnalyzeConfig = AnalyzeConfig()) -> AnalysisResult:
    """PCA, UMAP, k-means and traversal points of ``run``'s latent space (no files written, no maps made).

    Parameters
    ----------
    run : TrainedRun
        A VAE run (zdim ≥ 1).
    config : AnalyzeConfig

    Returns
    -------
    AnalysisResult
    """
    check_analysis(run, config)
    seconds: dict[str, float] = {}
    z = np.asarray(run.z, dtype=np.float32)
    n, zdim = z.shape
    log.info("analysing %s, epoch %d: %d particles, zdim %d", run.path.name, run.epoch, n, zdim)
    t0 = time.perf_counter()
    curve = read_learning_curve(run.run_dir)
    t1 = _lap(seconds, "learning_curve", t0)
    pca = fit_pca(z)
    pcs = pca.transform(z).astype(np.float32)
    t2 = _lap(seconds, "pca", t1)
    embedding = None
    if zdim >= 2 and not config.skip_umap:
        log.info("UMAP of %d points (fitted on %d)", n, min(n, config.umap_fit_max))
        embedding = fit_umap(z, seed=config.seed, fit_max=config.umap_fit_max, transform=config.umap_transform)
        t2 = _lap(seconds, "umap", t2)
    km = kmeans(z, config.ksample, seed=config.seed)
    _lap(seconds, "kmeans", t2)
    header = _header(run, n, zdim)
    k = config.ksample
    centres = MapSeries(folder=lambda layout: layout.kmeans(k), points=np.atleast_2d(km.centers),
                        title=f"k-means centres (K = {k}) — {header}",
                        labels=_cluster_labels(km.sizes))
    series = [centres]
    traversals = []
    if zdim == 1:
        points = percentile_points(z, PERCENTILES)
        series.append(MapSeries(folder=lambda layout: layout.percentiles, points=points,
                                title=f"z at the 5th … 95th percentiles — {header}",
                                labels=tuple(f"{p}th: {v:.3g}" for p, v in zip(PERCENTILES, points[:, 0]))))
    else:
        for i in range(config.pc):
            traversals.append(_traversal(z, pca, i, config.n_per_pc, header))
        series += [t.series for t in traversals]
    return AnalysisResult(run=run, config=config, z=z, learning_curve=curve, pca=pca, pcs=pcs, umap=embedding,
                          kmeans=km, centers_ind=np.asarray(run.indices)[km.on_data_indices],
                          series=tuple(series), traversals=tuple(traversals), seconds=seconds)


def _header(run: TrainedRun, n: int, zdim: int) -> str:
    return f"{run.path.name}, epoch {run.epoch}: {n} particles, zdim {zdim}"


def _cluster_labels(sizes: np.ndarray) -> tuple[str, ...]:
    """Montage row labels of the k-means centre maps: ``vol_001`` over ``cluster 1 (n=36)``."""
    names = series_names(len(sizes))
    return tuple(f"{Path(name).stem}\ncluster {j + 1} (n={int(size)})" for j, (name, size) in
                 enumerate(zip(names, sizes)))


def _lap(seconds: dict[str, float], name: str, t0: float) -> float:
    now = time.perf_counter()
    seconds[name] = round(now - t0, 3)
    return now


def _traversal(z: np.ndarray, pca: PCA, i: int, n_points: int, header: str) -> Traversal:
    """Points along the 0-based component ``i``, 5th to 95th percentile."""
    points = pc_traversal(z, pc=i, n_points=n_points, pca=pca)
    coords = pca.transform(points)[:, i]
    series = MapSeries(folder=lambda layout: layout.pc(i + 1), points=points,
                       title=f"PC{i + 1} traversal (5th → 95th percentile) — {header}",
                       labels=tuple(f"{j + 1}: PC{i + 1}={c:.2g}" for j, c in enumerate(coords)))
    return Traversal(pc=i + 1, pc_values=coords, series=series)


# --- writing --------------------------------------------------------------------------------------------------
def write_analysis(result: AnalysisResult, layout: AnalysisLayout,
                   final_root: str | os.PathLike | None = None) -> list[Path]:
    """Write ``result`` into ``layout`` (maps are decoded and written batch by batch) and ``analysis.json``.

    Parameters
    ----------
    result : AnalysisResult
    layout : AnalysisLayout
        Where to write (folders are created).
    final_root : path, optional
        Where the folder will be in the end when ``layout`` is a staging folder (written into the notebook).

    Returns
    -------
    list of Path
        Every file written.
    """
    rec = OutputRecorder(layout.root)
    seconds = dict(result.seconds)
    t0 = time.perf_counter()
    _write_curve(result, layout, rec)
    _write_latent_views(result, layout, rec)
    _write_kmeans_files(result, layout, rec)
    t0 = _lap(seconds, "plots", t0)
    series_info = [_write_series(result, s, layout, rec) for s in result.series]
    _write_traversal_figures(result, layout, rec)
    t0 = _lap(seconds, "maps", t0)
    if result.config.notebook:
        from cryoscape.analysis.notebook import write_notebook

        rec.add(write_notebook(layout.notebook, result.run.path, result.run.epoch,
                               Path(final_root) if final_root is not None else layout.root,
                               k=result.config.ksample, seed=result.config.seed, zdim=result.zdim))
    seconds["total"] = round(sum(seconds.values()), 3)
    summary = analysis_summary(result, series_info, seconds, rec.relative(layout.summary.name))
    rec.save_json(layout.summary, summary)
    return rec.paths


def _write_curve(result: AnalysisResult, layout: AnalysisLayout, rec: OutputRecorder) -> None:
    if len(result.learning_curve["epoch"]):
        rec.add(plot_learning_curve(
            result.learning_curve, layout.learning_curve, mark_epoch=result.run.epoch,
            title=f"learning curve ({result.run.path.name}; analysed epoch dotted)"))


def _write_latent_views(result: AnalysisResult, layout: AnalysisLayout, rec: OutputRecorder) -> None:
    """pca.npy, umap.npy and the figures of the whole latent space."""
    z, pcs, header, ratio = result.z, result.pcs, result.header, result.pca.explained_variance_ratio
    rec.save_npy(layout.pca, pcs)
    if result.zdim == 1:
        marks = percentile_points(z, PERCENTILES)[:, 0]
        rec.add(plot_histogram_1d(z[:, 0], layout.z_histogram, xlabel="z", marks=marks,
                                  title=f"{header}\nred lines: the 5th, 15th … 95th percentiles (maps)"),
                plot_z_vs_index(result.run.indices, z[:, 0], layout.z_vs_index, ylabel="z",
                                title=f"latent z against particle index ({header})"))
        return
    rec.add(plot_explained_variance(ratio, layout.pca_variance,
                                    title=f"PCA of the latent space ({header})"))
    for kind in JOINT_KINDS:
        rec.add(plot_joint(pcs[:, :2], layout.pca_figure(kind), kind=kind,
                           xlabel=pc_label(0, ratio[0]), ylabel=pc_label(1, ratio[1]),
                           title=f"latent PCA ({kind}) — {header}"))
    if result.umap is not None:
        rec.save_npy(layout.umap, result.umap)
        for kind in JOINT_KINDS:
            rec.add(plot_joint(result.umap, layout.umap_figure(kind), kind=kind, xlabel=umap_label(0),
                               ylabel=umap_label(1), title=f"latent UMAP ({kind}) — {header}"))


def _write_kmeans_files(result: AnalysisResult, layout: AnalysisLayout, rec: OutputRecorder) -> None:
    """labels.txt, centers.txt, centers_ind.txt and the cluster figures."""
    km, k, header, ratio = result.kmeans, result.config.ksample, result.header, result.pca.explained_variance_ratio
    folder = layout.kmeans(k)
    rec.save_txt(folder.labels, km.labels + 1, "%d")
    rec.save_txt(folder.centers, np.atleast_2d(km.centers), "%.6g")
    rec.save_txt(folder.centers_ind, result.centers_ind, "%d")
    rows = km.on_data_indices
    if result.zdim == 1:
        rec.add(plot_histogram_1d(result.z[:, 0], folder.histogram_figure, xlabel="z", marks=km.centers[:, 0],
                                  title=f"k-means K = {k}: red lines at the on-data centres"))
        return
    rec.add(plot_clusters(result.pcs[:, :2], km.labels, result.pcs[rows, :2], folder.pca_figure,
                          xlabel=pc_label(0, ratio[0]), ylabel=pc_label(1, ratio[1]),
                          title=f"k-means K = {k} in PCA coordinates — {header}"))
    if result.umap is not None:
        rec.add(plot_clusters(result.umap, km.labels, result.umap[rows], folder.umap_figure,
                              xlabel=umap_label(0), ylabel=umap_label(1),
                              title=f"k-means K = {k} in UMAP coordinates — {header}"))


def _write_series(result: AnalysisResult, series: MapSeries, layout: AnalysisLayout,
                  rec: OutputRecorder) -> dict[str, Any]:
    """z_values.txt and, unless skip_vol, the maps, montage.png and NAME.cxc. Returns a summary."""
    config, folder = result.config, series.folder(layout)
    info: dict[str, Any] = {"points": len(series.points)}
    if config.skip_vol:
        rec.save_txt(folder.z_values, np.atleast_2d(series.points), "%.6g")
        return info
    files = result.run.write_volumes(series.points, folder.root, box_size=config.downsample,
                                     batch_size=config.batch_size, flip=config.flip, invert=config.invert,
                                     show_progress=True)
    rec.add(files.z_path, *files.maps)
    rec.add(*describe_series(files.maps, folder.montage, folder.chimerax_script, title=series.title,
                             labels=list(series.labels)))
    info.update(maps=len(files.maps), voxel_size_angstrom=files.voxel_size_angstrom)
    return info


def _write_traversal_figures(result: AnalysisResult, layout: AnalysisLayout, rec: OutputRecorder) -> None:
    """``traversal.png`` of each PC traversal: its points over the particles in PC1/PC2, as the PCA plots."""
    pca = result.pca
    for t in result.traversals:
        rec.add(plot_pc_traversal(result.pcs, pca.transform(t.series.points), layout.pc(t.pc).traversal_figure,
                                  pc=t.pc - 1, ratio=pca.explained_variance_ratio))


def analysis_summary(result: AnalysisResult, series_info: list[dict[str, Any]], seconds: dict[str, float],
                     files: list[str]) -> dict[str, Any]:
    """The content of ``analysis.json`` (``series_info``: what :func:`_write_series` returned, in order)."""
    run, config, km, n = result.run, result.config, result.kmeans, len(result.z)
    box = config.downsample or run.box_size
    summary: dict[str, Any] = {
        "run": str(run.path.resolve()), "epoch": run.epoch, "n_particles": int(n), "zdim": result.zdim,
        "box_size": run.box_size, "pixel_size_angstrom": run.pixel_size_angstrom, "map_box_size": box,
        "voxel_size_angstrom": run.voxel_size_angstrom(box), "options": asdict(config),
        "learning_curve": {key: values.tolist() for key, values in result.learning_curve.items()},
        "pca": {"explained_variance": result.pca.explained_variance.tolist(),
                "explained_variance_ratio": result.pca.explained_variance_ratio.tolist()},
    }
    if result.umap is not None:
        summary["umap"] = {"n_neighbors": UMAP_NEIGHBOURS, "min_dist": UMAP_MIN_DIST,
                           "fitted_on": int(min(n, config.umap_fit_max)),
                           "others_placed_by": "UMAP.transform" if config.umap_transform
                           else "nearest fitted neighbours"}
    summary["kmeans"] = {"k": config.ksample, "folder": km_folder_name(config.ksample),
                         "sizes": km.sizes.tolist(), "centers_ind": result.centers_ind.tolist(),
                         "centers_row": km.on_data_indices.tolist(), "iterations": km.n_iter, **series_info[0]}
    if result.zdim == 1:
        summary["percentiles"] = {"percentiles": list(PERCENTILES), "z": result.series[1].points[:, 0].tolist(),
                                  **series_info[1]}
    summary["pc_traversals"] = [
        {"pc": t.pc, "folder": AnalysisLayout(Path()).pc(t.pc).name, "pc_values": t.pc_values.tolist(), **info}
        for t, info in zip(result.traversals, series_info[1:])]
    summary["seconds"] = seconds
    summary["files"] = files
    return summary


def km_folder_name(k: int) -> str:
    """Name of the k-means folder of K clusters (as :meth:`AnalysisLayout.kmeans` names it)."""
    return AnalysisLayout(Path()).kmeans(k).name


# --- the whole pipeline ---------------------------------------------------------------------------------------
def run_analysis(run: TrainedRun, config: AnalyzeConfig = AnalyzeConfig(),
                 out_dir: str | os.PathLike | None = None, *, overwrite: bool = False) -> AnalyzeResult:
    """Analyse the latent space of ``run``, write everything into ``out_dir`` and write the report.

    Parameters
    ----------
    run : TrainedRun
        A VAE run (zdim ≥ 1).
    config : AnalyzeConfig
    out_dir : path, optional
        Output folder (default ``RUN/analyze.<epoch>``). It appears only when complete.
    overwrite : bool
        Replace an existing folder holding files (else refused before any work).

    Returns
    -------
    AnalyzeResult
    """
    from cryoscape.analysis.report import write_report

    out = Path(out_dir) if out_dir is not None else run.analyze_dir
    check_new_folder(out, overwrite, "cryoscape analyze")
    check_analysis(run, config)
    result = compute_analysis(run, config)
    with staged_folder(out) as stage:
        write_analysis(result, AnalysisLayout(stage), final_root=out)
    write_report(out, run)
    return AnalyzeResult(out_dir=out, summary=_read_summary(AnalysisLayout(out)))


def _read_summary(layout: AnalysisLayout) -> dict[str, Any]:
    import json

    return json.loads(layout.summary.read_text())
