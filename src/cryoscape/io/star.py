"""RELION STAR files: read 3.0 (no optics) and 3.1/4/5 (optics groups) tables; write the 3.1 layout.

Layouts understood by :func:`read_star`
---------------------------------------
* RELION 3.0: one loop block (``data_``, ``data_images`` or ``data_particles``) holding everything, pixel
  size as ``rlnDetectorPixelSize`` (µm) × 10⁴ / ``rlnMagnification`` or ``rlnImagePixelSize``; origins
  ``rlnOriginX/Y`` in pixels.
* RELION 3.1, 4 and 5 (``# version 30001`` / ``50001``): a ``data_optics`` block (before or after the
  particles) with one row per optics group (``rlnImagePixelSize``, ``rlnImageSize``, ``rlnVoltage``,
  ``rlnSphericalAberration``, ``rlnAmplitudeContrast``) and ``data_particles`` rows that name their
  ``rlnOpticsGroup``; origins ``rlnOriginXAngst/YAngst`` in Å.

:meth:`StarData.values` gives any column per particle, looking in the particle table first and then in the
particle's optics group, so callers never care which layout they got. Column names are without the leading
``_``.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open

RELION30 = 30000
RELION31 = 30001
_PARTICLE_BLOCKS = ("particles", "images", "")
_VERSION_RE = re.compile(r"^#\s*version\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class StarData:
    """The particle table of a STAR file and its optics groups.

    Attributes
    ----------
    particles : DataFrame
        One row per particle; columns are RELION labels without the leading underscore (``rlnImageName``).
    optics : DataFrame or None
        One row per optics group (RELION 3.1+), None for a RELION 3.0 file.
    version : int
        30000 for a file without optics block (RELION 3.0 layout); otherwise the number of its
        ``# version`` comment (30001 for RELION 3.1/4, 50001 for RELION 5), 30001 when there is none.
    path : Path or None
        The file read (for messages).
    """

    particles: pd.DataFrame
    optics: pd.DataFrame | None
    version: int
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.particles)

    def has(self, column: str) -> bool:
        """True if ``column`` is in the particle table or the optics table."""
        return column in self.particles.columns or (self.optics is not None and column in self.optics.columns)

    def optics_rows(self) -> np.ndarray | None:
        """For each particle, the row of its optics group in :attr:`optics` (None without optics).

        Raises
        ------
        InputError
            A particle names an optics group that the optics table lacks, or the group column is missing while
            there are several groups.
        """
        if self.optics is None:
            return None
        if "rlnOpticsGroup" not in self.optics.columns:
            raise InputError("the data_optics block has no rlnOpticsGroup column", path=self.path,
                             fix="add rlnOpticsGroup (1, 2, ...) to the optics table")
        group_ids = self.optics["rlnOpticsGroup"].to_numpy()
        if "rlnOpticsGroup" not in self.particles.columns:
            if len(group_ids) == 1:
                return np.zeros(len(self.particles), dtype=np.int64)
            raise InputError("the particles have no rlnOpticsGroup column but there are "
                             f"{len(group_ids)} optics groups", path=self.path,
                             fix="add rlnOpticsGroup to the particle table")
        group_ids = group_ids.astype(np.int64)
        groups = self.particles["rlnOpticsGroup"].to_numpy().astype(np.int64)
        sorter = np.argsort(group_ids, kind="stable")
        pos = np.clip(np.searchsorted(group_ids[sorter], groups), 0, len(group_ids) - 1)
        rows = sorter[pos]
        bad = np.flatnonzero(group_ids[rows] != groups)
        if bad.size:
            k = int(bad[0])
            raise InputError(f"particle row {k + 1} names optics group {groups[k]}, which data_optics "
                             f"does not define (groups: {sorted(group_ids.tolist())})", path=self.path,
                             fix="fix rlnOpticsGroup or the data_optics block")
        return rows

    def values(self, column: str) -> np.ndarray | None:
        """Per-particle values of ``column`` from the particle table, else from each particle's optics group.

        Returns
        -------
        ndarray, shape (N,), or None when neither table has the column.
        """
        if column in self.particles.columns:
            return self.particles[column].to_numpy()
        if self.optics is not None and column in self.optics.columns:
            return self.optics[column].to_numpy()[self.optics_rows()]
        return None

    def pixel_sizes_angstrom(self) -> np.ndarray | None:
        """Pixel size of each particle image (Å), or None when the file does not say.

        ``rlnImagePixelSize`` (particle or optics table), else RELION 3.0's
        ``rlnDetectorPixelSize`` [µm] × 10⁴ / ``rlnMagnification``, else ``rlnPixelSize``.
        """
        pixel = self.values("rlnImagePixelSize")
        if pixel is not None:
            return pixel.astype(np.float64)
        detector, magnification = self.values("rlnDetectorPixelSize"), self.values("rlnMagnification")
        if detector is not None and magnification is not None:
            return detector.astype(np.float64) * 1e4 / magnification.astype(np.float64)
        pixel = self.values("rlnPixelSize")
        return None if pixel is None else pixel.astype(np.float64)

    def image_sizes(self) -> np.ndarray | None:
        """``rlnImageSize`` of each particle (pixels), or None when absent (RELION 3.0)."""
        size = self.values("rlnImageSize")
        return None if size is None else size.astype(np.int64)


def _read_version(path: Path) -> int | None:
    with open(path, errors="replace") as handle:
        head = handle.read(1 << 16)
    match = _VERSION_RE.search(head)
    return int(match.group(1)) if match else None


def read_star(path: str | os.PathLike) -> StarData:
    """Read the particle table (and optics groups) of a RELION STAR file.

    Parameters
    ----------
    path
        RELION 3.0 / 3.1 / 4 / 5 particle STAR file.

    Returns
    -------
    StarData

    Raises
    ------
    InputError
        Missing or unreadable file, or no particle table (the message lists the blocks found).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("STAR file not found", path=path, fix="check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises a variety of parser errors
        raise InputError(f"not a readable STAR file ({type(exc).__name__}: {exc})", path=path,
                         fix="check that the file is a RELION STAR file") from exc
    tables = {name: block for name, block in blocks.items() if isinstance(block, pd.DataFrame)}
    optics = tables.get("optics")
    candidates = [name for name in _PARTICLE_BLOCKS if name in tables]
    if candidates:
        particles = tables[candidates[0]]
    else:
        others = [name for name in tables if name != "optics"]
        if len(others) != 1:
            found = ", ".join(f"data_{n}" for n in blocks) or "none"
            raise InputError(f"no particle table found (blocks: {found})", path=path,
                             fix="give a particle STAR file with a data_particles (or data_images) loop")
        particles = tables[others[0]]
    if optics is not None and len(optics) == 0:
        optics = None
    version = RELION30 if optics is None else (_read_version(path) or RELION31)
    optics = None if optics is None else optics.reset_index(drop=True)
    return StarData(particles=particles.reset_index(drop=True), optics=optics, version=version, path=path)


def _check_writable(df: pd.DataFrame, block: str) -> pd.DataFrame:
    out = df.copy()
    for column in out.columns:
        if not str(column) or any(ch.isspace() for ch in str(column)):
            raise ValueError(f"STAR label {column!r} in data_{block} is empty or contains whitespace")
        series = out[column]
        if series.dtype == bool:
            out[column] = series.astype(np.int64)
        elif pd.api.types.is_float_dtype(series.dtype):
            if not np.all(np.isfinite(series.to_numpy())):
                raise ValueError(f"column {column} of data_{block} contains NaN or infinite values")
        elif not pd.api.types.is_integer_dtype(series.dtype):
            text = series.astype(str)
            bad = text[(text.str.len() == 0) | text.str.contains(r"[\s\"']", regex=True)]
            if len(bad):
                raise ValueError(f"column {column} of data_{block} has a value RELION cannot read: "
                                 f"{bad.iloc[0]!r} (empty, or containing whitespace or quotes)")
            out[column] = text
    return out


def _write_block(handle, name: str, df: pd.DataFrame, version: int | None) -> None:
    if version is not None:
        handle.write(f"\n# version {version}\n")
    handle.write(f"\ndata_{name}\n\nloop_\n")
    for i, column in enumerate(df.columns, start=1):
        handle.write(f"_{column} #{i}\n")
    df.to_csv(handle, sep=" ", header=False, index=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
    handle.write("\n")


def write_star(path: str | os.PathLike, particles: pd.DataFrame, optics: pd.DataFrame | None = None) -> Path:
    """Write a particle STAR file atomically.

    With ``optics`` the file has RELION 3.1's layout: ``data_optics`` then ``data_particles``, each preceded
    by ``# version 30001``; every particle must then name its ``rlnOpticsGroup``. Without ``optics`` a single
    RELION 3.0 ``data_`` block is written. Floats are written with full precision (``repr``).

    Parameters
    ----------
    path
        Destination ``.star``.
    particles
        One row per particle; columns are RELION labels without the leading underscore.
    optics
        One row per optics group, with ``rlnOpticsGroup``.

    Returns
    -------
    Path
    """
    path = Path(path)
    particles = _check_writable(particles, "particles")
    if optics is not None:
        optics = _check_writable(optics, "optics")
        if "rlnOpticsGroup" not in optics.columns or "rlnOpticsGroup" not in particles.columns:
            raise ValueError("with an optics table both tables need an rlnOpticsGroup column")
        missing = set(particles["rlnOpticsGroup"].astype(int)) - set(optics["rlnOpticsGroup"].astype(int))
        if missing:
            raise ValueError(f"particles name optics groups {sorted(missing)} that the optics table lacks")
    with atomic_open(path, "w") as handle:
        handle.write("# written by cryoscape\n")
        if optics is None:
            _write_block(handle, "", particles, None)
        else:
            _write_block(handle, "optics", optics, RELION31)
            _write_block(handle, "particles", particles, RELION31)
    return path
