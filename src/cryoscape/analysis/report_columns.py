"""Per-particle data of ``report.html``: compact encodings, the colourings offered and their palettes.

Arrays travel as base64 of little-endian typed arrays (coordinates float32; continuous colour columns quantised to
16 bits over [min, max]; categories as 16-bit codes). A colouring that only repeats another one is left out: a
column derived from the run's metadata (``rot_deg``, ``defocus_u_angstrom`` …) that carries the same values as a
column of the particle file (``rlnAngleRot``, ``rlnDefocusU`` …) is dropped and the file's name kept.
"""

from __future__ import annotations

import base64
import colorsys
import html
from typing import Any

import numpy as np

MAX_CATEGORIES = 60
MAX_FILE_COLUMNS = 20
#: columns of the particle table that are identifiers (nothing to colour by)
SKIP_COLUMNS = frozenset({"index", "rlnImageName", "rlnImageOriginalName", "blob/idx", "uid", "rlnGroupNumber"})
#: columns the run derives from its CTF and poses (the particle file's own columns win over these)
DERIVED_COLUMNS = frozenset({"defocus_angstrom", "defocus_u_angstrom", "defocus_v_angstrom", "rot_deg", "tilt_deg",
                             "psi_deg", "shift_x_px", "shift_y_px"})
_SAME_CORRELATION = 0.9999  # |Pearson r| above which two columns are one colouring (same values, other units)
_SAME_ANGLE_DEG = 0.5  # angles closer than this (modulo 360°) on 99 % of particles are the same angle


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def encode_float32(values: np.ndarray) -> dict[str, Any]:
    """Float32 little-endian array as base64."""
    return {"encoding": "float32", "data": _b64(np.asarray(values, dtype="<f4"))}


def encode_uint8(values: np.ndarray) -> dict[str, Any]:
    """Bytes (e.g. 8-bit image pixels) as base64."""
    return {"encoding": "uint8", "data": _b64(np.asarray(values, dtype=np.uint8))}


def encode_indices(indices: np.ndarray) -> dict[str, Any]:
    """Integer indices: a range when contiguous, else int32 base64."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and np.array_equal(indices, np.arange(indices[0], indices[0] + indices.size)):
        return {"encoding": "range", "start": int(indices[0]), "n": int(indices.size)}
    return {"encoding": "int32", "data": _b64(indices.astype("<i4"))}


def encode_quantized(values: np.ndarray) -> dict[str, Any]:
    """Continuous values quantised to 16 bits over [min, max] (65535 = missing); lo/hi kept for the colour bar."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    lo = float(values[finite].min()) if finite.any() else 0.0
    hi = float(values[finite].max()) if finite.any() else 1.0
    if hi <= lo:
        hi = lo + 1.0
    q = np.full(values.shape, 65535, dtype="<u2")
    q[finite] = np.round((values[finite] - lo) / (hi - lo) * 65534).astype(np.uint16)
    return {"encoding": "uint16q", "data": _b64(q), "lo": lo, "hi": hi}


