"""report.html in a real headless Chromium (Selenium): loads offline without console errors; box and lasso selections
download the original indices; the selection is kept across projections (highlight, count and download agree, the
lasso outline goes); a click on a k-means centre selects its cluster and shows its map row; the PC pair switches;
the gallery shows the selection's images; input strings are escaped.

Skipped when /usr/bin/chromium or /usr/bin/chromedriver is missing (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.gallery import particle_gallery
from cryoscape.analysis.report import ReportConfig, write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
GALLERY = ReportConfig(gallery_size=120, thumbnail_px=16, seed=1)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless system Chromium driven by Selenium, downloads going to a fresh folder (``browser.downloads``)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no headless browser for the report tests: {', '.join(missing)} missing "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-profile-')}", "--window-size=1300,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _open(driver, path: Path) -> None:
    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(path.resolve().as_uri())
    deadline = time.time() + 120
    while driver.execute_script("return document.body && document.body.getAttribute('data-report-ready')") != "1":
        assert time.time() < deadline, "the report did not finish loading"
        time.sleep(0.1)


def _wait_until(driver, script: str, what: str, seconds: float = 20.0):
    """Poll ``return <script>`` until it is truthy (plotly applies layout changes and selections asynchronously)."""
    deadline = time.time() + seconds
    while not (value := driver.execute_script(f"return {script}")):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _download(driver, name: str) -> np.ndarray:
    """Click the download button; the file's indices once it is complete."""
    from selenium.webdriver.common.by import By

    target = driver.downloads / name
    target.unlink(missing_ok=True)
    driver.find_element(By.ID, "download").click()
    deadline = time.time() + 30
    while not target.is_file() or any(driver.downloads.glob("*.crdownload")):
        assert time.time() < deadline, f"no download {name} in {driver.downloads}: {list(driver.downloads.iterdir())}"
        time.sleep(0.1)
    return np.loadtxt(target, dtype=np.int64, ndmin=1)


def _plot_area(driver):
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('scatter').scrollIntoView({block: 'start'})")
    return driver.find_element(By.CSS_SELECTOR, "#scatter .nsewdrag")


def _drag(driver, points: list[tuple[int, int]]) -> None:
    """Press at points[0] (offsets from the plot area's top-left corner), move through the rest, release."""
    from selenium.webdriver.common.action_chains import ActionChains

    area = _plot_area(driver)
    rect = area.rect
    x0, y0 = points[0]
    chain = ActionChains(driver, duration=30).move_to_element_with_offset(
        area, int(x0 - rect["width"] / 2), int(y0 - rect["height"] / 2)).click_and_hold()
    for (xa, ya), (xb, yb) in itertools.pairwise(points):
        steps = 4  # several moves per segment, as a hand would draw
        done_x = done_y = 0
        for step in range(1, steps + 1):
            tx, ty = round((xb - xa) * step / steps), round((yb - ya) * step / steps)
            chain = chain.move_by_offset(tx - done_x, ty - done_y)
            done_x, done_y = tx, ty
    chain.release().perform()


def _set(driver, select_id: str, value: str) -> None:
    driver.execute_script(f"""const s = document.getElementById('{select_id}'); s.value = '{value}';
        s.dispatchEvent(new Event('change'));""")


def _state(driver) -> dict:
    """What the page shows: the selection object, the highlighted rows of the scatter and the outlines drawn."""
    return driver.execute_script("""const r = window.cryoscapeReport;
        return {selection: window.cryoscapeSelection, highlighted: r.highlighted(), outlines: r.outlines(),
                count: document.getElementById('selection-count').textContent};""")


@pytest.fixture(scope="module")
def analysed_subset_run(trained_subset_run, tmp_path_factory):
    """A copy of the --ind run (odd particles) analysed by `analyze` (K = 4 with maps; a stand-in umap.npy)."""
    run_dir = tmp_path_factory.mktemp("report_run") / "odd"
    shutil.copytree(trained_subset_run, run_dir, ignore=shutil.ignore_patterns("analyze.*"))
    run = TrainedRun.open(run_dir, device="cpu")
    layout = run.run_dir.analysis(run.epoch)
    run_analysis(run, AnalyzeConfig(ksample=4, skip_umap=True, notebook=False, pc=1, n_per_pc=2))
    z = run.z
    # the report reads whatever (N, 2) embedding analyze saved; a rotated z stands in for UMAP here
    np.save(layout.umap, np.stack([z[:, 0] + z[:, 1], z[:, 0] - z[:, 1]], axis=1).astype(np.float32))
    return run, write_report(layout.root, run, config=GALLERY)


