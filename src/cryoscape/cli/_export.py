"""Shared body of ``write-star`` and ``write-cs``, and the ``--validate`` step of them and ``select``
(not a command: the name starts with ``_``)."""

from __future__ import annotations

import argparse


def add_validation_arguments(parser: argparse.ArgumentParser) -> None:
    """``--overwrite`` and the ``--validate`` options of ``write-star``/``write-cs``."""
    from cryoscape.cli.options import add_validation

    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output file (and OUT_validate/) when it exists (default: refuse)")
    add_validation(parser)


def _refuse_existing(out, validation, overwrite: bool) -> None:
    """InputError when the output file (or a non-empty validation folder) exists, unless ``overwrite``."""
    from cryoscape.errors import InputError

    if overwrite:
        return
    if out.exists():
        raise InputError("the output file exists already", path=out, fix="give another -o, or --overwrite to "
                         "replace it")
    if validation is not None and validation.root.is_dir() and any(validation.root.iterdir()):
        raise InputError("the validation folder exists already", path=validation.root,
                         fix="give another -o, or --overwrite to replace its files")


def add_pose_arguments(parser: argparse.ArgumentParser) -> None:
    """``--poses-from RUN [--epoch N]`` of ``write-star``/``write-cs``."""
    parser.add_argument("--poses-from", metavar="RUN",
                        help="write the poses of this run: cryoscape abinit (RUN/abinit/poses.N.npz) or training with "
                             "--refine-poses (RUN/poses.N.npz)")
    parser.add_argument("--epoch", type=int, help="epoch of the poses (default: the last)")


def export_poses(args: argparse.Namespace, kind: str, source, out) -> int:
    """Write a run's learned poses into the rows of the .star/.cs it was trained on (``--poses-from``)."""
    import numpy as np

    from cryoscape.io.legacy import read_index
    from cryoscape.io.pose_export import write_cs_poses, write_star_poses
    from cryoscape.training.pose_files import load_run_poses

    found = load_run_poses(args.poses_from, args.epoch)
    keep = np.ones(found.indices.size, dtype=bool)
    if args.ind:
        keep = np.isin(found.indices, read_index(args.ind))
    writer = write_star_poses if kind == "star" else write_cs_poses
    n = writer(source, out, found.rotations[keep], found.shifts_angstrom[keep], found.indices[keep])
    print(f"wrote {out}: {n} particles with the poses of {args.poses_from} (epoch {found.epoch})")
    return 0


def export_subset(args: argparse.Namespace, kind: str) -> int:
    """Check, write and optionally validate the selected rows of a .star (``kind="star"``) or .cs file."""
    from pathlib import Path

    import numpy as np

    from cryoscape.analysis.validation import ValidationLayout
    from cryoscape.cli.common import check_outputs
    from cryoscape.errors import InputError
    from cryoscape.io.legacy import read_index
    from cryoscape.io.subset import check_same_particles, write_cs_subset, write_star_subset

    source = Path(args.star if kind == "star" else args.cs)
    out = Path(args.out)
    validation = ValidationLayout.beside(out) if args.validate else None
    check_outputs(inputs=[source, args.ind, args.check_against], files=[out],
                  folders=[validation.root] if validation else [])
    if out.suffix.lower() != f".{kind}":
        raise InputError(f"the output must end in .{kind}", path=out, fix=f"name it e.g. selected.{kind}")
    _refuse_existing(out, validation, args.overwrite)
    if getattr(args, "poses_from", None):
        return export_poses(args, kind, source, out)
    if args.ind is None:
        raise InputError("--ind is required (unless --poses-from is given)", fix="give the particle indices")
    indices = read_index(args.ind)
    if args.check_against:
        print("check: " + check_same_particles(source, args.check_against))
    out.parent.mkdir(parents=True, exist_ok=True)
    comment = f"cryoscape write-{kind}: {len(indices)} particles of {source.name} (--ind {Path(args.ind).name})"
    if kind == "star":
        info = write_star_subset(source, indices, out, all_optics_groups=args.all_optics_groups, comment=comment)
    else:
        info = write_cs_subset(source, indices, out)
    print(f"wrote {out}: {info.n_selected} of {info.n_total} particles")
    if info.optics_groups:
        kept = ", ".join(f"{old}→{new}" if old != new else str(old) for old, new in info.optics_groups.items())
        print(f"optics groups kept: {kept}" + (" (renumbered)" if info.renumbered else ""))
    if kind == "star" and out.resolve().parent != source.resolve().parent:
        print("note: image names are copied as they are; relative ones resolve from the project folder (RELION) "
              f"or from {source.parent} (pass --datadir to cryoscape commands)")
    if args.validate:
        from cryoscape.data.particles import load_particles

        particles = load_particles(source, datadir=args.datadir, require_poses=True, require_ctf=True)
        validate(particles, np.unique(indices), out, invert_contrast=args.invert_contrast, device=args.device)
    return 0


def validate(particles, positions, beside, *, invert_contrast: bool, device: str) -> list:
    """Back-project ``particles[positions]`` and the whole set into ``<beside>_validate/``; print the gold-standard
    resolutions and every file written (returned)."""
    from cryoscape.analysis.validation import ValidationLayout, validate_selection, write_validation
    from cryoscape.reconstruct.backproject import BackprojectConfig
    from cryoscape.training.distributed import choose_device

    config = BackprojectConfig(invert_contrast=invert_contrast, device=str(choose_device(device)))
    result = validate_selection(particles, positions, config=config)
    written = write_validation(result, ValidationLayout.beside(beside))
    for line in result.summary.lines():
        print(line)
    print("wrote " + ", ".join(str(p) for p in written))
    return written
