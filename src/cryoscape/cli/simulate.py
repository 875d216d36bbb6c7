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

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.options import add_config_options

    parser.add_argument("-o", "--out-dir", required=True, help="output folder (created)")
    parser.add_argument("--preset", help=f"start from a standard set: {', '.join(PRESETS)}")
    parser.add_argument("--config", help="start from a config.yaml (keys = these flags with underscores)")
    add_config_options(parser, SimulationConfig, unset_default=True)  # None = not given: the preset's value


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from cryoscape.cli.common import check_outputs
    from cryoscape.simulate.config import config_from_options
    from cryoscape.simulate.simulator import run_simulation

    overrides = {f.name: value for f in dataclasses.fields(SimulationConfig)
                 if (value := getattr(args, f.name, None)) is not None}
    config = config_from_options(args.config, args.preset, **overrides)
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
