"""Fourier-crop (downsample) a particle stack to disk in chunks, and re-point a RELION star at the result."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cryoscape.data.particles import ParticleSet
from cryoscape.errors import InputError
from cryoscape.geometry.fourier import fourier_crop, fourier_pad
from cryoscape.io.mrc_stream import MrcStackWriter
from cryoscape.io.star import read_star, write_star
from cryoscape.progress import progress


def resample_stack(particles: ParticleSet, box_size: int, out_path: str | os.PathLike,
                   chunk_size: int = 1000) -> Path:
    """Write the particles Fourier-cropped (or padded) to ``box_size`` into the stack ``out_path``.

    Parameters
    ----------
    particles
        The particles to resample, in their order.
    box_size
        New box (even, pixels). Smaller than the input crops (downsamples), larger pads.
    out_path
        Output ``.mrcs`` (written atomically).
    chunk_size
        Images held in memory at a time.

    Returns
    -------
    Path
        The stack written; its header's pixel size is ``old × old_box / box_size``.
    """
    old_box = particles.box_size
    if box_size <= 0 or box_size % 2:
        raise InputError(f"new box size must be a positive even number of pixels, got {box_size}",
                         fix="choose e.g. -D 64 or -D 128")
    resample = fourier_crop if box_size <= old_box else fourier_pad
    pixel = particles.pixel_size_angstrom or 1.0
    with MrcStackWriter(out_path, len(particles), box_size, pixel * old_box / box_size) as writer:
        bar = progress(total=len(particles), desc=f"resample {old_box}→{box_size} px", unit="img")
        for positions, images in particles.iter_chunks(chunk_size):
            writer.write(int(positions[0]), resample(images, box_size))
            bar.update(len(positions))
        bar.close()
    return Path(out_path)


def write_resampled_star(star_in: str | os.PathLike, star_out: str | os.PathLike, stack: str | os.PathLike,
                         indices: np.ndarray, old_box: int, box_size: int) -> Path:
    """Write a copy of ``star_in`` (rows ``indices``) whose images are the resampled ``stack``.

    Image names become ``k@stack`` (1-based, relative to the star's folder); the pixel size (optics
    ``rlnImagePixelSize`` scaled from the box the group describes, ``rlnImageSize``; RELION 3.0: magnification)
    follow the new box; origins in pixels (RELION 3.0) are rescaled, origins in Å (3.1+) are unchanged.
    """
    star = read_star(star_in)
    table = star.particles.iloc[np.asarray(indices)].reset_index(drop=True).copy()
    rel = os.path.relpath(Path(stack).resolve(), Path(star_out).resolve().parent)
    table["rlnImageName"] = [f"{i + 1:06d}@{rel}" for i in range(len(table))]
    optics = None
    if star.optics is not None:
        optics = star.optics.copy()
        if "rlnOpticsGroup" not in table:
            if len(optics) != 1 or "rlnOpticsGroup" not in optics:
                raise InputError("particles have no rlnOpticsGroup column but there are several optics groups",
                                 path=star_in, fix="add rlnOpticsGroup to the particle table")
            table["rlnOpticsGroup"] = optics["rlnOpticsGroup"].iloc[0]
        # the box each optics group describes (rlnImageSize), which may differ from the stack's (old_box)
        described = (optics["rlnImageSize"].astype(float) if "rlnImageSize" in optics
                     else pd.Series(float(old_box), index=optics.index))
        if "rlnImagePixelSize" in optics:
            optics["rlnImagePixelSize"] = optics["rlnImagePixelSize"].astype(float) * described / box_size
        optics["rlnImageSize"] = box_size
    else:
        factor = box_size / old_box
        for col in ("rlnOriginX", "rlnOriginY"):  # RELION 3.0: origins in pixels
            if col in table:
                table[col] = table[col].astype(float) * factor
        if "rlnMagnification" in table:
            table["rlnMagnification"] = table["rlnMagnification"].astype(float) * factor
        if "rlnImagePixelSize" in table:
            table["rlnImagePixelSize"] = table["rlnImagePixelSize"].astype(float) / factor
    write_star(star_out, table, optics)
    return Path(star_out)
