"""cryoscape vs the reference cryoDRGN on the same data, architecture and machine, measured in one run.

Installs the reference (PyPI ``cryodrgn==4.3.1`` with ``torch==2.13.0``) into its own venv ``.venv-ref`` when it
is missing, simulates a ``hinge`` dataset (continuous motion, CTF, noise) with cryoscape, exports the poses and CTF
as cryoDRGN pickles, then trains the same VAE (encoder and decoder width × depth, zdim, batch size, epochs) with
both programs, one after the other. The same decoder: cryoDRGN's ``--domain hartley`` network (one output,
evaluated at k and −k) is cryoscape's ``--domain hartley_full``; cryoscape's default ``hartley`` (one evaluation
per Hermitian pair, half the cost per image) is trained as well (``--variants``) and reported beside it.
For each cryoscape decoder the benchmark reports:

* training throughput (images/s) from the wall time of the whole training command (start-up and data loading
  included) and from the epoch times each program logs, and both ratios,
* peak resident memory of each training process,
* accuracy: |Spearman| between the first principal component of the latent means and the true hinge angle,
  after every epoch for both programs (both write the latents of every epoch), so the programs are compared at
  equal epochs and not only at the last one,
* per-image FSC against the truth after the last epoch (``--n-fsc`` particles, the same for both programs: the
  map generated at each particle's latent mean vs its true map; AUC and mean FSC per shell). cryoDRGN's maps
  come from its own ``eval_vol`` and are negated when they correlate negatively with the truth,
* eval-vol throughput (maps/s at the training box) and the ratio,
* time to accuracy: for each epoch of cryoDRGN, the training time each program needed to reach its |Spearman|.

Run on an otherwise idle machine (two PyTorch processes on two cores oversubscribe the threads).

    python benchmarks/vs_cryodrgn.py                        # 20k particles, box 64, 256×3, zdim 8, 20 epochs
    python benchmarks/vs_cryodrgn.py --n 2000 --epochs 2    # quick check
    # issue 9: independent-style 3-state set (assembly), box 32, 10k particles, 8 epochs, both cryoscape decoders
    python benchmarks/vs_cryodrgn.py --preset assembly-64 --box 32 --n 10000 --epochs 8 \\
        --variants "hartley,hartley --seam-band-px 0" --json benchmarks/results/vs_cryodrgn_3state.json

    # issue 9 item 2: the side-by-side at equal epochs over several seeds (each seed trains every program;
    # the summary gives mean and spread of per-image FSC against truth per program); the variants with
    # --data-std-windowed train with the normalisation used before cryoDRGN's became the default
    python benchmarks/vs_cryodrgn.py --preset assembly-64 --box 32 --n 2000 --epochs 8 --seeds 0,1 \\
        --variants "hartley,hartley_full --data-std-windowed,hartley --data-std-windowed" --n-vols 0 \\
        --json benchmarks/results/vs_cryodrgn_fsc_seeds.json

On a discrete set (``--preset assembly-64``) |Spearman| is taken against the state index, a weak measure of
separation; per-image FSC against the truth is the figure to read there. With ``--seeds`` the runs of seed S
are in ``WORKDIR/seed_S`` (the simulated set is shared) and the JSON holds ``runs`` (one section per seed, laid
out as a single-seed result) and ``summary`` (per program: AUC per seed, mean, sample std; mean FSC by shell
averaged over seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cryoscape.analysis.latent import spearman_with_truth

ROOT = Path(__file__).resolve().parents[1]
REF_VENV = ROOT / ".venv-ref"
REF_VERSION = "4.3.1"


def sh(cmd: list[str], log: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS of that child in MiB). Raises on failure."""
    start = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "CRYOSCAPE_NO_PROGRESS": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN is a running max)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "" if log is None else log.read_text()[-3000:]
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0