def encode_categories(values: np.ndarray) -> tuple[dict[str, Any], list[str], list[int]]:
    """Category codes (uint16) with their names (as text) and counts, categories sorted."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    names, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    labels = [(v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for v in names.tolist()]
    return {"encoding": "codes", "data": _b64(codes.reshape(-1).astype("<u2"))}, labels, counts.tolist()


def distinct_colors(k: int) -> list[str]:
    """``k`` different colours (``#rrggbb``) for categories: evenly spaced hues, neighbours far apart.

    Hues are ``360° j / k`` visited with a stride near ``k / 3`` (coprime to k), so categories 1, 2, 3 … get
    hues far from each other; beyond 12 colours the lightness alternates over three levels as well.
    """
    if k <= 0:
        return []
    stride = max(1, round(k / 3))
    while np.gcd(stride, k) != 1:
        stride += 1
    levels = (0.45, 0.62, 0.33) if k > 12 else (0.5,)
    out: list[str] = []
    for j in range(k):
        hue = ((j * stride) % k) / k
        r, g, b = colorsys.hls_to_rgb(hue, levels[j % len(levels)], 0.75)
        out.append(f"#{round(255 * r):02x}{round(255 * g):02x}{round(255 * b):02x}")
    assert len(set(out)) == k, "hues and lightness levels must give k different colours"
    return out


def color_column(label: str, values: np.ndarray, categorical: bool,
                 category_names: list[str] | None = None) -> dict[str, Any] | None:
    """One colouring: categories (codes, names, counts, a palette) or continuous values (16-bit, lo, hi)."""
    values = np.asarray(values)
    if values.ndim != 1:
        return None
    if categorical:
        spec, names, counts = encode_categories(values)
        if len(names) < 1 or len(names) > MAX_CATEGORIES:
            return None
        if category_names is not None:
            names = category_names(names) if callable(category_names) else category_names
        return {"label": label, "values": spec, "categories": names, "counts": counts,
                "palette": distinct_colors(len(names))}
    numeric = values.astype(np.float64)
    if not np.isfinite(numeric).any() or np.nanmin(numeric) == np.nanmax(numeric):
        return None
    spec = encode_quantized(numeric)
    return {"label": label, "label_escaped": html.escape(label), "values": spec, "lo": spec["lo"], "hi": spec["hi"]}


def same_values(a: np.ndarray, b: np.ndarray, *, angles: bool = False) -> bool:
    """Whether two numeric columns carry the same information (equal up to units/sign, or the same angles)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return False
    a, b = a[ok], b[ok]
    if angles:
        diff = np.abs((a - b + 180.0) % 360.0 - 180.0)
        if np.mean(diff < _SAME_ANGLE_DEG) >= 0.99:
            return True
    if a.std() == 0 or b.std() == 0:
        return False
    return abs(float(np.corrcoef(a, b)[0, 1])) > _SAME_CORRELATION


def _is_angle(name: str) -> bool:
    return name.endswith("_deg") or "Angle" in name


def _table_column(name: str, values: np.ndarray, n: int) -> dict[str, Any] | None:
    kind = values.dtype.kind
    if len(np.unique(values[: min(n, 100000)])) < 2 and len(np.unique(values)) < 2:
        return None  # one value for every particle: nothing to colour by
    if kind in "OSU":
        if len(set(values.tolist())) > MAX_CATEGORIES:
            return None
        return color_column(name, values.astype(str), categorical=True)
    finite = values[np.isfinite(values)] if kind == "f" else values
    if kind in "iub" or (kind == "f" and len(np.unique(values[: min(n, 100000)])) <= 12
                         and np.all(finite == np.round(finite))):
        uniques = len(np.unique(values))
        categorical = uniques <= MAX_CATEGORIES and ("class" in name.lower() or "group" in name.lower()
                                                     or uniques <= 12)
        return color_column(name, values, categorical=categorical)
    if kind == "f":
        return color_column(name, values, categorical=False)
    return None


def table_columns(table) -> list[dict[str, Any]]:
    """Colourings from the particle table: the file's columns, then derived ones that repeat none of them."""
    n = len(table)
    names = [str(c) for c in table.columns if str(c) not in SKIP_COLUMNS]
    own = [c for c in names if c not in DERIVED_COLUMNS]
    derived = [c for c in names if c in DERIVED_COLUMNS]
    numeric_own = [c for c in own if table[c].to_numpy().dtype.kind in "iuf"]
    kept: list[str] = []
    for name in derived:
        values = table[name].to_numpy()
        if not any(same_values(values, table[o].to_numpy(), angles=_is_angle(name) and _is_angle(o))
                   for o in numeric_own):
            kept.append(name)
    columns = []
    for name in kept + own:
        if len(columns) >= MAX_FILE_COLUMNS:
            break
        col = _table_column(name, table[name].to_numpy(), n)
        if col is not None:
            columns.append(col)
    return columns


def latent_columns(z: np.ndarray, kmeans: list[tuple[int, np.ndarray]]) -> list[dict[str, Any]]:
    """k-means clusters (labels 1-based), ‖z‖ and the latent coordinates (at most 10)."""
    columns = []
    for k, labels in kmeans:
        col = color_column(f"k-means cluster (K={k})", labels, categorical=True,
                           category_names=lambda names: [f"cluster {c}" for c in names])
        if col is not None:
            col["kmeans"] = k
            columns.append(col)
    columns.append(color_column("‖z‖", np.linalg.norm(z, axis=1), categorical=False))
    for j in range(min(z.shape[1], 10)):
        columns.append(color_column(f"z{j + 1}", z[:, j], categorical=False))
    return [c for c in columns if c is not None]
