"""Simulated datasets: image formation, streaming to disk and ground truth.

Image model (per particle i, at the simulation box D and pixel size p):

1. density of state ``s_i`` (and continuous coordinate ``c_i``) → rotation ``R_i`` uniform on SO(3) →
   projection, as its centred 2-D DFT (``cryoscape.simulate.datasets``);
2. translation of the projection by ``-shift_i`` (``shift_i`` uniform in ±max px; RELION sign: translating
   the image by ``+shift_i`` centres the particle, see ``cryoscape.io.records``);
3. CTF (``geometry.ctf.ctf_grid``, RELION model, +w at zero frequency: positive density gives white
   particles). ``ctf_field_factor = 1``: multiplied on the box's own D-point Fourier grid, a circular
   convolution on the box (cryoDRGN's simulator does the same). ``ctf_field_factor = F ≥ 2``: the (shifted)
   projection is zero-padded to an F·D field, multiplied by the CTF on that grid and cropped back to D, as a
   particle extracted from a micrograph (linear convolution, truncated by the box);
4. white Gaussian noise with variance var(all noiseless pixels of the dataset) / SNR (two passes: the first
   one measures the signal variance, the second regenerates the same images and adds noise);
5. optional Fourier crop to ``downsample_box`` (pixel values preserved; the star's pixel size grows by D/d
   and the shifts in pixels shrink by d/D).

Outputs of :func:`run_simulation` in ``out_dir``: ``particles.mrcs``, ``particles.star`` (RELION 3.1 with
optics), ``ground_truth.csv``, ``gt_volumes/*.mrc`` + ``gt_volumes/volumes.csv``, ``config.yaml``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cryoscape.errors import InputError
from cryoscape.geometry.ctf import ctf_grid
from cryoscape.geometry.fourier import fft2_center, fourier_crop, ifft2_center
from cryoscape.geometry.rotations import matrix_to_euler, random_rotations
from cryoscape.io.records import CTFParams, Poses
from cryoscape.progress import progress
from cryoscape.simulate import noise as noise_mod
from cryoscape.simulate.config import SimulationConfig
from cryoscape.simulate.datasets import DensitySource, PseudoAtomSource, build_source

PARTICLES_FILE = "particles.mrcs"
STAR_FILE = "particles.star"
GROUND_TRUTH_FILE = "ground_truth.csv"
VOLUMES_DIR = "gt_volumes"
VOLUMES_TABLE = "volumes.csv"
CONFIG_FILE = "config.yaml"


def _pad_spectra(spectra: torch.Tensor, field: int) -> torch.Tensor:
    """Centred spectra (k, D, D) of images → centred spectra (k, field, field) of the same images zero-padded
    (centred) to ``field`` pixels: the field around a particle, empty beyond its box."""
    images = ifft2_center(spectra).real
    d = images.shape[-1]
    lo = field // 2 - d // 2
    padded = torch.zeros((images.shape[0], field, field), dtype=images.dtype)
    padded[:, lo:lo + d, lo:lo + d] = images
    return fft2_center(padded)


class Simulator:
    """Draws every per-particle parameter of a config up front and renders any range of images.

    Parameters
    ----------
    config : SimulationConfig
        Validated here.

    Attributes
    ----------
    source : DensitySource
    n : int
    box_size, output_box : int
        Simulation box D and written box d (= D without ``downsample_box``).
    pixel_size_angstrom, output_pixel_size_angstrom : float
    rotations : ndarray (n, 3, 3)
    shifts_px : ndarray (n, 2)
        Shifts (x, y) in pixels of the simulation box (RELION sign).
    states : ndarray (n,) int64
    coordinates : ndarray (n,) float64, NaN for discrete sources
    defocus_u_angstrom, defocus_v_angstrom, defocus_angle_deg : ndarray (n,)
    """

    def __init__(self, config: SimulationConfig):
        self.config = config.validate()
        self.source: DensitySource = build_source(config)
        self.n = config.n_particles
        self.box_size = self.source.box_size
        self.output_box = config.downsample_box or self.box_size
        if self.output_box > self.box_size:
            raise InputError(f"downsample_box = {self.output_box} must be smaller than the box "
                             f"{self.box_size}")
        self.pixel_size_angstrom = float(self.source.pixel_size_angstrom)
        self.output_pixel_size_angstrom = self.pixel_size_angstrom * self.box_size / self.output_box
        rng = np.random.default_rng(config.seed)
        self.rotations = random_rotations(self.n, rng)
        self.states, self.coordinates = self.source.sample_labels(self.n, rng)
        self.shifts_px = rng.uniform(-config.max_shift_px, config.max_shift_px, size=(self.n, 2))
        self.defocus_u_angstrom = rng.uniform(config.defocus_min_angstrom, config.defocus_max_angstrom,
                                              self.n)
        self.defocus_v_angstrom = self.defocus_u_angstrom - rng.uniform(0.0, config.astigmatism_max_angstrom,
                                                                        self.n)
        self.defocus_angle_deg = rng.uniform(0.0, 180.0, self.n)
        self._signal_variance: float | None = None

    # ------------------------------------------------------------------ records
    def ctf_params(self) -> CTFParams:
        """CTF of every particle at the output box (pixel size of the written images)."""
        c = self.config
        return CTFParams(pixel_size_angstrom=self.output_pixel_size_angstrom,
                         defocus_u_angstrom=self.defocus_u_angstrom,
                         defocus_v_angstrom=self.defocus_v_angstrom,
                         defocus_angle_deg=self.defocus_angle_deg, voltage_kv=c.voltage_kv, cs_mm=c.cs_mm,
                         amplitude_contrast=c.amplitude_contrast, phase_shift_deg=0.0,
                         box_size=self.output_box, bfactor_angstrom2=c.bfactor_angstrom2)

    def poses(self) -> Poses:
        """Rotations and shifts at the output box."""
        return Poses(self.rotations, self.shifts_px, self.box_size).rescaled(self.output_box)

    # ------------------------------------------------------------------ images
    def clean_images(self, start: int, stop: int, *, shifts: bool = True,
                     ctf: bool | None = None) -> np.ndarray:
        """Noiseless images ``start .. stop-1`` at the simulation box, (k, D, D) float64.

        ``shifts=False`` leaves the projections centred; ``ctf`` overrides ``config.ctf``.
        """
        idx = slice(start, stop)
        rot = torch.as_tensor(self.rotations[idx])
        spectra = self.source.projections_ft(rot, self.states[idx], self.coordinates[idx])
        apply_ctf = self.config.ctf if ctf is None else ctf
        field = int(self.config.ctf_field_factor) if apply_ctf else 1
        if field > 1:
            spectra = _pad_spectra(spectra, field * self.box_size)
        if shifts:
            from cryoscape.simulate.project import translate_ft

            spectra = translate_ft(spectra, -torch.as_tensor(self.shifts_px[idx]))
        if apply_ctf:
            spectra = spectra * self._ctf_on_grid(idx, spectra.shape[-1])
        images = ifft2_center(spectra).real
        if field > 1:
            lo = images.shape[-1] // 2 - self.box_size // 2
            images = images[:, lo:lo + self.box_size, lo:lo + self.box_size]
        return images.numpy()

    def _ctf_on_grid(self, idx: slice, grid: int) -> torch.Tensor:
        """CTF (k, grid, grid) float64 of particles ``idx`` on the centred grid of ``grid`` pixels (pixel size
        of the simulation box)."""
        c = self.config
        k = len(self.defocus_u_angstrom[idx])
        values = ctf_grid(grid, np.full(k, self.pixel_size_angstrom),
                          defocus_u_angstrom=self.defocus_u_angstrom[idx],
                          defocus_v_angstrom=self.defocus_v_angstrom[idx],
                          defocus_angle_deg=self.defocus_angle_deg[idx],
                          voltage_kv=np.full(k, c.voltage_kv), cs_mm=np.full(k, c.cs_mm),
                          amplitude_contrast=np.full(k, c.amplitude_contrast),
                          phase_shift_deg=np.zeros(k),
                          bfactor_angstrom2=np.full(k, c.bfactor_angstrom2))
        return torch.as_tensor(np.asarray(values, dtype=np.float64))

    def chunks(self) -> Iterator[tuple[int, int]]:
        """(start, stop) ranges of ``chunk_size`` particles."""
        step = self.config.chunk_size
        for start in range(0, self.n, step):
            yield start, min(self.n, start + step)

    def signal_variance(self, show_progress: bool = False) -> float:
        """Variance of all noiseless pixels of the dataset (simulation box), computed once."""
        if self._signal_variance is None:
            acc = noise_mod.VarianceAccumulator()
            bar = progress(total=self.n, desc="signal variance", unit="img") if show_progress else None
            for start, stop in self.chunks():
                acc.add(self.clean_images(start, stop))
                if bar is not None:
                    bar.update(stop - start)
            if bar is not None:
                bar.close()
            self._signal_variance = acc.variance
        return self._signal_variance

    @property
    def noise_std(self) -> float:
        """Standard deviation of the added noise at the simulation box (0 for snr = inf)."""
        if math.isinf(self.config.snr):
            return 0.0
        return noise_mod.noise_std(self.signal_variance(), self.config.snr)

    def images(self, start: int, stop: int) -> np.ndarray:
        """Final images ``start .. stop-1``: noisy and cropped to the output box, (k, d, d) float32."""
        images = self.clean_images(start, stop)
        sigma = self.noise_std
        if sigma > 0:
            images = images + sigma * noise_mod.standard_noise(self.config.seed, start, stop, self.box_size)
        if self.output_box != self.box_size:
            images = fourier_crop(images, self.output_box)
        return np.asarray(images, dtype=np.float32)

    # ------------------------------------------------------------------ tables
    def star_tables(self, image_file: str = PARTICLES_FILE) -> tuple[pd.DataFrame, pd.DataFrame]:
        """RELION 3.1 (particles, optics) tables of the dataset."""
        c = self.config
        width = max(6, len(str(self.n)))
        angles = np.rad2deg(matrix_to_euler(self.rotations))
        shifts_angstrom = self.shifts_px * self.pixel_size_angstrom
        particles = pd.DataFrame({
            "rlnImageName": [f"{i + 1:0{width}d}@{image_file}" for i in range(self.n)],
            "rlnAngleRot": angles[:, 0],
            "rlnAngleTilt": angles[:, 1],
            "rlnAnglePsi": angles[:, 2],
            "rlnOriginXAngst": shifts_angstrom[:, 0],
            "rlnOriginYAngst": shifts_angstrom[:, 1],
        })
        if c.ctf:
            particles["rlnDefocusU"] = self.defocus_u_angstrom
            particles["rlnDefocusV"] = self.defocus_v_angstrom
            particles["rlnDefocusAngle"] = self.defocus_angle_deg
            particles["rlnPhaseShift"] = 0.0
            particles["rlnCtfBfactor"] = float(c.bfactor_angstrom2)
        particles["rlnOpticsGroup"] = 1
        optics = pd.DataFrame({
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnVoltage": [float(c.voltage_kv)],
            "rlnSphericalAberration": [float(c.cs_mm)],
            "rlnAmplitudeContrast": [float(c.amplitude_contrast)],
            "rlnImagePixelSize": [float(self.output_pixel_size_angstrom)],
            "rlnImageSize": [int(self.output_box)],
            "rlnImageDimensionality": [2],
        })
        return particles, optics

    def ground_truth_table(self) -> pd.DataFrame:
        """Per-particle truth: index, state, state_name, coordinate (empty when discrete), pose and CTF."""
        angles = np.rad2deg(matrix_to_euler(self.rotations))
        shifts = self.poses().shifts_px
        table = pd.DataFrame({
            "index": np.arange(self.n),
            "state": self.states,
            "state_name": [self.source.state_names[s] for s in self.states],
            "coordinate": self.coordinates,
        })
        if isinstance(self.source, PseudoAtomSource) and self.source.continuous:
            table["hinge_angle_deg"] = self.source.hinge_angle_deg(self.coordinates)
        table["rot_deg"] = angles[:, 0]
        table["tilt_deg"] = angles[:, 1]
        table["psi_deg"] = angles[:, 2]
        table["shift_x_px"] = shifts[:, 0]
        table["shift_y_px"] = shifts[:, 1]
        table["defocus_u_angstrom"] = self.defocus_u_angstrom
        table["defocus_v_angstrom"] = self.defocus_v_angstrom
        table["defocus_angle_deg"] = self.defocus_angle_deg
        return table

    def volume_specs(self) -> list[tuple[str, int, float]]:
        """(file name, state, coordinate) of the ground-truth volumes written."""
        if self.source.continuous:
            coords = np.linspace(0.0, 1.0, self.config.n_gt_volumes)
            return [(f"coord_{i:03d}.mrc", 0, float(c)) for i, c in enumerate(coords)]
        return [(f"state_{s:02d}.mrc", s, math.nan) for s in range(len(self.source.state_names))]


class GroundTruthVolumes:
    """The true map of any state/coordinate at the output box of a config (for per-image FSC scoring).

    Examples
    --------
    >>> truth = GroundTruthVolumes(SimulationConfig.load_yaml("sim/config.yaml"))  # doctest: +SKIP
    >>> vol = truth(state=0, coordinate=0.37)  # (d, d, d) float32                  # doctest: +SKIP
    """

    def __init__(self, config: SimulationConfig):
        self.config = config.validate()
        self.source = build_source(config)
        self.box_size = config.downsample_box or self.source.box_size
        self.voxel_size_angstrom = self.source.pixel_size_angstrom * self.source.box_size / self.box_size

    def __call__(self, state: int = 0, coordinate: float | None = None) -> np.ndarray:
        if coordinate is not None and not math.isfinite(coordinate):
            coordinate = None
        return self.source.volume(int(state), coordinate, box_size=self.box_size)


def ground_truth_volume(config: SimulationConfig, state: int = 0,
                        coordinate: float | None = None) -> np.ndarray:
    """True map (d, d, d) float32 of one state/coordinate at the dataset's output box (voxel values preserved
    by the Fourier crop). For many calls build one :class:`GroundTruthVolumes`."""
    return GroundTruthVolumes(config)(state, coordinate)


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`run_simulation` wrote."""

    out_dir: Path
    particles_path: Path
    star_path: Path
    ground_truth_path: Path
    volume_paths: tuple[Path, ...]
    config_path: Path
    config: SimulationConfig
    n_particles: int
    box_size: int
    pixel_size_angstrom: float
    signal_variance: float
    noise_std: float