def ensure_reference() -> tuple[Path, str]:
    """The cryodrgn executable of .venv-ref, installing it when missing."""
    exe = REF_VENV / "bin" / "cryodrgn"
    if not exe.exists():
        print(f"installing cryodrgn=={REF_VERSION} into {REF_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True)
        pip = str(REF_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([pip, "install", "-q", f"cryodrgn=={REF_VERSION}"], check=True)
    version = subprocess.run([str(REF_VENV / "bin" / "python"), "-c",
                              "import cryodrgn; print(cryodrgn.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return exe, version


def epoch_seconds_cryoscape(run: Path) -> list[float]:
    """Wall time of each training epoch from cryoscape's run.log ("epoch i/n: ... (T s, R images/s)")."""
    pattern = re.compile(r"epoch \d+/\d+: .*\(([\d.]+) s, [\d.]+ images/s\)")
    return [float(m.group(1)) for m in pattern.finditer((run / "run.log").read_text())]


def epoch_seconds_cryodrgn(log: Path) -> list[float]:
    """Wall time of each training epoch from cryoDRGN's log ("=====> Epoch: i ... Finished in H:MM:SS.s")."""
    pattern = re.compile(r"=====> Epoch: \d+ .*Finished in (\d+):(\d+):([\d.]+)")
    return [int(h) * 3600 + int(m) * 60 + float(sec) for h, m, sec in pattern.findall(log.read_text())]


def spearman_by_epoch(files: list[Path], load, truth: np.ndarray) -> dict[int, float]:
    """{epoch: |Spearman|} for latent files named ``z.EPOCH.ext`` (both programs count epochs from 1)."""
    return {int(f.name.split(".")[1]): abs(spearman_with_truth(load(f), truth)) for f in files}


def epoch_files(run: Path, pattern: str) -> list[Path]:
    """``z.N.*`` files of a run sorted by N (cryoDRGN's final ``z.pkl`` has no epoch and is skipped)."""
    files = [f for f in run.glob(pattern) if f.name.split(".")[1].isdigit()]
    return sorted(files, key=lambda f: int(f.name.split(".")[1]))


def latent_truth(data: Path) -> np.ndarray:
    """The per-particle quantity the latent's PC1 is ranked against: the hinge angle of a continuous set,
    the state index (0, 1, 2, ... in the order of the preset's states) of a discrete one."""
    with open(data / "ground_truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    key = "hinge_angle_deg" if "hinge_angle_deg" in rows[0] else "state"
    return np.array([float(row[key]) for row in rows])


def fsc_positions(n: int, count: int) -> np.ndarray:
    """The particles scored by per-image FSC (the same for both programs)."""
    from cryoscape.reconstruct.scoring import choose_positions

    return choose_positions(n, count, seed=0)


def true_maps(data: Path):
    """``position -> true map`` of the simulated dataset, and its voxel size (Å)."""
    from cryoscape.reconstruct.scoring import truth_from_table
    from cryoscape.simulate import GroundTruthVolumes, SimulationConfig

    with open(data / "ground_truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    states = np.array([int(r["state"]) for r in rows])
    coords = np.array([float(r["coordinate"]) if r["coordinate"] else np.nan for r in rows])
    truth = GroundTruthVolumes(SimulationConfig.load_yaml(data / "config.yaml"))
    return truth_from_table(truth, states, coords), truth.voxel_size_angstrom


def fsc_section(result) -> dict:
    """Summary of a PerImageFSC: AUC mean/median, resolutions, mean FSC per shell."""
    out = result.summary()
    out["mean_fsc_by_shell"] = [round(float(v), 4) for v in result.fsc.mean(0)]
    return out


def per_image_fsc_cryoscape(run: Path, data: Path, positions: np.ndarray, epoch: int | None = None) -> dict:
    """Per-image FSC of a cryoscape run's checkpoint ``epoch`` (default the last; latent means) at ``positions``."""
    import torch

    from cryoscape.reconstruct.scoring import per_image_fsc
    from cryoscape.runs import RunDir
    from cryoscape.training.config import load_trained

    run_dir = RunDir(run)
    model, config, _ = load_trained(run_dir, epoch)
    z = run_dir.load_z(epoch).mean
    box, scale = int(config.data.box_size), float(config.data.data_std or 1.0)
    true_map, voxel = true_maps(data)

    def generate(zb):
        with torch.no_grad():
            return model.decoder.eval_volumes(torch.as_tensor(np.asarray(zb, dtype=np.float32)), box_size=box,
                                              radius_px=config.volume_radius_px, scale=scale).numpy()

    return fsc_section(per_image_fsc(generate, z, true_map, voxel, positions=positions, batch_size=10))


def per_image_fsc_cryodrgn(exe: Path, weights: Path, config: Path, z: np.ndarray, data: Path,
                           positions: np.ndarray, work: Path) -> dict:
    """Per-image FSC of a cryoDRGN run: its ``eval_vol`` at the latents of ``positions``, sign-matched."""
    from cryoscape.reconstruct.scoring import per_image_fsc_of_maps

    zfile = work / "zvals_fsc_ref.txt"
    np.savetxt(zfile, z[positions])
    out = work / "vols_fsc_ref"
    shutil.rmtree(out, ignore_errors=True)
    sh([str(exe), "eval_vol", str(weights), "-c", str(config), "--zfile", str(zfile), "-o", str(out)],
       work / "eval_fsc_cryodrgn.log")
    maps = sorted(out.glob("*.mrc"))
    true_map, voxel = true_maps(data)
    return fsc_section(per_image_fsc_of_maps(maps, positions, true_map, voxel, match_sign=True))


def machine_info() -> dict:
    """CPU model, ISA flags that matter for the decoder's matmuls, core count, platform."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    return {"cpu_model": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]}


#: cryoscape's domain for the decoder cryoDRGN builds with ``--domain``
SAME_ARCHITECTURE = {"hartley": "hartley_full", "fourier": "fourier"}


def train_and_eval_cryoscape(exe: str, data: Path, arch: list[str], variant: str, work: Path, truth: np.ndarray,
                             args: argparse.Namespace) -> dict:
    """Train cryoscape with ``variant`` = "DOMAIN [extra train-vae options]" (run dir
    ``work/run_cryoscape[_label]``), time eval-vol.

    Returns the result section: whole-command and per-epoch throughput, peak RSS, |Spearman| after the
    last and after every epoch, eval-vol maps/s.
    """
    from cryoscape.runs import RunDir, load_z_file

    domain, *extra = variant.split()
    suffix = "" if variant == SAME_ARCHITECTURE[args.domain] else "_" + re.sub(r"[^\w.]+", "_", variant).strip("_")
    run = work / f"run_cryoscape{suffix}"
    shutil.rmtree(run, ignore_errors=True)
    seconds, rss = sh([exe, "train-vae", str(data / "particles.star"), *arch, "--domain", domain, "-o", str(run),
                       *args.cryoscape_args.split(), *extra], work / f"train_cryoscape{suffix}.log")
    z = RunDir(run).load_z().mean
    epochs = epoch_seconds_cryoscape(run)
    section = {"domain": domain, "extra_args": " ".join(extra),
               "train_seconds": seconds, "images_per_s": args.n * args.epochs / seconds,
               "epoch_seconds": epochs, "epoch_images_per_s": args.n * len(epochs) / sum(epochs),
               "peak_rss_mib": rss, "spearman_pc1": abs(spearman_with_truth(z, truth)),
               "spearman_pc1_by_epoch": spearman_by_epoch(epoch_files(run, "z.*.npz"),
                                                          lambda f: load_z_file(f).mean, truth)}
    section["per_image_fsc"] = per_image_fsc_cryoscape(run, data, fsc_positions(len(z), args.n_fsc))
    if args.n_vols > 0:
        zfile = work / f"zvals{suffix}.txt"
        np.savetxt(zfile, z[np.linspace(0, len(z) - 1, args.n_vols).astype(int)])
        seconds, _ = sh([exe, "eval-vol", str(run), "--zfile", str(zfile), "-o", str(work / f"vols_ours{suffix}")])
        section["eval_vol_maps_per_s"] = args.n_vols / seconds
    print(f"cryoscape {variant}: {section['epoch_images_per_s']:.1f} images/s per epoch, |Spearman| by epoch "
          + " ".join(f"{v:.3f}" for v in section["spearman_pc1_by_epoch"].values())
          + f", per-image FSC AUC {section['per_image_fsc']['auc_mean']:.4f}", flush=True)
    return section


def print_comparison(sections: dict[str, dict], ref: dict, ref_domain: str) -> None:
    """Print the per-epoch accuracy table, the throughput ratios and the time-to-accuracy rows."""
    names = [f"cryoscape {domain}" for domain in sections] + [f"cryoDRGN {ref_domain}"]
    print("epoch  " + "  ".join(names))
    for epoch in sorted(ref["spearman_pc1_by_epoch"]):
        values = [s["spearman_pc1_by_epoch"].get(epoch, float("nan")) for s in sections.values()]
        values.append(ref["spearman_pc1_by_epoch"][epoch])
        print(f"{epoch:5d}  " + "  ".join(f"{v:{len(n)}.3f}" for v, n in zip(values, names, strict=True)))
    for domain, section in sections.items():
        eval_ratio = section.get("ratio_eval_vol", float("nan"))  # absent when eval-vol was not timed
        print(f"cryoscape {domain}: training {section['epoch_images_per_s']:.1f} vs {ref['epoch_images_per_s']:.1f}"
              f" images/s per epoch ({section['ratio_train_throughput_per_epoch']:.2f}x; whole command "
              f"{section['ratio_train_throughput']:.2f}x); eval-vol {eval_ratio:.2f}x; "
              f"peak RSS {section['peak_rss_mib']:.0f} vs {ref['peak_rss_mib']:.0f} MiB")
        print("  |Spearman| reached   cryoDRGN (epoch, s)   cryoscape (epoch, s)   speed-up")
        for row in section["time_to_accuracy"]:
            print(f"  {row['spearman']:17.3f}   {row['reference_epoch']:8d} {row['reference_seconds']:8.0f}"
                  f"   {row['cryoscape_epoch']:9d} {row['cryoscape_seconds']:8.0f}   {row['speedup']:8.2f}")


def time_to_accuracy(ours: dict, ref: dict) -> list[dict]:
    """For each epoch of the reference: the training time each program needed to reach its |Spearman|.

    ``ours`` and ``ref`` are result sections with ``spearman_pc1_by_epoch`` ({epoch: value}) and
    ``epoch_seconds`` (list, epoch 1 first). Rows where cryoscape never reached the value are left out.
    """
    def cumulative(section: dict) -> dict[int, float]:
        return {e + 1: float(np.sum(section["epoch_seconds"][: e + 1])) for e in range(len(section["epoch_seconds"]))}

    ours_t, ref_t = cumulative(ours), cumulative(ref)
    ours_curve = {int(k): v for k, v in ours["spearman_pc1_by_epoch"].items()}
    rows = []
    for epoch, target in sorted((int(k), v) for k, v in ref["spearman_pc1_by_epoch"].items()):
        reached = [e for e in sorted(ours_curve) if ours_curve[e] >= target]
        if reached and epoch in ref_t and reached[0] in ours_t:
            rows.append({"spearman": target, "reference_epoch": epoch, "reference_seconds": ref_t[epoch],
                         "cryoscape_epoch": reached[0], "cryoscape_seconds": ours_t[reached[0]],
                         "speedup": ref_t[epoch] / ours_t[reached[0]]})
    return rows


def train_and_eval_reference(data: Path, arch: list[str], work: Path, truth: np.ndarray,
                              args: argparse.Namespace) -> dict:
    """Train cryoDRGN (``--domain args.domain``, run dir ``work/run_cryodrgn``), score it as cryoscape is scored.

    Returns the reference section: whole-command and per-epoch throughput, peak RSS, |Spearman| after the last
    and after every epoch, per-image FSC against the truth, eval_vol maps/s (when ``args.n_vols`` > 0).
    """
    from cryoscape.io.legacy import read_z_pickle

    exe, version = ensure_reference()
    section: dict = {"program": "cryodrgn", "version": version}
    run_ref = work / "run_cryodrgn"
    shutil.rmtree(run_ref, ignore_errors=True)
    pickles = data / "cryodrgn"
    seconds, rss = sh([str(exe), "train_vae", str(data / "particles.mrcs"), "--poses",
                       str(pickles / "pose.pkl"), "--ctf", str(pickles / "ctf.pkl"), *arch,
                       "--domain", args.domain, "--no-analysis",
                       "-o", str(run_ref)], work / "train_cryodrgn.log")
    zs = sorted(run_ref.glob("z.*.pkl"), key=lambda p: int(p.stem.split(".")[1]))
    z_ref = read_z_pickle(zs[-1])
    epochs = epoch_seconds_cryodrgn(work / "train_cryodrgn.log")
    section.update({"train_seconds": seconds, "images_per_s": args.n * args.epochs / seconds,
                    "epoch_seconds": epochs, "epoch_images_per_s": args.n * len(epochs) / sum(epochs),
                    "peak_rss_mib": rss, "spearman_pc1": abs(spearman_with_truth(z_ref, truth)),
                    "spearman_pc1_by_epoch": spearman_by_epoch(epoch_files(run_ref, "z.*.pkl"), read_z_pickle,
                                                               truth)})
    weights = sorted(run_ref.glob("weights.*.pkl"), key=lambda p: int(p.stem.split(".")[1]))[-1]
    if args.n_vols > 0:
        zfile_ref = work / "zvals_ref.txt"
        np.savetxt(zfile_ref, z_ref[np.linspace(0, len(z_ref) - 1, args.n_vols).astype(int)])
        seconds, _ = sh([str(exe), "eval_vol", str(weights), "-c", str(run_ref / "config.yaml"),
                         "--zfile", str(zfile_ref), "-o", str(work / "vols_ref")], work / "eval_cryodrgn.log")
        section["eval_vol_maps_per_s"] = args.n_vols / seconds
    section["per_image_fsc"] = per_image_fsc_cryodrgn(
        exe, weights, run_ref / "config.yaml", z_ref, data, fsc_positions(len(z_ref), args.n_fsc), work)
    print(f"cryoDRGN: per-image FSC AUC {section['per_image_fsc']['auc_mean']:.4f}", flush=True)
    return section


def side_by_side(ours: str, data: Path, work: Path, truth: np.ndarray, seed: int, args: argparse.Namespace,
                 on_progress=None) -> dict:
    """Every program of the comparison trained with ``seed`` in ``work``; the sections ``cryoscape``
    (the decoder cryoDRGN builds), ``cryoscape_variants`` and ``reference`` (with the ratios and time to
    accuracy of each cryoscape section). ``on_progress(partial result)`` is called after each training."""
    work.mkdir(parents=True, exist_ok=True)
    arch = ["--zdim", str(args.zdim), "-n", str(args.epochs), "-b", str(args.batch_size),
            "--enc-dim", str(args.dim), "--enc-layers", str(args.layers), "--dec-dim", str(args.dim),
            "--dec-layers", str(args.layers), "--seed", str(seed)]
    same = SAME_ARCHITECTURE[args.domain]
    variants = [v.strip() for v in args.variants.split(",") if v.strip() and v.strip() != same]
    out: dict = {"cryoscape": train_and_eval_cryoscape(ours, data, arch, same, work, truth, args),
                 "cryoscape_variants": {}}
    for variant in variants:  # reported after each run, so a long benchmark leaves its finished parts
        out["cryoscape_variants"][variant] = train_and_eval_cryoscape(ours, data, arch, variant, work, truth, args)
        if on_progress is not None:
            on_progress(out)
    if args.skip_reference:
        return out
    out["reference"] = ref = train_and_eval_reference(data, arch, work, truth, args)
    sections = {same: out["cryoscape"], **out["cryoscape_variants"]}
    for section in sections.values():
        section["ratio_train_throughput"] = section["images_per_s"] / ref["images_per_s"]
        section["ratio_train_throughput_per_epoch"] = section["epoch_images_per_s"] / ref["epoch_images_per_s"]
        if "eval_vol_maps_per_s" in section and "eval_vol_maps_per_s" in ref:
            section["ratio_eval_vol"] = section["eval_vol_maps_per_s"] / ref["eval_vol_maps_per_s"]
        section["time_to_accuracy"] = time_to_accuracy(section, ref)
    print_comparison(sections, ref, args.domain)
    return out


def seed_summary(runs: dict[str, dict], domain: str) -> dict[str, dict]:
    """Per program (``cryoscape DOMAIN [options]`` / ``cryoDRGN DOMAIN``) over the seeds of ``runs``
    ({seed: side_by_side result}): per-image FSC-AUC per seed, their mean and sample std, the mean FSC by
    shell averaged over seeds, and |Spearman| after the last epoch per seed."""
    programs: dict[str, list[dict]] = {}
    for result in runs.values():
        sections = {f"cryoscape {result['cryoscape']['domain']}": result["cryoscape"]}
        sections.update({f"cryoscape {name}": sec for name, sec in result.get("cryoscape_variants", {}).items()})
        if "reference" in result:
            sections[f"cryoDRGN {domain}"] = result["reference"]
        for name, section in sections.items():
            programs.setdefault(name, []).append(section)
    summary = {}
    for name, sections in programs.items():
        aucs = np.array([sec["per_image_fsc"]["auc_mean"] for sec in sections])
        shells = np.mean([sec["per_image_fsc"]["mean_fsc_by_shell"] for sec in sections], axis=0)
        summary[name] = {"auc_by_seed": [round(float(a), 4) for a in aucs], "auc_mean": float(aucs.mean()),
                         "auc_std": float(aucs.std(ddof=1)) if len(aucs) > 1 else float("nan"),
                         "mean_fsc_by_shell": [round(float(v), 4) for v in shells],
                         "spearman_pc1_by_seed": [round(float(sec["spearman_pc1"]), 4) for sec in sections]}
    return summary


def print_summary(summary: dict[str, dict]) -> None:
    """The per-program table of :func:`seed_summary`."""
    print("program                                   per-image FSC-AUC: mean ± sd (per seed)    FSC last 3 shells")
    for name, row in summary.items():
        seeds = " ".join(f"{a:.4f}" for a in row["auc_by_seed"])
        tail = " ".join(f"{v:.3f}" for v in row["mean_fsc_by_shell"][-3:])
        print(f"{name:40s}  {row['auc_mean']:.4f} ± {row['auc_std']:.4f} ({seeds})    {tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="particles (default 20000)")
    parser.add_argument("--preset", default="hinge-64", choices=("hinge-64", "assembly-64"),
                        help="simulated set: hinge-64 (continuous) or assembly-64 (3 discrete states, "
                             "independent-style); --box and --n override its box and size")
    parser.add_argument("--box", type=int, default=64)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder depth")
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--domain", default="hartley", choices=tuple(SAME_ARCHITECTURE),
                        help="cryoDRGN's decoder domain; cryoscape trains the same decoder (hartley → hartley_full)")
    parser.add_argument("--variants", default="hartley",
                        help="further cryoscape variants to train and compare, comma-separated, each a decoder "
                             "domain optionally followed by train-vae options, e.g. 'hartley,hartley "
                             "--seam-band-px 0' (default: hartley, cryoscape's default pair decoder; '' for none)")
    parser.add_argument("--seed", type=int, default=1, help="seed given to both programs (default 1)")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds: train every program once per seed (runs in WORKDIR/seed_S) "
                             "and summarise per-image FSC over seeds; overrides --seed")
    parser.add_argument("--n-vols", type=int, default=20, help="maps for the eval-vol timing (0: no timing)")
    parser.add_argument("--n-fsc", type=int, default=100, help="particles scored by per-image FSC (default 100)")
    parser.add_argument("--skip-reference", action="store_true", help="time cryoscape only")
    parser.add_argument("--cryoscape-args", default="", help="extra train-vae options for cryoscape")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "vs_cryodrgn")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "vs_cryodrgn.json")
    args = parser.parse_args(argv)

    ours = str(Path(sys.executable).with_name("cryoscape"))
    work = args.workdir
    source = args.preset.split("-")[0]
    data = work / f"{source}_{args.box}_{args.n}_snr{args.snr:g}"
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "particles.star").exists():
        sh([ours, "simulate", "--preset", args.preset, "-n", str(args.n), "--box-size", str(args.box),
            "--snr", str(args.snr), "-o", str(data)], work / "simulate.log")
        sh([ours, "export-cryodrgn", str(data / "particles.star"), "-o", str(data / "cryodrgn") + "/"])
    truth = latent_truth(data)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    results: dict = {"dataset": {"n": args.n, "box": args.box, "snr": args.snr, "source": source,
                                 "preset": args.preset},
                     "architecture": {"dim": args.dim, "layers": args.layers, "zdim": args.zdim,
                                      "batch_size": args.batch_size, "epochs": args.epochs,
                                      "domain": args.domain, "seed": args.seed if seeds is None else seeds},
                     "machine": machine_info()}

    def write(partial: dict | None = None) -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results if partial is None else {**results, **partial}, indent=2) + "\n")

    if seeds is None:
        results.update(side_by_side(ours, data, work, truth, args.seed, args, on_progress=write))
    else:
        results["runs"] = {}
        for seed in seeds:
            results["runs"][str(seed)] = side_by_side(
                ours, data, work / f"seed_{seed}", truth, seed, args,
                on_progress=lambda part, seed=seed: write({"runs": {**results["runs"], str(seed): part}}))
            write()
        results["summary"] = seed_summary(results["runs"], args.domain)
        print_summary(results["summary"])
    print(json.dumps(results, indent=2))
    write()
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
