"""The k-means clusters of ``cryoscape analyze`` as the report shows them: labels, on-data centres and maps.

Each cluster gets a thumbnail row made from its map (the six views of the map montage: central slices and
projections along x, y and z, one grey scale per kind of view over all the clusters' maps, as in the montage),
the map's path and the ChimeraX command that opens it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.runs.layout import AnalysisLayout

CELL_PX = 72  # width of one view in a cluster's thumbnail row


@dataclass(frozen=True)
class ClusterMaps:
    """What ``analyze`` computed for one K.

    Attributes
    ----------
    k : int
    labels : ndarray (N,) int64
        1-based cluster of every row of the run's latent array.
    centre_rows : ndarray (K,) int64
        Row of the on-data centre particle of each cluster.
    map_paths : list of Path or None
        The clusters' maps (``None`` entries where a map was not written, e.g. ``--skip-vol``).
    thumbnails : list of str or None
        PNG (base64) of each cluster's map views; None where there is no map.
    chimerax_script : Path or None
        The script opening the whole series.
    """

    k: int
    labels: np.ndarray
    centre_rows: np.ndarray
    map_paths: list[Path | None]
    thumbnails: list[str | None]
    chimerax_script: Path | None


def _png_row(views: list[np.ndarray], ranges: list[tuple[float, float]]) -> str:
    from PIL import Image

    cells = []
    for image, (lo, hi) in zip(views, ranges):
        scaled = np.clip((np.asarray(image, np.float64) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
        cell = Image.fromarray(np.round(scaled[::-1] * 255).astype(np.uint8))  # origin at the bottom, as the montage
        cells.append(cell.resize((CELL_PX, CELL_PX), Image.Resampling.BILINEAR))
    row = Image.new("L", (CELL_PX * len(cells) + 4 * (len(cells) - 1), CELL_PX), color=255)
    for j, cell in enumerate(cells):
        row.paste(cell, (j * (CELL_PX + 4), 0))
    buffer = io.BytesIO()
    row.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def map_thumbnails(map_paths: list[Path | None]) -> list[str | None]:
    """One PNG row (base64) per map: slices x, y, z and projections x, y, z on the series' shared grey scales."""
    from cryoscape.analysis.volumes import map_views
    from cryoscape.io.mrc import read_mrc

    views = [None if p is None else map_views(read_mrc(p)[0]) for p in map_paths]
    present = [v for v in views if v is not None]
    if not present:
        return [None] * len(map_paths)
    ranges = []
    for first in (0, 3):
        values = np.concatenate([np.ravel(v[j]) for v in present for j in range(first, first + 3)])
        lo, hi = np.percentile(values, [0.5, 99.5])
        ranges += [(float(lo), float(hi))] * 3
    return [None if v is None else _png_row(v, ranges) for v in views]


def cluster_maps(run, layout: AnalysisLayout, k: int) -> ClusterMaps | None:
    """Read ``layout.kmeans(k)``: labels, centre particles (rows of ``run.z``) and map thumbnails.

    None when the labels are missing or do not match the run's particles.
    """
    series = layout.kmeans(k)
    n = len(run.indices)
    try:
        labels = np.loadtxt(series.labels, dtype=np.int64, ndmin=1)
        centres_ind = np.loadtxt(series.centers_ind, dtype=np.int64, ndmin=1)
    except (OSError, ValueError):
        return None
    if labels.shape != (n,) or centres_ind.shape != (k,):
        return None
    centre_rows = np.asarray(run.rows_of(centres_ind), dtype=np.int64)
    paths = [p if p.is_file() else None for p in series.map_paths(k)]
    script = series.chimerax_script if series.chimerax_script.is_file() else None
    return ClusterMaps(k=k, labels=labels, centre_rows=centre_rows, map_paths=paths,
                       thumbnails=map_thumbnails(paths), chimerax_script=script)


def chimerax_open_command(path: Path) -> str:
    """``open '<absolute path>'`` for ChimeraX's command line."""
    text = str(Path(path).resolve()).replace("'", "\\'")
    return f"open '{text}'"
