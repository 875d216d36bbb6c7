"""``cryoscape backproject``: voxel reconstruction with CTF correction and gold-standard half-maps."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "backproject"
HELP = "voxel back-projection with CTF correction: map, random half-maps, gold-standard FSC"
DESCRIPTION = f"""\
Reconstruct a 3-D map from particle images with known poses and CTF by direct Fourier inversion (trilinear
insertion of each image's 2-D Fourier transform as a central slice; --kernel radial: cryoDRGN's kernel).
Images are streamed in chunks, so any number of particles fits in memory. The particles are split at random
(--seed) into two halves reconstructed independently; the gold-standard FSC between them gives the resolution
at 0.143 (and 0.5).

CTF correction (--ctf-correction):
  wiener      data += CTF·F, weight += CTF², map = data / (weight + λ·mean weight)   [default]
  phase-flip  data += sign(CTF)·F, weight += 1
  none        data += F, weight += 1 (images without CTF, or to see what the correction does)
λ is --regularization (relative to the mean weight, default 0.01; raise it for noisy data).

Padding (--pad, --ctf-grid): by default the image's FFT and the CTF are taken on the D-pixel box and inserted
into a D³ grid (as cryoDRGN's backproject_voxel); on noisy data this beats a 2× grid, on noise-free data --pad 2
is slightly better. --ctf-grid padded (zero-pad the images, CTF on the padded grid) is wrong for images whose
CTF was applied on the box's own grid (simulated data) and only helps noise-free particles extracted from
micrographs.

Image edges (--image-edges): by default each image is replaced by its periodic component (periodic + smooth
decomposition) before its FFT: the jump between opposite edges of particles extracted from micrographs (CTF
fringes cut by the box) is not smeared over all frequencies. --image-edges as-is transforms the images unchanged.

Kernel (--kernel): trilinear [default] or radial (weight 1 - distance within one voxel, as cryoDRGN): radial
blurs less and wins noise-free, but loses on sparse noisy data. The figures behind these defaults:
docs/decisions.md (benchmarks/backproject_accuracy.py).

Contrast: images are taken as RELION writes them (particles white, protein brighter than the background),
which with RELION's CTF gives maps with protein positive. Use --invert-contrast for data with black particles.

Writes OUTDIR/map.mrc, half1.mrc, half2.mrc (voxel size = pixel size), fsc.csv and fsc.png.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape backproject particles.star -o recon
  cryoscape backproject J42_particles.cs --datadir /data/J42 --ind cluster3.txt -o recon_cluster3
  cryoscape backproject particles.mrcs --poses pose.pkl --ctf ctf.pkl -o recon --regularization 0.1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cryoscape.cli.options import add_config_options
    from cryoscape.reconstruct.backproject import BackprojectConfig

    add_particle_arguments(parser)
    parser.add_argument("-o", "--outdir", required=True, help="output folder")
    group = parser.add_argument_group("reconstruction")
    add_config_options(group, BackprojectConfig)
    group.add_argument("--device", default="cpu", help="torch device (default cpu)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cryoscape.cli.common import check_outputs, particle_inputs, particles_from_args
    from cryoscape.cli.options import config_from_args
    from cryoscape.reconstruct.backproject import BackprojectConfig, backproject, write_reconstruction
    from cryoscape.reconstruct.outputs import ReconstructionFolder
    from cryoscape.training.distributed import choose_device

    config = config_from_args(BackprojectConfig, args, device=str(choose_device(args.device)))
    particles = particles_from_args(args, require_poses=True, require_ctf=args.ctf_correction != "none")
    outdir = Path(args.outdir)
    check_outputs(inputs=particle_inputs(args, particles), folders=[outdir],
                  files=ReconstructionFolder(outdir).files())
    print(f"back-projecting {len(particles)} particles, box {particles.box_size}, "
          f"{particles.pixel_size_angstrom or 1.0:.4g} Å/px, CTF correction {config.ctf_correction}")
    result = backproject(particles, config)
    written = write_reconstruction(result, outdir)
    n1 = int((result.half == 1).sum())
    print(f"halves: {n1} + {len(result.half) - n1} particles (seed {config.seed})")
    for thr in (0.143, 0.5):
        note = " (reaches Nyquist)" if result.fsc.crossing_frequency(thr) is None else ""
        print(f"gold-standard FSC = {thr}: {result.fsc.resolution_angstrom(thr):.2f} Å{note}")
    print(f"wrote {outdir}/: " + ", ".join(p.name for p in written))
    return 0
