"""Options shared by every command that reads particles, and small CLI helpers."""

from __future__ import annotations

import argparse
import os

PARTICLE_OPTIONS_HELP = """\
particles: PARTICLES is a .mrcs/.mrc stack, a RELION .star (3.0 or 3.1+), a cryoSPARC .cs or a .txt list of
stacks. Poses and CTF are read from the .star/.cs itself unless --poses/--ctf name another file (.star, .cs or a
cryoDRGN .pkl). --ind takes 0-based indices into the original stack (.txt, .npy or cryoDRGN .pkl)."""


def add_particle_arguments(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """Add PARTICLES, --poses, --ctf, --ind and --datadir (the same on every command that reads particles)."""
    if positional:
        parser.add_argument("particles", metavar="PARTICLES",
                            help="particle images: .mrcs/.mrc, RELION .star, cryoSPARC .cs or .txt list of stacks")
    group = parser.add_argument_group("particles")
    group.add_argument("--poses", help="poses (.star, .cs or cryoDRGN pose .pkl); default: from PARTICLES")
    group.add_argument("--ctf", help="CTF parameters (.star, .cs or cryoDRGN ctf .pkl); default: from PARTICLES")
    group.add_argument("--ind", help="0-based particle indices to use (.txt, .npy or cryoDRGN .pkl)")
    group.add_argument("--datadir", help="folder holding the image stacks named in a .star/.cs/.txt")
    group.add_argument("--amplitude-contrast", dest="amplitude_contrast", type=float, metavar="W",
                       help="amplitude contrast for a RELION 3.0 star without rlnAmplitudeContrast (e.g. 0.1)")
    group.add_argument("--allow-overfocus", dest="allow_overfocus", action="store_true",
                       help="accept CTF defocus <= 0 (overfocus data, or a zero-defocus dummy CTF); refused "
                            "by default as a likely error")


def particles_from_args(args: argparse.Namespace, *, require_poses: bool = False, require_ctf: bool = False):
    """Load the :class:`~cryoscape.data.particles.ParticleSet` named by the standard particle options."""
    from cryoscape.data.particles import load_particles

    return load_particles(args.particles, poses=args.poses, ctf=args.ctf, ind=args.ind, datadir=args.datadir,
                          amplitude_contrast=args.amplitude_contrast, require_poses=require_poses,
                          require_ctf=require_ctf, allow_overfocus=getattr(args, "allow_overfocus", False))


def particle_inputs(args: argparse.Namespace, particles=None) -> list[str]:
    """Every input file named by the standard particle options, plus the image stacks of ``particles``.

    Parameters
    ----------
    args
        Parsed options with PARTICLES, --poses, --ctf, --ind (missing attributes are skipped).
    particles
        A loaded :class:`~cryoscape.data.particles.ParticleSet`, whose stack files are added (a .star/.cs/.txt
        names them).
    """
    paths = [getattr(args, name, None) for name in ("particles", "poses", "ctf", "ind")]
    if particles is not None:
        paths.extend(str(p) for p in getattr(particles.images, "files", []))
    return [str(p) for p in paths if p is not None]


def _same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name one file: same inode when both exist, else the same resolved path."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _check_parents(path: str, what: str) -> None:
    """Refuse a path under a file, or whose nearest existing folder cannot be written."""
    from cryoscape.errors import InputError

    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        up = os.path.dirname(parent)
        if up == parent:
            break
        parent = up
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise InputError(f"cannot create the {what}: {parent} is a file, not a folder", path=path,
                         fix="choose an output path that is not under a file")
    if os.path.isdir(parent) and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write the {what}: the folder {parent} is not writable", path=path,
                         fix="choose a folder you can write to, or fix its permissions")


def _refuse_inputs(out: str, sources: list[str], problem: str, fix: str) -> None:
    """InputError ``<out>: <problem> <src> (<fix>)`` when ``out`` is the same file or folder as an input."""
    from cryoscape.errors import InputError

    for src in sources:
        if _same_file(out, src):
            raise InputError(f"{problem} {src}", path=out, fix=fix)


def check_outputs(*, inputs=(), files=(), folders=()) -> None:
    """Refuse outputs that would replace an input or cannot be written, before any work starts.

    Parameters
    ----------
    inputs
        Every file (or folder) the command reads; None entries are skipped.
    files
        Files the command will write (an existing folder there is refused).
    folders
        Folders the command will write into (an existing file there is refused; the folder must be writable).

    Raises
    ------
    InputError
        An output is the same file as an input (same path, hard link or symlink), a file is expected where a
        folder exists or the reverse, a path goes through a file, or the destination is not writable.
    """
    from cryoscape.errors import InputError

    sources = [os.fspath(p) for p in inputs if p is not None]
    for out in (os.fspath(p) for p in folders if p is not None):
        if os.path.exists(out) and not os.path.isdir(out):
            raise InputError("is a file, but an output folder is expected here", path=out,
                             fix="give a folder name that is not an existing file")
        _check_parents(out, "output folder")
        if os.path.isdir(out) and not os.access(out, os.W_OK | os.X_OK):
            raise InputError("the output folder is not writable", path=out,
                             fix="choose a folder you can write to, or fix its permissions")
        _refuse_inputs(out, sources, "the output folder is the input", "give a new folder for the outputs")
    for out in (os.fspath(p) for p in files if p is not None):
        if os.path.isdir(out):
            raise InputError("is a folder, but a file is expected here", path=out,
                             fix="give a file name (e.g. inside that folder)")
        _check_parents(out, "output file")
        if os.path.exists(out) and not os.access(out, os.W_OK) and not os.access(os.path.dirname(
                os.path.abspath(out)), os.W_OK):
            raise InputError("the output file exists and cannot be replaced", path=out,
                             fix="choose another output name")
        _refuse_inputs(out, sources, "the output would replace the input",
                       "write to a new file name; inputs are never overwritten")


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (``--chunk 0`` or ``-b -1`` stop with a one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
