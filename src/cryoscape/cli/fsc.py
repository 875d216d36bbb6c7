"""``cryoscape fsc``: Fourier shell correlation between two maps."""

from __future__ import annotations

import argparse

NAME = "fsc"
HELP = "Fourier shell correlation between two maps (curve as CSV + PNG, resolutions at 0.5 and 0.143, AUC)"
DESCRIPTION = """\
Compute the Fourier shell correlation (FSC) between two maps of the same box and voxel size, optionally
after multiplying both by a mask. Shells are one Fourier voxel thick (shell i at i / (D × voxel size) 1/Å).
Prints the resolution where the curve first falls below 0.5 and 0.143 (linear interpolation; the Nyquist
resolution when it never does) and the area under the curve over frequency normalised to Nyquist (1 =
identical maps). Writes PREFIX.csv (shell, frequency_per_angstrom, resolution_angstrom, fsc, n_voxels) and
PREFIX.png.

--auto-mask builds the cryoDRGN paper's soft mask from the average of the two maps (threshold at half the
99.99th percentile, dilated by 25 Å, 15 Å cosine edge; see `cryoscape mask`).

examples:
  cryoscape fsc half1.mrc half2.mrc -o gold_standard
  cryoscape fsc vol_000.mrc ground_truth.mrc --mask mask.mrc -o vs_truth
  cryoscape fsc vol_000.mrc ground_truth.mrc --auto-mask
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("map1", metavar="MAP1", help="first map (.mrc)")
    parser.add_argument("map2", metavar="MAP2", help="second map (.mrc), same box and voxel size")
    parser.add_argument("--mask", help="real-space mask (.mrc) applied to both maps")
    parser.add_argument("--auto-mask", action="store_true",
                        help="apply the paper's soft mask made from the average of the two maps")
    parser.add_argument("-o", "--out", default="fsc",
                        help="output prefix: writes PREFIX.csv and PREFIX.png (default: fsc)")
    parser.add_argument("--voxel-size", type=float, help="voxel size in Å (default: from MAP1's header)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from cryoscape.errors import InputError
    from cryoscape.plotting.fsc import plot_fsc
    from cryoscape.reconstruct.fsc import fsc_curve, write_fsc_csv
    from cryoscape.reconstruct.masks import soft_mask
    from cryoscape.reconstruct.volumes import read_map

    map1, apix = read_map(args.map1, args.voxel_size)
    map2, apix2 = read_map(args.map2, args.voxel_size or apix)
    if abs(apix2 - apix) > 1e-3 * apix:
        raise InputError(f"voxel size {apix2:.4g} Å differs from {args.map1}'s {apix:.4g} Å",
        path=args.map2,
                         fix="resample: cryoscape downsample MAP -D N -o OUT.mrc; or --voxel-size if a header is wrong")
    if args.mask and args.auto_mask:
        raise InputError("give either --mask or --auto-mask, not both")
    mask = None
    if args.mask:
        mask, _ = read_map(args.mask, apix)
    elif args.auto_mask:
        mask = soft_mask(0.5 * (map1 + map2), apix)
    curve = fsc_curve(map1, map2, apix, mask=mask)
    prefix = Path(args.out)
    if prefix.suffix.lower() in {".csv", ".png"}:
        prefix = prefix.with_suffix("")
    csv_path = prefix.with_name(prefix.name + ".csv")
    png_path = prefix.with_name(prefix.name + ".png")
    from cryoscape.cli.common import check_outputs
    check_outputs(inputs=[args.map1, args.map2, args.mask], files=[csv_path, png_path])  # never replace an input
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_fsc_csv(curve, csv_path)
    plot_fsc({f"{Path(args.map1).name} vs {Path(args.map2).name}": curve}, png_path,
             title="FSC" + (" (masked)" if mask is not None else ""))
    for thr in (0.5, 0.143):
        res = curve.resolution_angstrom(thr)
        note = " (never crossed: Nyquist)" if curve.crossing_frequency(thr) is None else ""
        print(f"FSC = {thr}: {res:.2f} Å{note}")
    print(f"area under the FSC curve: {curve.area_under_curve():.4f}")
    if not np.isfinite(curve.fsc).all():  # pragma: no cover - fsc_curve never yields NaN
        raise InputError("FSC is not finite", path=args.map1)
    print(f"wrote {csv_path} and {png_path}")
    return 0
