"""``cryoscape info``: what a particle dataset holds and whether its parts fit together."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "info"
HELP = "summarise a particle dataset: count, box, pixel size, defocus range, poses/CTF, where images are"
DESCRIPTION = f"""\
Summarise particles: count, box size, pixel size per optics group, defocus range, whether poses and CTF are
present and consistent with the images, and where the images are found. Reads only the headers and metadata
(plus one image to check it can be read).

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape info particles.star
  cryoscape info particles.cs --datadir /data/J42
  cryoscape info stack.mrcs --poses pose.pkl --ctf ctf.pkl --ind keep.txt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)


def _range(values, unit: str, fmt: str = ".1f") -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:{fmt}} {unit}" if lo == hi else f"{lo:{fmt}} – {hi:{fmt}} {unit}"


def summarise(particles) -> list[str]:
    """Lines of the human summary of a :class:`~cryoscape.data.particles.ParticleSet`."""
    import numpy as np

    lines = [
        f"particles:  {len(particles)}" + (f" (of {len(particles.images)} in the source)"
                                           if len(particles) != len(particles.images) else ""),
        f"box:        {particles.box_size} px",
        f"images:     {particles.images.describe()}",
    ]
    ctf = particles.ctf
    if ctf is None:
        px = particles.images.pixel_size_angstrom
        lines.append("pixel size: " + (f"{px:.4f} Å (from the image header)" if px else "unknown"))
        lines.append("CTF:        absent (give --ctf to use a CTF)")
    else:
        sizes, counts = np.unique(np.round(ctf.pixel_size_angstrom, 5), return_counts=True)
        if sizes.size == 1:
            lines.append(f"pixel size: {sizes[0]:.4f} Å")
        else:
            groups = ", ".join(f"{s:.4f} Å × {c}" for s, c in zip(sizes, counts))
            lines.append(f"pixel size: {sizes.size} groups: {groups}")
        lines.append(f"defocus U:  {_range(ctf.defocus_u_angstrom, 'Å')}")
        lines.append(f"defocus V:  {_range(ctf.defocus_v_angstrom, 'Å')}")
        lines.append(f"voltage:    {_range(ctf.voltage_kv, 'kV', 'g')}; Cs {_range(ctf.cs_mm, 'mm', 'g')}; "
                     f"amplitude contrast {_range(ctf.amplitude_contrast, '', 'g').strip()}")
        if np.any(ctf.phase_shift_deg != 0):
            lines.append(f"phase shift: {_range(ctf.phase_shift_deg, '°')}")
        nyquist = 2 * float(np.median(ctf.pixel_size_angstrom))
        lines.append(f"Nyquist:    {nyquist:.2f} Å")
    poses = particles.poses
    if poses is None:
        lines.append("poses:      absent (give --poses to train or back-project)")
    else:
        shift = np.abs(poses.shifts_px).max() if len(poses) else 0.0
        lines.append(f"poses:      present, consistent with the images ({len(poses)} rotations; "
                     f"largest shift {shift:.2f} px)")
    from cryoscape.data.contrast import estimate_contrast

    sample = np.unique(np.linspace(0, len(particles) - 1, min(len(particles), 200)).astype(np.int64))
    images = particles.read(sample)
    lines.append(f"pixels:     mean {images.mean():.4g}, std {images.std():.4g} (over {len(sample)} images)")
    contrast = estimate_contrast(images)
    advice = {
        "white": "as cryoscape expects (RELION convention)",
        "dark": "use --invert-data when training or back-projecting",
        "unclear": "cannot tell from the box centre vs edge",
    }[contrast.verdict]
    look = "unclear" if contrast.verdict == "unclear" else f"particles look {contrast.verdict}"
    lines.append(f"contrast:   {look} (centre − edge t = {contrast.t_statistic:+.1f} "
                 f"over {contrast.n_images} images): {advice}")
    return lines


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import particles_from_args

    particles = particles_from_args(args)
    print("\n".join(summarise(particles)))
    return 0
