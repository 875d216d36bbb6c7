"""Pictures of a written map series: a montage PNG and a ChimeraX movie script (.cxc).

Every map series written by the analysis commands (k-means centres, PC traversals, landscape states) gets both,
so a user sees the series at a glance and plays it in ChimeraX with one command. The drawing lives in
:mod:`cryoscape.plotting.maps` and :mod:`cryoscape.plotting.chimerax`; :func:`describe_series` reads the maps
back from their files and calls them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cryoscape.plotting.chimerax import write_chimerax_script
from cryoscape.plotting.figures import save_figure
from cryoscape.plotting.maps import MONTAGE_MAX_MAPS, map_level_percentile, map_views, montage_figure, shown_rows

__all__ = ["describe_series"]


def describe_series(map_paths: Sequence[str | os.PathLike], montage_path: str | os.PathLike,
                    script_path: str | os.PathLike, title: str = "",
                    labels: Sequence[str] | None = None, max_maps: int = MONTAGE_MAX_MAPS) -> tuple[Path, Path]:
    """Montage PNG and ChimeraX script of a written map series.

    The maps are read one at a time; only the views of the maps the montage shows are kept (memory: one map
    plus ``max_maps`` × six 2-D views). Row labels default to the file names without extension.
    """
    from cryoscape.io.mrc import read_mrc

    paths = [Path(p) for p in map_paths]
    labels = list(labels) if labels is not None else [p.stem for p in paths]
    if len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} maps")
    shown = set(shown_rows(len(paths), max_maps).tolist())
    views, shown_labels, levels = [], [], []
    voxel = None
    for i, p in enumerate(paths):
        data, header = read_mrc(p)
        data = np.asarray(data, dtype=np.float32)
        levels.append(map_level_percentile(data))
        voxel = header.voxel_size_angstrom
        if i in shown:
            views.append(map_views(data))
            shown_labels.append(labels[i])
    montage = save_figure(montage_figure(views, shown_labels, title, total=len(paths)), montage_path)
    level = 0.5 * float(np.mean(levels))
    script = write_chimerax_script(paths, script_path, level, voxel_size_angstrom=voxel)
    return montage, script
