"""Seam of the decoder across the kz = 0 plane (``cryoscape.analysis.seam``) on trained models.

Trains ``train-vae`` on the ``hinge`` and ``assembly`` sets (box 32 by default, CTF, SNR 0.1) with the decoder
variants ``hartley`` (pair decoder, half-space + Hermitian symmetry, with the default seam band),
``hartley_band0`` (the same with ``--seam-band-px 0``: cryoDRGN's hard switch) and ``hartley_full`` (one network
on the whole space, continuous by construction). At each of ``--epochs`` (checkpoints of one run) it reports
the RMS jump of H across the plane relative to the RMS of H, per frequency shell, its summary over the low
(0–0.5 Nyquist) and high (0.5–1 Nyquist) halves, and the per-image FSC against the true maps (AUC).
Existing runs in ``--workdir`` are reused; ``--runs`` scores given run folders instead.

    python benchmarks/seam.py                                  # 2000 particles, epochs 8 and 32, both sets
    python benchmarks/seam.py --runs bench_out/accuracy/assembly_vae_z8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import cli, ground_truth, shown
from trained_radius import score

#: Decoder variants: name → train-vae options.
VARIANTS = {"hartley": ["--domain", "hartley"],
            "hartley_band0": ["--domain", "hartley", "--seam-band-px", "0"],
            "hartley_full": ["--domain", "hartley_full"]}


def report(name: str, run: Path, epoch: int | None = None) -> dict:
    from cryoscape.analysis.seam import seam_profile_of_run

    profile = seam_profile_of_run(run, epoch)
    out = {"run": shown(run), **profile.to_dict()}
    shells = " ".join(f"{v:.3f}" for v in profile.relative_jump)
    print(f"{name:<28} relative jump low half {out['relative_jump_low_half']:.4f}  high half "
          f"{out['relative_jump_high_half']:.4f}\n    by shell: {shells}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--epochs", type=int, nargs="+", default=[8, 32],
                        help="epochs scored (checkpoints of one run of the largest)")
    parser.add_argument("--n-images", type=int, default=100, help="particles scored by per-image FSC")
    parser.add_argument("--dim", type=int, default=256, help="encoder and decoder width (default 256)")
    parser.add_argument("--sets", nargs="+", default=["hinge", "assembly"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--runs", nargs="*", type=Path, help="score these run folders only")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/seam"))
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "seam.json")
    args = parser.parse_args(argv)
    results = {}
    if args.runs:
        for run in args.runs:
            results[run.name] = report(run.name, run)
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for name in args.sets:
            data = args.workdir / f"{name}_{args.box}_{args.n}"
            if not (data / "particles.star").exists():
                cli("simulate", "--preset", f"{name}-64", "--box-size", str(args.box), "-n", str(args.n), "-o",
                    str(data), log=args.workdir / "simulate.log")
            gt = ground_truth(data)
            last = max(args.epochs)
            for variant in args.variants:
                run = args.workdir / f"{name}_{variant}"
                if not (run / f"weights.{last}.pt").exists():
                    cli("train-vae", str(data / "particles.star"), "-n", str(last), "--zdim", "8",
                        "--enc-dim", str(args.dim), "--dec-dim", str(args.dim), *VARIANTS[variant],
                        "-o", str(run), "--overwrite", log=args.workdir / "train.log")
                for epoch in args.epochs:
                    key = f"{name}/{variant}/epoch{epoch}"
                    entry = {"epochs": epoch, "n_particles": args.n, "width": args.dim,
                             **report(key, run, epoch)}
                    fsc = score(run, data, gt, args.box / 2, args.n_images, epoch=epoch)
                    entry["per_image_fsc"] = fsc
                    print(f"    per-image FSC-AUC {fsc['auc_mean']:.4f}", flush=True)
                    results[key] = entry
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {shown(args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
