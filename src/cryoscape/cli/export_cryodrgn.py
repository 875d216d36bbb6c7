"""``cryoscape export-cryodrgn``: poses and CTF as cryoDRGN pickles, for users who mix tools.

Also answers to cryoDRGN's ``parse_pose_star``, ``parse_ctf_star``, ``parse_pose_csparc`` and
``parse_ctf_csparc`` (see :data:`ALIASES`): under those names only the poses or only the CTF are written, and
``-o`` may name the ``.pkl`` file as in cryoDRGN.
"""

from __future__ import annotations

import argparse

from cryoscape.cli.common import PARTICLE_OPTIONS_HELP, add_particle_arguments

NAME = "export-cryodrgn"
ALIASES = ("parse_pose_star", "parse_ctf_star", "parse_pose_csparc", "parse_ctf_csparc")
HELP = "write poses and CTF as cryoDRGN pose.pkl / ctf.pkl (and the index subset as ind.pkl); needs no images"
DESCRIPTION = f"""\
Write the poses and CTF parameters of a dataset in cryoDRGN's pickle layout, into the folder -o: pose.pkl
(rotations N×3×3, translations N×2 as a fraction of the box) and ctf.pkl (N×9: box, Å/px, defocus U, V (Å),
angle (°), kV, Cs (mm), amplitude contrast, phase shift (°)). As cryoDRGN expects, the pickles hold every
particle of the source in its order; with --ind the subset goes to ind.pkl (0-based). Translations are divided
by the box size (not box+1). -o out and -o out/ both mean the folder out; --prefix adds a file-name prefix.

The images are not needed: a .star/.cs is exported from its metadata when its stacks are absent. The box then
comes from the optics table (rlnImageSize) or blob/shape; a RELION 3.0 star does not give it: pass -D. With -D
different from the file's box, the poses/CTF are rescaled to -D (the pixel size scales; translations as a
fraction of the box do not change). Nothing is written unless every file can be: a failure leaves no output.

cryoDRGN names: parse_pose_star / parse_pose_csparc write only pose.pkl, parse_ctf_star / parse_ctf_csparc only
ctf.pkl, and under those names -o may be the .pkl file itself (cryoscape parse_pose_star p.star -o pose.pkl -D 300
runs as in cryoDRGN). -w is the amplitude contrast; --kv, --cs, --ps override the voltage (kV), spherical
aberration (mm) and phase shift (°) of every particle; --png (cryoDRGN's CTF plot) is not supported.

{PARTICLE_OPTIONS_HELP}

examples:
  cryoscape export-cryodrgn particles.star -o cryodrgn/
  cryoscape export-cryodrgn J42_particles.cs --ind keep.txt -o cryodrgn --prefix keep_
  cryoscape export-cryodrgn cryosparc_P12_J24_001_particles.cs -o j24     # images not needed
  cryoscape parse_pose_star relion30.star -D 300 -o pose.pkl               # the cryoDRGN command line
"""



def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_particle_arguments(parser)
    parser.add_argument("-o", "--outdir", "--out", dest="out", required=True,
                        help="output folder (created); under the parse_* names also a .pkl file")
    parser.add_argument("--prefix", default="", help="file-name prefix inside the folder (default: none)")
    parser.add_argument("-D", "--box-size", dest="box_size", type=int, default=None,
                        help="box size of the images (pixels): needed for a RELION 3.0 star without its images")
    parser.add_argument("--apix", "--Apix", dest="apix", type=float, default=None,
                        help="pixel size (Å) when the file does not give it")
    group = parser.add_argument_group("CTF overrides (cryoDRGN parse_ctf_* options)")
    group.add_argument("-w", dest="amplitude_contrast", type=float, metavar="W",
                       help="amplitude contrast, when the file lacks it (same as --amplitude-contrast)")
    group.add_argument("--kv", type=float, default=None, help="override the voltage (kV) of every particle")
    group.add_argument("--cs", type=float, default=None, help="override Cs (mm) of every particle")
    group.add_argument("--ps", type=float, default=None, help="override the phase shift (°) of every particle")
    group.add_argument("--png", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import sys

    from cryoscape.cli.common import check_outputs, particle_inputs
    from cryoscape.data.cryodrgn_export import cryodrgn_records, export_paths, records_wanted, write_records

    command = getattr(args, "command", None) or NAME
    want_poses, want_ctf = records_wanted(command)
    if args.png is not None:
        print("note: --png is ignored (cryoscape does not plot the CTF here)", file=sys.stderr)
    records = cryodrgn_records(args.particles, poses_wanted=want_poses, ctf_wanted=want_ctf, poses=args.poses,
                               ctf=args.ctf, ind=args.ind, datadir=args.datadir,
                               amplitude_contrast=args.amplitude_contrast, box_size=args.box_size,
                               pixel_size_angstrom=args.apix, allow_overfocus=getattr(args, "allow_overfocus", False),
                               voltage_kv=args.kv, cs_mm=args.cs, phase_shift_deg=args.ps)
    paths = export_paths(args.out, args.prefix, records, single_file_ok=command.startswith("parse_"))
    if records.images_problem is not None:
        print(f"note: images not found ({records.images_problem}): exported from the metadata alone",
              file=sys.stderr)
    check_outputs(inputs=particle_inputs(args), files=paths.values())  # never replace an input
    write_records(paths, records)
    for kind, path in paths.items():
        count = f"{len(records.index)} of {records.n_source}" if kind == "ind" else f"{records.n_source}"
        print(f"wrote {path} ({count} particles)")
    return 0
