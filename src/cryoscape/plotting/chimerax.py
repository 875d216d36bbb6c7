"""ChimeraX command scripts (.cxc) that open a map series as one volume series and play it as a movie::

    chimerax kmeans20/kmeans20.cxc        # opens vol_001.mrc … as a volume series at one contour level
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryoscape.io.atomic import atomic_open


def write_chimerax_script(map_paths: Sequence[str | os.PathLike], path: str | os.PathLike, level: float,
                          voxel_size_angstrom: float | None = None) -> Path:
    """A ChimeraX command script that opens ``map_paths`` as one volume series and plays it as a movie.

    File names are written relative to the script's folder (ChimeraX runs a .cxc from its own folder), so the
    folder can be moved or copied as a whole. ``level`` is the surface contour level (map units, e.g.
    :func:`cryoscape.plotting.maps.contour_level`).
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
