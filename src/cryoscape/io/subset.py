"""Write the selected rows of a RELION STAR or cryoSPARC ``.cs`` particle file, losslessly.

A STAR subset is a line-by-line copy of the original file: every comment, ``# version`` line, key-value block
and loop header is kept verbatim, particle rows are kept (as their exact bytes) when selected, optics-group rows
when a selected particle uses them. RELION numbers optics groups 1 … K and looks a group up by its number, so
when some groups are dropped the remaining ones are renumbered 1 … K in their original order (the particle rows'
``rlnOpticsGroup`` field is rewritten in place; ``rlnOpticsGroupName`` and every other value are untouched).
Two streaming passes over the file: memory is O(number of particles) integers, whatever the row width.

A ``.cs`` subset is the selected records of the structured array with every field and the dtype unchanged.

Indices are 0-based positions in the file (row order); the subset is written in file order.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open

_PARTICLE_BLOCKS = ("particles", "images", "")
_FIELD_RE = re.compile(rb"\"[^\"]*\"|'[^']*'|\S+")


@dataclass(frozen=True)
class SubsetInfo:
    """What a subset writer wrote.

    Attributes
    ----------
    path : Path
        The file written.
    n_selected, n_total : int
        Rows written and rows of the original file.
    optics_groups : dict of int to int
        Original optics-group number → number in the written file, for the groups kept (empty without optics).
    """

    path: Path
    n_selected: int
    n_total: int
    optics_groups: dict[int, int] = field(default_factory=dict)

    @property
    def renumbered(self) -> bool:
        """True when some kept optics group has a new number."""
        return any(old != new for old, new in self.optics_groups.items())


def selection_positions(indices: np.ndarray, n_total: int, path: str | os.PathLike | None = None) -> np.ndarray:
    """Validate 0-based row indices into a file of ``n_total`` rows; return them sorted (int64).

    Raises
    ------
    InputError
        Non-integer, negative, out-of-range or repeated indices.
    """
    values = np.asarray(indices).reshape(-1)
    if values.size and values.dtype.kind not in "iu":
        if values.dtype.kind != "f" or np.any(values != np.round(values)):
            raise InputError("particle indices must be integers", path=path, fix="give 0-based integer indices")
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise InputError(f"negative particle index {int(values.min())}", path=path,
                         fix="indices are 0-based positions in the original particle file")
    if values.size and values.max() >= n_total:
        raise InputError(f"particle index {int(values.max())} is out of range: the file has {n_total} particles "
                         "(0-based indices 0 … {})".format(n_total - 1), path=path,
                         fix="give indices into this particle file (the one the run was trained on, or the "
                         "original of a downsampled stack)")
    ordered = np.sort(values)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size:
        raise InputError(f"particle index {int(repeated[0])} is given more than once "
                         f"({repeated.size} repeat(s))", path=path, fix="give each index once")
    return ordered


# --- STAR ----------------------------------------------------------------------------------------------------
@dataclass
class _Loop:
    block: str
    labels: list[str]
    data_lines: list[int] = field(default_factory=list)
    group_tokens: list[bytes] = field(default_factory=list)
    group_column: int | None = None


def _split_fields(line: bytes) -> list[bytes]:
    if b'"' in line or b"'" in line:
        return _FIELD_RE.findall(line)
    return line.split()


def _scan(path: Path) -> list[_Loop]:
    """Loops of a STAR file with the (0-based) line numbers of their data rows, like RELION reads them."""
    loops: list[_Loop] = []
    block = ""
    current: _Loop | None = None
    in_labels = False
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            if line.startswith(b"data_"):
                name = line[5:].split()
                block = name[0].decode(errors="replace") if name else ""
                current, in_labels = None, False
                continue
            if line.startswith(b"loop_"):
                current = _Loop(block, [])
                loops.append(current)
                in_labels = True
                continue
            if line.startswith(b"_"):
                if current is not None and in_labels:
                    label = line.split()[0][1:].decode(errors="replace")
                    if label == "rlnOpticsGroup":
                        current.group_column = len(current.labels)
                    current.labels.append(label)
                else:
                    current = None
                continue
            if current is None:
                continue
            in_labels = False
            current.data_lines.append(number)
            if current.block == "optics":  # small: read its fields now; particle rows are split only if kept
                fields = _checked_fields(line, current, number, path)
                if current.group_column is not None:
                    current.group_tokens.append(fields[current.group_column])
    return loops


def _checked_fields(line: bytes, loop: _Loop, number: int, path: Path) -> list[bytes]:
    fields = _split_fields(line.strip())
    if len(fields) != len(loop.labels):
        raise InputError(f"line {number + 1}: {len(fields)} field(s) in a row of data_{loop.block}, which has "
                         f"{len(loop.labels)} column(s)", path=path,
                         fix="the file is truncated or damaged: repair or remove that row")
    return fields


def _group_tokens(path: Path, loop: _Loop, lines: set[int]) -> dict[int, bytes]:
    """The rlnOpticsGroup field of the rows of ``loop`` on ``lines`` (a pass over the file; rows checked)."""
    tokens = {}
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle):
            if number in lines:
                tokens[number] = _checked_fields(raw, loop, number, path)[loop.group_column]
    return tokens


def _particle_loop(loops: list[_Loop], path: Path) -> _Loop:
    by_block = {}
    for loop in loops:
        by_block.setdefault(loop.block, loop)
    for name in _PARTICLE_BLOCKS:
        if name in by_block:
            return by_block[name]
    others = [loop for loop in loops if loop.block != "optics"]
    if len(others) != 1:
        found = ", ".join(f"data_{loop.block}" for loop in loops) or "none"
        raise InputError(f"no particle table found (loops: {found})", path=path,
                         fix="give a particle STAR file with a data_particles (or data_images) loop")
    return others[0]


def _group_ids(tokens: list[bytes], path: Path, what: str) -> np.ndarray:
    try:
        return np.array([int(float(t.strip(b"\"'"))) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.strip(b"\"'").lstrip(b"-").replace(b".", b"", 1).isdigit())
        raise InputError(f"rlnOpticsGroup value {bad.decode(errors='replace')!r} of the {what} is not an "
                         "integer", path=path, fix="rlnOpticsGroup holds whole numbers") from None


def _replace_field(line: bytes, column: int, value: bytes) -> bytes:
    for i, match in enumerate(_FIELD_RE.finditer(line)):
        if i == column:
            return line[:match.start()] + value + line[match.end():]
    raise AssertionError("field not found")  # pragma: no cover - rows were checked by _scan


def write_star_subset(source: str | os.PathLike, indices: np.ndarray, out: str | os.PathLike, *,
                      all_optics_groups: bool = False, comment: str | None = None) -> SubsetInfo:
    """Write the particle rows ``indices`` of the STAR file ``source`` to ``out`` with everything else kept.

    Parameters
    ----------
    source
        RELION 3.0 (one table), 3.1/4 or 5 (optics + particles) STAR file.
    indices
        0-based particle rows (any order, each once); written in file order.
    out
        Destination (written atomically).
    all_optics_groups
        Keep every optics group instead of only those the selected particles use.
    comment
        One line put first in the file as ``# comment`` (RELION ignores comments).

    Returns
    -------
    SubsetInfo
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise InputError("STAR file not found", path=source, fix="check the path")
    loops = _scan(source)
    particles = _particle_loop(loops, source)
    n_total = len(particles.data_lines)
    rows = selection_positions(indices, n_total, path=source)
    keep_lines = {particles.data_lines[r] for r in rows.tolist()}

    optics = next((loop for loop in loops if loop.block == "optics" and loop is not particles), None)
    mapping: dict[int, int] = {}
    optics_keep: set[int] = set()
    validated = False  # kept particle rows already split and checked
    if optics is not None:
        if optics.group_column is None:
            optics_keep = set(optics.data_lines)
        else:
            group_ids = _group_ids(optics.group_tokens, source, "optics table")
            if particles.group_column is None or all_optics_groups:
                used = set(group_ids.tolist())
            else:
                tokens = _group_tokens(source, particles, keep_lines)
                validated = True
                used = set(_group_ids(list(tokens.values()), source, "particles").tolist())
                unknown = used - set(group_ids.tolist())
                if unknown:
                    raise InputError(f"selected particles name optics group(s) {sorted(unknown)} that data_optics "
                                     "does not define", path=source, fix="fix rlnOpticsGroup or data_optics")
            kept = [(line, gid) for line, gid in zip(optics.data_lines, group_ids.tolist()) if gid in used]
            optics_keep = {line for line, _ in kept}
            mapping = {gid: (gid if all_optics_groups else new) for new, (_, gid) in enumerate(kept, start=1)}
    renumber = any(old != new for old, new in mapping.items())
    optics_data = set() if optics is None else set(optics.data_lines)
    optics_column = None if optics is None else optics.group_column
    particle_column = particles.group_column
    particle_data = set(particles.data_lines)

    def renumbered(raw: bytes, column: int) -> bytes:
        body = raw.rstrip(b"\r\n")
        old = int(float(_split_fields(body)[column].strip(b"\"'")))
        return _replace_field(body, column, str(mapping[old]).encode()) + raw[len(body):]

    with open(source, "rb") as src, atomic_open(out, "wb") as dst:
        if comment:
            dst.write(b"# " + comment.replace("\n", " ").encode(errors="replace") + b"\n")
        for number, raw in enumerate(src):
            if number in particle_data:
                if number not in keep_lines:
                    continue
                if not validated:
                    _checked_fields(raw, particles, number, source)
                if renumber and particle_column is not None:
                    raw = renumbered(raw, particle_column)
            elif number in optics_data:
                if number not in optics_keep:
                    continue
                if renumber and optics_column is not None:
                    raw = renumbered(raw, optics_column)
            dst.write(raw)
    return SubsetInfo(path=out, n_selected=int(rows.size), n_total=n_total, optics_groups=mapping)


