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

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError

LINKAGES = ("ward", "average", "complete", "single")
MONTAGE_ROWS = 24


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of :func:`analyze_landscape` (field = CLI flag with dashes).

    Attributes
    ----------
    sketch_size : int
        K: k-means clusters of the latent means, one map each.
    n_states : int
        M: states the maps are clustered into.
    pc_dim : int
        Principal components of the masked maps used for clustering.
    linkage : str
        Agglomerative linkage: ward, average, complete or single.
    box_size : int or None
        Box of the generated maps (even, ≤ the training box); None = the training box.
    threshold_fraction : float
        Each map is thresholded at this fraction of its 99.99th percentile for the mask.
    dilate_px : int
        Dilation of the union mask (voxels of the map box).
    batch_size : int
        Maps decoded at once.
    seed : int
        Seed of the k-means.
    skip_umap : bool
        Do not compute a UMAP when ``analyze`` has not written one.
    """

    sketch_size: int = 500
    n_states: int = 10
    pc_dim: int = 20
    linkage: str = "ward"
    box_size: int | None = None
    threshold_fraction: float = 0.5
    dilate_px: int = 5
    batch_size: int = 8
    seed: int = 0
    skip_umap: bool = False

    def validate(self) -> LandscapeConfig:
        if self.sketch_size < 2:
            raise InputError(f"--sketch-size must be at least 2, got {self.sketch_size}")
        if self.n_states < 1:
            raise InputError(f"-M must be at least 1, got {self.n_states}")
        if self.pc_dim < 1:
            raise InputError(f"--pc-dim must be at least 1, got {self.pc_dim}")
        if self.linkage not in LINKAGES:
            raise InputError(f"unknown linkage {self.linkage!r}", fix=f"use one of {', '.join(LINKAGES)}")
        if not 0.0 < self.threshold_fraction <= 1.0:
            raise InputError(f"--threshold-fraction must be in (0, 1], got {self.threshold_fraction}")
        if self.dilate_px < 0:
            raise InputError(f"--dilate must be ≥ 0, got {self.dilate_px}")
        return self


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


def landscape_dir(run: Any) -> Path:
    """``RUN/landscape.<epoch>``: the default output folder of ``analyze-landscape`` (``TrainedRun.landscape_dir``)."""
    return Path(run.landscape_dir)


def analyze_landscape(run: Any, out_dir: str | os.PathLike, config: LandscapeConfig,
                      show_progress: bool = False) -> dict[str, Any]:
    """Run the landscape analysis of a trained run and write its files in ``out_dir``.

    Files: ``labels.txt`` (N lines, 1-based state of row i of z), ``state_XX_indices.txt`` (original 0-based
    particle indices), ``state_XX_mean.mrc`` / ``state_XX_std.mrc``, ``montage.png`` + ``<folder>.cxc`` (the
    state means), ``centers/`` (the K centre maps ``vol_001.mrc`` …, ``z_values.txt``, ``centers_ind.txt``,
    ``labels.txt`` (1-based centre of each particle), ``states.txt`` (state of each centre), montage, cxc),
    ``mask.mrc``, ``volume_pca.npy`` (K, c), ``landscape.json`` and the plots.

    Parameters
    ----------
    run : cryoscape.analysis.api.TrainedRun
    out_dir : path
    config : LandscapeConfig

    Returns
    -------
    dict
        The summary written to ``landscape.json``.
    """
    from scipy.ndimage import binary_dilation

    from cryoscape.analysis.api import series_names
    from cryoscape.io.atomic import atomic_open
    from cryoscape.io.mrc import read_mrc, write_mrc
    from cryoscape.progress import progress

    config = config.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    out = Path(out_dir)
    centres_dir = out / "centers"
    centres_dir.mkdir(parents=True, exist_ok=True)
    z = run.z
    n = len(z)
    box = run.box_size if config.box_size is None else int(config.box_size)
    voxel = run.voxel_size_angstrom(box)
    if voxel is None:
        raise InputError("the run has no pixel size", path=run.path,
                         fix="give --Apix (Å per pixel of the training images)")

    # 1. sketch
    sk = sketch(z, config.sketch_size, seed=config.seed)
    k = len(sk.centre_rows)
    if config.n_states > k:
        raise InputError(f"-M {config.n_states} states need at least as many maps, but --sketch-size gives {k}",
                         fix="lower -M or raise --sketch-size")
    timings["kmeans_seconds"] = time.perf_counter() - t0

    # 2. maps, written as they come; streaming union mask
    t1 = time.perf_counter()
    paths = [centres_dir / name for name in series_names(k, "vol_")]
    mask = np.zeros((box, box, box), dtype=bool)
    top = np.zeros(k)
    vols = run.iter_volumes(z[sk.centre_rows], box_size=box, batch_size=config.batch_size)
    if show_progress:
        vols = progress(vols, total=k, desc="maps", unit="map")
    for i, (path, vol) in enumerate(zip(paths, vols)):
        vol = np.ascontiguousarray(vol, dtype=np.float32)
        top[i] = float(np.percentile(vol, 99.99))
        mask |= vol > config.threshold_fraction * top[i]
        write_mrc(path, vol, voxel_size_angstrom=voxel)
    if config.dilate_px > 0:
        mask = binary_dilation(mask, structure=ball(config.dilate_px))
    n_mask = int(mask.sum())
    if n_mask == 0:
        raise InputError("the union mask is empty (every map is flat)", path=run.path,
                         fix="check the run's maps with cryoscape eval-vol")
    write_mrc(out / "mask.mrc", mask.astype(np.float32), voxel_size_angstrom=voxel)
    timings["maps_seconds"] = time.perf_counter() - t1

    # 3. PCA of the masked maps (K × voxels in the mask)
    t2 = time.perf_counter()
    flat = np.flatnonzero(mask.ravel())
    data = np.empty((k, n_mask), dtype=np.float32)
    for i, path in enumerate(paths):
        vol, _ = read_mrc(path, mmap=True)
        data[i] = np.asarray(vol).reshape(-1)[flat]
    coords, ratio = masked_pca(data, config.pc_dim)
    del data
    timings["pca_seconds"] = time.perf_counter() - t2

    # 4. states of the maps, then of the particles
    centre_state = cluster_maps(coords, config.n_states, config.linkage)
    m = int(centre_state.max())
    particle_state = centre_state[sk.labels]
    populations = np.bincount(particle_state, minlength=m + 1)[1:]
    original = np.asarray(run.indices)
    _savetxt(out / "labels.txt", particle_state, "%d")
    for s in range(1, m + 1):
        _savetxt(out / f"state_{s:02d}_indices.txt", original[particle_state == s], "%d")
    _savetxt(centres_dir / "z_values.txt", z[sk.centre_rows], "%.6g")
    _savetxt(centres_dir / "centers_ind.txt", original[sk.centre_rows], "%d")
    _savetxt(centres_dir / "labels.txt", sk.labels + 1, "%d")
    _savetxt(centres_dir / "states.txt", centre_state, "%d")
    with atomic_open(out / "volume_pca.npy", "wb") as handle:
        np.save(handle, coords.astype(np.float32))

    # 5. per-state mean and std maps (particle-weighted over the state's centre maps), one state at a time
    t3 = time.perf_counter()
    mean_paths = []
    for s in range(1, m + 1):
        members = np.flatnonzero(centre_state == s)
        weights = sk.sizes[members].astype(np.float64)
        if weights.sum() == 0:
            weights = np.ones_like(weights)
        acc = np.zeros((box, box, box))
        acc2 = np.zeros((box, box, box))
        for j, w in zip(members, weights):
            vol = read_mrc(paths[j])[0].astype(np.float64)
            acc += w * vol
            acc2 += w * vol * vol
        mean = acc / weights.sum()
        std = np.sqrt(np.clip(acc2 / weights.sum() - mean * mean, 0.0, None))
        mean_path = out / f"state_{s:02d}_mean.mrc"
        write_mrc(mean_path, mean.astype(np.float32), voxel_size_angstrom=voxel)
        write_mrc(out / f"state_{s:02d}_std.mrc", std.astype(np.float32), voxel_size_angstrom=voxel)
        mean_paths.append(mean_path)
    timings["state_maps_seconds"] = time.perf_counter() - t3

    # 6. pictures
    t4 = time.perf_counter()
    from cryoscape.analysis.volumes import describe_series, write_chimerax_script, write_montage

    describe_series(mean_paths, out / "montage.png", out / f"{out.name}.cxc",
                    title=f"{Path(run.path).name}: {m} landscape states (mean maps)",
                    labels=[f"state {s} ({populations[s - 1]})" for s in range(1, m + 1)])
    order = np.lexsort((np.arange(k), centre_state))
    shown = order[np.unique(np.linspace(0, k - 1, min(k, MONTAGE_ROWS)).round().astype(int))]
    write_montage([read_mrc(paths[j])[0] for j in shown], centres_dir / "montage.png",
                  labels=[f"vol_{j + 1:03d} s{centre_state[j]}" for j in shown],
                  title=f"{len(shown)} of {k} centre maps, by state")
    write_chimerax_script(paths, centres_dir / "centers.cxc", 0.5 * float(top.mean()), voxel_size_angstrom=voxel)
    plots = _plots(run, out, z, particle_state, populations, coords, ratio, centre_state, sk.sizes, config)
    timings["plots_seconds"] = time.perf_counter() - t4
    timings["total_seconds"] = time.perf_counter() - t0

    summary = {
        "run": str(run.path), "epoch": int(run.epoch), "n_particles": int(n), "config": asdict(config),
        "sketch_size": int(k), "n_states": int(m), "box_size": int(box), "voxel_size_angstrom": float(voxel),
        "mask_voxels": n_mask, "mask_fraction": n_mask / box**3,
        "volume_pca_explained_variance_ratio": [float(r) for r in ratio],
        "state_populations": {str(s): int(populations[s - 1]) for s in range(1, m + 1)},
        "state_centres": {str(s): int((centre_state == s).sum()) for s in range(1, m + 1)},
        "plots": plots, "timings": timings,
    }
    with atomic_open(out / "landscape.json", "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary


def _savetxt(path: Path, values: np.ndarray, fmt: str) -> None:
    from cryoscape.io.atomic import atomic_open

    with atomic_open(path, "w") as handle:
        np.savetxt(handle, values, fmt=fmt)


def _latent_2d(run: Any, z: np.ndarray, skip_umap: bool) -> dict[str, np.ndarray]:
    """2-D views of z: PCA (always, unless zdim 1) and UMAP (from ``analyze``'s umap.npy, else computed)."""
    from cryoscape.analysis.latent import fit_pca

    views: dict[str, np.ndarray] = {}
    if z.shape[1] >= 2:
        views["pca"] = fit_pca(z).transform(z)[:, :2]
    umap_path = Path(run.analyze_dir) / "umap.npy"
    if umap_path.is_file():
        emb = np.load(umap_path, allow_pickle=False)
        if emb.shape == (len(z), 2):
            views["umap"] = emb
    if "umap" not in views and not skip_umap and z.shape[1] >= 2:
        import umap

        views["umap"] = umap.UMAP(random_state=0, n_jobs=1).fit_transform(z)
    return views


def _plots(run, out: Path, z, particle_state, populations, coords, ratio, centre_state, sizes,
           config: LandscapeConfig) -> list[str]:
    from cryoscape.analysis.plots import pyplot
    from cryoscape.io.atomic import atomic_open

    plt = pyplot()
    m = len(populations)
    cmap = plt.get_cmap("tab10" if m <= 10 else "tab20")
    colours = [cmap(i % cmap.N) for i in range(m)]
    written = []

    def save(fig, name):
        fig.tight_layout()
        with atomic_open(out / name, "wb") as handle:
            fig.savefig(handle, format="png")
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(max(4, 0.5 * m + 2), 3.5), dpi=120)
    ax.bar(np.arange(1, m + 1), populations, color=colours)
    ax.set_xticks(np.arange(1, m + 1))
    ax.set_xlabel("state")
    ax.set_ylabel("particles")
    ax.set_title("state populations")
    save(fig, "state_populations.png")

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
    for s in range(1, m + 1):
        sel = centre_state == s
        y = coords[sel, 1] if coords.shape[1] > 1 else np.zeros(sel.sum())
        ax.scatter(coords[sel, 0], y, s=10 + 90 * sizes[sel] / max(1, sizes.max()), color=colours[s - 1],
                   label=f"state {s}", alpha=0.8, linewidths=0)
    ax.set_xlabel(f"volume PC1 ({100 * ratio[0]:.1f}%)")
    ax.set_ylabel(f"volume PC2 ({100 * ratio[1]:.1f}%)" if len(ratio) > 1 else "")
    ax.set_title("centre maps (size ∝ particles)")
    ax.legend(fontsize=7, markerscale=0.8)
    save(fig, "volume_pca_states.png")

    rng = np.random.default_rng(0)
    shown = np.arange(len(z)) if len(z) <= 100_000 else np.sort(rng.choice(len(z), 100_000, replace=False))
    for key, view in _latent_2d(run, z, config.skip_umap).items():
        fig, ax = plt.subplots(figsize=(5, 4.5), dpi=120)
        for s in range(1, m + 1):
            sel = shown[particle_state[shown] == s]
            ax.scatter(view[sel, 0], view[sel, 1], s=2, color=colours[s - 1], label=f"state {s}", alpha=0.5,
                       linewidths=0, rasterized=True)
        ax.set_xlabel(f"{key.upper()}1")
        ax.set_ylabel(f"{key.upper()}2")
        ax.set_title(f"latent {key.upper()} coloured by landscape state")
        ax.legend(fontsize=7, markerscale=4)
        save(fig, f"z_{key}_states.png")
    if z.shape[1] == 1:
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
        bins = np.linspace(z.min(), z.max(), 60)
        for s in range(1, m + 1):
            ax.hist(z[particle_state == s, 0], bins=bins, color=colours[s - 1], label=f"state {s}", alpha=0.7)
        ax.set_xlabel("z")
        ax.set_ylabel("particles")
        ax.legend(fontsize=7)
        save(fig, "z_states.png")
    return written
