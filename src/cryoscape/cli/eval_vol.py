"""``cryoscape eval-vol``: generate maps from a trained model at given latent coordinates."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cryoscape.cli.common import positive_int

NAME = "eval-vol"
#: More maps than this need --yes.
MAX_MAPS_UNASKED = 100
HELP = "generate 3-D maps from a trained run (at given z for a VAE; the map of a homogeneous run)"

DESCRIPTION = """\
Decode maps from a trained run (cryoscape train-vae / train-nn / import-cryodrgn). The decoder is evaluated
only inside the run's volume_radius_px (default D/2, the Nyquist sphere = the default loss radius, so maps
hold only trained frequencies) and on half of Fourier space (Hermitian symmetry), several maps per batch. Maps
are float32 .mrc (z, y, x) with the voxel size in the header: the run's pixel size x D / D' with --downsample
D'.

examples:
  cryoscape eval-vol run/ -z 0.5 -1.2 0 0 0 0 0 0 -o vol.mrc        # one map at one z (zdim 8)
  cryoscape eval-vol run/ --epoch 20 --zfile centers.txt -o maps/   # maps/vol_000.mrc, vol_001.mrc, ...
  cryoscape eval-vol run_nn/ -o map.mrc --downsample 64              # homogeneous run, 64^3 map
  cryoscape eval-vol run/ --zfile run/z.20.npz -o maps/ --flip       # every particle's mean z (large!)
  cryoscape eval-vol 00_vae/weights.50.pkl -c 00_vae/config.yaml --zfile z.txt -o maps/   # cryoDRGN run

A cryoDRGN run is read as it is (no import step): its folder (with --epoch N) or its weights.N.pkl, with the
config.yaml beside it or given by -c; the maps equal cryodrgn eval_vol's, with the voxel size from the run's
CTF pickle (or --apix) where cryoDRGN writes 1.

--zfile reads a .txt (one z per line), .npy, cryoDRGN .pkl or cryoscape z.N.npz (its means). More than
100 maps are refused unless --yes is given (the message says how many maps and how much disk they take).
--flip mirrors the map (reverses the z axis: fixes the hand), --invert multiplies by -1.
Differences from cryoDRGN: a cryoscape run folder replaces WEIGHTS -c CONFIG; epochs are 1-based (default: the
last); -o is a folder unless it ends in .mrc and a single map is made.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="run folder (or one of its weights.N.pt), or a cryoDRGN run folder or weights.N.pkl")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    parser.add_argument("-c", "--config", default=None,
                        help="config.yaml of cryoDRGN weights (default: the one beside them)")
    zs = parser.add_mutually_exclusive_group()
    zs.add_argument("-z", type=float, nargs="+", metavar="Z", help="one latent coordinate (zdim values)")
    zs.add_argument("--zfile", help="latent coordinates, one per row (.txt, .npy, .pkl or z.N.npz)")
    parser.add_argument(
        "-o", "--output", required=True, help="output folder (or a .mrc file when a single map is made)"
    )
    parser.add_argument(
        "--prefix", default="vol_", help="file name prefix in the output folder (default vol_)"
    )
    parser.add_argument(
        "--downsample",
        "-d",
        type=int,
        default=None,
        metavar="D",
        help="box of the maps (even, at most the training box); voxel size scales by D_train/D",
    )
    parser.add_argument("--yes", "-y", action="store_true",
                        help=f"allow more than {MAX_MAPS_UNASKED} maps (one per z: they can fill a disk)")
    parser.add_argument("--flip", action="store_true", help="mirror the maps (reverse the z axis)")
    parser.add_argument("--invert", action="store_true", help="multiply the maps by -1")
    parser.add_argument(
        "--apix",
        "--Apix",
        dest="apix",
        type=float,
        default=None,
        help="pixel size of the training images in Å (default: from the run)",
    )
    parser.add_argument(
        "-b",
        "--batch-size",
        dest="batch_size",
        type=positive_int,
        default=8,
        help="maps decoded per batch (default %(default)s)",
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode in bf16 (autocast; default: on GPUs and on CPUs with native bf16, else off); maps agree "
        "with --no-amp to ~1%% of their range",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where to decode (default %(default)s)",
    )


def check_map_count(count: int, box_size: int, yes: bool) -> None:
    """Refuse to write more than :data:`MAX_MAPS_UNASKED` maps unless ``yes``; the error states the disk used."""
    if count <= MAX_MAPS_UNASKED or yes:
        return
    from cryoscape.errors import InputError

    size = count * (1024 + 4 * box_size**3)
    shown = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
    raise InputError(f"this would write {count} maps of {box_size}^3 voxels ({shown} on disk)",
                     fix="add --yes to write them all, or give fewer z values (e.g. k-means centres); "
                     "-d/--downsample makes smaller maps")