def run_simulation(config: SimulationConfig, out_dir: str | os.PathLike,
                   show_progress: bool = True) -> SimulationResult:
    """Simulate a dataset and write it to ``out_dir`` (see the module docstring for the files).

    Images are computed ``chunk_size`` at a time and written into a preallocated memory-mapped stack, so
    memory does not grow with the number of particles.
    """
    from cryoscape.io.mrc import write_mrc
    from cryoscape.io.mrc_stream import MrcStackWriter
    from cryoscape.io.star import write_star

    sim = Simulator(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    signal_variance = sim.signal_variance(show_progress) if not math.isinf(config.snr) else float("nan")
    sigma = sim.noise_std
    particles_path = out / PARTICLES_FILE
    bar = progress(total=sim.n, desc="simulate", unit="img") if show_progress else None
    with MrcStackWriter(particles_path, sim.n, sim.output_box, sim.output_pixel_size_angstrom) as writer:
        for start, stop in sim.chunks():
            writer.write(start, sim.images(start, stop))
            if bar is not None:
                bar.update(stop - start)
    if bar is not None:
        bar.close()
    particles, optics = sim.star_tables(PARTICLES_FILE)
    star_path = write_star(out / STAR_FILE, particles, optics)
    gt_path = out / GROUND_TRUTH_FILE
    sim.ground_truth_table().to_csv(gt_path, index=False)
    vol_dir = out / VOLUMES_DIR
    vol_dir.mkdir(exist_ok=True)
    paths, rows = [], []
    for name, state, coordinate in sim.volume_specs():
        volume = sim.source.volume(state, None if math.isnan(coordinate) else coordinate,
                                   box_size=sim.output_box)
        paths.append(write_mrc(vol_dir / name, volume, sim.output_pixel_size_angstrom))
        rows.append({"file": name, "state": state, "state_name": sim.source.state_names[state],
                     "coordinate": coordinate})
    pd.DataFrame(rows).to_csv(vol_dir / VOLUMES_TABLE, index=False)
    config_path = config.save_yaml(out / CONFIG_FILE)
    return SimulationResult(out_dir=out, particles_path=particles_path, star_path=Path(star_path),
                            ground_truth_path=gt_path, volume_paths=tuple(Path(p) for p in paths),
                            config_path=config_path, config=config, n_particles=sim.n,
                            box_size=sim.output_box,
                            pixel_size_angstrom=sim.output_pixel_size_angstrom,
                            signal_variance=signal_variance, noise_std=sigma)
