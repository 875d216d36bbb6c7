"""Back-projection accuracy against the true map: padding / CTF-grid variants and cryoDRGN's backproject_voxel.

For each dataset (one rigid state of the ``hinge`` built-in, CTF with astigmatism, shifts 0) the benchmark
simulates the particles in both CTF modes of the simulator (``--ctf-field-factor 1``: CTF on the box's own
grid, circular, as cryoDRGN's simulator; ``2``: CTF on a field twice the box then cropped, like extraction from a
micrograph), reconstructs them with every variant of ``cryoscape.reconstruct.backproject`` (``pad1`` is the
default) and, unless ``--no-cryodrgn`` is given, with cryoDRGN 4.3.1 ``backproject_voxel`` (its defaults) on the
same particles (poses and CTF written as cryoDRGN pickles; ``.venv-ref``, installed by ``vs_cryodrgn.py``).
Every map is scored against the true map: FSC area under the curve, FSC at 0.9 Nyquist, minimum FSC up to 0.9
Nyquist, FSC = 0.5 resolution. Maps whose overall correlation with the truth is negative (cryoDRGN inverts the
data by default) are negated first. The JSON holds every row, the CPU, and per dataset the default's margin over
cryoDRGN (AUC difference, FSC-0.5 difference in Å; positive = cryoscape better).

The evidence matrix of issue 9 (both CTF modes × noise-free and SNR 0.1 × 1.2 and 2.5 Å/px × box 64 and 128,
defocus 0.5–3 µm; box 64 with 3000 particles, box 128 with 1000), and the seed repeat of the contested case:

    python benchmarks/backproject_accuracy.py
    python benchmarks/backproject_accuracy.py --box 64 --apix 1.6 --snr 0.1 --fields 2 --n-by-box 64:3000 \\
        --seeds 0 1 2 3 4 --variants pad1 --regularization 0.01 1 --json benchmarks/results/backproject_seeds.json

Variants: ``pad1`` is ``BackprojectConfig()`` (trilinear kernel, images' periodic component); ``pad1-as-is`` the
images unchanged (the default before issue 9 item 1, apart from the full Nyquist shell); ``pad1-radial`` cryoDRGN's
radial kernel. The runs behind the default (box 64 with 1000 particles, box 128 with 300):

    python benchmarks/backproject_accuracy.py --box 64 --n-by-box 64:1000 --apix 1.2 2.5 --variants pad1 \\
        pad1-radial pad1-as-is pad1-radial-as-is --json benchmarks/results/backproject_accuracy_box64.json
    python benchmarks/backproject_accuracy.py --box 64 --n-by-box 64:1000 --apix 1.2 --snr inf --fields 1 2 \\
        --seeds 1 2 --variants pad1 pad1-radial pad1-as-is --json benchmarks/results/backproject_seeds_noise_free.json
    python benchmarks/backproject_accuracy.py --box 128 --n-by-box 128:300 --apix 1.2 --snr 0.1 \\
        --variants pad1 pad1-radial pad1-as-is --json benchmarks/results/backproject_accuracy_box128_snr0.1.json
    python benchmarks/backproject_accuracy.py --box 128 --n-by-box 128:300 --apix 1.2 --snr inf --fields 2 \\
        --variants pad1 pad1-radial pad1-as-is --json benchmarks/results/backproject_accuracy_box128_field2.json
    python benchmarks/backproject_accuracy.py --box 128 --n-by-box 128:300 --apix 1.2 --snr inf --fields 1 \\
        --variants pad1 pad1-as-is --json benchmarks/results/backproject_accuracy_box128_boxgrid.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF_CRYODRGN = ROOT / ".venv-ref" / "bin" / "cryodrgn"
VARIANTS = {
    "pad1": {"pad_factor": 1},  # the default: trilinear, periodic component of the images
    "pad1-radial": {"pad_factor": 1, "kernel": "radial"},
    "pad1-as-is": {"pad_factor": 1, "image_edges": "as-is"},  # the previous default (but the full Nyquist shell)
    "pad1-radial-as-is": {"pad_factor": 1, "kernel": "radial", "image_edges": "as-is"},
    "pad1-gridding": {"pad_factor": 1, "gridding_correction": True},
    "pad1-reg1": {"pad_factor": 1, "regularization": 1.0},
    "pad1-reg0.1": {"pad_factor": 1, "regularization": 0.1},
    "pad2-box": {"pad_factor": 2, "ctf_grid": "box"},
    "pad2-padded": {"pad_factor": 2, "ctf_grid": "padded"},
    "pad2-interpolated": {"pad_factor": 2, "ctf_grid": "interpolated"},
}


def machine() -> dict:
    """CPU model, core count and the vector ISA flags that matter for the timings (none are claimed here)."""
    from machine import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa, "platform": platform.platform()}


def is_default(row: dict) -> bool:
    """Whether a cryoscape row used ``BackprojectConfig()``'s settings (padding, CTF grid, λ)."""
    from cryoscape.reconstruct.backproject import BackprojectConfig

    default = BackprojectConfig()
    return (row["method"].startswith("cryoscape") and row["pad_factor"] == default.pad_for(row["box"])
            and (row["pad_factor"] == 1 or row["ctf_grid"] == default.ctf_grid)
            and row["regularization"] == default.regularization
            and row.get("gridding_correction", False) == default.gridding_correction
            and row.get("kernel", "trilinear") == default.kernel
            and row.get("image_edges", "as-is") == default.image_edges)