def test_report_loads_offline_and_box_selection_downloads_original_indices(analysed_subset_run, browser,
                                                                            monkeypatch):
    run, page = analysed_subset_run
    _open(browser, page)
    assert _errors(browser) == []
    # everything inlined: no external script/style/image element, no resource fetched over the network
    assert browser.execute_script("""return document.querySelectorAll(
        'script[src], link[href], iframe, img:not([src^="data:"]):not([hidden])').length""") == 0
    assert browser.execute_script("""return performance.getEntriesByType('resource')
        .filter(e => !e.name.startsWith('data:') && !e.name.startsWith('blob:')).map(e => e.name)""") == []
    n = len(run.indices)
    assert browser.execute_script("return document.getElementById('scatter').data[0].x.length") == n
    assert browser.execute_script("return document.getElementById('scatter').data[0].type") == "scattergl"
    hover = browser.execute_script("return Array.from(document.getElementById('scatter').data[0].customdata)")
    np.testing.assert_array_equal(hover, run.indices)  # hover shows the original index (all odd here)
    options = browser.execute_script("return Array.from(document.getElementById('color').options, o => o.text)")
    assert options[0] == "k-means cluster (K=4)" and "‖z‖" in options and "defocus_angstrom" in options
    assert len(options) == len(set(options)) and "rlnAngleRot" in options and "rot_deg" not in options

    browser.execute_script("Plotly.relayout(document.getElementById('scatter'), {dragmode: 'select'})")
    _wait_until(browser, "document.getElementById('scatter')._fullLayout.dragmode === 'select'", "box-select mode")
    _drag(browser, [(200, 60), (500, 300), (760, 520)])
    selection = _wait_until(browser, "window.cryoscapeSelection", "the box selection")
    (x0, x1), (y0, y1) = sorted(selection["range"]["x"]), sorted(selection["range"]["y"])
    pcs = np.load(run.run_dir.analysis(run.epoch).pca)
    inside = (pcs[:, 0] >= x0) & (pcs[:, 0] <= x1) & (pcs[:, 1] >= y0) & (pcs[:, 1] <= y1)
    expected = run.indices[inside]
    assert 0 < len(expected) < n and selection["count"] == len(expected)
    from selenium.webdriver.common.by import By

    commands = browser.find_element(By.ID, "commands").text
    name = f"selection_{len(expected)}.txt"
    assert f"--from-file {name}" in commands and "write-star" in commands
    assert f"backproject {run.particles_path}" in commands and "eval-vol" in commands
    np.testing.assert_array_equal(_download(browser, name), expected)

    # the page's own select command, run beside the downloaded file, gives the same particles back and never
    # replaces the file it reads
    import shlex

    from cryoscape.cli.main import main
    from cryoscape.io.legacy import read_index

    line = next(text for text in commands.splitlines() if text.startswith("cryoscape select") and "--from-file" in text)
    monkeypatch.chdir(browser.downloads)
    assert main(shlex.split(line)[1:]) == 0
    np.testing.assert_array_equal(read_index(browser.downloads / name), expected)
    out = shlex.split(line)[-1]
    np.testing.assert_array_equal(read_index(browser.downloads / f"{out}.txt"), expected)


