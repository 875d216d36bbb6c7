"""The volume landscape: cluster the *maps* a run generates, not its latent points.

The method of the cryoDRGN paper's landscape analysis, as its documentation describes it:

1. k-means of the latent means into K clusters (the "sketch", default 500); a map is generated at each
   cluster's on-data centre (the particle nearest the k-means centre);
2. a mask: the union of the thresholded maps (each map at ``threshold_fraction`` × its 99.99th percentile),
   dilated by ``dilate_px`` voxels;
3. PCA of the masked maps (K × voxels in the mask);
4. agglomerative clustering of the maps' first ``pc_dim`` principal coordinates into M states;
5. every particle gets the state of its k-means cluster; per-state mean and standard-deviation maps are the
   particle-weighted mean and spread of the state's centre maps.

Memory: maps are generated in batches and written to disk as they come; the mask is a streaming union; the only
large array held is K × (voxels in the mask). Nothing scales as N × D³.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.outputs import OutputRecorder, check_new_folder, staged_folder
from cryoscape.configio import check_choice, check_range, option
from cryoscape.errors import InputError
from cryoscape.runs.layout import AnalysisLayout, LandscapeLayout, SeriesLayout, series_names

log = logging.getLogger("cryoscape.analysis")

LINKAGES = ("ward", "average", "complete", "single")
MONTAGE_ROWS = 24


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of :func:`analyze_landscape` (field = CLI flag with dashes).

    ``box_size`` (map box, even, ≤ the training box; None = the training box), ``flip`` (reverse the maps' z
    axis), ``invert`` (multiply the written maps by -1; the mask is made before) and ``batch_size`` (maps decoded
    at once) come from the shared map options (:func:`cryoscape.cli.options.add_map_output`).
    """

    sketch_size: int = option(500, help="K: k-means clusters of the latent means, one map each; fewer than the "
                              "particles (default %(default)s)")
    n_states: int = option(10, flags=("-M",), help="M: states the maps are clustered into (default %(default)s)")
    pc_dim: int = option(20, help="principal components of the masked maps used for clustering "
                         "(default %(default)s)")
    linkage: str = option("ward", choices=LINKAGES, help="agglomerative clustering linkage (default %(default)s)")
    threshold_fraction: float = option(0.5, help="mask: each map thresholded at this fraction of its 99.99th "
                                       "percentile (default %(default)s)")
    dilate_px: int = option(5, flags=("--dilate",), help="mask dilation in voxels of the map box "
                            "(default %(default)s)")
    seed: int = option(0, help="k-means seed (default %(default)s)")
    skip_umap: bool = option(False, help="no UMAP plot unless analyze already wrote umap.npy")
    box_size: int | None = None
    flip: bool = False
    invert: bool = False
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_range(self.sketch_size, "--sketch-size", minimum=2)
        check_range(self.n_states, "-M/--n-states", minimum=1)
        check_range(self.pc_dim, "--pc-dim", minimum=1)
        check_choice(self.linkage, LINKAGES, "--linkage")
        check_range(self.threshold_fraction, "--threshold-fraction", minimum=0.0, maximum=1.0,
                    exclusive_minimum=True)
        check_range(self.dilate_px, "--dilate", minimum=0)
        check_range(self.batch_size, "--batch-size", minimum=1)
        check_range(self.box_size, "--downsample", minimum=2)
        if self.n_states > self.sketch_size:
            raise InputError(f"-M {self.n_states} states need at least as many maps, but --sketch-size gives "
                             f"{self.sketch_size}", fix="lower -M or raise --sketch-size")


@dataclass(frozen=True)
class Sketch:
    """k-means of the latent means with on-data centres.

    Attributes
    ----------
    labels : ndarray (N,) int64
        0-based cluster of each row of z.
    centre_rows : ndarray (K,) int64
        Row of z nearest each k-means centre.
    sizes : ndarray (K,) int64
        Particles per cluster.
    """

    labels: np.ndarray
    centre_rows: np.ndarray
    sizes: np.ndarray


