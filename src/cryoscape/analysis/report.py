"""``report.html``: one self-contained page of a run's analysis that works offline from disk.

Everything is inlined: the plotly.js bundle (scattergl: WebGL, so 10⁶ points stay responsive), the figures and
map montages of ``cryoscape analyze`` (PNG as data URIs), and the per-particle data as base64 typed arrays
(coordinates float32; colour columns quantised to 16 bits; categories as 16-bit codes). A Content-Security-Policy
forbids any network access. Every string taken from input files (paths, column names, category values) is
HTML-escaped, or set with ``textContent``; the JSON data block has ``<``, ``>`` and ``&`` escaped so it cannot
close its element.

The scatter shows PCA (``pca.npy``) and UMAP (``umap.npy``) coordinates, coloured by k-means cluster, ‖z‖, a
latent coordinate, defocus or any per-particle column of the original star/cs; hover shows the original
particle index; a lasso or box selection shows its count and downloads an index file of original indices,
with the ``cryoscape select --from-file`` / ``write-star`` commands to run next.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.io.atomic import atomic_open

MAX_CATEGORIES = 60
MAX_FILE_COLUMNS = 12
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#e7ba52", "#ad494a", "#637939", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]
# columns of the particle table that would only repeat what the scatter shows or are identifiers
_SKIP_COLUMNS = {"index", "rlnImageName", "rlnImageOriginalName", "blob/idx", "uid", "rlnGroupNumber"}


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def encode_float32(values: np.ndarray) -> dict[str, Any]:
    """Float32 little-endian array as base64."""
    return {"encoding": "float32", "data": _b64(np.asarray(values, dtype="<f4"))}


def encode_indices(indices: np.ndarray) -> dict[str, Any]:
    """Original particle indices: a range when contiguous, else int32 base64."""
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


def _color_column(label: str, values: np.ndarray, categorical: bool) -> dict[str, Any] | None:
    values = np.asarray(values)
    if values.ndim != 1:
        return None
    if categorical:
        spec, names, counts = encode_categories(values)
        if len(names) < 1 or len(names) > MAX_CATEGORIES:
            return None
        return {"label": label, "values": spec, "categories": names, "counts": counts}
    numeric = values.astype(np.float64)
    if not np.isfinite(numeric).any() or np.nanmin(numeric) == np.nanmax(numeric):
        return None
    spec = encode_quantized(numeric)
    return {"label": label, "label_escaped": html.escape(label), "values": spec, "lo": spec["lo"], "hi": spec["hi"]}


def _kmeans_labels(analyze_dir: Path, n: int) -> list[tuple[int, np.ndarray]]:
    found = []
    for child in sorted(analyze_dir.glob("kmeans*")):
        match = re.fullmatch(r"kmeans(\d+)", child.name)
        if match and (child / "labels.txt").is_file():
            try:
                labels = np.loadtxt(child / "labels.txt", dtype=np.int64, ndmin=1)
            except ValueError:
                continue
            if labels.shape == (n,):
                found.append((int(match.group(1)), labels))
    return sorted(found)


def color_columns(run, analyze_dir: Path, z: np.ndarray) -> list[dict[str, Any]]:
    """The colourings offered: k-means clusters, ‖z‖, z coordinates, defocus/angles and the file's columns."""
    n = len(z)
    columns: list[dict[str, Any]] = []
    for k, labels in _kmeans_labels(analyze_dir, n):
        col = _color_column(f"k-means cluster (K={k})", labels, categorical=True)
        if col is not None:
            col["categories"] = [f"cluster {c}" for c in col["categories"]]
            columns.append(col)
    columns.append(_color_column("‖z‖", np.linalg.norm(z, axis=1), categorical=False))
    for j in range(min(z.shape[1], 10)):
        col = _color_column(f"z{j + 1}", z[:, j], categorical=False)
        if col is not None:
            columns.append(col)
    try:
        table = run.particle_table()
    except Exception:
        table = None
    if table is not None and len(table) == n:
        extra = 0
        for name in table.columns:
            if name in _SKIP_COLUMNS or extra >= MAX_FILE_COLUMNS + 8:
                continue
            values = table[name].to_numpy()
            kind = values.dtype.kind
            if kind in "OSU":
                uniques = len(set(values.tolist()))
                col = _color_column(str(name), values.astype(str), categorical=True) if uniques <= MAX_CATEGORIES \
                    else None
            elif kind in "iub" or (kind == "f" and len(np.unique(values[: min(n, 100000)])) <= 12
                                   and np.all(values[np.isfinite(values)] == np.round(values[np.isfinite(values)]))):
                uniques = len(np.unique(values))
                categorical = uniques <= MAX_CATEGORIES and ("Class" in str(name) or "class" in str(name)
                                                             or "Group" in str(name) or uniques <= 12)
                col = _color_column(str(name), values, categorical=categorical)
            elif kind == "f":
                col = _color_column(str(name), values, categorical=False)
            else:
                col = None
            if col is not None:
                columns.append(col)
                extra += 1
    return [c for c in columns if c is not None]


