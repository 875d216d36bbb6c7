"""``report.html``: one self-contained page to explore a run's analysis, offline from disk.

Built from what ``cryoscape analyze`` computed (read through :class:`cryoscape.runs.layout.AnalysisLayout`: the
summary, ``pca``, ``umap``, the k-means labels, centres and maps, the figures); PCA is computed when absent.
Everything is inlined: the plotly.js bundle (scattergl: WebGL, so 10⁶ points stay responsive), figures as PNG
data URIs and the per-particle data as base64 typed arrays (:mod:`cryoscape.analysis.report_columns`). A
Content-Security-Policy forbids any network access. Every string taken from input files is HTML-escaped or set
with ``textContent``; the JSON data block has ``<``, ``>`` and ``&`` escaped so it cannot close its element.

The page: a latent scatter (any PC pair, or UMAP) coloured by k-means cluster, ‖z‖, a latent coordinate or any
column of the particle file, with the on-data k-means centres numbered on it. A lasso/box selection or a click on a
centre (or a cluster button) selects particles; the selection is a set of particles kept across projections,
with its count, an index file to download, the commands to make its map (``backproject``, ``eval-vol`` at its
mean z) and, for a cluster, its map views, map file and ChimeraX command. A gallery shows phase-flipped images of
the selected particles among an embedded random sample (``gallery_size`` thumbnails of at most
``thumbnail_px``²  bytes each: about 3 MB of the page for 1000 particles of 48 px), with their average.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.analysis.report_columns import (
    encode_float32,
    encode_indices,
    encode_uint8,
    latent_columns,
    table_columns,
)
from cryoscape.configio import check_range, option
from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open
from cryoscape.runs.layout import JOINT_KINDS, AnalysisLayout

log = logging.getLogger("cryoscape.analysis")


@dataclass(frozen=True)
class ReportConfig:
    """Options of the report (flag = field).

    Attributes
    ----------
    gallery_size : int
        Random particles whose thumbnails the page embeds (0: no gallery).
    thumbnail_px : int
        Box of the thumbnails (images are Fourier-cropped to it when larger).
    seed : int
        Seed of the gallery's random sample.
    """

    gallery_size: int = option(1000, help="random particles whose phase-flipped thumbnails the page embeds for "
                               "its gallery, about 2.3 kB each at 48 px (0 = no gallery; default %(default)s)")
    thumbnail_px: int = option(48, help="box of the gallery thumbnails in pixels (default %(default)s)")
    seed: int = option(0, help="seed of the gallery's random sample (default %(default)s)")

    def __post_init__(self) -> None:
        check_range(self.gallery_size, "--gallery-size", minimum=0, maximum=5000)
        check_range(self.thumbnail_px, "--thumbnail-px", minimum=8, maximum=128)


@dataclass(frozen=True)
class Figure:
    """A PNG of the analysis with a caption saying what it shows."""

    path: Path
    caption: str
    wide: bool = False


@dataclass(frozen=True)
class ReportContent:
    """Everything the page shows: header text, facts, figure groups and the JSON data of the scatter."""

    title: str
    subtitle: str
    facts: list[tuple[str, str]]
    figure_groups: list[tuple[str, list[Figure]]]
    data: dict[str, Any] = field(repr=False)


def _read_summary(layout: AnalysisLayout) -> dict[str, Any]:
    try:
        return json.loads(layout.summary.read_text())
    except (OSError, ValueError):
        return {}


def _load_rows(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    array = np.load(path, allow_pickle=False)
    return array if array.shape[: len(shape)] == shape else None


def projections(layout: AnalysisLayout, z: np.ndarray) -> dict[str, Any]:
    """PC coordinates (every PC), the UMAP embedding when present, and the affine map from PCs back to z."""
    from cryoscape.analysis.latent import fit_pca

    n = len(z)
    pcs = _load_rows(layout.pca, (n,))
    if pcs is None or pcs.ndim != 2:
        pcs = fit_pca(z).transform(z) if n >= 2 else np.zeros_like(z)
    pcs = np.asarray(pcs, dtype=np.float32)
    design = np.concatenate([pcs.astype(np.float64), np.ones((n, 1))], axis=1)
    back = np.linalg.lstsq(design, z.astype(np.float64), rcond=None)[0]  # [pcs, 1] @ back = z
    umap = _load_rows(layout.umap, (n, 2))
    return {"pcs": [encode_float32(pcs[:, j]) for j in range(pcs.shape[1])],
            "umap": None if umap is None else [encode_float32(umap[:, 0]), encode_float32(umap[:, 1])],
            "pcs_to_z": back.tolist()}


def _kmeans_k(layout: AnalysisLayout, summary: dict[str, Any]) -> list[int]:
    ks = layout.kmeans_values()
    chosen = (summary.get("kmeans") or {}).get("k")
    return sorted(ks, key=lambda k: (k != chosen, k))


def _cluster_data(clusters, colors: list[dict[str, Any]]) -> dict[str, Any] | None:
    from cryoscape.analysis.report_maps import chimerax_open_command

    if clusters is None:
        return None
    color_index = next(i for i, c in enumerate(colors) if c.get("kmeans") == clusters.k)
    sizes = np.bincount(clusters.labels, minlength=clusters.k + 1)[1:]
    return {"k": clusters.k, "color_index": color_index, "centre_rows": clusters.centre_rows.tolist(),
            "sizes": sizes.tolist(), "palette": colors[color_index]["palette"],
            "maps": [None if p is None else p.name for p in clusters.map_paths],
            "chimerax": [None if p is None else chimerax_open_command(p) for p in clusters.map_paths],
            "series_chimerax": None if clusters.chimerax_script is None
            else chimerax_open_command(clusters.chimerax_script),
            "thumbnails": clusters.thumbnails}


def _gallery_data(run, config: ReportConfig) -> dict[str, Any]:
    from cryoscape.analysis.gallery import particle_gallery

    if config.gallery_size == 0:
        return {"reason": "no gallery (--gallery-size 0)"}
    try:
        gallery = particle_gallery(run, count=config.gallery_size, thumbnail_px=config.thumbnail_px,
                                   seed=config.seed)
    except (InputError, OSError) as err:
        log.warning("report: no particle gallery: %s", err)
        return {"reason": f"no gallery: the particle images could not be read ({err})"}
    return {"size": gallery.size_px, "rows": encode_indices(gallery.rows), "count": len(gallery.rows),
            "pixels": encode_uint8(gallery.pixels), "phase_flipped": gallery.phase_flipped,
            "pixel_size_angstrom": gallery.pixel_size_angstrom}


def _quoted(path: Path | None) -> str | None:
    return None if path is None else shlex.quote(str(Path(path).resolve()))


def _commands(run) -> dict[str, Any]:
    from cryoscape.analysis.api import resolve_run_path

    particles = run.particles_path
    kind = None if particles is None else particles.suffix.lower().lstrip(".")
    data = run.config.data
    extra = []
    for flag, value in (("--poses", data.poses), ("--ctf", data.ctf), ("--datadir", data.datadir)):
        if value:
            extra.append(f"{flag} {_quoted(resolve_run_path(value, run.path))}")
    try:
        latest = run.run_dir.latest_epoch()
    except (AttributeError, InputError, OSError):
        latest = None
    return {"run_arg": _quoted(run.path) + (f" --epoch {run.epoch}" if run.epoch != latest else ""),
            "particles_arg": _quoted(particles) if kind in ("star", "cs") else None,
            "particles_kind": kind,
            "backproject_arg": None if particles is None else " ".join([_quoted(particles), *extra]),
            "invert": bool(data.invert_data)}


def report_data(run, layout: AnalysisLayout, config: ReportConfig = ReportConfig()) -> dict[str, Any]:
    """The JSON data block of the page (see the module docstring)."""
    from cryoscape.analysis.report_maps import cluster_maps

    z = np.asarray(run.z, dtype=np.float32)
    summary = _read_summary(layout)
    ks = _kmeans_k(layout, summary)
    clusters = cluster_maps(run, layout, ks[0]) if ks else None
    labels = [(clusters.k, clusters.labels)] if clusters is not None else []
    colors = latent_columns(z, labels)
    try:
        table = run.particle_table()
    except (InputError, OSError, ValueError):
        table = None
    if table is not None and len(table) == len(z):
        colors += table_columns(table)
    return {"n": len(z), "zdim": int(z.shape[1]), "indices": encode_indices(run.indices),
            "projections": projections(layout, z), "colors": colors,
            "pca_ratio": (summary.get("pca") or {}).get("explained_variance_ratio"),
            "clusters": _cluster_data(clusters, colors), "gallery": _gallery_data(run, config), **_commands(run)}


def figure_groups(layout: AnalysisLayout, k_values: list[int]) -> list[tuple[str, list[Figure]]]:
    """The figures of the analysis that exist, grouped, each with a caption describing it."""
    from cryoscape.analysis.report_figures import analysis_figures

    groups = analysis_figures(layout, k_values, JOINT_KINDS)
    return [(title, [f for f in figures if f.path.is_file()]) for title, figures in groups
            if any(f.path.is_file() for f in figures)]


def _facts(run, layout: AnalysisLayout, n: int) -> list[tuple[str, str]]:
    rows = [("run", str(run.path)), ("epoch", str(run.epoch)), ("particles", f"{n}"),
            ("latent dimension", str(run.zdim))]
    if run.particles_path is not None:
        rows.append(("particle file", str(run.particles_path)))
    if run.config.data.ind:
        rows.append(("training subset (--ind)", str(run.config.data.ind)))
    summary = _read_summary(layout)
    ratio = (summary.get("pca") or {}).get("explained_variance_ratio")
    if ratio:
        rows.append(("PCA explained variance", ", ".join(f"{100 * r:.1f} %" for r in ratio[:8])))
    km = summary.get("kmeans") or {}
    if km.get("sizes"):
        rows.append((f"k-means (K={km.get('k')}) sizes", ", ".join(str(s) for s in km["sizes"])))
    return rows


def build_report(run, layout: AnalysisLayout, config: ReportConfig = ReportConfig()) -> ReportContent:
    """Read the analysis of ``run`` (a :class:`~cryoscape.analysis.api.TrainedRun`) at ``layout``."""
    data = report_data(run, layout, config)
    title = f"cryoscape analysis — {run.path.name}, epoch {run.epoch}"
    subtitle = f"{data['n']} particles, zdim {run.zdim}; analysis folder {layout.root}"
    ks = [] if data["clusters"] is None else [data["clusters"]["k"]]
    return ReportContent(title=title, subtitle=subtitle, facts=_facts(run, layout, data["n"]),
                         figure_groups=figure_groups(layout, ks), data=data)


def _facts_html(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _figures_html(groups: list[tuple[str, list[Figure]]]) -> str:
    parts = []
    for title, figures in groups:
        parts.append(f'<section class="figure-group"><h2>{html.escape(title)}</h2><div class="figures">')
        for fig in figures:
            data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
            wide = ' class="wide"' if fig.wide else ""
            parts.append(f'<figure{wide}><img alt="{html.escape(fig.caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(fig.caption)} <span class=\"file\">"
                         f"({html.escape(fig.path.name)})</span></figcaption></figure>")
        parts.append("</div></section>")
    return "\n".join(parts)


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


def page_html(content: ReportContent) -> str:
    """The whole page as text."""
    return render_page(TITLE=html.escape(content.title), SUBTITLE=html.escape(content.subtitle),
                       FACTS=_facts_html(content.facts), FIGURES=_figures_html(content.figure_groups),
                       PLOTLY=plotly_bundle(), DATA=_json_for_script(content.data))


def write_report(analyze_dir: str | os.PathLike, run, out_path: str | os.PathLike | None = None,
                 config: ReportConfig = ReportConfig()) -> Path:
    """Write the report of the analysis in ``analyze_dir`` of ``run`` to ``out_path`` (default: the analysis
    folder's ``report.html``), atomically.

    Returns
    -------
    Path
        The report.
    """
    layout = AnalysisLayout(Path(analyze_dir))
    path = Path(out_path) if out_path is not None else layout.report
    page = page_html(build_report(run, layout, config))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as handle:
        handle.write(page.encode("utf-8"))
    return path
