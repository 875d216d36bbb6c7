"""Seam of the decoder across the kz = 0 plane (``cryoscape.analysis.seam``) on trained models.

Trains ``train-vae`` on the ``hinge`` and ``assembly`` sets (box 32 by default, CTF, SNR 0.1) with the decoder
domains ``hartley`` (pair decoder, half-space + Hermitian symmetry) and ``hartley_full`` (one network on the
whole space, continuous by construction), then reports the RMS jump of H across the plane relative to the
RMS of H, per frequency shell, and its summary over the low (0–0.5 Nyquist) and high (0.5–1 Nyquist) halves.
Existing runs in ``--workdir`` are reused; ``--runs`` scores given run folders instead.

    python benchmarks/seam.py                                  # 4000 particles, 8 epochs, both sets
    python benchmarks/seam.py --runs bench_out/accuracy/assembly_vae_z8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import cli, shown


def report(name: str, run: Path) -> dict:
    from cryoscape.analysis.seam import seam_profile_of_run

    profile = seam_profile_of_run(run)
    out = {"run": shown(run), **profile.to_dict()}
    shells = " ".join(f"{v:.3f}" for v in profile.relative_jump)
    print(f"{name:<24} relative jump low half {out['relative_jump_low_half']:.4f}  high half "
          f"{out['relative_jump_high_half']:.4f}\n    by shell: {shells}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--sets", nargs="+", default=["hinge", "assembly"])
    parser.add_argument("--domains", nargs="+", default=["hartley", "hartley_full"])
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
            for domain in args.domains:
                run = args.workdir / f"{name}_{domain}"
                if not (run / f"weights.{args.epochs}.pt").exists():
                    cli("train-vae", str(data / "particles.star"), "-n", str(args.epochs), "--zdim", "8",
                        "--domain", domain, "-o", str(run), log=args.workdir / "train.log")
                key = f"{name}/{domain}"
                results[key] = {"epochs": args.epochs, "n_particles": args.n, **report(key, run)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {shown(args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
