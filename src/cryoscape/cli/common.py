"""Options shared by every command that reads particles, and small CLI helpers."""

from __future__ import annotations

import argparse

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


def particles_from_args(args: argparse.Namespace, *, require_poses: bool = False, require_ctf: bool = False):
    """Load the :class:`~cryoscape.data.particles.ParticleSet` named by the standard particle options."""
    from cryoscape.data.particles import load_particles

    return load_particles(args.particles, poses=args.poses, ctf=args.ctf, ind=args.ind, datadir=args.datadir,
                          amplitude_contrast=args.amplitude_contrast, require_poses=require_poses,
                          require_ctf=require_ctf)
