"""The data report.html gets (no browser): colourings without duplicates, distinct cluster colours, the k-means
centres and map rows, gallery thumbnails and their CTF phase flip, figure captions, the CLI output file."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.gallery import particle_gallery, phase_flip, sample_rows, to_uint8
from cryoscape.analysis.report import ReportConfig, build_report, report_data
from cryoscape.analysis.report_columns import distinct_colors, table_columns
from cryoscape.cli.main import main
from cryoscape.errors import InputError
from cryoscape.geometry.ctf import ctf_grid

SRC = Path(__file__).resolve().parents[2] / "src" / "cryoscape"


@pytest.fixture(scope="module")
def analysed_run(trained_run, tmp_path_factory):
    """A copy of the zdim-2 run analysed with maps (K = 4, one PC traversal of 2 maps, no UMAP)."""
    run_dir = tmp_path_factory.mktemp("report_unit") / "z2"
    shutil.copytree(trained_run, run_dir, ignore=shutil.ignore_patterns("analyze.*"))
    run = TrainedRun.open(run_dir, device="cpu")
    run_analysis(run, AnalyzeConfig(ksample=4, skip_umap=True, notebook=False, pc=1, n_per_pc=2))
    return run


def _decode(spec) -> np.ndarray:
    raw = base64.b64decode(spec["data"])
    return np.frombuffer(raw, dtype={"float32": "<f4", "uint8": np.uint8, "codes": "<u2", "int32": "<i4"}
                         [spec["encoding"]])


def test_distinct_colors_up_to_60():
    for k in range(1, 61):
        colors = distinct_colors(k)
        assert len(colors) == k and len(set(colors)) == k
        assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors)
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in distinct_colors(10)], dtype=float)
    gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)[~np.eye(10, dtype=bool)]
    assert gaps.min() > 40  # ten clusters: no two colours nearly alike


def test_table_columns_keep_the_file_name_of_a_repeated_column():
    rng = np.random.default_rng(0)
    n = 300
    rot = rng.uniform(-180, 180, n)
    table = pd.DataFrame({
        "index": np.arange(n),
        "defocus_angstrom": rng.uniform(1e4, 2e4, n),
        "defocus_u_angstrom": np.linspace(1e4, 3e4, n),
        "rot_deg": rot,
        "tilt_deg": rng.uniform(0, 180, n),
        "shift_x_px": np.linspace(-3, 3, n),
        "rlnDefocusU": np.linspace(1e4, 3e4, n),
        "rlnAngleRot": np.where(rot < 0, rot + 360, rot),  # the same angles written in [0, 360)
        "rlnOriginXAngst": np.linspace(-3, 3, n) * 4.2,  # the shift in Å
        "rlnClassNumber": rng.integers(1, 4, n),
        "rlnOpticsGroup": np.ones(n, dtype=int),  # one value: nothing to colour by
    })
    labels = [c["label"] for c in table_columns(table)]
    assert len(labels) == len(set(labels))
    for kept in ("rlnAngleRot", "rlnDefocusU", "rlnOriginXAngst", "defocus_angstrom", "tilt_deg", "rlnClassNumber"):
        assert kept in labels
    for dropped in ("rot_deg", "defocus_u_angstrom", "shift_x_px", "index", "rlnOpticsGroup"):
        assert dropped not in labels
    classes = next(c for c in table_columns(table) if c["label"] == "rlnClassNumber")
    assert classes["categories"] == ["1", "2", "3"] and len(set(classes["palette"])) == 3


def test_report_data_of_an_analysed_run(analysed_run):
    run = analysed_run
    layout = run.run_dir.analysis(run.epoch)
    data = report_data(run, layout, ReportConfig(gallery_size=50, thumbnail_px=16))
    n = len(run.indices)
    labels = [c["label"] for c in data["colors"]]
    assert len(labels) == len(set(labels)) and labels[0] == "k-means cluster (K=4)"
    assert "rot_deg" not in labels and "rlnAngleRot" in labels  # the star's name of the angle kept once
    # PCs from pca.npy, every one, and the affine map back to z
    pcs = np.load(layout.pca)
    assert len(data["projections"]["pcs"]) == run.zdim and data["projections"]["umap"] is None
    np.testing.assert_array_equal(_decode(data["projections"]["pcs"][1]), pcs[:, 1].astype(np.float32))
    back = np.asarray(data["projections"]["pcs_to_z"])
    np.testing.assert_allclose(np.c_[pcs, np.ones(n)] @ back, run.z, atol=1e-4)
    # k-means: centres are the on-data centre particles, sizes from the labels, 4 different colours, map rows
    clusters = data["clusters"]
    series = layout.kmeans(4)
    assert clusters["k"] == 4
    np.testing.assert_array_equal(clusters["centre_rows"], run.rows_of(np.loadtxt(series.centers_ind, dtype=int)))
    labels_file = np.loadtxt(series.labels, dtype=int)
    assert clusters["sizes"] == np.bincount(labels_file, minlength=5)[1:].tolist() and sum(clusters["sizes"]) == n
    assert len(set(clusters["palette"])) == 4 and clusters["palette"] == data["colors"][0]["palette"]
    assert clusters["maps"] == [p.name for p in series.map_paths(4)]
    assert all(c.startswith("open '") and c.endswith(f"{m}'") for c, m in zip(clusters["chimerax"], clusters["maps"]))
    from PIL import Image

    for thumb in clusters["thumbnails"]:
        image = Image.open(io.BytesIO(base64.b64decode(thumb)))
        assert image.size[1] == 72 and image.size[0] > 6 * 72  # six views in a row
    # the gallery: 50 random particles, 16 px, 8 bits
    gallery = data["gallery"]
    assert gallery["count"] == 50 and gallery["size"] == 16 and gallery["phase_flipped"]
    assert _decode(gallery["pixels"]).size == 50 * 16 * 16
    rows = np.arange(gallery["rows"]["n"]) + gallery["rows"]["start"] if gallery["rows"]["encoding"] == "range" \
        else _decode(gallery["rows"])
    np.testing.assert_array_equal(rows, sample_rows(n, 50, 0))


def test_gallery_thumbnails_count_and_size(analysed_run):
    gallery = particle_gallery(analysed_run, count=30, thumbnail_px=48, seed=2)
    box = analysed_run.box_size
    assert gallery.pixels.shape == (30, min(box, 48), min(box, 48)) and gallery.pixels.dtype == np.uint8
    assert gallery.rows.tolist() == sorted(set(gallery.rows.tolist())) and gallery.rows.max() < len(analysed_run.z)
    assert gallery.pixels.min() == 0 and gallery.pixels.max() == 255  # each image spans the 8 bits
    assert particle_gallery(analysed_run, count=10_000, thumbnail_px=16).pixels.shape == (len(analysed_run.z), 16, 16)


def _relion_ctf(box: int, apix: float, defocus_angstrom: float, kv: float, cs_mm: float, w: float) -> np.ndarray:
    """The CTF written out here from its textbook formula (round astigmatism-free defocus), centred lattice."""
    k = (np.arange(box) - box // 2) / (box * apix)
    s2 = k[None, :] ** 2 + k[:, None] ** 2
    volts = kv * 1e3
    lam = 12.2643247 / np.sqrt(volts * (1 + 0.978466e-6 * volts))
    chi = np.pi * lam * defocus_angstrom * s2 - 0.5 * np.pi * cs_mm * 1e7 * lam ** 3 * s2 ** 2
    return np.sqrt(1 - w ** 2) * np.sin(chi) + w * np.cos(chi)


def test_phase_flip_multiplies_the_transform_by_the_ctf_sign():
    box, apix, defocus = 64, 1.5, 15000.0
    yy, xx = np.mgrid[:box, :box] - box // 2
    blob = np.exp(-((xx - 3) ** 2 + yy ** 2) / 20.0) + 0.5 * np.exp(-(xx ** 2 + (yy + 9) ** 2) / 8.0)
    ctf = _relion_ctf(box, apix, defocus, 300.0, 2.7, 0.1)
    assert ctf[box // 2, box // 2] > 0  # positive at zero frequency: white particles stay white
    spectrum = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(blob)))
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(spectrum * ctf))).real  # the recorded image
    library_ctf = ctf_grid(box, apix, defocus, defocus, 0.0, 300.0, 2.7, 0.1, 0.0)
    np.testing.assert_allclose(library_ctf[0], ctf, atol=1e-9)
    flipped = phase_flip(image[None], library_ctf)[0]
    expected = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(spectrum * np.abs(ctf)))).real
    np.testing.assert_allclose(flipped, expected, atol=1e-5)
    corr = [np.corrcoef(x.ravel(), blob.ravel())[0, 1] for x in (image, flipped)]
    assert corr[1] > 0.85 and corr[1] > corr[0] + 0.1


def test_to_uint8_scales_each_image_from_its_percentiles():
    images = np.stack([np.linspace(0, 1, 100).reshape(10, 10), np.linspace(-50, 50, 100).reshape(10, 10)])
    out = to_uint8(images)
    assert out.dtype == np.uint8 and out[:, 0, 0].tolist() == [0, 0] and out[:, -1, -1].tolist() == [255, 255]
    np.testing.assert_array_equal(out[0], out[1])


def test_figures_have_captions_and_the_learning_curve_is_wide(analysed_run):
    content = build_report(analysed_run, analysed_run.run_dir.analysis(analysed_run.epoch),
                           ReportConfig(gallery_size=0))
    figures = {f.path.name: f for _, group in content.figure_groups for f in group}
    assert figures["learning_curve.png"].wide and figures["montage.png"].wide
    for figure in figures.values():
        assert figure.path.is_file() and ".png" not in figure.caption and len(figure.caption) > 30
    titles = [title for title, _ in content.figure_groups]
    assert titles[:3] == ["Training", "Latent space", "k-means clusters (K = 4)"] and "Traversal along PC1" in titles
    assert content.data["gallery"] == {"reason": "no gallery (--gallery-size 0)"}


def test_cli_writes_the_named_file_with_a_positional_epoch(analysed_run, tmp_path, capsys):
    out = tmp_path / "x.html"
    assert main(["report", str(analysed_run.path), str(analysed_run.epoch), "-o", str(out),
                 "--gallery-size", "20"]) == 0
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and '"count":20' in text
    with pytest.raises(InputError, match="--gallery-size"):
        ReportConfig(gallery_size=-1)
    assert main(["report", str(analysed_run.path), "1", "--epoch", "2", "-o", str(tmp_path / "y.html")]) != 0
    assert not (tmp_path / "y.html").exists()


def test_report_modules_spell_no_run_folder_path():
    files = [SRC / "cli" / "report.py", SRC / "analysis" / "gallery.py",
             *sorted((SRC / "analysis").glob("report*.py"))]
    names = (r"kmeans[\d{]|pc\d|analyze\.|landscape\.|vol_|labels\.txt|centers|z_values|montage|report\.html"
             r"|\w+\.(?:png|npy|json|mrc|cxc)")
    forbidden = re.compile(rf"""["'](?:{names})""")
    for path in files:
        assert not forbidden.findall(path.read_text(encoding="utf-8")), path


def test_report_data_of_a_one_dimensional_latent(trained_run_1d, tmp_path):
    run_dir = tmp_path / "z1"
    shutil.copytree(trained_run_1d, run_dir, ignore=shutil.ignore_patterns("analyze.*"))
    run = TrainedRun.open(run_dir, device="cpu")
    run_analysis(run, AnalyzeConfig(ksample=3, skip_vol=True, notebook=False))
    data = report_data(run, run.run_dir.analysis(run.epoch), ReportConfig(gallery_size=5))
    assert data["zdim"] == 1 and len(data["projections"]["pcs"]) == 1 and data["projections"]["umap"] is None
    assert data["clusters"]["maps"] == [None, None, None] and data["clusters"]["thumbnails"] == [None] * 3
    assert data["gallery"]["count"] == 5