def test_lasso_selection_is_kept_across_projections(analysed_subset_run, browser):
    run, page = analysed_subset_run
    _open(browser, page)
    _set(browser, "projection", "1")  # UMAP
    _wait_until(browser, "document.getElementById('scatter')._fullLayout.xaxis.title.text === 'UMAP1'", "UMAP")
    umap = np.load(run.run_dir.analysis(run.epoch).umap)
    xs = browser.execute_script("return Array.from(document.getElementById('scatter').data[0].x)")
    np.testing.assert_allclose(xs, umap[:, 0], rtol=1e-6)
    _drag(browser, [(100, 80), (900, 90), (880, 500), (120, 480), (100, 90)])  # lasso (the default mode)
    _wait_until(browser, "window.cryoscapeSelection && window.cryoscapeSelection.lasso", "the lasso selection")
    state = _state(browser)
    from matplotlib.path import Path as Polygon

    lasso = state["selection"]["lasso"]
    inside = Polygon(np.stack([lasso["x"], lasso["y"]], axis=1)).contains_points(umap.astype(np.float64))
    rows = np.asarray(state["selection"]["rows"])
    # the polygon test of plotly and matplotlib may differ only for points on the boundary
    assert 0 < len(rows) < len(umap) and len(np.setxor1d(rows, np.flatnonzero(inside))) <= 2
    assert state["outlines"] >= 1 and sorted(state["highlighted"]) == rows.tolist()
    for projection, label in (("0", "PC1"), ("1", "UMAP1"), ("0", "PC1")):
        _set(browser, "projection", projection)
        _wait_until(browser, f"document.getElementById('scatter')._fullLayout.xaxis.title.text.startsWith('{label}')",
                    f"projection {label}")
        state = _wait_until(browser, "window.cryoscapeReport.outlines() === 0 && window.cryoscapeSelection",
                            "the lasso outline to go")
        state = _state(browser)
        assert sorted(state["highlighted"]) == rows.tolist()  # highlighted in the new coordinates
        assert state["selection"]["count"] == len(rows) and state["count"].startswith(f"{len(rows)} of ")
    expected = run.indices[rows]
    np.testing.assert_array_equal(_download(browser, f"selection_{len(rows)}.txt"), expected)
    browser.execute_script("document.getElementById('clear').click()")
    _wait_until(browser, "window.cryoscapeSelection === null", "the cleared selection")
    assert _state(browser)["highlighted"] == [] and _errors(browser) == []