# --- cryoSPARC -----------------------------------------------------------------------------------------------
def write_cs_subset(source: str | os.PathLike, indices: np.ndarray, out: str | os.PathLike) -> SubsetInfo:
    """Write the records ``indices`` of the cryoSPARC ``.cs`` file ``source`` to ``out`` (all fields, same dtype).

    The result is a cryoSPARC particle file of the selected rows (``numpy.save`` of the structured array, as
    cryoSPARC writes it), importable as an external/imported particle set. Rows are written in file order.
    """
    from cryoscape.io.cs import read_cs, write_cs

    source, out = Path(source), Path(out)
    array = read_cs(source)
    rows = selection_positions(indices, len(array), path=source)
    write_cs(out, np.ascontiguousarray(array[rows]))
    return SubsetInfo(path=out, n_selected=int(rows.size), n_total=len(array))


# --- do two particle files list the same particles in the same order? ----------------------------------------
_IDENTITY_COLUMNS = ("rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY", "rlnImageOriginalName",
                     "rlnDefocusU", "rlnDefocusV", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
_CS_IDENTITY_FIELDS = ("uid", "location/micrograph_path", "location/center_x_frac", "location/center_y_frac",
                       "ctf/df1_A", "ctf/df2_A")


def _star_image_numbers(names) -> np.ndarray | None:
    numbers = []
    for name in names:
        head, sep, _ = str(name).partition("@")
        if not sep or not head.strip().isdigit():
            return None
        numbers.append(int(head))
    return np.asarray(numbers, dtype=np.int64)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int | None:
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        same = np.isclose(a64, b64, rtol=1e-5, atol=1e-6) | (np.isnan(a64) & np.isnan(b64))
    else:
        same = a.astype(str) == b.astype(str)
    bad = np.flatnonzero(~np.asarray(same).reshape(len(a), -1).all(axis=1))
    return int(bad[0]) if bad.size else None


def _count(path: Path) -> int:
    from cryoscape.io.stacks import open_images

    suffix = path.suffix.lower()
    if suffix == ".star":
        from cryoscape.io.star import read_star

        return len(read_star(path))
    if suffix == ".cs":
        from cryoscape.io.cs import read_cs

        return len(read_cs(path))
    return len(open_images(path))


def check_same_particles(original: str | os.PathLike, training: str | os.PathLike) -> str:
    """Check that ``training`` (e.g. a downsampled copy) lists the particles of ``original`` in the same order.

    Checks: the same number of particles; for two STAR files, the same image numbers (``k@`` of
    ``rlnImageName``, whatever the stack file) unless the training file numbers one rewritten stack 1 … N (as
    ``downsample`` writes it), and equal values in the per-particle columns both files have among micrograph
    name, coordinates, original image name, defocus and angles; for two ``.cs`` files, equal ``uid`` and
    ``blob/idx`` (whatever the path) and the shared location/defocus fields. A stack or ``.txt`` is checked by
    its image count only.

    Returns
    -------
    str
        One line saying what was compared.

    Raises
    ------
    InputError
        The files differ (the message names the first differing particle).
    """
    original, training = Path(original), Path(training)
    n_orig, n_train = _count(original), _count(training)
    fix = ("use the particle file the run was trained on, or its original before a downsample that kept every "
           "particle in order")
    if n_orig != n_train:
        raise InputError(f"{n_orig} particles here but {n_train} in the training particles {training}",
                         path=original, fix=fix)
    kinds = (original.suffix.lower(), training.suffix.lower())
    compared = ["count"]
    if kinds == (".star", ".star"):
        from cryoscape.io.star import read_star

        a, b = read_star(original), read_star(training)
        if "rlnImageName" in a.particles and "rlnImageName" in b.particles:
            na = _star_image_numbers(a.particles["rlnImageName"])
            nb = _star_image_numbers(b.particles["rlnImageName"])
            if na is not None and nb is not None:
                if np.array_equal(na, nb):
                    compared.append("image numbers")
                elif not np.array_equal(nb, np.arange(1, n_train + 1)):
                    k = int(np.flatnonzero(na != nb)[0])
                    raise InputError(f"particle {k} (0-based) is image {na[k]} of its stack here but image "
                                     f"{nb[k]} in {training}: not the same order", path=original, fix=fix)
        for column in _IDENTITY_COLUMNS:
            if column in a.particles and column in b.particles:
                k = _first_difference(a.particles[column].to_numpy(), b.particles[column].to_numpy())
                if k is not None:
                    raise InputError(f"particle {k} (0-based) has {column} {a.particles[column].iloc[k]!r} here but "
                                     f"{b.particles[column].iloc[k]!r} in {training}: not the same particles in "
                                     "the same order", path=original, fix=fix)
                compared.append(column)
    elif kinds == (".cs", ".cs"):
        from cryoscape.io.cs import read_cs

        a, b = read_cs(original), read_cs(training)
        for name in ("blob/idx", *_CS_IDENTITY_FIELDS):
            if name in (a.dtype.names or ()) and name in (b.dtype.names or ()):
                k = _first_difference(a[name], b[name])
                if k is not None:
                    raise InputError(f"particle {k} (0-based) has {name} {a[name][k]!r} here but {b[name][k]!r} in "
                                     f"{training}: not the same particles in the same order", path=original, fix=fix)
                compared.append(name)
    return f"{n_orig} particles; same " + ", ".join(compared) + f" as {training}"