def read_z_values(path: str | Path, zdim: int) -> np.ndarray:
    """Latent coordinates (n, zdim) float32 from a .txt, .npy, cryoDRGN .pkl or cryoscape z.N.npz file."""
    from cryoscape.errors import InputError
    from cryoscape.io.legacy import read_z_pickle
    from cryoscape.runs import load_z_file

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError("latent file not found", path=path)
    try:
        if suffix == ".pkl":
            z = read_z_pickle(path)
        elif suffix == ".npz":
            z = load_z_file(path).mean
        elif suffix == ".npy":
            z = np.load(path, allow_pickle=False)
        else:
            z = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise InputError(
            f"cannot read latent coordinates ({exc})",
            path=path,
            fix="give one z per row: .txt, .npy, cryoDRGN .pkl or z.N.npz",
        ) from None
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 1:
        z = z[None, :] if zdim > 1 else z[:, None]
    if z.ndim != 2 or z.shape[1] != zdim:
        raise InputError(
            f"latent coordinates have shape {z.shape} but the model has zdim {zdim}",
            path=path,
            fix=f"give {zdim} values per row",
        )
    if not np.all(np.isfinite(z)):
        raise InputError("latent coordinates contain NaN or inf", path=path)
    return z


def output_paths(output: str, prefix: str, count: int) -> list[Path]:
    """Where the ``count`` maps go: ``output`` itself for one map named *.mrc, else
    ``output/prefixNNN.mrc``.
    """
    out = Path(output)
    if out.suffix.lower() == ".mrc":
        if count != 1:
            from cryoscape.errors import InputError

            raise InputError(
                f"{count} maps cannot be written to one file", path=out, fix="give a folder for -o"
            )
        return [out]
    width = max(3, len(str(count - 1)))
    return [out / f"{prefix}{i:0{width}d}.mrc" for i in range(count)]


def run(args: argparse.Namespace) -> int:
    import torch

    from cryoscape.cli.common import check_outputs
    from cryoscape.errors import InputError
    from cryoscape.io.mrc import write_mrc
    from cryoscape.models.precision import amp_helps
    from cryoscape.progress import progress
    from cryoscape.runs import find_run
    from cryoscape.training.config import load_trained
    from cryoscape.training.distributed import choose_device

    run_dir, epoch = find_run(args.run, cryodrgn_config=args.config)
    if args.epoch is not None:
        epoch = args.epoch
    device = choose_device(args.device)
    model, config, epoch = load_trained(run_dir, epoch, device=str(device))
    inputs = [args.run, args.zfile, run_dir.weights_path(epoch), run_dir.config_path, run_dir.z_path(epoch)]
    zdim = config.model.zdim
    box = int(config.data.box_size)
    if zdim > 0:
        if args.z is None and args.zfile is None:
            raise InputError(f"this run is a VAE (zdim {zdim}): give -z or --zfile", path=run_dir.path)
        if args.z is not None:
            if len(args.z) != zdim:
                raise InputError(
                    f"-z has {len(args.z)} values but the model has zdim {zdim}", fix=f"give {zdim} values"
                )
            z = np.asarray([args.z], dtype=np.float32)
        else:
            z = read_z_values(args.zfile, zdim)
    else:
        if args.z is not None or args.zfile is not None:
            raise InputError("this run is homogeneous (no latent space): drop -z/--zfile", path=run_dir.path)
        z = None
    out_box = box if args.downsample is None else int(args.downsample)
    if out_box % 2 or out_box < 2 or out_box > box:
        raise InputError(f"--downsample {out_box} must be an even box of at most the training box {box}")
    apix = args.apix if args.apix is not None else config.data.pixel_size_angstrom
    if apix is None:
        apix = 1.0
        print("warning: the run has no pixel size; writing 1 Å/voxel (give --apix)")
    voxel = float(apix) * box / out_box
    count = 1 if z is None else z.shape[0]
    check_map_count(count, out_box, args.yes)
    paths = output_paths(args.output, args.prefix, count)
    check_outputs(inputs=inputs, files=paths)  # never replace an input
    scale = float(config.data.data_std or 1.0)
    decoder = model.decoder
    batch = int(args.batch_size)
    amp = amp_helps(device) if args.amp is None else bool(args.amp)
    radius = config.volume_radius_px  # frequency pixels j (k = j / D): the same for every output box
    for start in progress(range(0, count, batch), total=-(-count // batch), desc="maps", unit="batch"):
        zb = None if z is None else torch.from_numpy(z[start : start + batch]).to(device)
        vols = decoder.eval_volumes(zb, box_size=out_box, radius_px=radius, scale=scale, amp=amp).cpu().numpy()
        for i, vol in enumerate(vols):
            if args.flip:
                vol = vol[::-1]
            if args.invert:
                vol = -vol
            write_mrc(
                paths[start + i], np.ascontiguousarray(vol, dtype=np.float32), voxel_size_angstrom=voxel
            )
    where = paths[0] if count == 1 else paths[0].parent
    print(f"wrote {count} map(s) of {out_box}^3 at {voxel:.4g} Å/voxel (epoch {epoch}) to {where}")
    return 0
