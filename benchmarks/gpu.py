"""cryoscape on a CUDA GPU: training images/s and the fraction of the bf16 matrix rate, eval-vol maps/s, and the
time to cryoDRGN's accuracy beside cryoDRGN.

Three parts, each on the GPU named by ``--device`` (default ``cuda``):

1. training throughput: full optimisation steps (batch gathered from the dataset held on the GPU in fp16 when it
   fits, ``data.device_resident``; encoder, decoder, CTF, loss, backward, fused Adam, GradScaler in fp16) through
   ``training.step.TrainStep``, the code ``cryoscape train-vae`` runs, at box 128 and 256 with 1024 x 3 encoder
   and decoder (cryoDRGN's default width), zdim 8, for each precision; the default pair decoder's FLOPs per image
   (``decoder_flops_per_image``) and its achieved TFLOP/s against the measured bf16 matrix rate; and the decoder's
   forward + backward alone (``measure_decoder_step``). A GPU without native bf16 (compute capability < 8) runs
   fp16 where bf16 is asked (reported as ``ran_as``);
2. eval-vol throughput: maps/s of ``Decoder.eval_volumes`` at the same boxes, fp32 and reduced precision;
3. with ``--reference-python`` (a python with cryodrgn 4.3.1 and a CUDA torch), time to accuracy: a simulated
   ``hinge`` set (6,000 particles at box 128 by default), the same 1024 x 3 VAE trained by cryoDRGN (its defaults,
   batch ``--ref-batch-size``) and by cryoscape (``--variant NAME=FLAGS``, default its defaults); |Spearman| of
   latent PC1 with the true hinge angle after every epoch, the wall time from each program's launch to each
   epoch's latent file, the time each needs to reach cryoDRGN's best |Spearman|, and eval-vol's whole command.

On a machine without CUDA it says so, writes ``{"cuda": false, ...}`` and exits 0. ``--device cpu`` runs the same
code on the CPU (a check of the script with small sizes, not a GPU figure).

    python benchmarks/gpu.py                                           # parts 1-2, writes benchmarks/results/gpu.json
    python benchmarks/gpu.py --reference-python ~/cryodrgn-env/bin/python   # adds part 3
    python benchmarks/gpu.py --device cpu --boxes 32 --dim 64 --n 64 --steps 3 --warmup 1 --n-vols 2 \\
        --json /tmp/gpu_check.json                                     # check the script here
"""

from __future__ import annotations

