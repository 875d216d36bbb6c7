"""Loss disc vs map sphere: train to D/2 − 1 or to D/2, decode to either; FSC and per-image FSC vs truth.

Simulates a 3-state ``assembly`` set (box 32 by default, CTF, SNR 0.1), trains ``train-vae`` twice (same seed)
with ``--loss-radius-px`` D/2 − 1 and D/2, then decodes every run at map radius D/2 − 1 and D/2 and scores:

* per-image FSC against truth (100 particles: map at the particle's z vs its true map), AUC and mean FSC of the
  last three shells;
* energy of the decoded maps beyond the trained radius (fraction of the Fourier power at |j| > loss radius).

    python benchmarks/trained_radius.py                      # 6000 particles, 8 epochs
    python benchmarks/trained_radius.py --n 1000 --epochs 1  # quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import cli, ground_truth, shown


def score(run: Path, data: Path, gt: dict, radius: float, n_images: int, epoch: int | None = None) -> dict:
    """Per-image FSC of ``run`` (checkpoint ``epoch``, default the last) decoded to frequency radius ``radius``
    (pixels)."""
    import torch

    from cryoscape.reconstruct.scoring import per_image_fsc, truth_from_table
    from cryoscape.runs import RunDir
    from cryoscape.simulate import GroundTruthVolumes, SimulationConfig
    from cryoscape.training.config import load_trained

    run_dir = RunDir(run)
    model, config, epoch = load_trained(run_dir, epoch)
    box, scale = int(config.data.box_size), float(config.data.data_std or 1.0)
    with np.load(run_dir.z_path(epoch)) as f:
        z = np.asarray(f["mean"], dtype=np.float32)

    def generate(zb):
        with torch.no_grad():
            return model.decoder.eval_volumes(torch.as_tensor(zb), box_size=box, radius_px=radius,
                                              scale=scale).numpy()

    truth = GroundTruthVolumes(SimulationConfig.load_yaml(data / "config.yaml"))
    true_map = truth_from_table(truth, gt["state"], gt.get("coordinate"))
    res = per_image_fsc(generate, z, true_map, float(config.data.pixel_size_angstrom), n_images=n_images,
                        batch_size=10)
    out = res.summary()
    mean_curve = res.fsc.mean(0)
    out["mean_fsc_by_shell"] = [round(float(v), 4) for v in mean_curve]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--box", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--snr", type=float, default=0.1)
    parser.add_argument("--n-images", type=int, default=100, help="particles scored (default 100)")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/trained_radius"))
    parser.add_argument("--json", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "trained_radius.json")
    args = parser.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"assembly_{args.box}_{args.n}"
    if not (data / "particles.star").exists():
        cli("simulate", "--preset", "assembly-64", "--box-size", str(args.box), "-n", str(args.n), "--snr",
            str(args.snr), "-o", str(data), log=work / "simulate.log")
    gt = ground_truth(data)
    half = args.box / 2
    result = {"dataset": shown(data), "n_particles": args.n, "box": args.box, "epochs": args.epochs,
              "snr": args.snr, "runs": {}}
    for loss_radius in (half - 1, half):
        run = work / f"run_loss{loss_radius:g}"
        if not (run / f"weights.{args.epochs}.pt").exists():
            start = time.perf_counter()
            cli("train-vae", str(data / "particles.star"), "-n", str(args.epochs), "-o", str(run),
                "--zdim", "8", "--loss-radius-px", str(loss_radius), "--seed", "0", log=work / "train.log")
            print(f"trained loss radius {loss_radius:g} in {time.perf_counter() - start:.0f} s", flush=True)
        for map_radius in (half - 1, half):
            s = score(run, data, gt, map_radius, args.n_images)
            key = f"loss{loss_radius:g}_map{map_radius:g}"
            result["runs"][key] = s
            tail = s["mean_fsc_by_shell"][-3:]
            print(f"{key:16s} per-image FSC AUC mean {s['auc_mean']:.4f} median {s['auc_median']:.4f}  "
                  f"mean FSC at the last 3 shells {tail}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {shown(args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
