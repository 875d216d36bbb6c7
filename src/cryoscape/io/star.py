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
from cryoscape.io.validation import InvalidMetadataError

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
    particle_lines: np.ndarray | None = None
    optics_lines: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.particles)

    def row_label(self, row: int) -> str:
        """How messages name particle ``row`` (0-based): its STAR line number when known, and its index."""
        if self.particle_lines is not None and 0 <= row < len(self.particle_lines):
            return f"line {int(self.particle_lines[row])} (particle {row}, 0-based)"
        return f"particle {row} (0-based)"

    def _optics_label(self, row: int) -> str:
        if self.optics_lines is not None and 0 <= row < len(self.optics_lines):
            return f"line {int(self.optics_lines[row])} (optics group row {row + 1})"
        return f"optics group row {row + 1}"

    def numeric(self, column: str) -> np.ndarray | None:
        """Per-particle values of ``column`` as finite float64 (like :meth:`values`), None when absent.

        Raises
        ------
        InputError
            A value is not a number or is NaN/infinite; the message names the column and the STAR line.
        """
        if column in self.particles.columns:
            return _finite_column(self.particles[column], column, self.path, self.row_label)
        if self.optics is not None and column in self.optics.columns:
            values = _finite_column(self.optics[column], column, self.path, self._optics_label)
            return values[self.optics_rows()]
        return None

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
            raise InvalidMetadataError("the data_optics block has no rlnOpticsGroup column", path=self.path,
                             fix="add rlnOpticsGroup (1, 2, ...) to the optics table")
        group_ids = _integer_column(self.optics["rlnOpticsGroup"], "rlnOpticsGroup", self.path,
                                    self._optics_label)
        if "rlnOpticsGroup" not in self.particles.columns:
            if len(group_ids) == 1:
                return np.zeros(len(self.particles), dtype=np.int64)
            raise InvalidMetadataError("the particles have no rlnOpticsGroup column but there are "
                             f"{len(group_ids)} optics groups", path=self.path,
                             fix="add rlnOpticsGroup to the particle table")
        groups = _integer_column(self.particles["rlnOpticsGroup"], "rlnOpticsGroup", self.path, self.row_label)
        sorter = np.argsort(group_ids, kind="stable")
        pos = np.clip(np.searchsorted(group_ids[sorter], groups), 0, len(group_ids) - 1)
        rows = sorter[pos]
        bad = np.flatnonzero(group_ids[rows] != groups)
        if bad.size:
            k = int(bad[0])
            raise InvalidMetadataError(f"{self.row_label(k)} names optics group {groups[k]}, which data_optics "
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
        pixel = self.numeric("rlnImagePixelSize")
        if pixel is not None:
            return pixel
        detector, magnification = self.numeric("rlnDetectorPixelSize"), self.numeric("rlnMagnification")
        if detector is not None and magnification is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                return detector * 1e4 / magnification
        return self.numeric("rlnPixelSize")

    def image_sizes(self) -> np.ndarray | None:
        """``rlnImageSize`` of each particle (pixels), or None when absent (RELION 3.0)."""
        if not self.has("rlnImageSize"):
            return None
        if "rlnImageSize" in self.particles.columns:
            return _integer_column(self.particles["rlnImageSize"], "rlnImageSize", self.path, self.row_label)
        sizes = _integer_column(self.optics["rlnImageSize"], "rlnImageSize", self.path, self._optics_label)
        return sizes[self.optics_rows()]


def _finite_column(series: pd.Series, column: str, path: Path | None, label) -> np.ndarray:
    """``series`` as float64, raising InputError at the first value that is not a finite number."""
    if pd.api.types.is_numeric_dtype(series.dtype) and series.dtype != bool:
        values = series.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        text = series.astype(str).str.strip().str.lower()
        literal_nan = text.isin(["nan", "+nan", "-nan"]).to_numpy()
        bad = np.flatnonzero(np.isnan(values) & ~literal_nan)
        if bad.size:
            k = int(bad[0])
            raise InvalidMetadataError(f"{label(k)}: {column} value {series.iloc[k]!r} is not a number", path=path,
                             fix=f"correct or remove that row; {column} must be numeric")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        k = int(bad[0])
        raise InvalidMetadataError(f"{label(k)}: {column} is {values[k]} ({bad.size} non-finite value(s) in the "
                                   "column)", path=path, fix="remove or repair the rows with NaN/inf values")
    return values


def _integer_column(series: pd.Series, column: str, path: Path | None, label) -> np.ndarray:
    """``series`` as int64, raising InputError at the first value that is not an integer."""
    values = _finite_column(series, column, path, label)
    bad = np.flatnonzero(values != np.round(values))
    if bad.size:
        k = int(bad[0])
        raise InvalidMetadataError(f"{label(k)}: {column} value {series.iloc[k]!r} is not an integer", path=path,
                         fix=f"{column} holds whole numbers")
    return values.astype(np.int64)


@dataclass
class _Loop:
    """One ``loop_`` of a STAR file as scanned line by line (1-based line numbers)."""

    block: str
    labels: list[str]
    label_lines: list[int]
    data_lines: list[int]


_FIELD_RE = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")


def _count_fields(line: str) -> int:
    if '"' in line or "'" in line:
        return len(_FIELD_RE.findall(line))
    return len(line.split())


def _scan_loops(path: Path) -> list[_Loop]:
    """Scan the loops of a STAR file; raise InputError for a repeated label or a row with the wrong field count.

    Data rows are the non-empty, non-comment lines after a loop's labels, up to the next ``data_``, ``loop_`` or
    ``_label`` line.
    """
    loops: list[_Loop] = []
    block = ""
    current: _Loop | None = None
    in_labels = False
    with open(path, errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("data_"):
                name = line[5:].split()
                block = name[0] if name else ""
                current, in_labels = None, False
                continue
            if line.startswith("loop_"):
                current = _Loop(block, [], [], [])
                loops.append(current)
                in_labels = True
                continue
            if line.startswith("_"):
                if current is not None and in_labels:
                    label = line.split()[0][1:]
                    if label in current.labels:
                        first = current.label_lines[current.labels.index(label)]
                        raise InputError(f"line {number}: column {label} of data_{block} is repeated (first on "
                                         f"line {first})", path=path, fix="remove the duplicated column")
                    current.labels.append(label)
                    current.label_lines.append(number)
                else:
                    current = None  # a key-value pair ends any loop
                continue
            if current is None:
                continue
            in_labels = False
            count = _count_fields(line)
            if count != len(current.labels):
                raise InputError(f"line {number}: {count} field(s) in a row of data_{block}, which has "
                                 f"{len(current.labels)} column(s)", path=path,
                                 fix="the file is truncated or damaged: repair or remove that row")
            current.data_lines.append(number)
    return loops


def _lines_of(loops: list[_Loop], block: str, n_rows: int) -> np.ndarray | None:
    for loop in loops:
        if loop.block == block and len(loop.data_lines) == n_rows:
            return np.asarray(loop.data_lines, dtype=np.int64)
    return None


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
        loops = _scan_loops(path)
    except UnicodeDecodeError as exc:  # pragma: no cover - errors="replace" decodes anything
        raise InputError(f"not a text STAR file ({exc})", path=path) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises a variety of parser errors
        detail = " ".join(str(exc).split())[:200]
        raise InputError(f"not a readable STAR file ({type(exc).__name__}: {detail})", path=path,
                         fix="check that the file is a RELION STAR file") from exc
    tables = {name: block for name, block in blocks.items() if isinstance(block, pd.DataFrame)}
    optics = tables.get("optics")
    candidates = [name for name in _PARTICLE_BLOCKS if name in tables]
    if candidates:
        particle_block = candidates[0]
    else:
        others = [name for name in tables if name != "optics"]
        if len(others) != 1:
            found = ", ".join(f"data_{n}" for n in blocks) or "none"
            raise InputError(f"no particle table found (blocks: {found})", path=path,
                             fix="give a particle STAR file with a data_particles (or data_images) loop")
        particle_block = others[0]
    particles = tables[particle_block]
    if len(particles) == 0:
        raise InputError(f"the particle table data_{particle_block} has no rows", path=path,
                         fix="give a STAR file that lists particles")
    if optics is not None and len(optics) == 0:
        optics = None
    version = RELION30 if optics is None else (_read_version(path) or RELION31)
    optics = None if optics is None else optics.reset_index(drop=True)
    return StarData(particles=particles.reset_index(drop=True), optics=optics, version=version, path=path,
                    particle_lines=_lines_of(loops, particle_block, len(particles)),
                    optics_lines=None if optics is None else _lines_of(loops, "optics", len(optics)))


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
