"""``cryoscape simulate``: write a simulated particle dataset with its ground truth."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cryoscape.simulate.config import PRESETS, SimulationConfig

NAME = "simulate"
HELP = "simulate a particle dataset (hinge motion, assembly states, atomic model or map) with ground truth"
DESCRIPTION = f"""\
Simulate particle images: density → uniform random rotation → projection → in-plane shift → CTF (RELION
model, positive density gives white particles, as RELION-extracted data; no contrast inversion) → white
Gaussian noise at a given SNR (variance of the noiseless images over the whole box and dataset / noise
variance) → optional Fourier crop (--downsample-box). Writes in OUT_DIR:
  particles.mrcs, particles.star (RELION 3.1 with optics: poses, shifts in Å, CTF),
  ground_truth.csv (per particle: state, continuous coordinate, pose, CTF),
  gt_volumes/*.mrc (+ volumes.csv), config.yaml (every setting; reload with --config).

Sources (--source): hinge (two domains, the arm rotates over --hinge-angles-deg; the per-particle
coordinate in [0, 1] is sampled --coordinate-sampling uniform|cooperative|noncontiguous), assembly
(subunits present or absent: --assembly-states core core+A core+A+B --assembly-proportions 0.3 0.3 0.4),
an atomic model (.pdb/.cif: Gaussian atoms at --resolution-angstrom, weighted by atomic number, centred on
the centre of mass), or a map (.mrc).

Presets: {", ".join(PRESETS)}; any flag overrides the preset value. The same --seed gives the same dataset.
SNR is defined at --box-size, before any --downsample-box crop (which raises the per-pixel SNR).

examples:
  cryoscape simulate --preset tiny-32 -o sim_tiny
  cryoscape simulate --preset hinge-64 -n 2000 -o hinge_small
  cryoscape simulate --preset assembly-64 --downsample-box 32 -o assembly32
  cryoscape simulate --source model.pdb --box-size 96 --resolution-angstrom 6 --snr 0.05 -n 10000 -o sim_pdb
  cryoscape simulate --source map.mrc --no-ctf --snr inf -n 100 -o projections
"""

# flag → (type, nargs, help); every flag is the SimulationConfig field of the same name
_OPTIONS: dict[str, tuple[type, int | str | None, str]] = {
    "source": (str, None, "hinge, assembly, an atomic model (.pdb/.cif) or a map (.mrc) [hinge]"),
    "box_size": (int, None, "simulation box, even (pixels) [64, or the map's box]"),
    "pixel_size_angstrom": (float, None, "pixel size (Å) [molecule fills 60%% of the box; the map's]"),
    "resolution_angstrom": (float, None, "Gaussian atom resolution, sigma = 0.225 × it (Å) [3 pixels]"),
    "snr": (float, None, "signal-to-noise ratio; inf for noiseless [0.1]"),
    "defocus_min_angstrom": (float, None, "smallest defocus U (Å) [10000]"),
    "defocus_max_angstrom": (float, None, "largest defocus U (Å) [25000]"),
    "astigmatism_max_angstrom": (float, None, "defocus V = U − uniform(0, this) (Å) [500]"),
    "voltage_kv": (float, None, "voltage (kV) [300]"),
    "cs_mm": (float, None, "spherical aberration (mm) [2.7]"),
    "amplitude_contrast": (float, None, "amplitude contrast [0.1]"),
    "bfactor_angstrom2": (float, None, "CTF B-factor envelope (Å²) [50]"),
    "ctf_field_factor": (int, None, "apply the CTF on a field this many boxes wide, then crop (2 = like "
                                    "extraction from a micrograph; 1 = circular on the box) [1]"),
    "max_shift_px": (float, None, "in-plane shifts uniform in ±this (pixels of --box-size) [0]"),
    "downsample_box": (int, None, "Fourier-crop the images to this even box [no crop]"),
    "coordinate_sampling": (str, None, "hinge coordinate law: uniform, cooperative, noncontiguous [uniform]"),
    "hinge_angles_deg": (float, 2, "hinge angle at coordinate 0 and 1 (degrees) [0 60]"),
    "assembly_states": (str, "+", "states, '+'-joined subunits core, A, B, C [core core+A core+A+B]"),
    "assembly_proportions": (float, "+", "relative frequency of each state [0.3 0.3 0.4]"),
    "n_gt_volumes": (int, None, "ground-truth maps along the continuous coordinate [10]"),
    "seed": (int, None, "random seed [0]"),
    "chunk_size": (int, None, "images computed at once (memory only) [256]"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out-dir", required=True, help="output folder (created)")
    parser.add_argument("--preset", help=f"start from a standard set: {', '.join(PRESETS)}")
    parser.add_argument("--config", help="start from a config.yaml (keys = these flags with underscores)")
    parser.add_argument("-n", "--n-particles", dest="n_particles", type=int, help="number of images [1000]")
    for name, (kind, nargs, text) in _OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, nargs=nargs, default=None,
                            help=text)
    parser.add_argument("--ctf", dest="ctf", action=argparse.BooleanOptionalAction, default=None,
                        help="apply the CTF [yes]")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The config: --config or --preset (or the defaults), then every flag given on the command line."""
    from cryoscape.errors import InputError
    from cryoscape.simulate.config import preset_config, with_overrides

    overrides = {name: getattr(args, name) for name in ["n_particles", "ctf", *_OPTIONS]
                 if getattr(args, name, None) is not None}
    if args.config and args.preset:
        raise InputError("give either --config or --preset, not both")
    if args.config:
        return with_overrides(SimulationConfig.load_yaml(args.config), **overrides).validate()
    return preset_config(args.preset, **overrides).validate()


def check_values(config: SimulationConfig) -> SimulationConfig:
    """Refuse physical parameters that would give NaN images or an unreadable star (beyond ``validate``).

    Returns ``config`` unchanged.
    """
    import math

    from cryoscape.errors import InputError

    positive = ("voltage_kv", "defocus_min_angstrom", "defocus_max_angstrom")
    finite = ("cs_mm", "bfactor_angstrom2", "max_shift_px", "astigmatism_max_angstrom", "amplitude_contrast")
    for name in positive:
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"--{name.replace('_', '-')} {value} must be a positive number",
                             fix="defocus is positive for underfocus; voltage e.g. 300")
    for name in finite:
        value = getattr(config, name)
        if not math.isfinite(value):
            raise InputError(f"--{name.replace('_', '-')} {value} is not a finite number")
    if config.astigmatism_max_angstrom >= config.defocus_min_angstrom:
        raise InputError(f"--astigmatism-max-angstrom {config.astigmatism_max_angstrom:g} would give defocus V <= 0 "
                         f"(smallest defocus U {config.defocus_min_angstrom:g} Å)",
                         fix="keep the astigmatism below the smallest defocus")
    if not all(math.isfinite(a) for a in config.hinge_angles_deg):
        raise InputError(f"--hinge-angles-deg {list(config.hinge_angles_deg)} must be finite")
    if not all(math.isfinite(p) for p in config.assembly_proportions):
        raise InputError(f"--assembly-proportions {list(config.assembly_proportions)} must be finite")
    return config


def run(args: argparse.Namespace) -> int:
    from cryoscape.simulate.simulator import run_simulation

    config = check_values(config_from_args(args))
    from cryoscape.cli.common import check_outputs

    # a built-in source (hinge, assembly) is a name, not a file, even when a folder of that name exists here
    source_file = config.source if Path(str(config.source)).suffix.lower() in {".pdb", ".cif", ".mrc"} else None
    check_outputs(inputs=[args.config, source_file], folders=[args.out_dir],
                  files=[f"{args.out_dir}/config.yaml"])  # never replace an input
    result = run_simulation(config, args.out_dir, show_progress=not args.no_progress)
    log = logging.getLogger("cryoscape.simulate")
    log.info("wrote %d images of %d px (%.4f Å/px) to %s", result.n_particles, result.box_size,
             result.pixel_size_angstrom, result.particles_path)
    log.info("star: %s; ground truth: %s; %d ground-truth maps in %s", result.star_path,
             result.ground_truth_path, len(result.volume_paths), result.volume_paths[0].parent)
    return 0