def sketch(z: np.ndarray, k: int, seed: int = 0) -> Sketch:
    """k-means (scikit-learn, k-means++) of ``z`` (N, zdim) into ``k`` clusters, with on-data centres.

    Distances are computed in chunks (no N × k array), so N may be in the millions.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances_argmin

    z = np.ascontiguousarray(z, dtype=np.float32)
    k = min(int(k), len(z))
    model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(z)
    rows = pairwise_distances_argmin(model.cluster_centers_.astype(np.float32), z).astype(np.int64)
    labels = model.labels_.astype(np.int64)
    return Sketch(labels=labels, centre_rows=rows, sizes=np.bincount(labels, minlength=k).astype(np.int64))


def masked_pca(data: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA of rows of ``data`` (K, V): principal coordinates (K, c) and explained-variance ratios (c,).

    Uses the K × K Gram matrix (K ≪ V), so the cost is O(K² V) and no V × V array is formed.
    """
    x = np.asarray(data, dtype=np.float64)
    x = x - x.mean(axis=0)
    gram = x @ x.T
    eigval, eigvec = np.linalg.eigh(gram)
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 0.0, None)
    eigvec = eigvec[:, order]
    c = min(int(n_components), x.shape[0])
    coords = eigvec[:, :c] * np.sqrt(eigval[:c])
    # fix the sign of each axis (largest |coordinate| positive) for reproducible plots
    signs = np.sign(coords[np.abs(coords).argmax(axis=0), np.arange(c)])
    signs[signs == 0] = 1.0
    total = eigval.sum()
    ratio = eigval[:c] / total if total > 0 else np.zeros(c)
    return coords * signs, ratio


def cluster_maps(coords: np.ndarray, n_states: int, linkage: str = "ward") -> np.ndarray:
    """Agglomerative clustering of map coordinates (K, c) into ``n_states``; 1-based states ordered by PC1.

    Returns (K,) int64 state of each map, 1 … n_states, state 1 having the lowest mean first coordinate.
    """
    from sklearn.cluster import AgglomerativeClustering

    k = len(coords)
    m = min(int(n_states), k)
    if m == 1:
        return np.ones(k, dtype=np.int64)
    raw = AgglomerativeClustering(n_clusters=m, linkage=linkage).fit_predict(coords)
    means = np.array([coords[raw == s, 0].mean() for s in range(m)])
    rank = np.empty(m, dtype=np.int64)
    rank[np.argsort(means, kind="stable")] = np.arange(1, m + 1)
    return rank[raw]