def test_clicking_a_centre_selects_its_cluster_and_shows_its_map(analysed_subset_run, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    run, page = analysed_subset_run
    series = run.run_dir.analysis(run.epoch).kmeans(4)
    labels = np.loadtxt(series.labels, dtype=int)
    _open(browser, page)
    centres = browser.execute_script("""const d = document.getElementById('scatter');
        return [Array.from(d.data[1].x), Array.from(d.data[1].y), d.data[1].text];""")
    pcs = np.load(run.run_dir.analysis(run.epoch).pca)
    rows = run.rows_of(np.loadtxt(series.centers_ind, dtype=int))
    np.testing.assert_allclose(centres[0], pcs[rows, 0], rtol=1e-6)
    assert centres[2] == ["1", "2", "3", "4"]
    _drag(browser, [(100, 80), (900, 90), (880, 500), (120, 480), (100, 90)])  # a lasso selection first
    _wait_until(browser, "window.cryoscapeSelection && window.cryoscapeSelection.lasso", "the lasso selection")
    # a real click on centre 3, where plotly draws it
    area = _plot_area(browser)
    ox, oy = browser.execute_script("""const d = document.getElementById('scatter'), L = d._fullLayout;
        return [L.xaxis.l2p(d.data[1].x[2]), L.yaxis.l2p(d.data[1].y[2])];""")
    ActionChains(browser).move_to_element_with_offset(area, int(ox - area.rect["width"] / 2),
                                                      int(oy - area.rect["height"] / 2)).pause(0.3).click().perform()
    state = _wait_until(browser, "window.cryoscapeSelection && window.cryoscapeSelection.cluster === 3 && "
                        "window.cryoscapeSelection", "cluster 3 selected by a click on its centre")
    expected_rows = np.flatnonzero(labels == 3)
    assert state["rows"] == expected_rows.tolist()
    assert sorted(_state(browser)["highlighted"]) == expected_rows.tolist()
    info = browser.execute_script("""const g = id => document.getElementById(id);
        return {hidden: g('cluster-info').hidden, src: g('cluster-map').src, file: g('cluster-map-file').textContent,
                chimerax: g('cluster-chimerax').textContent, title: g('cluster-title').textContent,
                commands: g('commands').textContent};""")
    assert not info["hidden"] and info["src"].startswith("data:image/png;base64,")
    assert "vol_003.mrc" in info["file"] and f"open '{series.map_paths(4)[2].resolve()}'" in info["chimerax"]
    assert info["title"] == f"cluster 3 of 4 ({len(expected_rows)} particles)"
    assert "--kmeans 4 --clusters 3" in info["commands"]
    np.testing.assert_array_equal(_download(browser, f"selection_{len(expected_rows)}.txt"),
                                  run.indices[expected_rows])
    # the cluster buttons do the same
    browser.execute_script("document.querySelector('#clusters button[data-cluster=\"1\"]').click()")
    state = _wait_until(browser, "window.cryoscapeSelection.cluster === 1 && window.cryoscapeSelection", "cluster 1")
    assert state["rows"] == np.flatnonzero(labels == 1).tolist()
    assert _errors(browser) == []


def test_pc_pair_switch_keeps_the_selection(analysed_subset_run, browser):
    run, page = analysed_subset_run
    pcs = np.load(run.run_dir.analysis(run.epoch).pca)
    _open(browser, page)
    browser.execute_script("window.cryoscapeReport.selectCluster(1)")
    before = _wait_until(browser, "window.cryoscapeSelection", "cluster 2")
    _set(browser, "pcx", "1")
    _set(browser, "pcy", "0")
    _wait_until(browser, "document.getElementById('scatter')._fullLayout.xaxis.title.text.startsWith('PC2')", "PC2")
    got = browser.execute_script("""const d = document.getElementById('scatter');
        return [Array.from(d.data[0].x), Array.from(d.data[0].y), d._fullLayout.yaxis.title.text,
                Array.from(d.data[1].x)];""")
    np.testing.assert_allclose(got[0], pcs[:, 1], rtol=1e-6)
    np.testing.assert_allclose(got[1], pcs[:, 0], rtol=1e-6)
    assert got[2].startswith("PC1 (")  # with its explained variance
    rows = run.rows_of(np.loadtxt(run.run_dir.analysis(run.epoch).kmeans(4).centers_ind, dtype=int))
    np.testing.assert_allclose(got[3], pcs[rows, 1], rtol=1e-6)  # the centres move with the axes
    assert sorted(_state(browser)["highlighted"]) == before["rows"]
    assert browser.execute_script("return document.getElementById('pc-pair').hidden") is False
    _set(browser, "projection", "1")
    assert browser.execute_script("return document.getElementById('pc-pair').hidden") is True


def test_gallery_shows_the_selected_particles_and_their_average(analysed_subset_run, browser):
    run, page = analysed_subset_run
    gallery = particle_gallery(run, count=GALLERY.gallery_size, thumbnail_px=GALLERY.thumbnail_px,
                               seed=GALLERY.seed)
    _open(browser, page)
    shown = browser.execute_script("return window.cryoscapeGallery")
    assert shown["inSample"] == GALLERY.gallery_size and len(shown["shown"]) == 48  # no selection: the sample
    browser.execute_script("window.cryoscapeReport.selectCluster(0)")
    _wait_until(browser, "window.cryoscapeSelection && window.cryoscapeSelection.cluster === 1", "cluster 1")
    labels = np.loadtxt(run.run_dir.analysis(run.epoch).kmeans(4).labels, dtype=int)
    in_cluster = labels[gallery.rows] == 1
    expected = gallery.rows[in_cluster][:48]
    shown = browser.execute_script("return window.cryoscapeGallery")
    assert 0 < len(expected) and shown["inSample"] == int(in_cluster.sum())
    assert shown["shown"] == run.indices[expected].tolist() and shown["size"] == 16
    assert browser.execute_script("return document.querySelectorAll('#gallery canvas').length") == len(expected)
    # the average of the shown thumbnails, stretched to 0..255
    mean = gallery.pixels[in_cluster][:48].astype(np.float64).mean(axis=0).ravel()
    stretched = 255 * (mean - mean.min()) / (mean.max() - mean.min())
    assert np.abs(np.asarray(shown["average"]) - stretched).max() <= 1.0
    pixels = browser.execute_script("""const c = document.querySelector('#gallery canvas');
        const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return Array.from(rgba.filter((_, i) => i % 4 === 0));""")
    np.testing.assert_array_equal(pixels, gallery.pixels[in_cluster][0].ravel())
    caption = browser.execute_script("return document.getElementById('gallery-caption').textContent")
    assert f"{int(in_cluster.sum())} of the {int((labels == 1).sum())} selected particles" in caption
    assert "phase-flipped" in caption


def test_report_of_a_one_dimensional_latent(trained_run_1d, browser, tmp_path):
    run_dir = tmp_path / "z1"
    shutil.copytree(trained_run_1d, run_dir, ignore=shutil.ignore_patterns("analyze.*"))
    run = TrainedRun.open(run_dir, device="cpu")
    run_analysis(run, AnalyzeConfig(ksample=3, skip_vol=True, notebook=False))
    page = write_report(run.run_dir.analysis(run.epoch).root, run, config=ReportConfig(gallery_size=10))
    _open(browser, page)
    assert _errors(browser) == []
    got = browser.execute_script("""const d = document.getElementById('scatter');
        return [d.data[0].x.length, d._fullLayout.yaxis.title.text, document.getElementById('pc-pair').hidden,
                Array.from(document.getElementById('projection').options, o => o.text)];""")
    assert got == [len(run.z), "z", True, ["z against particle"]]
    browser.execute_script("window.cryoscapeReport.selectCluster(0)")
    state = _wait_until(browser, "window.cryoscapeSelection", "cluster 1")
    labels = np.loadtxt(run.run_dir.analysis(run.epoch).kmeans(3).labels, dtype=int)
    assert state["rows"] == np.flatnonzero(labels == 1).tolist()
    assert browser.execute_script("return document.getElementById('cluster-map').hidden") is True  # no maps


class _StubRun:
    """The attributes write_report uses, with hostile strings (a report test without training)."""

    def __init__(self, root: Path, n: int = 300):
        rng = np.random.default_rng(0)
        self.path = root / "run<b>&'x"
        self.path.mkdir(parents=True)
        self.epoch = 3
        self.zdim = 2
        self.z = rng.standard_normal((n, 2)).astype(np.float32)
        self.indices = np.arange(n, dtype=np.int64) * 3
        self.particles_path = root / "parts<script>.star"
        self.config = SimpleNamespace(data=SimpleNamespace(ind=None, poses=None, ctf=None, datadir=None,
                                                           invert_data=False))
        self.run_dir = SimpleNamespace(latest_epoch=lambda: 3)
        tags = np.array(["<img/src=x/onerror=window.__xss=1>", "</script><script>window.__xss=2</script>", "ok"])
        self._table = pd.DataFrame({"index": self.indices, "rlnTag": tags[np.arange(n) % 3],
                                    "<b>bold</b>": rng.standard_normal(n)})

    def particle_table(self):
        return self._table


def test_report_escapes_input_strings(browser, tmp_path):
    run = _StubRun(tmp_path)
    out = tmp_path / "analyze"
    page = write_report(out, run)
    text = page.read_text(encoding="utf-8")
    assert "<img/src=x" not in text and "<b>bold</b>" not in text
    assert text.count("</script>") == 3  # only the page's own three script elements close
    _open(browser, page)
    assert _errors(browser) == []
    assert browser.execute_script("return window.__xss === undefined")
    assert "run<b>&'x" in browser.title
    browser.execute_script("""const c = document.getElementById('color');
        c.value = String(Array.from(c.options).findIndex(o => o.text === 'rlnTag'));
        c.dispatchEvent(new Event('change'));""")
    legend = browser.execute_script("return document.getElementById('legend').textContent")
    assert "<img/src=x/onerror=window.__xss=1> (100)" in legend
    assert browser.execute_script("return window.__xss === undefined")
    assert browser.execute_script("return document.getElementById('scatter').data[0].x.length") == 300
    caption = browser.execute_script("return document.getElementById('gallery-caption').textContent")
    assert caption.startswith("no gallery: the particle images could not be read")
