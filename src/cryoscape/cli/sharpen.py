"""``cryoscape sharpen``: B-factor sharpening (Guinier estimate when no B is given) and low-pass
filtering."""

from __future__ import annotations

import argparse

NAME = "sharpen"
HELP = "apply a B-factor to a map (negative sharpens; Guinier estimate when not given) and low-pass it"
DESCRIPTION = """\
Multiply the map's Fourier transform by exp(-B s² / 4) (s in 1/Å). The sign convention is RELION's: a
NEGATIVE B-factor sharpens, a positive one blurs. Without --bfactor, B is estimated from the Guinier plot
(a straight line fitted to ln(shell-averaged |F|) against s² between --guinier-low and --guinier-high) as 4
× slope, the value that flattens the amplitude fall-off (RELION's postprocess estimate). For a noisy map
give --guinier-high (and --lowpass) at its FSC resolution so that the fit does not follow the noise.

examples:
  cryoscape sharpen map.mrc --bfactor -100 --lowpass 4.5 -o map_sharp.mrc
  cryoscape sharpen map.mrc --guinier-high 4.5 --lowpass 4.5 -o map_sharp.mrc
  cryoscape sharpen map.mrc --bfactor 200 -o map_blurred.mrc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map", metavar="MAP", help="input map (.mrc)")
    parser.add_argument("-o", "--out", required=True, help="output map (.mrc)")
    parser.add_argument("--bfactor", type=float,
                        help="B-factor in Å² (negative sharpens); default: Guinier estimate")
    parser.add_argument("--lowpass", type=float, metavar="RES",
                        help="low-pass filter at this resolution (Å) after the B-factor")
    parser.add_argument("--guinier-low", type=float, default=10.0,
                        help="low-resolution end of the Guinier fit in Å (default 10)")
    parser.add_argument("--guinier-high", type=float,
                        help="high-resolution end of the Guinier fit in Å (default: --lowpass, "
                             "else Nyquist)")
    parser.add_argument("--voxel-size", type=float, help="voxel size in Å (default: from the header)")


def check_values(args: argparse.Namespace) -> None:
    """Refuse values that would give a NaN or meaningless map (before the map is read)."""
    import math

    from cryoscape.errors import InputError

    if args.bfactor is not None and not math.isfinite(args.bfactor):
        raise InputError(f"--bfactor {args.bfactor} is not a finite number", fix="give a B-factor in Å², e.g. -100")
    for flag, value in (("--lowpass", args.lowpass), ("--guinier-low", args.guinier_low),
                        ("--guinier-high", args.guinier_high)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{flag} {value} must be a positive resolution in Å", fix=f"e.g. {flag} 4.5")
    if args.guinier_high is not None and args.guinier_high >= args.guinier_low:
        raise InputError(f"--guinier-high {args.guinier_high:g} Å must be a finer resolution than --guinier-low "
                         f"{args.guinier_low:g} Å", fix="e.g. --guinier-low 10 --guinier-high 4.5")


def run(args: argparse.Namespace) -> int:
    from cryoscape.cli.common import check_outputs
    from cryoscape.io.mrc import write_mrc
    from cryoscape.reconstruct.sharpen import apply_bfactor, guinier_fit, low_pass
    from cryoscape.reconstruct.volumes import read_map

    check_values(args)
    check_outputs(inputs=[args.map], files=[args.out])  # never replace an input
    volume, apix = read_map(args.map, args.voxel_size)
    bfactor = args.bfactor
    if bfactor is None:
        high = args.guinier_high if args.guinier_high is not None else args.lowpass
        fit = guinier_fit(volume, apix, low_resolution_angstrom=args.guinier_low,
                          high_resolution_angstrom=high)
        bfactor = fit.bfactor_angstrom2
        upper = high if high is not None else 2 * apix
        print(f"Guinier fit {args.guinier_low:g}–{upper:.3g} Å: B = {bfactor:.1f} Å² (to apply)")
    out = apply_bfactor(volume, apix, bfactor)
    if args.lowpass is not None:
        out = low_pass(out, apix, args.lowpass)
    write_mrc(args.out, out, apix)
    lp = f", low-pass {args.lowpass:g} Å" if args.lowpass is not None else ""
    print(f"applied B = {bfactor:.1f} Å²{lp}; wrote {args.out}")
    return 0