def ball(radius: int) -> np.ndarray:
    """Boolean ball structuring element of ``radius`` voxels, (2r+1)³."""
    r = int(radius)
    g = np.arange(-r, r + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= r * r


def landscape_dir(run: TrainedRun) -> Path:
    """``RUN/landscape.<epoch>``: the default output folder of ``analyze-landscape``."""
    return Path(run.landscape_dir)


def check_landscape(run: TrainedRun, config: LandscapeConfig) -> None:
    """Refuse, before any work, what the run cannot give (too few particles for the sketch, a bad box …)."""
    n = len(run.indices)
    if config.sketch_size >= n:
        raise InputError(f"--sketch-size {config.sketch_size} must be smaller than the number of particles ({n})",
                         path=run.path, fix=f"give --sketch-size below {n} (e.g. {max(2, n // 10)})")
    run._check_box(config.box_size)
    if run.voxel_size_angstrom() is None:
        raise InputError("the run has no pixel size", path=run.path,
                         fix="give --Apix (Å per pixel of the training images)")


@dataclass(frozen=True)
class CentreMaps:
    """The sketch's centre maps as written, and the union mask made while writing them.

    Attributes
    ----------
    paths : tuple of Path
        ``vol_001.mrc`` … in the order of the sketch's centres.
    mask : ndarray (D, D, D) bool
        Union of the thresholded maps, dilated.
    top : ndarray (K,)
        99.99th percentile of each map.
    box_size : int
    voxel_size_angstrom : float
    """

    paths: tuple[Path, ...]
    mask: np.ndarray
    top: np.ndarray
    box_size: int
    voxel_size_angstrom: float


@dataclass(frozen=True)
class LandscapeResult:
    """The states of a landscape analysis (:func:`compute_states`), written by :func:`write_landscape`.

    Attributes
    ----------
    run : TrainedRun
    config : LandscapeConfig
    sketch : Sketch
    maps : CentreMaps
    coords : ndarray (K, c)
        Principal coordinates of the masked centre maps.
    ratio : ndarray (c,)
        Their explained-variance ratios.
    centre_state : ndarray (K,) int64
        1-based state of each centre map.
    particle_state : ndarray (N,) int64
        1-based state of each row of z.
    seconds : dict of str to float
    """

    run: TrainedRun
    config: LandscapeConfig
    sketch: Sketch
    maps: CentreMaps
    coords: np.ndarray
    ratio: np.ndarray
    centre_state: np.ndarray
    particle_state: np.ndarray
    seconds: dict[str, float]

    @property
    def n_states(self) -> int:
        return int(self.centre_state.max())

    @property
    def populations(self) -> np.ndarray:
        """(M,) particles per state 1..M."""
        return np.bincount(self.particle_state, minlength=self.n_states + 1)[1:]


def write_centre_maps(run: TrainedRun, sk: Sketch, config: LandscapeConfig, folder: SeriesLayout,
                      show_progress: bool = False) -> CentreMaps:
    """Decode the map of every sketch centre into ``folder`` (one batch in memory) and build the union mask."""
    from scipy.ndimage import binary_dilation

    from cryoscape.io.mrc import write_mrc
    from cryoscape.progress import progress

    box = run._check_box(config.box_size)
    voxel = float(run.voxel_size_angstrom(box))
    k = len(sk.centre_rows)
    folder.root.mkdir(parents=True, exist_ok=True)
    paths = tuple(folder.root / name for name in series_names(k))
    mask = np.zeros((box, box, box), dtype=bool)
    top = np.zeros(k)
    vols = run.iter_volumes(run.z[sk.centre_rows], box_size=box, batch_size=config.batch_size)
    if show_progress:
        vols = progress(vols, total=k, desc="maps", unit="map")
    for i, (path, vol) in enumerate(zip(paths, vols)):
        vol = np.ascontiguousarray(vol[::-1] if config.flip else vol, dtype=np.float32)
        top[i] = float(np.percentile(vol, 99.99))
        mask |= vol > config.threshold_fraction * top[i]
        write_mrc(path, -vol if config.invert else vol, voxel_size_angstrom=voxel)
    if config.dilate_px > 0:
        mask = binary_dilation(mask, structure=ball(config.dilate_px))
    if not mask.any():
        raise InputError("the union mask is empty (every map is flat)", path=run.path,
                         fix="check the run's maps with cryoscape eval-vol")
    return CentreMaps(paths=paths, mask=mask, top=top, box_size=box, voxel_size_angstrom=voxel)


def compute_states(run: TrainedRun, sk: Sketch, maps: CentreMaps, config: LandscapeConfig,
                   seconds: dict[str, float] | None = None) -> LandscapeResult:
    """PCA of the masked centre maps (read back one at a time) and their clustering into states."""
    from cryoscape.io.mrc import read_mrc

    t0 = time.perf_counter()
    flat = np.flatnonzero(maps.mask.ravel())
    data = np.empty((len(maps.paths), len(flat)), dtype=np.float32)
    for i, path in enumerate(maps.paths):
        vol, _ = read_mrc(path, mmap=True)
        data[i] = np.asarray(vol).reshape(-1)[flat]
    coords, ratio = masked_pca(data, config.pc_dim)
    del data
    centre_state = cluster_maps(coords, config.n_states, config.linkage)
    seconds = {**(seconds or {}), "pca_seconds": time.perf_counter() - t0}
    return LandscapeResult(run=run, config=config, sketch=sk, maps=maps, coords=coords, ratio=ratio,
                           centre_state=centre_state, particle_state=centre_state[sk.labels], seconds=seconds)


# --- writing --------------------------------------------------------------------------------------------------
def write_landscape(result: LandscapeResult, layout: LandscapeLayout,
                    final_root: str | os.PathLike | None = None) -> list[Path]:
    """Write labels, state indices, state mean/std maps, pictures and ``landscape.json`` into ``layout``.

    The centre maps are already in ``layout.centres`` (:func:`write_centre_maps`). ``final_root`` is where the
    folder will be in the end when ``layout`` is a staging folder (it names the ChimeraX script).

    Returns
    -------
    list of Path
        Every file written, the centre maps included.
    """
    rec = OutputRecorder(layout.root)
    rec.add(*result.maps.paths)
    seconds = dict(result.seconds)
    _write_label_files(result, layout, rec)
    t0 = time.perf_counter()
    means = _write_state_maps(result, layout, rec)
    seconds["state_maps_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    script = layout.root / LandscapeLayout(Path(final_root or layout.root)).chimerax_script.name
    figures = _write_pictures(result, layout, means, script, rec)
    seconds["plots_seconds"] = time.perf_counter() - t0
    seconds["total_seconds"] = sum(seconds.values())
    summary = landscape_summary(result, figures, seconds, rec.relative(layout.summary.name))
    rec.save_json(layout.summary, summary, indent=2)
    return rec.paths


def _write_label_files(result: LandscapeResult, layout: LandscapeLayout, rec: OutputRecorder) -> None:
    sk, original, z = result.sketch, np.asarray(result.run.indices), result.run.z
    rec.save_txt(layout.labels, result.particle_state, "%d")
    for s in range(1, result.n_states + 1):
        rec.save_txt(layout.state_indices(s), original[result.particle_state == s], "%d")
    rec.save_txt(layout.centres.z_values, z[sk.centre_rows], "%.6g")
    rec.save_txt(layout.centres.centers_ind, original[sk.centre_rows], "%d")
    rec.save_txt(layout.centres.labels, sk.labels + 1, "%d")
    rec.save_txt(layout.centre_states, result.centre_state, "%d")
    rec.save_npy(layout.volume_pca, result.coords.astype(np.float32))


def _write_state_maps(result: LandscapeResult, layout: LandscapeLayout, rec: OutputRecorder) -> list[Path]:
    """Mask and the particle-weighted mean and standard deviation of each state's centre maps (one state at a
    time); returns the mean maps."""
    from cryoscape.io.mrc import read_mrc, write_mrc

    maps, box = result.maps, result.maps.box_size
    voxel = maps.voxel_size_angstrom
    write_mrc(layout.mask, maps.mask.astype(np.float32), voxel_size_angstrom=voxel)
    rec.add(layout.mask)
    means = []
    for s in range(1, result.n_states + 1):
        members = np.flatnonzero(result.centre_state == s)
        weights = result.sketch.sizes[members].astype(np.float64)
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        acc = np.zeros((box, box, box))
        acc2 = np.zeros((box, box, box))
        for j, w in zip(members, weights):
            vol = read_mrc(maps.paths[j])[0].astype(np.float64)
            acc += w * vol
            acc2 += w * vol * vol
        mean = acc / weights.sum()
        std = np.sqrt(np.clip(acc2 / weights.sum() - mean * mean, 0.0, None))
        write_mrc(layout.state_mean(s), mean.astype(np.float32), voxel_size_angstrom=voxel)
        write_mrc(layout.state_std(s), std.astype(np.float32), voxel_size_angstrom=voxel)
        rec.add(layout.state_mean(s), layout.state_std(s))
        means.append(layout.state_mean(s))
    return means


def _write_pictures(result: LandscapeResult, layout: LandscapeLayout, means: list[Path], script: Path,
                    rec: OutputRecorder) -> list[str]:
    """Montages and ChimeraX scripts of the state means and the centre maps, and the plots; returns the plots'
    names."""
    from cryoscape.analysis.volumes import describe_series
    from cryoscape.io.mrc import read_mrc
    from cryoscape.plotting.chimerax import write_chimerax_script
    from cryoscape.plotting.maps import shown_rows, write_montage

    m, k, pops = result.n_states, len(result.maps.paths), result.populations
    states, centres = result.centre_state, layout.centres
    rec.add(*describe_series(means, layout.montage, script,
                             title=f"{Path(result.run.path).name}: {m} landscape states (mean maps)",
                             labels=[f"state {s} ({pops[s - 1]})" for s in range(1, m + 1)]))
    order = np.lexsort((np.arange(k), states))
    shown = order[shown_rows(k, MONTAGE_ROWS)]  # only the maps shown are read
    rec.add(write_montage([read_mrc(result.maps.paths[j])[0] for j in shown], centres.montage,
                          labels=[f"vol_{j + 1:03d} s{states[j]}" for j in shown],
                          title=f"{len(shown)} of {k} centre maps, by state"))
    rec.add(write_chimerax_script(result.maps.paths, centres.chimerax_script, 0.5 * float(result.maps.top.mean()),
                                  voxel_size_angstrom=result.maps.voxel_size_angstrom))
    figures = _plots(result, layout)
    rec.add(*figures)
    return [p.name for p in figures]


def landscape_summary(result: LandscapeResult, figures: list[str], seconds: dict[str, float],
                      files: list[str]) -> dict[str, Any]:
    """The content of ``landscape.json``."""
    run, maps, m = result.run, result.maps, result.n_states
    pops, n_mask, box = result.populations, int(result.maps.mask.sum()), result.maps.box_size
    return {
        "run": str(run.path), "epoch": int(run.epoch), "n_particles": len(result.particle_state),
        "config": asdict(result.config), "sketch_size": len(maps.paths), "n_states": m, "box_size": box,
        "voxel_size_angstrom": maps.voxel_size_angstrom, "mask_voxels": n_mask, "mask_fraction": n_mask / box**3,
        "volume_pca_explained_variance_ratio": [float(r) for r in result.ratio],
        "state_populations": {str(s): int(pops[s - 1]) for s in range(1, m + 1)},
        "state_centres": {str(s): int((result.centre_state == s).sum()) for s in range(1, m + 1)},
        "plots": figures, "timings": seconds, "files": files,
    }


# --- the whole pipeline ---------------------------------------------------------------------------------------
def analyze_landscape(run: TrainedRun, out_dir: str | os.PathLike | None = None,
                      config: LandscapeConfig = LandscapeConfig(), show_progress: bool = False, *,
                      overwrite: bool = False) -> dict[str, Any]:
    """Run the landscape analysis of ``run`` into ``out_dir`` (default ``RUN/landscape.<epoch>``).

    Files (:class:`~cryoscape.runs.layout.LandscapeLayout`): ``labels.txt`` (N lines, 1-based state of row i of
    z), per-state original particle indices, mean and standard-deviation maps, a montage and ChimeraX script of
    the state means, the K centre maps with their latent points, original indices, k-means labels and states,
    ``mask.mrc``, ``volume_pca.npy`` (K, c), ``landscape.json`` and the plots. The folder appears only when
    complete; an existing one holding files is replaced only with ``overwrite``.

    Returns
    -------
    dict
        The summary written to ``landscape.json``.
    """
    out = Path(out_dir) if out_dir is not None else landscape_dir(run)
    check_new_folder(out, overwrite, "cryoscape analyze-landscape")
    check_landscape(run, config)
    t0 = time.perf_counter()
    sk = sketch(run.z, config.sketch_size, seed=config.seed)
    seconds = {"kmeans_seconds": time.perf_counter() - t0}
    with staged_folder(out) as stage:
        layout = LandscapeLayout(stage)
        t1 = time.perf_counter()
        maps = write_centre_maps(run, sk, config, layout.centres, show_progress=show_progress)
        seconds["maps_seconds"] = time.perf_counter() - t1
        result = compute_states(run, sk, maps, config, seconds)
        write_landscape(result, layout, final_root=out)
    return _read_json(LandscapeLayout(out).summary)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())


def _latent_2d(run: TrainedRun, z: np.ndarray, skip_umap: bool) -> dict[str, np.ndarray]:
    """2-D views of z: PCA (always, unless zdim 1) and UMAP (from ``analyze``'s umap.npy, else computed)."""
    from cryoscape.analysis.latent import fit_pca

    views: dict[str, np.ndarray] = {}
    if z.shape[1] >= 2:
        views["pca"] = fit_pca(z).transform(z)[:, :2]
    umap_path = AnalysisLayout(run.analyze_dir).umap
    if umap_path.is_file():
        emb = np.load(umap_path, allow_pickle=False)
        if emb.shape == (len(z), 2):
            views["umap"] = emb
    if "umap" not in views and not skip_umap and z.shape[1] >= 2:
        import umap

        views["umap"] = umap.UMAP(random_state=0, n_jobs=1).fit_transform(z)
    return views


def _plots(result: LandscapeResult, layout: LandscapeLayout) -> list[Path]:
    """state_populations.png, volume_pca_states.png, z_<view>_states.png (and z_states.png for zdim 1)."""
    from cryoscape.plotting.landscape import (
        plot_latent_states,
        plot_state_populations,
        plot_volume_pca_states,
        plot_z_states,
    )

    m, z, state = result.n_states, result.run.z, result.particle_state
    written = [plot_state_populations(result.populations, layout.figure("state_populations.png")),
               plot_volume_pca_states(result.coords, result.ratio, result.centre_state, result.sketch.sizes, m,
                                      layout.figure("volume_pca_states.png"))]
    for view, xy in _latent_2d(result.run, z, result.config.skip_umap).items():
        written.append(plot_latent_states(xy, state, m, view, layout.figure(f"z_{view}_states.png")))
    if z.shape[1] == 1:
        written.append(plot_z_states(z[:, 0], state, m, layout.figure("z_states.png")))
    return written