def margins(rows: list[dict]) -> list[dict]:
    """Per dataset and seed: the default settings minus cryoDRGN (AUC; FSC-0.5 in Å, positive = ours finer)."""
    keys = ("box", "apix", "n", "snr", "ctf_field_factor", "seed")
    out = []
    for ref in (r for r in rows if r["method"].startswith("cryodrgn")):
        same = [r for r in rows if all(r[k] == ref[k] for k in keys) and is_default(r)]
        for ours in same[:1]:
            out.append({**{k: ref[k] for k in keys}, "auc_default_minus_cryodrgn": ours["auc"] - ref["auc"],
                        "res05_cryodrgn_minus_default_angstrom": ref["res05_angstrom"] - ours["res05_angstrom"]})
    return out


def simulate(box: int, apix: float, n: int, snr: float, field: int, defocus: tuple[float, float],
             astigmatism: float, seed: int):
    """(images (n, D, D), Poses, CTFParams, true map) of one rigid hinge state."""
    from cryoscape.simulate.config import preset_config
    from cryoscape.simulate.simulator import GroundTruthVolumes, Simulator

    cfg = preset_config(None, source="hinge", hinge_angles_deg=(30.0, 30.0), box_size=box,
                        pixel_size_angstrom=apix, n_particles=n, snr=snr, defocus_min_angstrom=defocus[0],
                        defocus_max_angstrom=defocus[1], astigmatism_max_angstrom=astigmatism,
                        ctf_field_factor=field, max_shift_px=0.0, seed=seed)
    sim = Simulator(cfg)
    return sim.images(0, n), sim.poses(), sim.ctf_params(), GroundTruthVolumes(cfg)(0, 0.0)


def score(vol: np.ndarray, truth: np.ndarray, apix: float) -> dict:
    """FSC of ``vol`` against ``truth`` (sign-corrected), summarised."""
    from cryoscape.reconstruct.fsc import fsc_curve

    if float(np.vdot(vol, truth)) < 0:
        vol = -vol
    curve = fsc_curve(vol, truth, apix)
    half = vol.shape[0] // 2
    f = curve.fsc
    k90 = int(0.9 * half)
    return {"auc": float(curve.area_under_curve()), "fsc_at_0.9_nyquist": float(f[k90]),
            "min_fsc_to_0.9_nyquist": float(f[1:k90 + 1].min()), "fsc_last_shell": float(f[half - 1]),
            "res05_angstrom": float(curve.resolution_angstrom(0.5))}


