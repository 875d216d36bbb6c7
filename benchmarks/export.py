"""Export benchmarks: report.html size and load time, selection → write-star time, and the accuracy of a
selected state validated by back-projection.

* ``report``: report.html for N = 100k and 1M synthetic particles (zdim 8, PCA + UMAP-shaped coordinates,
  k-means labels, defocus and a RELION class column), its size and the time headless Chromium takes from
  navigation until the scatter is drawn (``data-report-ready``), plus the time to recolour the scatter.
* ``star``: a 1M-row RELION 3.1 particle STAR (rows of the real relion31.star fixture, 6 optics groups); time of
  ``write_star_subset`` for a random half and for one optics group (renumbered), and of reading it back.
* ``accuracy``: simulate ``assembly-64`` (3000 particles, 32 px), train a zdim-4 VAE (128×2, batch 32),
  ``analyze`` with k-means, pick the clusters whose particles are mostly one true state, ``select --validate``;
  then the FSC of the selection's back-projection with that state's true map, against the back-projection of
  the particles truly in that state (all of them, and as many as were selected).

    python benchmarks/export.py report star            # sizes and times
    python benchmarks/export.py accuracy               # ~10-30 min on 2 shared CPU cores
Writes benchmarks/results/export.json (merged per part).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "cryodrgn-tests"
RESULTS = ROOT / "benchmarks" / "results" / "export.json"
CLI = [str(ROOT / ".venv" / "bin" / "cryoscape")]


def _save(part: str, data: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    current[part] = data
    RESULTS.write_text(json.dumps(current, indent=1) + "\n")


# --- report ---------------------------------------------------------------------------------------------------
class SyntheticRun:
    """What write_report reads from a TrainedRun, for N synthetic particles (no training)."""

    def __init__(self, root: Path, n: int, zdim: int = 8, seed: int = 0):
        import pandas as pd

        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((20, zdim)) * 2.0
        labels = rng.integers(0, 20, size=n)
        self.z = (centres[labels] + 0.5 * rng.standard_normal((n, zdim))).astype(np.float32)
        self.indices = np.sort(rng.choice(int(n * 1.2), size=n, replace=False)).astype(np.int64)
        self.path = root / f"run_{n}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.epoch, self.zdim = 20, zdim
        self.particles_path = root / "particles.star"
        self.config = SimpleNamespace(data=SimpleNamespace(ind="ind.pkl"))
        self.run_dir = SimpleNamespace(latest_epoch=lambda: 20)
        self.analyze_dir = self.path / "analyze.20"
        self.analyze_dir.mkdir(exist_ok=True)
        self._table = pd.DataFrame({"index": self.indices,
                                    "defocus_angstrom": rng.uniform(8000, 25000, n),
                                    "rlnClassNumber": rng.integers(1, 5, n),
                                    "rlnMicrographName": [f"mic{i % 500}.mrc" for i in range(n)]})
        from cryoscape.analysis.latent import fit_pca

        pcs = fit_pca(self.z[:200000]).transform(self.z).astype(np.float32)
        np.save(self.analyze_dir / "pca.npy", pcs)
        np.save(self.analyze_dir / "umap.npy", (pcs[:, :2] @ np.array([[0.8, -0.6], [0.6, 0.8]])).astype(np.float32))
        (self.analyze_dir / "kmeans20").mkdir(exist_ok=True)
        np.savetxt(self.analyze_dir / "kmeans20" / "labels.txt", labels + 1, fmt="%d")

    def particle_table(self):
        return self._table


def _browser(downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-bench-')}", "--window-size=1300,1400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def bench_report(sizes: list[int]) -> dict:
    from cryoscape.analysis.report import write_report

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        driver = _browser(root)
        driver.set_page_load_timeout(900)
        driver.set_script_timeout(900)
        try:
            for n in sizes:
                run = SyntheticRun(root, n)
                t0 = time.perf_counter()
                page = write_report(run.analyze_dir, run)
                t_write = time.perf_counter() - t0
                size_mb = page.stat().st_size / 1e6
                driver.get_log("browser")
                t0 = time.perf_counter()
                driver.get(page.as_uri())
                while driver.execute_script("return document.body.getAttribute('data-report-ready')") != "1":
                    time.sleep(0.05)
                t_load = time.perf_counter() - t0
                points = driver.execute_script("return document.getElementById('scatter').data[0].x.length")
                t0 = time.perf_counter()
                driver.execute_script("""const c = document.getElementById('color'); c.value = '1';
                    c.dispatchEvent(new Event('change'));""")
                driver.execute_script("return new Promise(r => requestAnimationFrame(() => r(1)))")
                t_recolour = time.perf_counter() - t0
                errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
                out[str(n)] = {"n": n, "points_drawn": points, "report_mb": round(size_mb, 2),
                               "write_seconds": round(t_write, 2), "load_seconds": round(t_load, 2),
                               "recolour_seconds": round(t_recolour, 2), "console_errors": errors[:3],
                               "load_average_1min": round(os.getloadavg()[0], 1)}
                print(f"report N={n}: {size_mb:.1f} MB, written in {t_write:.1f} s, loaded (scatter drawn) in "
                      f"{t_load:.1f} s, recolour {t_recolour:.2f} s, points {points}, errors {len(errors)}; load "
                      f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        finally:
            driver.quit()
    return out


# --- star -----------------------------------------------------------------------------------------------------
def bench_star(n: int) -> dict:
    from cryoscape.io.star import read_star
    from cryoscape.io.subset import write_star_subset

    src = FIXTURES / "relion31.6opticsgroups.star"
    text = src.read_text().splitlines(keepends=True)
    start = max(i for i, line in enumerate(text) if line.startswith("_rln")) + 1
    header, rows = text[:start], [r for r in text[start:] if r.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.star"
        t0 = time.perf_counter()
        with open(big, "w") as handle:
            handle.writelines(header)
            reps = n // len(rows) + 1
            block = "".join(rows)
            for _ in range(reps):
                handle.write(block)
        # trim to exactly n rows
        lines = big.read_text().splitlines(keepends=True)
        big.write_text("".join(lines[: start + n]))
        t_make = time.perf_counter() - t0
        size_mb = big.stat().st_size / 1e6
        rng = np.random.default_rng(0)
        half = np.sort(rng.choice(n, size=n // 2, replace=False))
        t0, c0 = time.perf_counter(), time.process_time()
        info = write_star_subset(big, half, Path(tmp) / "half.star")
        t_half, cpu_half = time.perf_counter() - t0, time.process_time() - c0
        groups = np.array([int(r.split()[10]) for r in rows])
        group_rows = np.flatnonzero(np.resize(groups, n) == 3)
        t0, c0 = time.perf_counter(), time.process_time()
        info3 = write_star_subset(big, group_rows, Path(tmp) / "g3.star")
        t_group, cpu_group = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        back = read_star(Path(tmp) / "half.star")
        t_read = time.perf_counter() - t0
        assert len(back) == n // 2 and info.n_total == n and info3.renumbered
    out = {"n_rows": n, "star_mb": round(size_mb, 1), "make_seconds": round(t_make, 1),
           "write_half_seconds": round(t_half, 2), "write_half_cpu_seconds": round(cpu_half, 2),
           "write_one_group_renumbered_seconds": round(t_group, 2),
           "write_one_group_renumbered_cpu_seconds": round(cpu_group, 2),
           "load_average_1min": round(os.getloadavg()[0], 1),
           "n_one_group": int(group_rows.size), "read_back_half_seconds": round(t_read, 2)}
    print(f"star: {n} rows ({size_mb:.0f} MB): write a random half {t_half:.1f} s ({cpu_half:.1f} s CPU), one optics "
          f"group ({group_rows.size} rows, renumbered) {t_group:.1f} s ({cpu_group:.1f} s CPU); read_star of the half "
          f"{t_read:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return out


# --- accuracy ---------------------------------------------------------------------------------------------------
def _run(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    if done.returncode != 0:
        raise SystemExit(f"cryoscape {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _fsc_summary(vol: np.ndarray, truth: np.ndarray, apix: float) -> dict:
    from cryoscape.reconstruct.fsc import fsc_curve

    curve = fsc_curve(vol, truth, apix)
    return {"fsc05_angstrom": round(float(curve.resolution_angstrom(0.5)), 3),
            "fsc0143_angstrom": round(float(curve.resolution_angstrom(0.143)), 3),
            "auc": round(float(curve.area_under_curve()), 4)}


def bench_accuracy(workdir: Path, n: int, epochs: int, k: int, zdim: int, seed: int, purity: float = 0.8) -> dict:
    import pandas as pd

    from cryoscape.data.particles import load_particles
    from cryoscape.io.legacy import read_index
    from cryoscape.io.mrc import read_mrc
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject

    workdir.mkdir(parents=True, exist_ok=True)
    data, run = workdir / "data", workdir / "run"
    t0 = time.perf_counter()
    if not (data / "particles.star").is_file():
        _run("simulate", "--preset", "assembly-64", "-n", str(n), "--box-size", "32", "--seed", str(seed),
             "-o", str(data))
    if not (run / f"weights.{epochs}.pt").is_file():
        _run("train-vae", str(data / "particles.star"), "--zdim", str(zdim), "-n", str(epochs), "--seed", str(seed),
             "--enc-dim", "128", "--enc-layers", "2", "--dec-dim", "128", "--dec-layers", "2", "-b", "32",
             "--lr", "1e-3", "-o", str(run))
    t_train = time.perf_counter() - t0
    analyze = run / f"analyze.{epochs}"
    if not (analyze / f"kmeans{k}" / "labels.txt").is_file():
        _run("analyze", str(run), "--ksample", str(k), "--skip-umap")
    truth = pd.read_csv(data / "ground_truth.csv")
    states = truth["state"].to_numpy()
    labels = np.loadtxt(analyze / f"kmeans{k}" / "labels.txt", dtype=np.int64)  # rows = particles 0..n-1
    # the state to recover: the one whose particles the clusters separate best (smallest state first on ties)
    best = None
    for state in np.unique(states):
        cluster_purity = np.array([np.mean(states[labels == c] == state) if np.any(labels == c) else 0.0
                           for c in range(1, k + 1)])
        chosen = [int(c) + 1 for c in np.flatnonzero(cluster_purity >= purity)]
        if not chosen:
            continue
        sel = np.isin(labels, chosen)
        recall = float(np.mean(sel[states == state]))
        precision = float(np.mean(states[sel] == state))
        if best is None or recall * precision > best["recall"] * best["precision"]:
            best = {"state": int(state), "clusters": chosen, "recall": recall, "precision": precision}
    if best is None:
        raise SystemExit(f"no k-means cluster is ≥ {100 * purity:.0f} % one true state: train longer")
    out_sel = workdir / f"state_selection_purity{round(100 * purity)}"
    stdout = _run("select", str(run), "--kmeans", str(k), "--clusters", *map(str, best["clusters"]),
                  "-o", str(out_sel), "--validate")
    selected = read_index(out_sel.with_suffix(".txt"))
    vol_sel, header = read_mrc(workdir / f"{out_sel.name}_validate" / "map.mrc")
    apix = header.voxel_size_angstrom
    volumes = pd.read_csv(data / "gt_volumes" / "volumes.csv")
    gt_file = volumes.loc[volumes["state"] == best["state"], "file"].iloc[0]
    truth_map, _ = read_mrc(data / "gt_volumes" / gt_file)
    if truth_map.shape != vol_sel.shape:
        from cryoscape.data.downsample import resample_volume

        truth_map = resample_volume(np.asarray(truth_map), vol_sel.shape[0])
    # back-project the particles truly in the state: all of them, and as many as were selected
    particles = load_particles(data / "particles.star", require_poses=True, require_ctf=True)
    true_rows = np.flatnonzero(states == best["state"])
    rng = np.random.default_rng(seed)
    same_count = np.sort(rng.choice(true_rows, size=min(len(selected), len(true_rows)), replace=False))
    config = BackprojectConfig()
    rec_true = backproject(particles.subset(true_rows), config, show_progress=False)
    rec_same = backproject(particles.subset(same_count), config, show_progress=False)
    scores = {"selection": _fsc_summary(np.asarray(vol_sel), truth_map, apix),
              "true_particles_all": _fsc_summary(rec_true.full, truth_map, apix),
              "true_particles_same_count": _fsc_summary(rec_same.full, truth_map, apix)}
    ratio_all = scores["selection"]["fsc05_angstrom"] / scores["true_particles_all"]["fsc05_angstrom"]
    ratio_same = scores["selection"]["fsc05_angstrom"] / scores["true_particles_same_count"]["fsc05_angstrom"]
    summary = json.loads((workdir / f"{out_sel.name}_validate" / "validation.json").read_text())
    result = {"n_particles": n, "epochs": epochs, "zdim": zdim, "kmeans": k, "purity_threshold": purity, **best,
              "n_selected": len(selected), "n_true": len(true_rows), "fsc_vs_truth": scores,
              "fsc05_ratio_selection_over_true_all": round(ratio_all, 3),
              "fsc05_ratio_selection_over_true_same_count": round(ratio_same, 3),
              "gold_standard": summary, "train_seconds": round(t_train, 1), "select_stdout": stdout.splitlines()}
    print(f"state {best['state']}: clusters {best['clusters']} (precision {best['precision']:.3f}, recall "
          f"{best['recall']:.3f}); {len(selected)} selected, {len(true_rows)} truly in the state")
    for name, s in scores.items():
        print(f"  FSC vs true map, {name}: 0.5 at {s['fsc05_angstrom']:.2f} Å, 0.143 at {s['fsc0143_angstrom']:.2f} "
              f"Å, AUC {s['auc']:.3f}")
    print(f"  ratio of FSC=0.5 resolutions, selection / true particles: {ratio_all:.3f} (all true), "
          f"{ratio_same:.3f} (same count); target ≤ 1.1")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="+", choices=("report", "star", "accuracy"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--star-rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cryoscape_export_bench")
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--kmeans", type=int, default=10)
    parser.add_argument("--zdim", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--purity", type=float, default=0.8,
                        help="a cluster is selected when at least this fraction of it is the state (default 0.8)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    if "star" in args.parts:
        _save("star", bench_star(args.star_rows))
    if "report" in args.parts:
        _save("report", bench_report(args.sizes))
    if "accuracy" in args.parts:
        _save(f"accuracy_purity{args.purity:g}", bench_accuracy(args.workdir, args.n, args.epochs, args.kmeans,
                                                             args.zdim, args.seed, args.purity))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
