"""``cryoscape info``: what a particle dataset (or a map) holds and whether its parts fit together."""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "info"
HELP = "summarise a particle dataset (count, box, pixel size, defocus, poses/CTF, where images are) or a map"
DESCRIPTION = f"""\
Summarise particles: count, box size, pixel size per optics group, defocus range, whether poses and CTF are
present and consistent with the images, and where the images are found. Reads only the headers and metadata
(plus up to 200 images for the pixel statistics and the contrast check).

A .star or .cs works without its images: when the stacks are not found, info says so (and where it looked)
and reports what the metadata give; the box and pixel size then come from the optics table / blob fields, or
from -D and --apix. A map (a cubic .mrc, not marked as an image stack) is described as a map: box, voxel size
and min/max/mean/rms.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape info particles.star
  cryoscape info particles.cs --datadir /data/J42
  cryoscape info stack.mrcs --poses pose.pkl --ctf ctf.pkl --ind keep.txt
  cryoscape info old_relion30.star -D 300          # RELION 3.0 star, images elsewhere: give the box
  cryoscape info map.mrc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, default=None,
                        help="box size of the images (pixels) when neither the images nor the metadata give it")
    parser.add_argument("--apix", "--Apix", dest="apix", type=float, default=None,
                        help="pixel size (Å) when neither the images nor the metadata give it")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--is-vol", dest="is_vol", action="store_true", default=None,
                      help="treat an .mrc as a map (default: decided from the file name and header)")
    kind.add_argument("--is-stack", dest="is_vol", action="store_false",
                      help="treat an .mrc as a stack of particle images")


def _range(values, unit: str, fmt: str = ".1f") -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:{fmt}} {unit}" if lo == hi else f"{lo:{fmt}} – {hi:{fmt}} {unit}"


def _absent(note: str | None, advice: str) -> str:
    if note is None:
        return f"absent {advice}"
    return note if note.startswith("in the file") else f"absent: {note}"


def summarise_map(path, data, header) -> list[str]:
    """Lines describing one 3-D map (box, voxel size, value statistics)."""
    import numpy as np

    nz, ny, nx = data.shape
    voxel = header.voxel_size_angstrom
    values = np.asarray(data, dtype=np.float64)
    lines = [
        "map:        one 3-D volume (not a particle stack)",
        f"box:        {nx} × {ny} × {nz} voxels" + (" (cubic)" if nx == ny == nz else ""),
        "voxel size: " + (f"{voxel:.4f} Å (from the MRC header)" if voxel else "unknown (header cell is 0)"),
        f"values:     min {values.min():.4g}, max {values.max():.4g}, mean {values.mean():.4g}, "
        f"rms {values.std():.4g}",
    ]
    if voxel:
        lines.append(f"Nyquist:    {2 * voxel:.2f} Å; field of view {nx * voxel:.1f} Å")
    return lines


def _metadata_lines(meta) -> list[str]:
    """Count, box and where the images are, for a :class:`~cryoscape.data.particle_metadata.ParticleMetadata`."""
    n = len(meta)
    lines = [f"particles:  {n}" + (f" (of {meta.n_source} in the source)" if n != meta.n_source else "")]
    if meta.box_size is None:
        lines.append("box:        unknown (the metadata do not give it: pass -D <box in pixels>)")
    elif meta.has_images:
        lines.append(f"box:        {meta.box_size} px")
    else:
        lines.append(f"box:        {meta.box_size} px (from {meta.box_size_source})")
    if meta.has_images:
        lines.append(f"images:     {meta.images.describe()}")
    else:
        lines.append(f"images:     NOT FOUND ({meta.images_problem}; pass --datadir): metadata only")
    return lines


def summarise(particles) -> list[str]:
    """Lines of the human summary of a ParticleSet or a ParticleMetadata (images optional)."""
    import numpy as np

    from cryoscape.data.particle_metadata import ParticleMetadata

    meta = particles if isinstance(particles, ParticleMetadata) else None
    if meta is None:
        lines = [
            f"particles:  {len(particles)}" + (f" (of {len(particles.images)} in the source)"
                                               if len(particles) != len(particles.images) else ""),
            f"box:        {particles.box_size} px",
            f"images:     {particles.images.describe()}",
        ]
        notes = {}
    else:
        lines = _metadata_lines(meta)
        notes = dict(meta.notes)
        if meta.box_size is None:  # the usual reason poses/CTF could not be read without the images
            for kind in notes:
                if "box size" in notes[kind]:
                    notes[kind] = "in the file, but not read: the box size is unknown (pass -D <box in pixels>)"
    ctf = particles.ctf
    if ctf is None:
        px = particles.pixel_size_angstrom
        source = "the image header" if meta is None else meta.pixel_size_source
        lines.append("pixel size: " + (f"{px:.4f} Å (from {source})" if px else "unknown"))
        lines.append(f"CTF:        {_absent(notes.get('CTF'), '(give --ctf to use a CTF)')}")
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
        lines.append(f"poses:      {_absent(notes.get('poses'), '(give --poses to train or back-project)')}")
    else:
        shift = np.abs(poses.shifts_px).max() if len(poses) else 0.0
        agree = "consistent with the images" if meta is None or meta.has_images else "images not checked"
        lines.append(f"poses:      present, {agree} ({len(poses)} rotations; largest shift {shift:.2f} px)")
    if meta is not None and not meta.has_images:
        lines.append("pixels:     not checked (images not found; pass --datadir to check them)")
        return lines
    if meta is not None:
        particles = meta.particle_set()
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


def _is_map(args: argparse.Namespace) -> bool:
    from pathlib import Path

    from cryoscape.io.mrc_kind import is_volume

    path = Path(args.particles)
    if path.suffix.lower() not in {".mrc", ".map", ".mrcs"} or not path.is_file():
        return False
    return bool(args.is_vol) if args.is_vol is not None else is_volume(path)


def run(args: argparse.Namespace) -> int:
    from cryoscape.data.particle_metadata import load_particle_metadata

    if _is_map(args):
        from cryoscape.io.mrc import read_mrc

        data, header = read_mrc(args.particles)
        print("\n".join(summarise_map(args.particles, data, header)))
        return 0
    meta = load_particle_metadata(args.particles, poses=args.poses, ctf=args.ctf, ind=args.ind,
                                  datadir=args.datadir, amplitude_contrast=args.amplitude_contrast,
                                  box_size=args.box_size, pixel_size_angstrom=args.apix,
                                  allow_overfocus=getattr(args, "allow_overfocus", False), strict=False)
    print("\n".join(summarise(meta)))
    return 0
