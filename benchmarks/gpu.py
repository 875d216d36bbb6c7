"""cryoscape on a CUDA GPU: training images/s in fp32, bf16 and fp16 AMP, eval-vol maps/s, and cryoDRGN beside it.

Three parts, each on the GPU named by ``--device`` (default ``cuda``):

1. training throughput: full optimisation steps (batch gathered from the dataset held on the GPU in fp16 when it
   fits, ``data.device_resident``; encoder, decoder, CTF, loss, backward, fused Adam, GradScaler in fp16) through
   ``training.step.TrainStep``, the code ``cryoscape train-vae`` runs, at box 128 and 256 with 1024 x 3 encoder
   and decoder (cryoDRGN's default width), zdim 8, for each precision. A GPU without native bf16 (compute
   capability < 8) runs fp16 where bf16 is asked (reported as ``ran_as``);
2. eval-vol throughput: maps/s of ``Decoder.eval_volumes`` at the same boxes, fp32 and reduced precision;
3. with ``--reference-python`` (the python of an environment with cryodrgn 4.3.1 and a CUDA torch), the
   comparison of ``benchmarks/vs_cryodrgn.py`` on the GPU: a simulated ``hinge`` set at box 128, the same
   1024 x 3 VAE trained by both programs (cryoscape ``--domain hartley_full`` is cryoDRGN's decoder; cryoscape's
   default ``hartley`` beside it), images/s per epoch from each program's log, |Spearman| of latent PC1 with
   the true hinge angle after every epoch, and eval-vol maps/s.

On a machine without CUDA it says so, writes ``{"cuda": false, ...}`` and exits 0. ``--device cpu`` runs the same
code on the CPU (a check of the script with small sizes, not a GPU figure).

    python benchmarks/gpu.py                                           # parts 1-2, writes benchmarks/results/gpu.json
    python benchmarks/gpu.py --reference-python ~/cryodrgn-env/bin/python   # adds part 3
    python benchmarks/gpu.py --device cpu --boxes 32 --dim 64 --n 64 --steps 3 --warmup 1 --n-vols 2 \\
        --json /tmp/gpu_check.json                                     # check the script here
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark modules

PRECISIONS = ("fp32", "bf16", "fp16")
#: How cryoDRGN's own command line is started from its python (its console script does the same).
CRYODRGN_MAIN = "import sys; from cryodrgn.command_line import main_commands; sys.argv[0] = 'cryodrgn'; " \
                "sys.exit(main_commands())"


def machine_info(device) -> dict:
    """CPU model and ISA flags, torch version, and the GPU (name, capability, memory, native bf16)."""
    import torch

    flags, model = set(), platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    info = {"cpu_model": model, "cpus": os.cpu_count(), "platform": platform.platform(),
            "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags],
            "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    if device.type == "cuda":
        from cryoscape.models.precision import cuda_supports_bf16

        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_gib": round(props.total_memory / 2**30, 2), "native_bf16": cuda_supports_bf16(device)}
    return info


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training(particles, box: int, precision: str, args, device) -> dict:
    """images/s of ``args.steps`` TrainStep calls after ``args.warmup``, in ``precision``."""
    import torch

    from cryoscape.data.dataset import HartleyDataset
    from cryoscape.data.device_resident import ResidentBatches, training_batches
    from cryoscape.data.streaming import epoch_batches
    from cryoscape.models import ModelConfig, build_model
    from cryoscape.models.precision import amp_policy
    from cryoscape.training.step import ReconstructionObjective, TrainStep, make_optimizer

    policy = amp_policy(device, precision)
    config = ModelConfig(zdim=args.zdim, enc_dim=args.dim, enc_layers=args.layers, dec_dim=args.dim,
                         dec_layers=args.layers, domain=args.domain)
    torch.manual_seed(0)
    module = ReconstructionObjective(build_model(config, box), box, box / 2).to(device)
    stepper = TrainStep(module, make_optimizer(module.parameters(), 1e-4, 0.0, device), policy, device,
                        sync_images=10**9)
    dataset = HartleyDataset(particles, data_std=float(box), in_memory=True)
    host = epoch_batches(dataset, args.batch_size, chunk_size=1024, seed=0)
    batches = training_batches(host, dataset, device)
    resident = isinstance(batches, ResidentBatches)
    generator = torch.Generator(device=device).manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run(count: int, epoch: int) -> int:
        done = 0
        while done < count:
            batches.set_epoch(epoch)
            epoch += 1
            for batch in batches:
                stepper(batch.to(device), 0.125, generator)
                done += 1
                if done == count:
                    break
        return epoch

    epoch = run(args.warmup, 0)
    synchronize(device)
    start = time.perf_counter()
    run(args.steps, epoch)
    totals = stepper.sync()  # also waits for the device
    seconds = time.perf_counter() - start
    out = {"box": box, "precision": precision, "ran_as": policy.name, "grad_scaler": policy.needs_scaler,
           "data_on_device": resident, "images_per_s": args.steps * args.batch_size / seconds,
           "seconds": seconds, "steps": args.steps, "finite": totals.finite}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def measure_eval_vol(box: int, amp: bool, args, device) -> dict:
    """maps/s of ``Decoder.eval_volumes`` for ``args.n_vols`` latents at ``box`` (untrained weights)."""
    import torch

    from cryoscape.models import ModelConfig, build_model

    config = ModelConfig(zdim=args.zdim, enc_dim=args.dim, enc_layers=args.layers, dec_dim=args.dim,
                         dec_layers=args.layers, domain=args.domain)
    torch.manual_seed(0)
    decoder = build_model(config, box).decoder.to(device).eval()
    z = torch.randn(args.n_vols, args.zdim, device=device)
    with torch.no_grad():
        decoder.eval_volumes(z[:1], box_size=box, amp=amp)  # warm-up
        synchronize(device)
        start = time.perf_counter()
        vols = decoder.eval_volumes(z, box_size=box, amp=amp)
        synchronize(device)
    seconds = time.perf_counter() - start
    return {"box": box, "amp": amp, "maps": int(vols.shape[0]), "maps_per_s": args.n_vols / seconds,
            "seconds": seconds}


def compare_with_cryodrgn(args, device) -> dict:
    """Part 3: both programs trained on one simulated hinge set (see the module docstring)."""
    from cryoscape.io.legacy import read_z_pickle
    from cryoscape.runs import load_z_file
    from vs_cryodrgn import epoch_files, epoch_seconds_cryodrgn, epoch_seconds_cryoscape, sh, spearman_by_epoch

    ours = str(Path(sys.executable).with_name("cryoscape"))
    ref = [str(args.reference_python), "-c", CRYODRGN_MAIN]
    work = args.workdir
    box, n, epochs = args.ref_box, args.ref_n, args.ref_epochs
    data = work / f"hinge_{box}_{n}"
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "particles.star").exists():
        sh([ours, "simulate", "--preset", "hinge-64", "-n", str(n), "--box-size", str(box), "--snr", "0.1",
            "-o", str(data)], work / "simulate.log")
        sh([ours, "export-cryodrgn", str(data / "particles.star"), "-o", str(data / "cryodrgn") + "/"])
    with open(data / "ground_truth.csv") as handle:
        truth = np.array([float(row["hinge_angle_deg"]) for row in csv.DictReader(handle)])
    arch = ["--zdim", str(args.zdim), "-n", str(epochs), "-b", str(args.ref_batch_size), "--enc-dim",
            str(args.dim), "--enc-layers", str(args.layers), "--dec-dim", str(args.dim), "--dec-layers",
            str(args.layers), "--seed", "1"]
    zvals = np.random.default_rng(0).normal(size=(args.n_vols, args.zdim))
    result: dict = {"dataset": {"source": "hinge", "n": n, "box": box, "snr": 0.1, "epochs": epochs,
                                "batch_size": args.ref_batch_size}}
    for domain in ("hartley_full", "hartley"):
        run = work / f"run_cryoscape_{domain}"
        seconds, rss = sh([ours, "train-vae", str(data / "particles.star"), *arch, "--domain", domain,
                           "--device", device.type, "-o", str(run), "--overwrite"], work / f"train_{domain}.log")
        per_epoch = epoch_seconds_cryoscape(run)
        zfile = work / f"zvals_{domain}.txt"
        np.savetxt(zfile, zvals)
        shutil.rmtree(work / f"vols_{domain}", ignore_errors=True)
        eval_s, _ = sh([ours, "eval-vol", str(run), "--zfile", str(zfile), "--device", device.type,
                        "-o", str(work / f"vols_{domain}")])
        result[f"cryoscape_{domain}"] = {
            "train_seconds": seconds, "epoch_seconds": per_epoch, "epoch_images_per_s": n * len(per_epoch)
            / sum(per_epoch), "peak_rss_mib": rss, "eval_vol_maps_per_s": args.n_vols / eval_s,
            "spearman_pc1_by_epoch": spearman_by_epoch(epoch_files(run, "z.*.npz"), lambda f: load_z_file(f).mean,
                                                       truth)}
    run_ref = work / "run_cryodrgn"
    shutil.rmtree(run_ref, ignore_errors=True)
    shutil.rmtree(work / "vols_ref", ignore_errors=True)
    pickles = data / "cryodrgn"
    seconds, rss = sh([*ref, "train_vae", str(data / "particles.mrcs"), "--poses", str(pickles / "pose.pkl"),
                       "--ctf", str(pickles / "ctf.pkl"), *arch, "--domain", "hartley", "--no-analysis",
                       "-o", str(run_ref)], work / "train_cryodrgn.log")
    per_epoch = epoch_seconds_cryodrgn(work / "train_cryodrgn.log")
    weights = sorted(run_ref.glob("weights.*.pkl"), key=lambda p: int(p.stem.split(".")[1]))[-1]
    zfile = work / "zvals_ref.txt"
    np.savetxt(zfile, zvals)
    eval_s, _ = sh([*ref, "eval_vol", str(weights), "-c", str(run_ref / "config.yaml"), "--zfile", str(zfile),
                    "-o", str(work / "vols_ref")], work / "eval_cryodrgn.log")
    result["cryodrgn"] = {
        "train_seconds": seconds, "epoch_seconds": per_epoch, "epoch_images_per_s": n * len(per_epoch)
        / sum(per_epoch), "peak_rss_mib": rss, "eval_vol_maps_per_s": args.n_vols / eval_s,
        "spearman_pc1_by_epoch": spearman_by_epoch(epoch_files(run_ref, "z.*.pkl"), read_z_pickle, truth)}
    for domain in ("hartley_full", "hartley"):
        ours_section = result[f"cryoscape_{domain}"]
        ours_section["ratio_train_per_epoch"] = ours_section["epoch_images_per_s"] / result["cryodrgn"][
            "epoch_images_per_s"]
        ours_section["ratio_eval_vol"] = ours_section["eval_vol_maps_per_s"] / result["cryodrgn"][
            "eval_vol_maps_per_s"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to check the script")
    parser.add_argument("--boxes", default="128,256", help="boxes, comma-separated (default 128,256)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="default fp32,bf16,fp16")
    parser.add_argument("--dim", type=int, default=1024, help="encoder and decoder width (default 1024)")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--zdim", type=int, default=8)
    parser.add_argument("--domain", default="hartley", choices=("hartley", "hartley_full", "fourier"))
    parser.add_argument("-b", "--batch-size", type=int, default=8, help="images per step (default 8, cryoDRGN's)")
    parser.add_argument("--n", type=int, default=1024, help="particles of the synthetic training set")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--n-vols", type=int, default=20, help="maps for the eval-vol timings")
    parser.add_argument("--reference-python", type=Path, default=None,
                        help="python of an environment with cryodrgn (4.3.1) and CUDA torch: adds the comparison")
    parser.add_argument("--ref-box", type=int, default=128)
    parser.add_argument("--ref-n", type=int, default=10000)
    parser.add_argument("--ref-epochs", type=int, default=5)
    parser.add_argument("--ref-batch-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench_out" / "gpu")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    args = parser.parse_args(argv)

    import torch

    from cryoscape.cli._process import configure_process

    configure_process()
    device = torch.device(args.device)
    report: dict = {"benchmark": "gpu", "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                    "device": str(device), "cuda": bool(torch.cuda.is_available())}
    if device.type == "cuda" and not torch.cuda.is_available():
        report["machine"] = machine_info(torch.device("cpu"))
        report["skipped"] = "no CUDA device (torch.cuda.is_available() is False): nothing measured"
        print(f"gpu benchmark: {report['skipped']}")
        write(report, args.json)
        return 0
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    report["machine"] = machine_info(device)
    report["architecture"] = {"dim": args.dim, "layers": args.layers, "zdim": args.zdim, "domain": args.domain,
                              "batch_size": args.batch_size}
    from train_throughput import make_particles

    report["training"], report["eval_vol"] = [], []
    for box in (int(b) for b in args.boxes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            particles = make_particles(Path(folder), args.n, box)
            for precision in args.precisions.split(","):
                row = measure_training(particles, box, precision, args, device)
                report["training"].append(row)
                print(f"train box {box:4d} {precision} (ran as {row['ran_as']}): {row['images_per_s']:9.1f} "
                      f"images/s, data on device: {row['data_on_device']}", flush=True)
        for amp in (False, True):
            row = measure_eval_vol(box, amp, args, device)
            report["eval_vol"].append(row)
            print(f"eval-vol box {box:4d} {'amp' if amp else 'fp32'}: {row['maps_per_s']:8.2f} maps/s", flush=True)
    if args.reference_python is not None:
        report["vs_cryodrgn"] = compare_with_cryodrgn(args, device)
        for domain in ("hartley_full", "hartley"):
            section = report["vs_cryodrgn"][f"cryoscape_{domain}"]
            print(f"vs cryoDRGN ({domain}): training {section['ratio_train_per_epoch']:.2f}x per epoch, eval-vol "
                  f"{section['ratio_eval_vol']:.2f}x", flush=True)
    write(report, args.json)
    return 0


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