def cryodrgn_map(images, poses, ctf, apix: float, work: Path) -> np.ndarray:
    """cryoDRGN ``backproject_voxel`` (defaults) on the same particles; the full map."""
    from cryoscape.io.legacy import write_ctf_pickle, write_pose_pickle
    from cryoscape.io.mrc import read_mrc, write_mrc

    work.mkdir(parents=True, exist_ok=True)
    write_mrc(work / "p.mrcs", images.astype(np.float32), voxel_size_angstrom=apix)
    write_pose_pickle(work / "pose.pkl", poses)
    write_ctf_pickle(work / "ctf.pkl", ctf)
    out = work / "out"
    with open(work / "log.txt", "w") as log:
        subprocess.run([str(REF_CRYODRGN), "backproject_voxel", str(work / "p.mrcs"), "--poses",
                        str(work / "pose.pkl"), "--ctf", str(work / "ctf.pkl"), "-o", str(out)],
                       check=True, stdout=log, stderr=subprocess.STDOUT,
                       env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    vol, _ = read_mrc(out / "backproject.mrc")
    return np.asarray(vol, dtype=np.float32)


def parse_n_by_box(items: list[str]) -> dict[int, int]:
    """``["64:3000", "128:1000"]`` -> {64: 3000, 128: 1000}."""
    out = {}
    for item in items:
        box, _, n = item.partition(":")
        out[int(box)] = int(n)
    return out


def line(row: dict) -> str:
    return (f"box {row['box']:3d} {row['apix']:.2f} Å/px snr {row['snr']:<4g} field {row['ctf_field_factor']} "
            f"seed {row['seed']} {row['method']:<28} λ {row['regularization']:<5g} AUC {row['auc']:.4f}  "
            f"FSC@0.9Nyq {row['fsc_at_0.9_nyquist']:.4f}  min {row['min_fsc_to_0.9_nyquist']:.4f}  "
            f"res0.5 {row['res05_angstrom']:.3f} Å")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--apix", type=float, nargs="+", default=[1.2, 2.5], help="pixel sizes (Å)")
    parser.add_argument("--n-by-box", nargs="+", default=["64:3000", "128:1000"],
                        help="particles per dataset for each box, BOX:N")
    parser.add_argument("--snr", type=float, nargs="+", default=[float("inf"), 0.1])
    parser.add_argument("--fields", type=int, nargs="+", default=[1, 2], help="ctf_field_factor values")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="simulation seeds (one dataset each)")
    parser.add_argument("--defocus", type=float, nargs=2, default=[5000.0, 30000.0], help="defocus range (Å)")
    parser.add_argument("--astigmatism", type=float, default=300.0, help="max astigmatism (Å)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        default=["pad1", "pad1-radial", "pad1-as-is", "pad1-radial-as-is", "pad2-box", "pad2-padded"])
    parser.add_argument("--regularization", type=float, nargs="+", default=[0.01])
    parser.add_argument("--no-cryodrgn", dest="cryodrgn", action="store_false",
                        help="skip cryoDRGN backproject_voxel")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cryoscape_bp_accuracy"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "backproject_accuracy.json")
    args = parser.parse_args(argv)

    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject_arrays

    if args.cryodrgn and not REF_CRYODRGN.exists():
        raise SystemExit(f"{REF_CRYODRGN} missing: run benchmarks/vs_cryodrgn.py once, or give --no-cryodrgn")
    n_by_box = parse_n_by_box(args.n_by_box)
    result = {"benchmark": "backproject_accuracy", "command": " ".join(["benchmarks/backproject_accuracy.py",
                                                                          *(argv or sys.argv[1:])]),
              "machine": machine(),
              "default": {"pad_factor": BackprojectConfig().pad_for(64), "ctf_grid": BackprojectConfig().ctf_grid,
                          "regularization": BackprojectConfig().regularization,
                          "kernel": BackprojectConfig().kernel, "image_edges": BackprojectConfig().image_edges},
              "note": "FSC of each map against the true map (hinge, one rigid state, shifts 0). cryoDRGN 4.3.1 "
                      "backproject_voxel with its defaults (reg-weight 1). Timings are wall seconds on a shared "
                      "machine, not speed claims.", "rows": [], "margins": []}
    rows = result["rows"]
    start_all = time.perf_counter()
    for box in args.box:
        n = n_by_box.get(box, 1000)
        for apix in args.apix:
            for snr in args.snr:
                for field in args.fields:
                    for seed in args.seeds:
                        images, poses, ctf, truth = simulate(box, apix, n, snr, field, tuple(args.defocus),
                                                             args.astigmatism, seed=seed)
                        base = {"box": box, "apix": apix, "n": n, "snr": snr, "ctf_field_factor": field,
                                "seed": seed, "defocus_angstrom": list(args.defocus),
                                "astigmatism_angstrom": args.astigmatism}
                        for name in args.variants:
                            kw = dict(VARIANTS[name])
                            lams = [kw.pop("regularization")] if "regularization" in kw else args.regularization
                            for lam in lams:
                                start = time.perf_counter()
                                res = backproject_arrays(images, poses, ctf, apix,
                                                         BackprojectConfig(regularization=lam, **kw)).full
                                rows.append({**base, "method": f"cryoscape {name}", "regularization": lam,
                                             "pad_factor": kw["pad_factor"], "ctf_grid": kw.get("ctf_grid", "box"),
                                             "gridding_correction": kw.get("gridding_correction", False),
                                             "kernel": BackprojectConfig(**kw).kernel,
                                             "image_edges": kw.get("image_edges", BackprojectConfig.image_edges),
                                             **score(res, truth, apix),
                                             "seconds": time.perf_counter() - start})
                                print(line(rows[-1]), flush=True)
                        if args.cryodrgn:
                            start = time.perf_counter()
                            vol = cryodrgn_map(images, poses, ctf, apix,
                                               args.workdir / f"b{box}_{apix}_{snr}_{field}_{seed}")
                            rows.append({**base, "method": "cryodrgn backproject_voxel", "regularization": 1.0,
                                         **score(vol, truth, apix), "seconds": time.perf_counter() - start})
                            print(line(rows[-1]), flush=True)
                        result["margins"] = margins(rows)
                        result["total_seconds"] = time.perf_counter() - start_all
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if result["margins"]:
        print("default (BackprojectConfig()) vs cryoDRGN backproject_voxel: ΔAUC (ours − theirs), "
              "ΔFSC-0.5 (Å, theirs − ours; positive = ours finer)")
        for m in result["margins"]:
            flag = "  <-- cryoDRGN better" if m["auc_default_minus_cryodrgn"] < 0 else ""
            print(f"  box {m['box']:3d} {m['apix']:.2f} Å/px snr {m['snr']:<4g} field {m['ctf_field_factor']} seed "
                  f"{m['seed']}: ΔAUC {m['auc_default_minus_cryodrgn']:+.4f}  ΔFSC-0.5 "
                  f"{m['res05_cryodrgn_minus_default_angstrom']:+.3f} Å{flag}")
    print(f"total {result.get('total_seconds', 0):.0f} s; wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