def _projections(analyze_dir: Path, z: np.ndarray) -> list[dict[str, Any]]:
    n = len(z)
    out = []
    pca_path = analyze_dir / "pca.npy"
    pcs = np.load(pca_path, allow_pickle=False) if pca_path.is_file() else None
    if pcs is None or pcs.shape[0] != n:
        from cryoscape.analysis.latent import fit_pca

        pcs = fit_pca(z).transform(z) if n >= 2 else np.zeros_like(z)
    pcs = np.asarray(pcs, dtype=np.float32)
    if pcs.shape[1] >= 2:
        out.append({"name": "PCA (PC1, PC2)", "xlabel": "PC1", "ylabel": "PC2",
                    "x": encode_float32(pcs[:, 0]), "y": encode_float32(pcs[:, 1])})
    else:
        out.append({"name": "z (1-D) against particle", "xlabel": "row (increasing particle index)", "ylabel": "z",
                    "x": encode_float32(np.arange(n, dtype=np.float32)), "y": encode_float32(pcs[:, 0])})
    umap_path = analyze_dir / "umap.npy"
    if umap_path.is_file():
        emb = np.load(umap_path, allow_pickle=False)
        if emb.shape == (n, 2):
            out.append({"name": "UMAP", "xlabel": "UMAP1", "ylabel": "UMAP2",
                        "x": encode_float32(emb[:, 0]), "y": encode_float32(emb[:, 1])})
    return out


def _figure_groups(analyze_dir: Path) -> list[tuple[str, list[Path]]]:
    groups = [("analysis", sorted(analyze_dir.glob("*.png")))]
    subdirs = sorted((p for p in analyze_dir.iterdir() if p.is_dir()),
                     key=lambda p: (not p.name.startswith("kmeans"), not p.name.startswith("pc"), p.name))
    for sub in subdirs:
        pngs = sorted(sub.glob("*.png"), key=lambda p: (p.name != "montage.png", p.name))
        if pngs:
            groups.append((sub.name, pngs))
    return [(name, files) for name, files in groups if files]


def _figures_html(analyze_dir: Path) -> str:
    parts = []
    for name, files in _figure_groups(analyze_dir):
        title = "Figures" if name == "analysis" else f"{name}/"
        parts.append(f'<section class="figure-group"><h2>{html.escape(title)}</h2><div class="figures">')
        for path in files:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            rel = path.relative_to(analyze_dir).as_posix()
            wide = ' class="wide"' if path.name == "montage.png" else ""
            parts.append(f'<figure{wide}><img alt="{html.escape(rel)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(rel)}</figcaption></figure>")
        parts.append("</div></section>")
    return "\n".join(parts)


def _facts_html(analyze_dir: Path, run, n: int, zdim: int) -> str:
    rows = [("run", str(run.path)), ("epoch", str(run.epoch)), ("particles", f"{n}"), ("latent dimension", str(zdim))]
    particles = run.particles_path
    if particles is not None:
        rows.append(("particle file", str(particles)))
    if run.config.data.ind:
        rows.append(("training subset (--ind)", str(run.config.data.ind)))
    summary_path = analyze_dir / "analysis.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except ValueError:
            summary = {}
        ratio = (summary.get("pca") or {}).get("explained_variance_ratio")
        if ratio:
            rows.append(("PCA explained variance", ", ".join(f"{100 * r:.1f} %" for r in ratio[:6])))
        km = summary.get("kmeans") or {}
        if km.get("sizes"):
            rows.append((f"k-means (K={km.get('k')}) sizes", ", ".join(str(s) for s in km["sizes"])))
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(**fields: str) -> str:
    """Fill :data:`report_assets.PAGE` (placeholders ``@@NAME@@``); every field is inserted verbatim."""
    from cryoscape.analysis import report_assets

    fields.setdefault("STYLE", report_assets.STYLE)
    fields.setdefault("SCRIPT", report_assets.SCRIPT)
    return re.sub(r"@@([A-Z]+)@@", lambda m: fields[m.group(1)], report_assets.PAGE)


def plotly_bundle() -> str:
    """The plotly.js bundle shipped with the plotly package (inlined; no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


def report_data(analyze_dir: Path, run) -> dict[str, Any]:
    """The JSON data block of the page (see the module docstring)."""
    z = np.asarray(run.z, dtype=np.float32)
    particles = run.particles_path
    kind = None if particles is None else particles.suffix.lower().lstrip(".")
    return {
        "n": len(z),
        "indices": encode_indices(run.indices),
        "projections": _projections(analyze_dir, z),
        "colors": color_columns(run, analyze_dir, z),
        "palette": PALETTE,
        "run_arg": shlex.quote(str(Path(run.path).resolve()))
        + (f" --epoch {run.epoch}" if run.epoch != _latest(run) else ""),
        "particles_arg": shlex.quote(str(Path(particles).resolve())) if kind in ("star", "cs") else None,
        "particles_kind": kind,
    }


def _latest(run) -> int | None:
    try:
        return run.run_dir.latest_epoch()
    except Exception:
        return None


def write_report(analyze_dir: Path, run) -> Path:
    """Write ``analyze_dir/report.html`` for ``run`` (a :class:`~cryoscape.analysis.api.TrainedRun`).

    Uses what ``cryoscape analyze`` wrote there (``pca.npy``, ``umap.npy``, ``kmeans<K>/labels.txt``, PNG figures
    and montages, ``analysis.json``); PCA is computed when ``pca.npy`` is absent.

    Returns
    -------
    Path
        The report.
    """
    analyze_dir = Path(analyze_dir)
    analyze_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(analyze_dir, run)
    title = f"cryoscape analysis — {run.path.name}, epoch {run.epoch}"
    subtitle = f"{data['n']} particles, zdim {run.zdim}; folder {analyze_dir}"
    page = render_page(TITLE=html.escape(title), SUBTITLE=html.escape(subtitle),
                       FACTS=_facts_html(analyze_dir, run, data["n"], run.zdim), FIGURES=_figures_html(analyze_dir),
                       PLOTLY=plotly_bundle(), DATA=_json_for_script(data))
    path = analyze_dir / "report.html"
    with atomic_open(path, "wb") as handle:
        handle.write(page.encode("utf-8"))
    return path


def report_path(analyze_dir: str | os.PathLike) -> Path:
    """``<analyze_dir>/report.html``."""
    return Path(analyze_dir) / "report.html"
