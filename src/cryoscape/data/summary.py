"""A particle dataset or a map described for a reader (``cryoscape info``): lines of text, nothing written."""

from __future__ import annotations

import os
from pathlib import Path


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


def is_map_file(path: str | os.PathLike, is_vol: bool | None = None) -> bool:
    """Whether ``path`` is described as a map: an MRC file that ``is_vol`` says is one, or, when ``is_vol`` is
    None, whose name and header say so (:func:`cryoscape.io.mrc_kind.is_volume`)."""
    from cryoscape.io.mrc_kind import is_volume

    path = Path(path)
    if path.suffix.lower() not in {".mrc", ".map", ".mrcs"} or not path.is_file():
        return False
    return bool(is_vol) if is_vol is not None else is_volume(path)
