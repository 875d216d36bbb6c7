"""Pictures of map series: a montage of slices and projections (PNG) and a ChimeraX movie script (.cxc).

Every map series written by the analysis commands (k-means centres, PC and graph traversals, landscape states)
gets both, so a user sees the series at a glance and plays it in ChimeraX with one command::

    chimerax kmeans20/kmeans20.cxc        # opens vol_001.mrc … as a volume series at one contour level
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryoscape.io.atomic import atomic_open

VIEWS = ("slice x", "slice y", "slice z", "proj. x", "proj. y", "proj. z")


def map_views(vol: np.ndarray) -> list[np.ndarray]:
    """Central slices and projections of a map (D, D, D) indexed [z, y, x] along x, y and z (six 2-D images).

    Each view is oriented for ``imshow(origin="lower")``: a slice/projection along x shows (z, y), along y shows
    (z, x), along z shows (y, x).
    """
    vol = np.asarray(vol, dtype=np.float32)
    c = vol.shape[0] // 2
    return [vol[:, :, c], vol[:, c, :], vol[c, :, :], vol.sum(axis=2), vol.sum(axis=1), vol.sum(axis=0)]


def contour_level(maps: Sequence[np.ndarray]) -> float:
    """One contour level for a whole series: half the mean over maps of each map's 99.99th percentile.

    (The threshold rule of the paper's soft mask; it shows the molecule, not the noise, for maps of a trained
    decoder.)
    """
    values = [float(np.percentile(np.asarray(m, dtype=np.float32), 99.99)) for m in maps]
    return 0.5 * float(np.mean(values)) if values else 0.0


def write_montage(maps: Sequence[np.ndarray], path: str | os.PathLike, labels: Sequence[str] | None = None,
                  title: str = "") -> Path:
    """PNG montage: one row per map, columns = central slices and projections along x, y, z.

    All slices share one grey scale and all projections another (the 0.5th to 99.5th percentiles over the whole
    series), so rows are comparable: a domain that moves or vanishes shows as a change along the column.

    Parameters
    ----------
    maps : sequence of ndarray (D, D, D)
    path : output PNG
    labels : row labels (default ``vol_001`` …)
    title : figure title
    """
    from cryoscape.analysis.plots import pyplot, save_figure

    plt = pyplot()
    views = [map_views(m) for m in maps]
    n = len(views)
    if n == 0:
        raise ValueError("no maps to draw")
    labels = list(labels) if labels is not None else [f"vol_{i + 1:03d}" for i in range(n)]
    slices = np.concatenate([np.ravel(v[j]) for v in views for j in range(3)])
    projs = np.concatenate([np.ravel(v[j]) for v in views for j in range(3, 6)])
    s_lo, s_hi = np.percentile(slices, [0.5, 99.5])
    p_lo, p_hi = np.percentile(projs, [0.5, 99.5])
    cell = 1.3
    fig, axes = plt.subplots(n, 6, figsize=(6 * cell + 0.9, n * cell + (0.7 if title else 0.4)), dpi=100,
                             squeeze=False)
    for i, row in enumerate(views):
        for j, image in enumerate(row):
            ax = axes[i, j]
            lo, hi = (s_lo, s_hi) if j < 3 else (p_lo, p_hi)
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(VIEWS[j], fontsize=8)
        axes[i, 0].set_ylabel(labels[i], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_chimerax_script(map_paths: Sequence[str | os.PathLike], path: str | os.PathLike, level: float,
                          voxel_size_angstrom: float | None = None) -> Path:
    """A ChimeraX command script that opens ``map_paths`` as one volume series and plays it as a movie.

    File names are written relative to the script's folder (ChimeraX runs a .cxc from its own folder), so the
    folder can be moved or copied as a whole.
    """
    path = Path(path)
    base = path.parent.resolve()
    names = []
    for p in map_paths:
        p = Path(p).resolve()
        try:
            names.append(os.path.relpath(p, base))
        except ValueError:  # another drive (Windows)
            names.append(str(p))
    quoted = " ".join(f'"{n}"' if " " in n else n for n in names)
    lines = [
        f"# cryoscape: {len(names)} maps as a volume series; play with 'vseries play #1', stop with 'vseries stop #1'",
        f"open {quoted} vseries true",
        f"volume #1 level {level:.6g} style surface",
    ]
    if voxel_size_angstrom is not None:
        lines.append(f"volume #1 voxelSize {voxel_size_angstrom:.6g}")
    lines += ["view", "vseries play #1 loop true direction oscillate"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def describe_series(map_paths: Sequence[str | os.PathLike], montage_path: str | os.PathLike,
                    script_path: str | os.PathLike, title: str = "",
                    labels: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Montage PNG and ChimeraX script of a written map series (reads the maps back one at a time)."""
    from cryoscape.io.mrc import read_mrc

    maps = []
    voxel = None
    for p in map_paths:
        data, header = read_mrc(p)
        maps.append(np.asarray(data, dtype=np.float32))
        voxel = header.voxel_size_angstrom
    level = contour_level(maps)
    montage = write_montage(maps, montage_path, labels=labels, title=title)
    script = write_chimerax_script(map_paths, script_path, level, voxel_size_angstrom=voxel)
    return montage, script
