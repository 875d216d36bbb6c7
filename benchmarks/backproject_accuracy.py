"""Back-projection accuracy against the true map: padding / CTF-grid variants and cryoDRGN's backproject_voxel.

For each dataset (one rigid state of the ``hinge`` built-in, CTF with astigmatism, shifts 0) the benchmark
simulates the particles in both CTF modes of the simulator (``--ctf-field-factor 1``: CTF on the box's own
grid, circular, as cryoDRGN's simulator; ``2``: CTF on a field twice the box then cropped, like extraction from a
micrograph), reconstructs them with every variant of ``cryoscape.reconstruct.backproject`` and, when
``--cryodrgn`` is given, with cryoDRGN 4.3.1 ``backproject_voxel`` on the same particles (poses and CTF written as
cryoDRGN pickles; ``.venv-ref``, installed by ``vs_cryodrgn.py``). Every map is scored against the true map: FSC
area under the curve, FSC at 0.9 Nyquist, minimum FSC up to 0.9 Nyquist, FSC = 0.5 resolution. Maps whose
overall correlation with the truth is negative (cryoDRGN's sign convention) are negated first.

    python benchmarks/backproject_accuracy.py --cryodrgn                      # the default grid
    python benchmarks/backproject_accuracy.py --box 64 --apix 1.6 --n 1000 --snr inf --fields 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF_CRYODRGN = ROOT / ".venv-ref" / "bin" / "cryodrgn"
VARIANTS = {
    "pad1": {"pad_factor": 1},
    "pad2-box": {"pad_factor": 2, "ctf_grid": "box"},
    "pad2-padded": {"pad_factor": 2, "ctf_grid": "padded"},
}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--box", type=int, nargs="+", default=[64])
    parser.add_argument("--apix", type=float, nargs="+", default=[1.6], help="pixel sizes (Å)")
    parser.add_argument("--n", type=int, default=1000, help="particles per dataset")
    parser.add_argument("--snr", type=float, nargs="+", default=[float("inf"), 0.1])
    parser.add_argument("--fields", type=int, nargs="+", default=[1, 2], help="ctf_field_factor values")
    parser.add_argument("--defocus", type=float, nargs=2, default=[5000.0, 30000.0], help="defocus range (Å)")
    parser.add_argument("--astigmatism", type=float, default=300.0, help="max astigmatism (Å)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, "default"])
    parser.add_argument("--regularization", type=float, nargs="+", default=[0.01])
    parser.add_argument("--cryodrgn", action="store_true", help="also run cryoDRGN backproject_voxel")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cryoscape_bp_accuracy"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "backproject_accuracy.json")
    args = parser.parse_args(argv)

    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject_arrays

    rows = []
    if args.json.exists():
        rows = json.loads(args.json.read_text()).get("rows", [])
    for box in args.box:
        for apix in args.apix:
            for snr in args.snr:
                for field in args.fields:
                    images, poses, ctf, truth = simulate(box, apix, args.n, snr, field, tuple(args.defocus),
                                                         args.astigmatism, seed=0)
                    base = {"box": box, "apix": apix, "n": args.n, "snr": snr, "ctf_field_factor": field,
                            "defocus_angstrom": list(args.defocus), "astigmatism_angstrom": args.astigmatism}
                    for name in args.variants:
                        for lam in args.regularization:
                            kw = {} if name == "default" else VARIANTS[name]
                            start = time.perf_counter()
                            res = backproject_arrays(images, poses, ctf, apix,
                                                     BackprojectConfig(regularization=lam, **kw)).full
                            row = {**base, "method": f"cryoscape {name}", "regularization": lam,
                                   **score(res, truth, apix)}
                            rows.append(row)
                            print(f"box {box} {apix} Å/px snr {snr:g} field {field} {row['method']:<22} λ {lam:<5g}"
                                  f" AUC {row['auc']:.4f}  FSC@0.9Nyq {row['fsc_at_0.9_nyquist']:.4f}  min "
                                  f"{row['min_fsc_to_0.9_nyquist']:.4f}  res0.5 {row['res05_angstrom']:.2f} Å"
                                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
                    if args.cryodrgn:
                        vol = cryodrgn_map(images, poses, ctf, apix, args.workdir / f"b{box}_{apix}_{snr}_{field}")
                        row = {**base, "method": "cryodrgn backproject_voxel", "regularization": 1.0,
                               **score(vol, truth, apix)}
                        rows.append(row)
                        print(f"box {box} {apix} Å/px snr {snr:g} field {field} {row['method']:<22} λ 1    "
                              f" AUC {row['auc']:.4f}  FSC@0.9Nyq {row['fsc_at_0.9_nyquist']:.4f}  min "
                              f"{row['min_fsc_to_0.9_nyquist']:.4f}  res0.5 {row['res05_angstrom']:.2f} Å",
                              flush=True)
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
