"""Voxel back-projection with CTF correction and gold-standard half-maps (streaming, bounded memory).

For every particle image X with rotation R, shift t (pixels) and CTF C (RELION model, ``geometry.ctf``):

1. F = centred 2-D FFT of the D-pixel image's periodic component (``reconstruct.periodic``; ``image_edges``,
   see below), translated by ``+t`` (``geometry.fourier.phase_shift_2d``; this centres the particle), C evaluated
   on the same D-point grid (``ctf_grid="box"``, the default);
2. the 2-D lattice point k goes to the 3-D point ``k @ R`` (DESIGN.md) and is accumulated by trilinear insertion
   (``geometry.slicing.insert_slices``, the adjoint of the slice operator; ``kernel="radial"``:
   ``reconstruct.insertion``) into a grid of P = pad_factor × D points per side (default pad 1: P = D):

   ==============  ======================  =====================
   correction      data +=                 weight +=
   ==============  ======================  =====================
   ``wiener``      C · F                   C²
   ``phase-flip``  sign(C) · F             1
   ``none``        F                       1
   ==============  ======================  =====================

The Fourier map is ``data / (weight + λ · mean(weight))`` (``λ = regularization``; the mean is over the
voxels up to the Nyquist shell that received data), set to zero beyond the Nyquist shell
(``round(|k|) > D/2``), inverse-transformed and cropped back to D³. ``gridding_correction`` (off by default)
divides by the transform of the trilinear kernel, ``sinc(x/P) sinc(y/P) sinc(z/P)`` to the power 1 or 2 (x in
voxels from the centre), which amplifies the box's edges and corners by up to (π/2)³ at pad 1.

Where the CTF is applied (``ctf_grid``, with ``pad_factor`` 2): ``"box"`` (default) takes the image's FFT and
the CTF on the D-point grid and inserts those samples into the padded grid, right for images whose CTF was
applied on the box's own Fourier grid (a circular convolution, as the simulators make them); ``"padded"``
zero-pads each image to P pixels and evaluates the CTF on the P-point grid (RELION's way), right for particles
that are the linear convolution of the projection with the CTF's point-spread function (extracted from
micrographs); ``"interpolated"`` takes the CTF-weighted image and C² on the box and Fourier-interpolates both to
the padded grid.

Image edges (``image_edges``): ``"periodic"`` (default) replaces each image by its periodic component
(``reconstruct.periodic``: periodic + smooth decomposition) before its FFT, which removes the jump between
opposite edges (CTF fringes cut by the box) without discarding a pixel; ``"as-is"`` transforms the image
unchanged. Kernel (``kernel``): ``"trilinear"`` (default) or ``"radial"`` (weight ``max(0, 1 − r)`` over the
eight neighbours, cryoDRGN's ``backproject_voxel`` kernel).

Why these defaults (pad 1, CTF on the box, periodic edges, trilinear, no gridding correction), with the
figures and the comparison with cryoDRGN's ``backproject_voxel``: ``docs/decisions.md``.

Particles are split at random (seeded) into two halves reconstructed independently; the full map uses the
sum of both halves' accumulators. Scale: with images that are line integrals of a map (``Σ_z V``, as the
simulator makes them) and no CTF, the result reproduces that map voxel for voxel. Images with white
particles (RELION's convention) and the RELION CTF, which is positive at low frequency, give maps with
protein positive.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoscape.configio import option
from cryoscape.data.particles import ParticleSet
from cryoscape.errors import InputError
from cryoscape.geometry.ctf import ctf_grid
from cryoscape.geometry.fourier import fft2_center, phase_shift_2d
from cryoscape.geometry.slicing import insert_slices
from cryoscape.io.records import CTFParams, Poses
from cryoscape.progress import progress
from cryoscape.reconstruct.fsc import FSCCurve, fsc_curve
from cryoscape.reconstruct.insertion import KERNELS, insert_slices_radial
from cryoscape.reconstruct.periodic import periodic_component

log = logging.getLogger(__name__)

CTF_CORRECTIONS = ("wiener", "phase-flip", "none")
CTF_GRIDS = ("box", "padded", "interpolated")
IMAGE_EDGES = ("periodic", "as-is")
DEFAULT_PAD = 1


@dataclass(frozen=True)
class BackprojectConfig:
    """Options of :func:`backproject`.

    Attributes
    ----------
    ctf_correction : {"wiener", "phase-flip", "none"}
        How the CTF enters the accumulation (module docstring). Without CTF parameters only "none" applies.
    regularization : float
        Wiener constant λ relative to the mean weight (default 0.01); larger values damp noise where the
        weight is small (high frequencies, CTF zeros).
    pad_factor : int or None
        Oversampling of the 3-D Fourier grid (1 = none, 2 = twice the box: 8× the memory). None (default): 1
        (docs/decisions.md).
    kernel : {"trilinear", "radial"}
        How a slice sample is spread over the eight voxels around it: ``trilinear`` (default), the adjoint of
        trilinear slicing; ``radial``, weight ``max(0, 1 - distance)`` as cryoDRGN ``backproject_voxel``
        (``reconstruct.insertion``). The narrower radial kernel blurs less but averages fewer samples per voxel
        (docs/decisions.md).
    image_edges : {"periodic", "as-is"}
        ``periodic`` (default) replaces each image by its periodic component (``reconstruct.periodic``)
        before the FFT: removes the jump between opposite box edges of particles extracted from micrographs;
        ``as-is`` transforms the images unchanged.
    ctf_grid : {"box", "padded", "interpolated"}
        With ``pad_factor > 1``: ``box`` (default) takes the FFT and the CTF on the D-pixel box and inserts those
        samples into the padded grid (exact for a CTF applied on the box's grid); ``padded`` zero-pads the images
        to P and applies the CTF on the P grid (RELION's way; best noise-free for particles extracted from
        micrographs, but wrong for a CTF applied on the box's grid); ``interpolated`` Fourier-interpolates the
        CTF-weighted box spectrum and C² to the P grid. Ignored at pad 1.
    chunk_size : int
        Images per chunk held in memory.
    seed : int
        Seed of the random half-set split.
    invert_contrast : bool
        Multiply the images by -1 first (for data whose particles are black).
    gridding_correction : bool
        Divide by the attenuation of the trilinear insertion after the inverse FFT (see
        :meth:`FourierAccumulator.volume`). Default False: it amplifies the noise at the box's edges
        (docs/decisions.md).
    device : str
        Torch device of the accumulation ("cpu", "cuda").
    """

    ctf_correction: str = option("wiener", choices=CTF_CORRECTIONS,
                                 help="how the CTF is corrected (default %(default)s)")
    regularization: float = option(0.01, help="Wiener constant λ relative to the mean weight (default %(default)s)")
    pad_factor: int | None = option(
        None, flags=("--pad",), help="oversampling of the Fourier grid (default 1: the most accurate on noisy "
                                     "data; 2 is better only on noise-free data and costs 8× memory; see above)")
    ctf_grid: str = option(
        "box", choices=CTF_GRIDS,
        help="with --pad 2: where the image FFT and the CTF are taken: box = on the D-pixel box, samples inserted "
             "into the padded grid [default]; padded = image zero-padded, CTF on the padded grid (RELION's way); "
             "interpolated = CTF on the box, then Fourier interpolation (see above)")
    kernel: str = option("trilinear", choices=KERNELS,
                         help="insertion kernel: trilinear [default] or radial (cryoDRGN's; better noise-free, "
                              "worse on sparse noisy data)")
    image_edges: str = option("periodic", choices=IMAGE_EDGES,
                              help="periodic = FFT of each image's periodic component, without the jump between "
                                   "opposite edges [default]; as-is = the images unchanged (see above)")
    chunk_size: int = option(256, flags=("--chunk",), help="images per chunk in memory (default %(default)s)")
    seed: int = option(0, help="seed of the random half-set split (default %(default)s)")
    invert_contrast: bool = option(False, help="multiply the images by -1 first (for data with black particles)")
    gridding_correction: bool = False
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.ctf_correction not in CTF_CORRECTIONS:
            raise InputError(f"unknown CTF correction '{self.ctf_correction}'",
                             fix=f"choose one of {', '.join(CTF_CORRECTIONS)}")
        if self.ctf_grid not in CTF_GRIDS:
            raise InputError(f"unknown CTF grid '{self.ctf_grid}'", fix=f"choose one of {', '.join(CTF_GRIDS)}")
        if self.kernel not in KERNELS:
            raise InputError(f"unknown insertion kernel '{self.kernel}'", fix=f"choose one of {', '.join(KERNELS)}")
        if self.image_edges not in IMAGE_EDGES:
            raise InputError(f"unknown image edge treatment '{self.image_edges}'",
                             fix=f"choose one of {', '.join(IMAGE_EDGES)}")
        if not (math.isfinite(self.regularization) and self.regularization >= 0):
            raise InputError(f"--regularization {self.regularization} must be a number >= 0", fix="e.g. 0.01")
        if self.pad_factor is not None and int(self.pad_factor) < 1:
            raise InputError(f"pad factor must be an integer >= 1, got {self.pad_factor}")
        if int(self.chunk_size) < 1:
            raise InputError(f"chunk size must be >= 1, got {self.chunk_size}")

    def pad_for(self, box_size: int) -> int:
        """The padding factor used for images of ``box_size`` pixels (resolves the automatic default)."""
        if self.pad_factor is not None:
            return int(self.pad_factor)
        return DEFAULT_PAD


@dataclass(frozen=True)
class Reconstruction:
    """Result of :func:`backproject`.

    Attributes
    ----------
    full, half1, half2 : ndarray, shape (D, D, D), float32
        Maps (protein positive) from all particles and from each random half.
    voxel_size_angstrom : float
    half : ndarray, shape (N,), int8
        Half (1 or 2) of every particle, in the order of the particle set.
    fsc : FSCCurve
        Gold-standard (unmasked) FSC between ``half1`` and ``half2``.
    """

    full: np.ndarray
    half1: np.ndarray
    half2: np.ndarray
    voxel_size_angstrom: float
    half: np.ndarray
    fsc: FSCCurve


def half_split(n: int, seed: int = 0) -> np.ndarray:
    """Random assignment of ``n`` particles to halves 1 and 2 (sizes ⌈n/2⌉ and ⌊n/2⌋), reproducible by seed.

    Returns
    -------
    ndarray, shape (n,), int8
    """
    order = np.random.default_rng(seed).permutation(n)
    half = np.full(n, 2, dtype=np.int8)
    half[order[: (n + 1) // 2]] = 1
    return half


class FourierAccumulator:
    """Running sums ``data`` and ``weight`` of a back-projection on a centred P³ Fourier grid.

    Parameters
    ----------
    box_size
        Image box D (pixels).
    pad_factor
        Grid side P = pad_factor × D.
    device
        Torch device.
    kernel
        Insertion kernel, ``"radial"`` or ``"trilinear"`` (:class:`BackprojectConfig`).
    """

    def __init__(self, box_size: int, pad_factor: int = 1, device: str = "cpu", kernel: str = "trilinear"):
        self.box_size = int(box_size)
        self.kernel = kernel
        self.pad_factor = int(pad_factor)
        self.grid_size = self.box_size * self.pad_factor
        g = self.grid_size
        # single precision keeps a 256³ grid at 200 MB per accumulator; the final division is in double
        self.data = torch.zeros((g, g, g), dtype=torch.complex64, device=device)
        self.weight = torch.zeros((g, g, g), dtype=torch.float32, device=device)
        self.count = 0

    def add(self, slices: torch.Tensor, weights: torch.Tensor | None, rotations: np.ndarray) -> None:
        """Insert (k, P, P) centred Fourier slices with their (k, P, P) weights at rotations (k, 3, 3)."""
        if slices.shape[0] == 0:
            return
        insert = insert_slices_radial if self.kernel == "radial" else insert_slices
        data, weight = insert(slices.to(torch.complex64), rotations, self.grid_size,
                              weights=None if weights is None else weights.to(torch.float32))
        self.data += data
        self.weight += weight
        self.count += slices.shape[0]

    def absorb(self, other: FourierAccumulator) -> None:
        """Add ``other``'s sums into this accumulator (in place)."""
        self.data += other.data
        self.weight += other.weight
        self.count += other.count

    def volume(self, regularization: float, gridding_correction: bool = False) -> np.ndarray:
        """The real-space map (D, D, D), float32, from ``data / (weight + λ mean(weight))``.

        Voxels up to and including the Nyquist shell are kept: ``round(|k|) <= D/2`` with ``k`` in cycles per
        box (the last shell of ``fsc.fsc_curve``), the corners beyond are zero. The mean weight of λ is over the
        kept voxels that received data.

        The gridding correction divides by ``g(x) g(y) g(z)`` with ``g(x) = sinc(x / P)^p`` (x in voxels from
        the centre): ``p = 2``, the transform of the trilinear kernel, on a padded grid; ``p = 1`` without
        padding, where the normalised insertion attenuates less (docs/decisions.md).
        """
        g = self.grid_size
        freqs = torch.arange(g, dtype=torch.float64, device=self.data.device) - g // 2
        radius2 = freqs[:, None, None] ** 2 + freqs[None, :, None] ** 2 + freqs[None, None, :] ** 2
        inside = radius2 < (self.pad_factor * (self.box_size // 2 + 0.5)) ** 2
        filled = inside & (self.weight > 0)
        if not bool(filled.any()):
            return np.zeros((self.box_size,) * 3, dtype=np.float32)
        weight = self.weight.to(torch.float64)
        lam = float(regularization) * float(weight[filled].mean())
        denom = torch.where(filled, weight + lam, 1.0)
        ft = torch.where(filled, self.data.to(torch.complex128) / denom,
                         torch.zeros((), dtype=torch.complex128, device=self.data.device))
        del weight, denom
        ft = torch.fft.ifftshift(ft, dim=(-3, -2, -1))
        vol = torch.fft.fftshift(torch.fft.ifftn(ft, dim=(-3, -2, -1)), dim=(-3, -2, -1)).real
        d = self.box_size
        start = g // 2 - d // 2
        vol = vol[start:start + d, start:start + d, start:start + d]
        if gridding_correction:
            x = (torch.arange(d, dtype=torch.float64, device=vol.device) - d // 2) / g
            s = torch.sinc(x) ** (2 if self.pad_factor > 1 else 1)
            vol = vol / (s[:, None, None] * s[None, :, None] * s[None, None, :])
        return vol.to(torch.float32).cpu().numpy()


def _fourier_slices(images: np.ndarray, shifts_px: np.ndarray, pad_factor: int,
                    device: str, periodic: bool = False) -> torch.Tensor:
    """Centred 2-D FFTs (k, P, P) of the zero-padded images, translated by +shift (pixels); with ``periodic``,
    of the images' periodic components (``reconstruct.periodic``)."""
    x = torch.as_tensor(images, dtype=torch.float64, device=device)
    if periodic:
        x = periodic_component(x)
    d = x.shape[-1]
    p = d * pad_factor
    if pad_factor > 1:
        lo = p // 2 - d // 2
        padded = torch.zeros((x.shape[0], p, p), dtype=x.dtype, device=device)
        padded[:, lo:lo + d, lo:lo + d] = x
        x = padded
    ft = fft2_center(x)
    shifts = torch.as_tensor(np.asarray(shifts_px, dtype=np.float64), device=device)
    return phase_shift_2d(ft, shifts)


def _fourier_interpolate(spectra: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Centred 2-D spectra (k, D, D) → (k, P, P): the spectra of the D-pixel images zero-padded to P pixels
    (sinc interpolation; values at the common frequencies unchanged)."""
    d = spectra.shape[-1]
    images = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(spectra, dim=(-2, -1))), dim=(-2, -1))
    lo = grid_size // 2 - d // 2
    padded = torch.zeros((spectra.shape[0], grid_size, grid_size), dtype=images.dtype, device=images.device)
    padded[:, lo:lo + d, lo:lo + d] = images
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(padded, dim=(-2, -1))), dim=(-2, -1))


def _ctf_slices(ctf: CTFParams, grid_size: int, device: str) -> torch.Tensor:
    """CTF (k, G, G) on the centred grid of G pixels (the box, or the padded images; same pixel size)."""
    values = ctf_grid(
        grid_size, ctf.pixel_size_angstrom, ctf.defocus_u_angstrom, ctf.defocus_v_angstrom,
        ctf.defocus_angle_deg, ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast, ctf.phase_shift_deg,
        bfactor_angstrom2=ctf.bfactor_angstrom2)
    return torch.as_tensor(np.asarray(values), dtype=torch.float64, device=device)


def backproject_chunk(accumulators: tuple[FourierAccumulator, ...], assignment: np.ndarray,
                      images: np.ndarray, rotations: np.ndarray, shifts_px: np.ndarray,
                      ctf: CTFParams | None, config: BackprojectConfig) -> None:
    """Back-project one chunk of images into ``accumulators[assignment[i]]``.

    Parameters
    ----------
    accumulators
        One accumulator per group (e.g. two half-sets).
    assignment : ndarray, shape (k,), int
        Group (0-based position in ``accumulators``) of each image.
    images : ndarray, shape (k, D, D)
    rotations : ndarray, shape (k, 3, 3)
    shifts_px : ndarray, shape (k, 2)
        (x, y) shifts in pixels of D; the image is translated by ``+shift``.
    ctf : CTFParams or None
        CTF of these k images (required unless ``config.ctf_correction == "none"``).
    config : BackprojectConfig
    """
    acc0 = accumulators[0]
    images = np.asarray(images)
    if config.invert_contrast:
        images = -images
    if config.ctf_correction != "none" and ctf is None:
        raise InputError(f"CTF correction '{config.ctf_correction}' needs CTF parameters",
                         fix="give --ctf, or use --ctf-correction none")
    on_box = config.ctf_grid != "padded" and acc0.pad_factor > 1
    slices = _fourier_slices(images, shifts_px, 1 if on_box else acc0.pad_factor, config.device,
                             periodic=config.image_edges == "periodic")
    weights = None
    if config.ctf_correction != "none":
        c = _ctf_slices(ctf, slices.shape[-1], config.device)
        if config.ctf_correction == "wiener":
            slices = slices * c
            weights = c * c
        else:
            slices = slices * torch.sign(c)
    if on_box and config.ctf_grid == "interpolated":
        slices = _fourier_interpolate(slices, acc0.grid_size)
        if weights is not None:
            weights = _fourier_interpolate(weights.to(slices.dtype), acc0.grid_size).real
    for group, acc in enumerate(accumulators):
        sel = np.flatnonzero(assignment == group)
        if sel.size == 0:
            continue
        sel_t = torch.as_tensor(sel, device=slices.device)
        w = None if weights is None else weights[sel_t]
        acc.add(slices[sel_t], w, rotations[sel])


def _reconstruct(chunks: Iterable[tuple[np.ndarray, np.ndarray, Poses, CTFParams | None]], n: int,
                 box: int, voxel_size_angstrom: float, config: BackprojectConfig,
                 show_progress: bool) -> Reconstruction:
    """Core of :func:`backproject`: ``chunks`` yields (positions, images, poses, ctf) covering 0..n-1."""
    if n < 2:
        raise InputError(f"back-projection needs at least 2 particles for two half-sets, got {n}")
    half = half_split(n, config.seed)
    pad = config.pad_for(box)
    accs = tuple(FourierAccumulator(box, pad, config.device, config.kernel) for _ in range(2))
    bar = progress(total=n, desc="back-project", unit="img") if show_progress else None
    with torch.no_grad():
        for positions, images, poses, ctf in chunks:
            backproject_chunk(accs, half[positions] - 1, images, poses.rotations, poses.shifts_px, ctf,
                              config)
            if bar is not None:
                bar.update(len(positions))
        if bar is not None:
            bar.close()
        half1 = accs[0].volume(config.regularization, config.gridding_correction)
        half2 = accs[1].volume(config.regularization, config.gridding_correction)
        accs[0].absorb(accs[1])
        full = accs[0].volume(config.regularization, config.gridding_correction)
    apix = float(voxel_size_angstrom)
    return Reconstruction(full=full, half1=half1, half2=half2, voxel_size_angstrom=apix, half=half,
                          fsc=fsc_curve(half1, half2, apix))


def backproject(particles: ParticleSet, config: BackprojectConfig = BackprojectConfig(),
                show_progress: bool = True) -> Reconstruction:
    """Reconstruct the full map and two random half-maps of a particle set, streaming over chunks.

    Parameters
    ----------
    particles : ParticleSet
        Images with poses (required) and CTF (required unless ``config.ctf_correction == "none"``).
    config : BackprojectConfig
    show_progress
        Show a progress bar on stderr.

    Returns
    -------
    Reconstruction
        Maps with protein positive and the gold-standard FSC between the halves.
    """
    if particles.poses is None:
        raise InputError("back-projection needs poses", fix="give --poses (.star, .cs or cryoDRGN .pkl)")
    if config.ctf_correction != "none" and particles.ctf is None:
        raise InputError(f"CTF correction '{config.ctf_correction}' needs CTF parameters",
                         fix="give --ctf (.star, .cs or cryoDRGN .pkl), or use --ctf-correction none")
    apix = particles.pixel_size_angstrom
    if apix is None or apix <= 0:
        log.warning("no pixel size in the input; writing 1.0 Å")
        apix = 1.0

    def chunks():
        for positions, images in particles.iter_chunks(int(config.chunk_size)):
            ctf = None if particles.ctf is None else particles.ctf.subset(positions)
            yield positions, images, particles.poses.subset(positions), ctf

    return _reconstruct(chunks(), len(particles), particles.box_size, apix, config, show_progress)


def backproject_arrays(images: np.ndarray, poses: Poses, ctf: CTFParams | None = None,
                       voxel_size_angstrom: float = 1.0, config: BackprojectConfig = BackprojectConfig(),
                       show_progress: bool = False) -> Reconstruction:
    """:func:`backproject` for images already in memory.

    Parameters
    ----------
    images : ndarray, shape (N, D, D)
    poses : Poses
        N rotations and shifts (pixels of D).
    ctf : CTFParams, optional
        Required unless ``config.ctf_correction == "none"``.
    voxel_size_angstrom
        Pixel size written into the result (Å).
    """
    images = np.asarray(images)
    n = images.shape[0]
    if len(poses) != n or (ctf is not None and len(ctf) != n):
        raise InputError(f"{n} images but {len(poses)} poses"
                         + ("" if ctf is None else f" and {len(ctf)} CTF parameter sets"))
    if config.ctf_correction != "none" and ctf is None:
        raise InputError(f"CTF correction '{config.ctf_correction}' needs CTF parameters")
    step = int(config.chunk_size)

    def chunks():
        for start in range(0, n, step):
            positions = np.arange(start, min(n, start + step))
            yield (positions, images[positions], poses.subset(positions),
                   None if ctf is None else ctf.subset(positions))

    return _reconstruct(chunks(), n, images.shape[-1], voxel_size_angstrom, config, show_progress)


def write_reconstruction(result: Reconstruction, outdir: str | os.PathLike) -> list[Path]:
    """Write the :class:`~cryoscape.reconstruct.outputs.ReconstructionFolder` ``outdir`` (created): the map and
    half-maps (voxel size in the header), ``fsc.csv`` and ``fsc.png`` (gold-standard FSC, unmasked); returns the
    paths written."""
    from cryoscape.io.mrc import write_mrc
    from cryoscape.plotting.fsc import plot_fsc
    from cryoscape.reconstruct.fsc import write_fsc_csv
    from cryoscape.reconstruct.outputs import ReconstructionFolder

    folder = ReconstructionFolder(Path(outdir))
    folder.root.mkdir(parents=True, exist_ok=True)
    for path, volume in ((folder.map, result.full), (folder.half_map(1), result.half1),
                         (folder.half_map(2), result.half2)):
        write_mrc(path, volume, result.voxel_size_angstrom)
    write_fsc_csv(result.fsc, folder.fsc_csv)
    plot_fsc({"half1 vs half2": result.fsc}, folder.fsc_png, title="gold-standard FSC (unmasked)")
    return folder.files()