import argparse
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
                        sync_images=10**9, host_rotations=particles.poses.rotations if device.type == "cuda" else None)
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
    rate = args.steps * args.batch_size / seconds
    flops = decoder_flops_per_image(box, args)
    out = {"box": box, "precision": precision, "ran_as": policy.name, "grad_scaler": policy.needs_scaler,
           "data_on_device": resident, "images_per_s": rate, "batch_size": args.batch_size,
           "seconds": seconds, "steps": args.steps, "finite": totals.finite,
           "decoder_gflop_per_image": flops / 1e9, "decoder_tflop_per_s": rate * flops / 1e12}
    if device.type == "cuda":
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def decoder_flops_per_image(box: int, args) -> float:
    """Matrix-product FLOPs of the default pair decoder per training image, forward and backward (3x forward):
    every point of the loss half-disc once through the first layer (2M encoding + zdim + 1 inputs), the
    ``layers`` hidden layers and the output layer (the seam band's few extra points are not counted)."""
    from cryoscape.geometry.lattice import hermitian_half

    points = len(hermitian_half(box, box / 2)[0])
    m = 3 * (box // 2)
    per_point = 2 * ((2 * m + args.zdim + 1) * args.dim + args.layers * args.dim**2 + 2 * args.dim)
    return 3.0 * per_point * points


def matmul_tflops(device, size: int = 8192) -> float:
    """bf16 matrix-product rate of ``device`` (TFLOP/s; mean of 10 products of size³ on random data)."""
    import torch

    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize(device)
    return 10 * 2 * size**3 / (time.perf_counter() - start) / 1e12


def measure_decoder_step(box: int, batch: int, args, device) -> dict:
    """Forward and backward of the decoder alone (bf16 autocast) over the loss half-disc slices of ``batch``
    random rotations: seconds per step and decoder TFLOP/s."""
    import torch

    from cryoscape.geometry.lattice import frequencies_2d, hermitian_half
    from cryoscape.geometry.rotations import random_rotations
    from cryoscape.models import ModelConfig, build_model
    from cryoscape.models.decoders import seam_band_rows

    config = ModelConfig(zdim=args.zdim, enc_dim=args.dim, enc_layers=args.layers, dec_dim=args.dim,
                         dec_layers=args.layers, domain=args.domain)
    torch.manual_seed(0)
    decoder = build_model(config, box).decoder.to(device)
    idx, _ = hermitian_half(box, box / 2)
    points_2d = np.asarray(frequencies_2d(box), dtype=np.float32).reshape(-1, 2)[np.asarray(idx)]
    rng = np.random.default_rng(0)
    sets = []
    for _ in range(4):
        rot = random_rotations(batch, rng).astype(np.float32)
        coords = torch.matmul(torch.from_numpy(points_2d), torch.from_numpy(rot)[:, :2, :]).to(device)
        sets.append((coords, torch.randn(batch, args.zdim, device=device),
                     seam_band_rows(points_2d, rot, box, config.seam_band_px)))

    def step(i):
        coords, z, rows = sets[i % len(sets)]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = decoder(coords, z, band_capacity=rows)
        out.square().mean().backward()

    for i in range(3):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    flops = batch * decoder_flops_per_image(box, args)
    return {"box": box, "batch_size": batch, "seconds_per_step": seconds, "tflop_per_s": flops / seconds / 1e12,
            "gflop_per_step": flops / 1e9}


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


def launch(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log``); (launch time as ``time.time()``, wall seconds). Raises on failure."""
    import subprocess

    began = time.time()
    with open(log, "w") as out:
        status = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "CRYOSCAPE_NO_PROGRESS": "1"}).returncode
    if status != 0:
        raise SystemExit(f"command failed ({status}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return began, time.time() - began


def training_curve(run: Path, pattern: str, load, truth: np.ndarray, began: float) -> dict:
    """|Spearman| of latent PC1 with the truth after each epoch, and the wall seconds from the program's launch to
    each epoch's latent file (its modification time: start-up, training and checkpoints included)."""
    from vs_cryodrgn import epoch_files, spearman_by_epoch

    files = epoch_files(run, pattern)
    return {"spearman_pc1_by_epoch": spearman_by_epoch(files, load, truth),
            "seconds_to_epoch": {int(f.name.split(".")[1]): f.stat().st_mtime - began for f in files}}


def seconds_to(curve: dict, target: float) -> float | None:
    """Wall seconds from launch to the first epoch whose |Spearman| reaches ``target`` (None: never)."""
    for epoch in sorted(curve["spearman_pc1_by_epoch"]):
        if curve["spearman_pc1_by_epoch"][epoch] >= target - 1e-9:
            return curve["seconds_to_epoch"][epoch]
    return None


def compare_with_cryodrgn(args, device) -> dict:
    """Part 3: time to cryoDRGN's accuracy on one simulated hinge set (see the module docstring).

    cryoDRGN trains with its defaults and ``-b --ref-batch-size``; its best |Spearman| over its epochs is the
    target. Each cryoscape variant (``--variant NAME=FLAGS``; default: its defaults) trains the same particles with
    the same architecture and epochs; the time to the target is measured from each program's launch to the
    latent file of the first epoch that reaches it.
    """
    from cryoscape.io.legacy import read_z_pickle
    from cryoscape.runs import load_z_file
    from vs_cryodrgn import epoch_seconds_cryodrgn, epoch_seconds_cryoscape, latent_truth

    ours = [sys.executable, "-m", "cryoscape.cli.main"]
    ref = [str(args.reference_python), "-c", CRYODRGN_MAIN]
    work = args.workdir
    box, n, epochs = args.ref_box, args.ref_n, args.ref_epochs
    data = work / f"hinge_{box}_{n}"
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "particles.star").exists():
        launch([*ours, "simulate", "--preset", "hinge-64", "-n", str(n), "--box-size", str(box), "--snr", "0.1",
                "-o", str(data)], work / "simulate.log")
        launch([*ours, "export-cryodrgn", str(data / "particles.star"), "-o", str(data / "cryodrgn") + "/"],
               work / "export.log")
    truth = latent_truth(data)
    arch = ["--zdim", str(args.zdim), "-n", str(epochs), "--enc-dim", str(args.dim), "--enc-layers",
            str(args.layers), "--dec-dim", str(args.dim), "--dec-layers", str(args.layers), "--seed", "1"]
    zfile = work / "zvals.txt"
    np.savetxt(zfile, np.random.default_rng(0).normal(size=(args.n_vols, args.zdim)))
    result: dict = {"dataset": {"source": "hinge", "n": n, "box": box, "snr": 0.1, "epochs": epochs}}

    run_ref = work / "run_cryodrgn"
    shutil.rmtree(run_ref, ignore_errors=True)
    pickles = data / "cryodrgn"
    began, seconds = launch([*ref, "train_vae", str(data / "particles.mrcs"), "--poses", str(pickles / "pose.pkl"),
                             "--ctf", str(pickles / "ctf.pkl"), *arch, "-b", str(args.ref_batch_size),
                             "--no-analysis", "-o", str(run_ref)], work / "train_cryodrgn.log")
    per_epoch = epoch_seconds_cryodrgn(work / "train_cryodrgn.log")
    section = {"flags": f"defaults, -b {args.ref_batch_size}", "train_seconds": seconds,
               "epoch_images_per_s": [n / s for s in per_epoch],
               **training_curve(run_ref, "z.*.pkl", read_z_pickle, truth, began)}
    target = max(section["spearman_pc1_by_epoch"].values())
    section["seconds_to_target"] = seconds_to(section, target)
    if args.n_vols and not args.skip_ref_eval:
        weights = sorted(run_ref.glob("weights.*.pkl"), key=lambda p: int(p.stem.split(".")[1]))[-1]
        shutil.rmtree(work / "vols_ref", ignore_errors=True)
        _, eval_s = launch([*ref, "eval_vol", str(weights), "-c", str(run_ref / "config.yaml"), "--zfile",
                            str(zfile), "-o", str(work / "vols_ref")], work / "eval_cryodrgn.log")
        section["eval_vol_seconds"] = eval_s
    result["cryodrgn"] = section
    result["target_spearman"] = target
    write({"vs_cryodrgn": result, "partial": True}, args.json.with_suffix(".partial.json"))
    print(f"cryoDRGN (-b {args.ref_batch_size}): |Spearman| by epoch {section['spearman_pc1_by_epoch']}, target "
          f"{target:.3f} after {section['seconds_to_target']:.1f} s", flush=True)

    for variant in args.variant or ["default="]:
        name, _, flags = variant.partition("=")
        run = work / f"run_cryoscape_{name}"
        began, seconds = launch([*ours, "train-vae", str(data / "particles.star"), *arch, *flags.split(),
                                 "--device", device.type, "-o", str(run), "--overwrite"], work / f"train_{name}.log")
        per_epoch = epoch_seconds_cryoscape(run)
        section = {"flags": flags, "train_seconds": seconds, "epoch_images_per_s": [n / s for s in per_epoch],
                   **training_curve(run, "z.*.npz", lambda f: load_z_file(f).mean, truth, began)}
        section["seconds_to_target"] = seconds_to(section, target)
        if section["seconds_to_target"] and result["cryodrgn"]["seconds_to_target"]:
            section["speedup_to_target"] = result["cryodrgn"]["seconds_to_target"] / section["seconds_to_target"]
        if args.n_vols and name == (args.variant or ["default="])[0].partition("=")[0]:
            shutil.rmtree(work / f"vols_{name}", ignore_errors=True)
            _, eval_s = launch([*ours, "eval-vol", str(run), "--zfile", str(zfile), "--device", device.type,
                                "-o", str(work / f"vols_{name}")], work / f"eval_{name}.log")
            section["eval_vol_seconds"] = eval_s
        result[f"cryoscape_{name}"] = section
        write({"vs_cryodrgn": result, "partial": True}, args.json.with_suffix(".partial.json"))
        reach = section["seconds_to_target"]
        print(f"cryoscape {name} ({flags or 'defaults'}): images/s by epoch "
              f"{[round(r) for r in section['epoch_images_per_s']]}, |Spearman| {section['spearman_pc1_by_epoch']}, "
              f"target reached after {'never' if reach is None else f'{reach:.1f} s'}"
              + (f" ({section['speedup_to_target']:.2f}x sooner)" if section.get("speedup_to_target") else ""),
              flush=True)
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
    parser.add_argument("--decoder-batch", type=int, default=64,
                        help="images per decoder-only step at box 128 (scaled by (128/box)^2 at other boxes; "
                             "0: skip the decoder-only measurement)")
    parser.add_argument("--reference-python", type=Path, default=None,
                        help="python of an environment with cryodrgn (4.3.1) and CUDA torch: adds the comparison")
    parser.add_argument("--ref-box", type=int, default=128)
    parser.add_argument("--ref-n", type=int, default=6000)
    parser.add_argument("--ref-epochs", type=int, default=3)
    parser.add_argument("--ref-batch-size", type=int, default=8, help="cryoDRGN's batch (8: its best 3-epoch "
                        "accuracy on this set; its default 16 reaches less)")
    parser.add_argument("--variant", action="append", metavar="NAME=FLAGS",
                        help="a cryoscape run of part 3 with extra train-vae flags (repeatable; default: one run "
                             "with its defaults, 'default=')")
    parser.add_argument("--skip-steps", action="store_true", help="only part 3 (no in-process step timings)")
    parser.add_argument("--skip-ref-eval", action="store_true", help="part 3 without cryoDRGN's eval_vol")
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

    if args.skip_steps:
        args.boxes = ""
    report["training"], report["eval_vol"], report["decoder_step"] = [], [], []
    peak = matmul_tflops(device) if device.type == "cuda" and not args.skip_steps else None
    report["bf16_matmul_tflops"] = peak
    if peak:
        print(f"bf16 matrix product (8192^3): {peak:.0f} TFLOP/s", flush=True)
    for box in (int(b) for b in args.boxes.split(",") if b):
        with tempfile.TemporaryDirectory() as folder:
            particles = make_particles(Path(folder), args.n, box)
            for precision in args.precisions.split(","):
                row = measure_training(particles, box, precision, args, device)
                report["training"].append(row)
                if peak:
                    row["fraction_of_matmul_peak"] = row["decoder_tflop_per_s"] / peak
                print(f"train box {box:4d} {precision} (ran as {row['ran_as']}): {row['images_per_s']:9.1f} "
                      f"images/s, decoder {row['decoder_tflop_per_s']:.1f} TFLOP/s, data on device: "
                      f"{row['data_on_device']}", flush=True)
        if args.decoder_batch:
            row = measure_decoder_step(box, max(1, round(args.decoder_batch * (128 / box) ** 2)), args, device)
            if peak:
                row["fraction_of_matmul_peak"] = row["tflop_per_s"] / peak
            report["decoder_step"].append(row)
            print(f"decoder step box {box:4d} batch {row['batch_size']}: {row['tflop_per_s']:.1f} TFLOP/s"
                  + (f" ({row['fraction_of_matmul_peak']:.0%} of the matmul rate)" if peak else ""), flush=True)
        for amp in (False, True):
            row = measure_eval_vol(box, amp, args, device)
            report["eval_vol"].append(row)
            print(f"eval-vol box {box:4d} {'amp' if amp else 'fp32'}: {row['maps_per_s']:8.2f} maps/s", flush=True)
    if args.reference_python is not None:
        report["vs_cryodrgn"] = compare_with_cryodrgn(args, device)
    write(report, args.json)
    return 0


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
