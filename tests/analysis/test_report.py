"""report.html (h_export) in a real headless Chromium: loads offline without console errors, the WebGL scatter
holds every particle, a box drag (and a lasso) selection downloads the original indices, input strings are
escaped."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cryoscape.analysis.analyze import AnalyzeConfig, run_analysis
from cryoscape.analysis.api import TrainedRun
from cryoscape.analysis.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _install_chromium() -> str | None:
    """Install the Debian chromium packages when missing; return why they are unavailable, or None."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install chromium/chromium-driver"
    if os.geteuid() != 0:
        return "chromium is missing and installing it needs root (apt-get install chromium chromium-driver)"
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                       "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return "chromium installed but /usr/bin/chromium or /usr/bin/chromedriver is missing"
    return None


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless system Chromium driven by Selenium, downloads going to a fresh folder (``browser.downloads``)."""
    reason = _install_chromium()
    if reason is not None:
        pytest.skip(f"no headless browser for the report test: {reason}")
    from selenium import webdriver
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


def _wait_for_file(folder: Path, name: str) -> Path:
    deadline = time.time() + 30
    while not (folder / name).is_file() or any(folder.glob("*.crdownload")):
        assert time.time() < deadline, f"no download {name} in {folder}: {list(folder.iterdir())}"
        time.sleep(0.1)
    return folder / name


def _drag(driver, points: list[tuple[int, int]]) -> None:
    """Press at points[0] (offsets from the plot area's top-left corner), move through the rest, release."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('scatter').scrollIntoView({block: 'start'})")
    area = driver.find_element(By.CSS_SELECTOR, "#scatter .nsewdrag")
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


@pytest.fixture(scope="module")
def analysed_subset_run(trained_subset_run, tmp_path_factory):
    """A copy of the --ind run (odd particles) analysed by `analyze` (no maps, no UMAP; a stand-in umap.npy)."""
    run_dir = tmp_path_factory.mktemp("report_run") / "odd"
    shutil.copytree(trained_subset_run, run_dir, ignore=shutil.ignore_patterns("analyze.*"))
    run = TrainedRun.open(run_dir)
    out = run.analyze_dir
    run_analysis(run, AnalyzeConfig(ksample=4, skip_umap=True, skip_vol=True, notebook=False, pc=1))
    z = run.z
    # the report reads whatever (N, 2) embedding analyze saved; a rotated z stands in for UMAP here
    np.save(out / "umap.npy", np.stack([z[:, 0] + z[:, 1], z[:, 0] - z[:, 1]], axis=1).astype(np.float32))
    return run, write_report(out, run)


def test_report_loads_offline_and_box_selection_downloads_original_indices(analysed_subset_run, browser,
                                                                            tmp_path):
    run, page = analysed_subset_run
    _open(browser, page)
    assert _errors(browser) == []
    # everything inlined: no external script/style/image element, no resource fetched over the network
    assert browser.execute_script("""return document.querySelectorAll(
        'script[src], link[href], iframe, img:not([src^="data:"])').length""") == 0
    assert browser.execute_script("""return performance.getEntriesByType('resource')
        .filter(e => !e.name.startsWith('data:') && !e.name.startsWith('blob:')).map(e => e.name)""") == []
    n = len(run.indices)
    assert browser.execute_script("return document.getElementById('scatter').data[0].x.length") == n
    assert browser.execute_script("return document.getElementById('scatter').data[0].type") == "scattergl"
    hover = browser.execute_script("return Array.from(document.getElementById('scatter').data[0].customdata)")
    np.testing.assert_array_equal(hover, run.indices)  # hover shows the original index (all odd here)
    options = browser.execute_script("return Array.from(document.getElementById('color').options, o => o.text)")
    assert options[0] == "k-means cluster (K=4)" and "‖z‖" in options and "defocus_angstrom" in options

    browser.execute_script("Plotly.relayout(document.getElementById('scatter'), {dragmode: 'select'})")
    _wait_until(browser, "document.getElementById('scatter')._fullLayout.dragmode === 'select'", "box-select mode")
    _drag(browser, [(200, 60), (500, 300), (760, 520)])
    selection = _wait_until(browser, "window.cryoscapeSelection", "the box selection")
    assert selection is not None and selection["count"] > 0
    (x0, x1), (y0, y1) = sorted(selection["range"]["x"]), sorted(selection["range"]["y"])
    pcs = np.load(run.analyze_dir / "pca.npy")
    inside = (pcs[:, 0] >= x0) & (pcs[:, 0] <= x1) & (pcs[:, 1] >= y0) & (pcs[:, 1] <= y1)
    expected = run.indices[inside]
    assert 0 < len(expected) < n
    from selenium.webdriver.common.by import By

    commands = browser.find_element(By.ID, "commands").text
    name = f"selection_{len(expected)}.txt"
    assert f"--from-file {name}" in commands and "write-star" in commands
    browser.find_element(By.ID, "download").click()
    got = np.loadtxt(_wait_for_file(browser.downloads, name), dtype=np.int64, ndmin=1)
    np.testing.assert_array_equal(got, expected)
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # the downloaded file feeds `cryoscape select --from-file` (same particles back)
    from cryoscape.cli.main import main
    from cryoscape.io.legacy import read_index

    assert main(["select", str(run.path), "--from-file", str(browser.downloads / name),
                 "-o", str(tmp_path / "again")]) == 0
    np.testing.assert_array_equal(read_index(tmp_path / "again.txt"), expected)


def test_report_lasso_on_umap_and_recolouring(analysed_subset_run, browser):
    run, page = analysed_subset_run
    _open(browser, page)
    browser.execute_script("""
        const s = document.getElementById('projection'); s.value = '1'; s.dispatchEvent(new Event('change'));
        const c = document.getElementById('color'); c.value = '1'; c.dispatchEvent(new Event('change'));""")
    time.sleep(0.5)
    umap = np.load(run.analyze_dir / "umap.npy")
    xs = browser.execute_script("return Array.from(document.getElementById('scatter').data[0].x)")
    np.testing.assert_allclose(xs, umap[:, 0], rtol=1e-6)
    _drag(browser, [(100, 80), (900, 90), (880, 500), (120, 480), (100, 90)])  # lasso (the default mode)
    _wait_until(browser, "window.cryoscapeSelection && window.cryoscapeSelection.lasso", "the lasso selection")
    selection = browser.execute_script("return window.cryoscapeSelection")
    assert selection is not None and selection["lasso"] is not None
    from matplotlib.path import Path as Polygon

    poly = Polygon(np.stack([selection["lasso"]["x"], selection["lasso"]["y"]], axis=1))
    inside = poly.contains_points(umap.astype(np.float64))
    got = np.asarray(selection["indices"], dtype=np.int64)
    expected = run.indices[inside]
    # the polygon test of plotly and matplotlib may differ only for points on the boundary
    assert len(np.setxor1d(got, expected)) <= 2 and len(got) > 0
    assert _errors(browser) == []


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
        self.config = SimpleNamespace(data=SimpleNamespace(ind=None))
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
