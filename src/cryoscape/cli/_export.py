"""Shared body of ``write-star`` and ``write-cs`` (not a command: the name starts with ``_``)."""

from __future__ import annotations

import argparse


def add_validation_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--validate`` options of ``write-star``/``write-cs`` (back-projection of the selection)."""
    val = parser.add_argument_group("validation")
    val.add_argument("--validate", action="store_true",
                     help="back-project the selection and the whole file: half-maps and gold-standard FSC")
    val.add_argument("--datadir", help="folder holding the image stacks (for --validate)")
    val.add_argument("--invert-contrast", action="store_true",
                     help="images have black particles (for --validate)")
    val.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                     help="device of the back-projection (default cpu)")


def add_pose_arguments(parser: argparse.ArgumentParser) -> None:
    """``--poses-from RUN [--epoch N]`` of ``write-star``/``write-cs``."""
    parser.add_argument("--poses-from", metavar="RUN",
                        help="write the poses of this cryoscape abinit run (RUN/abinit/poses.N.npz)")
    parser.add_argument("--epoch", type=int, help="epoch of the poses (default: the last)")


def export_poses(args: argparse.Namespace, kind: str, source, out) -> int:
    """Write a run's learned poses into the rows of the .star/.cs it was trained on (``--poses-from``)."""
    import numpy as np

    from cryoscape.io.legacy import read_index
    from cryoscape.io.pose_export import write_cs_poses, write_star_poses
    from cryoscape.training.abinit_run import load_run_poses

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

    from cryoscape.cli.common import check_outputs
    from cryoscape.errors import InputError
    from cryoscape.io.legacy import read_index
    from cryoscape.io.subset import check_same_particles, write_cs_subset, write_star_subset

    source = Path(args.star if kind == "star" else args.cs)
    out = Path(args.out)
    check_outputs(inputs=[source, args.ind, args.check_against], files=[out])
    if out.suffix.lower() != f".{kind}":
        raise InputError(f"the output must end in .{kind}", path=out, fix=f"name it e.g. selected.{kind}")
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
        from cryoscape.analysis.validation import validate_selection
        from cryoscape.data.particles import load_particles
        from cryoscape.reconstruct.backproject import BackprojectConfig
        from cryoscape.training.distributed import choose_device

        particles = load_particles(source, datadir=args.datadir, require_poses=True, require_ctf=True)
        rows = np.unique(indices)
        config = BackprojectConfig(invert_contrast=args.invert_contrast, device=str(choose_device(args.device)))
        summary = validate_selection(particles, rows, out.with_name(out.stem + "_validate"), config=config)
        for line in summary.lines():
            print(line)
        print(f"wrote {summary.out_dir}/map.mrc, half1.mrc, half2.mrc, fsc.png, validation.json")
    return 0
