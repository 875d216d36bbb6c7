"""Using a trained run: decode maps at latent coordinates (``eval-vol``) and encode particles (``eval-images``).

:func:`generate_maps` decodes the maps of a :class:`MapRequest` batch by batch and writes each one as it is made
(maps can be many and large); :func:`encode_particles` returns an :class:`Encoding` (no file written) and
:func:`write_encoding` writes it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.configio import check_range
from cryoscape.errors import InputError

#: More maps than this are refused unless the request says ``yes``.
MAX_MAPS_UNASKED = 100


@dataclass(frozen=True)
class MapRequest:
    """Which maps to decode from a run, and how to write them.

    Attributes
    ----------
    run : str
        Run folder, one of its ``weights.N.pt``, or a cryoDRGN run folder / ``weights.N.pkl``.
    output : str
        Folder of ``{prefix}NNN.mrc``, or one ``.mrc`` file when a single map is made.
    epoch : int or None
        Checkpoint (default: the one named by ``run``, else the latest).
    z : tuple of float or None
        One latent coordinate (zdim values).
    zfile : str or None
        Latent coordinates, one per row (.txt, .npy, cryoDRGN .pkl or z.N.npz).
    cryodrgn_config : str or None
        ``config.yaml`` of cryoDRGN weights when it is not beside them.
    prefix : str
        File-name prefix in the output folder.
    downsample : int or None
        Box of the maps (even, at most the training box; default the training box).
    apix : float or None
        Pixel size of the training images (Å; default the run's).
    flip, invert : bool
        Mirror the maps (reverse z); multiply them by -1.
    batch_size : int
        Maps decoded per batch (at least 1).
    amp : bool or None
        Decode in bf16 (None: where it is fast, :func:`cryoscape.models.precision.amp_helps`).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    yes : bool
        Allow more than :data:`MAX_MAPS_UNASKED` maps.
    """

    run: str
    output: str
    epoch: int | None = None
    z: tuple[float, ...] | None = None
    zfile: str | None = None
    cryodrgn_config: str | None = None
    prefix: str = "vol_"
    downsample: int | None = None
    apix: float | None = None
    flip: bool = False
    invert: bool = False
    batch_size: int = 8
    amp: bool | None = None
    device: str = "auto"
    yes: bool = False

    def __post_init__(self) -> None:
        check_range(self.epoch, "epoch", minimum=1)
        check_range(self.batch_size, "batch_size", minimum=1)
        check_range(self.apix, "apix", minimum=0, exclusive_minimum=True)
        check_range(self.downsample, "downsample", minimum=2)
        if self.z is not None and self.zfile is not None:
            raise InputError("give -z or --zfile, not both")


@dataclass(frozen=True)
class MapsWritten:
    """What :func:`generate_maps` wrote: the paths, the box and voxel size (Å) of the maps, and the epoch."""

    paths: tuple[Path, ...]
    box_size: int
    voxel_size_angstrom: float
    epoch: int
    pixel_size_known: bool


def map_disk_text(count: int, box_size: int) -> str:
    """The disk space ``count`` float32 maps of ``box_size``³ voxels take, for a message (``"58 MiB"``)."""
    size = count * (1024 + 4 * box_size**3)
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def check_map_count(count: int, box_size: int, yes: bool, fix: str = "give fewer z values (e.g. k-means "
                    "centres)") -> None:
    """Refuse to write more than :data:`MAX_MAPS_UNASKED` maps unless ``yes``; the error states the disk used and
    suggests ``--yes``, then ``fix``, then a smaller box."""
    if count <= MAX_MAPS_UNASKED or yes:
        return
    raise InputError(f"this would write {count} maps of {box_size}^3 voxels ({map_disk_text(count, box_size)} on "
                     f"disk)", fix=f"add --yes to write them all, or {fix}; -d/--downsample makes smaller maps")


def read_z_values(path: str | os.PathLike, zdim: int) -> np.ndarray:
    """Latent coordinates (n, zdim) float32 from a .txt, .npy, cryoDRGN .pkl or cryoscape z.N.npz file."""
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
        raise InputError(f"cannot read latent coordinates ({exc})", path=path,
                         fix="give one z per row: .txt, .npy, cryoDRGN .pkl or z.N.npz") from None
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 1:
        z = z[None, :] if zdim > 1 else z[:, None]
    if z.ndim != 2 or z.shape[1] != zdim:
        raise InputError(f"latent coordinates have shape {z.shape} but the model has zdim {zdim}", path=path,
                         fix=f"give {zdim} values per row")
    if not np.all(np.isfinite(z)):
        raise InputError("latent coordinates contain NaN or inf", path=path)
    return z


def output_paths(output: str | os.PathLike, prefix: str, count: int) -> list[Path]:
    """Where ``count`` maps go: ``output`` itself for one map named *.mrc, else ``output/prefixNNN.mrc``."""
    out = Path(output)
    if out.suffix.lower() == ".mrc":
        if count != 1:
            raise InputError(f"{count} maps cannot be written to one file", path=out, fix="give a folder for -o")
        return [out]
    width = max(3, len(str(count - 1)))
    return [out / f"{prefix}{i:0{width}d}.mrc" for i in range(count)]


def _latents(request: MapRequest, zdim: int, run_path: Path) -> np.ndarray | None:
    """The z values of the request as (n, zdim), or None for a homogeneous run."""
    if zdim == 0:
        if request.z is not None or request.zfile is not None:
            raise InputError("this run is homogeneous (no latent space): drop -z/--zfile", path=run_path)
        return None
    if request.z is None and request.zfile is None:
        raise InputError(f"this run is a VAE (zdim {zdim}): give -z or --zfile", path=run_path)
    if request.z is not None:
        if len(request.z) != zdim:
            raise InputError(f"-z has {len(request.z)} values but the model has zdim {zdim}",
                             fix=f"give {zdim} values")
        return np.asarray([request.z], dtype=np.float32)
    return read_z_values(request.zfile, zdim)


def generate_maps(request: MapRequest, *, check_outputs: Any = None) -> MapsWritten:
    """Decode and write the maps of ``request`` (float32 .mrc, (z, y, x), voxel size in the header).

    The decoder is evaluated inside the run's ``volume_radius_px`` on half of Fourier space, ``batch_size`` maps
    at a time; each map is written as soon as it is decoded. ``check_outputs(inputs, files)`` (optional) is called
    with every input and output path before anything is written (the CLI refuses to replace an input).
    """
    import torch

    from cryoscape.io.mrc import write_mrc
    from cryoscape.models.precision import amp_helps
    from cryoscape.progress import progress
    from cryoscape.runs import find_run
    from cryoscape.training.config import load_trained
    from cryoscape.training.distributed import choose_device

    run_dir, epoch = find_run(request.run, cryodrgn_config=request.cryodrgn_config)
    epoch = request.epoch if request.epoch is not None else epoch
    device = choose_device(request.device)
    model, config, epoch = load_trained(run_dir, epoch, device=str(device))
    z = _latents(request, config.model.zdim, run_dir.path)
    box = int(config.data.box_size)
    out_box = box if request.downsample is None else int(request.downsample)
    if out_box % 2 or out_box < 2 or out_box > box:
        raise InputError(f"--downsample {out_box} must be an even box of at most the training box {box}")
    apix = request.apix if request.apix is not None else config.data.pixel_size_angstrom
    voxel = float(apix if apix is not None else 1.0) * box / out_box
    count = 1 if z is None else z.shape[0]
    check_map_count(count, out_box, request.yes)
    paths = output_paths(request.output, request.prefix, count)
    if check_outputs is not None:
        check_outputs([request.run, request.zfile, run_dir.weights_path(epoch), run_dir.config_path,
                       run_dir.z_path(epoch)], paths)
    scale = float(config.data.data_std or 1.0)
    amp = amp_helps(device) if request.amp is None else bool(request.amp)
    batch = request.batch_size
    for start in progress(range(0, count, batch), total=-(-count // batch), desc="maps", unit="batch"):
        zb = None if z is None else torch.from_numpy(z[start:start + batch]).to(device)
        vols = model.decoder.eval_volumes(zb, box_size=out_box, radius_px=config.volume_radius_px, scale=scale,
                                          amp=amp).cpu().numpy()
        for i, vol in enumerate(vols):
            vol = vol[::-1] if request.flip else vol
            vol = -vol if request.invert else vol
            write_mrc(paths[start + i], np.ascontiguousarray(vol, dtype=np.float32), voxel_size_angstrom=voxel)
    return MapsWritten(tuple(paths), out_box, voxel, epoch, apix is not None)


@dataclass(frozen=True)
class Encoding:
    """Per particle (original index order): latent mean/logvar (n, zdim), indices, mse and kl (n,)."""

    mean: np.ndarray
    logvar: np.ndarray
    indices: np.ndarray
    mse: np.ndarray
    kl: np.ndarray
    epoch: int
    run_path: Path


def encode_particles(run: str, particles: Any, *, epoch: int | None = None, batch_size: int = 64,
                     amp: bool = False, device: str = "auto") -> Encoding:
    """Encode ``particles`` (a ParticleSet with poses and CTF) with a trained run, images prepared as in training.

    ``mse`` is the error of each image against its reconstruction at z = mean (normalised units); for a
    homogeneous run mean/logvar have zdim 0 and kl is 0.
    """
    from cryoscape.runs import find_run
    from cryoscape.training.config import load_trained
    from cryoscape.training.distributed import choose_device
    from cryoscape.training.loop import evaluate, make_dataset, resolve_data, use_amp
    from cryoscape.training.step import ReconstructionObjective

    check_range(batch_size, "batch_size", minimum=1)
    run_dir, found = find_run(run)
    torch_device = choose_device(device)
    model, config, epoch = load_trained(run_dir, epoch if epoch is not None else found, device=str(torch_device))
    # the run's preparation and normalisation; the pixel size of these particles
    data = dataclasses.replace(config.data, pixel_size_angstrom=None, lazy=None)
    config = resolve_data(dataclasses.replace(config, data=data), particles)
    box = int(config.data.box_size)
    loss_module = ReconstructionObjective(model, box, config.loss_radius(box)).to(torch_device)
    mu, logvar, mse = evaluate(loss_module, make_dataset(config, particles), batch_size=batch_size,
                               amp=use_amp(dataclasses.replace(config, amp=amp), torch_device), device=torch_device,
                               beta=config.effective_beta())
    if mu is None:
        mu = logvar = np.zeros((len(particles), 0), np.float32)
    kl = -0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=1)
    return Encoding(mu, logvar, np.asarray(particles.indices), mse.astype(np.float32), kl.astype(np.float32),
                    epoch, run_dir.path)


def write_encoding(encoding: Encoding, path: str | os.PathLike) -> Path:
    """Write an :class:`Encoding` as a z.N.npz-style file (mean, logvar, indices, mse, kl); returns its path."""
    from cryoscape.runs import save_latents

    return save_latents(path, encoding.mean, encoding.logvar, encoding.indices, mse=encoding.mse, kl=encoding.kl)
