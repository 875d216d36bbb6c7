"""ParticleSet: images + poses + CTF + original indices, one record per particle.

Every command that reads particles goes through :func:`load_particles`, so the same inputs work everywhere:
a stack (.mrcs/.mrc), a RELION .star, a cryoSPARC .cs or a .txt list of stacks, with poses and CTF read from the
star/cs itself or from separate files (.star, .cs, cryoDRGN .pkl), and an optional index subset (``--ind``).
Poses and CTF are matched to images by record: their lengths are checked against the image source and a subset
selects the same rows of all three.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.legacy import read_index
from cryoscape.io.metadata import read_ctf, read_poses
from cryoscape.io.records import CTFParams, Poses
from cryoscape.io.stacks import ImageSource, open_images
from cryoscape.io.validation import InvalidMetadataError

log = logging.getLogger(__name__)

_METADATA_SUFFIXES = {".star", ".cs"}


@dataclass(frozen=True)
class ParticleSet:
    """Particles selected from an image source, with their poses and CTF.

    Attributes
    ----------
    images : ImageSource
        Where the pixels come from (lazy; images are read on demand).
    poses : Poses or None
        Poses of the selected particles (``len(poses) == len(self)``), shifts in pixels of ``box_size``.
    ctf : CTFParams or None
        CTF parameters of the selected particles.
    indices : ndarray, shape (N,), int64
        0-based indices of the selected particles in the original image source.
    """

    images: ImageSource
    poses: Poses | None
    ctf: CTFParams | None
    indices: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def box_size(self) -> int:
        """Box size of the images (pixels)."""
        return int(self.images.box_size)

    @property
    def pixel_size_angstrom(self) -> float | None:
        """Pixel size (Å): the median over particles of the CTF's, else the image source's, else None."""
        if self.ctf is not None and len(self.ctf):
            return float(np.median(self.ctf.pixel_size_angstrom))
        return self.images.pixel_size_angstrom

    def subset(self, positions: np.ndarray | list[int] | slice) -> ParticleSet:
        """The particles at ``positions`` (0-based positions in *this* set, not original indices)."""
        pos = np.arange(len(self))[positions] if isinstance(positions, slice) else np.asarray(positions)
        if pos.dtype == bool:
            pos = np.flatnonzero(pos)
        return ParticleSet(
            images=self.images,
            poses=None if self.poses is None else self.poses.subset(pos),
            ctf=None if self.ctf is None else self.ctf.subset(pos),
            indices=self.indices[pos],
        )

    def read(self, positions: np.ndarray | list[int]) -> np.ndarray:
        """Images at ``positions`` of this set, shape (k, D, D), float32, in the order given."""
        return self.images.read(self.indices[np.asarray(positions, dtype=np.int64)])

    def iter_chunks(self, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, images)`` over the whole set in order, ``chunk_size`` images at a time."""
        for start in range(0, len(self), chunk_size):
            positions = np.arange(start, min(start + chunk_size, len(self)))
            yield positions, self.read(positions)


def _metadata_from(path: str | os.PathLike, kind: str, reader, required: bool, **kwargs):
    """Read poses or CTF from ``path``; a missing table is None unless ``required``."""
    try:
        return reader(path, **kwargs)
    except InvalidMetadataError:
        raise  # present but unusable: never silently dropped
    except InputError:
        if required:
            raise
        log.debug("no %s in %s", kind, path)
        return None


def load_particles(
    particles: str | os.PathLike,
    *,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    ind: str | os.PathLike | np.ndarray | None = None,
    datadir: str | os.PathLike | None = None,
    amplitude_contrast: float | None = None,
    require_poses: bool = False,
    require_ctf: bool = False,
    allow_overfocus: bool = False,
    allow_mixed_pixel_sizes: bool = False,
) -> ParticleSet:
    """Open particles with their poses and CTF, optionally restricted to an index subset.

    Parameters
    ----------
    particles
        Image source: .mrcs/.mrc stack, RELION .star, cryoSPARC .cs or .txt list of stacks.
    poses, ctf
        Separate pose/CTF files (.star, .cs or cryoDRGN .pkl). By default they are read from ``particles`` itself
        when it is a .star or .cs.
    ind
        0-based indices into the original stack (a .txt/.npy/.pkl file or an array).
    datadir
        Folder to look for image files in when the paths in a star/cs/txt do not resolve.
    amplitude_contrast
        Amplitude contrast for a RELION 3.0 star that lacks ``rlnAmplitudeContrast`` (the file's value wins).
    require_poses, require_ctf
        Raise :class:`InputError` when poses/CTF cannot be found (instead of leaving them None).
    allow_overfocus
        Accept CTF defocus ≤ 0 (refused by default as a likely error).
    allow_mixed_pixel_sizes
        Accept particles with different pixel sizes (several optics groups); refused by default because a
        single map voxel size and frequency scale are assumed downstream.

    Returns
    -------
    ParticleSet
        With poses/CTF rescaled to the images' box size when they were given for another box.
    """
    images = open_images(particles, datadir=datadir)
    n = len(images)
    box = int(images.box_size)
    own = Path(particles).suffix.lower() in _METADATA_SUFFIXES
    # the image box only fills a gap: a star/cs/pkl that states its own box keeps it and is rescaled below
    kw = {"box_size": box}

    pose_src = poses if poses is not None else (particles if own else None)
    ctf_src = ctf if ctf is not None else (particles if own else None)
    pose_rec = None
    if pose_src is not None:
        pose_rec = _metadata_from(pose_src, "poses", read_poses, require_poses or poses is not None, **kw)
    ctf_rec = None
    if ctf_src is not None:
        ctf_rec = _metadata_from(ctf_src, "CTF", read_ctf, require_ctf or ctf is not None,
                                 amplitude_contrast=amplitude_contrast, allow_overfocus=allow_overfocus, **kw)
        if ctf_rec is not None and not allow_mixed_pixel_sizes:
            check_single_pixel_size(ctf_rec, ctf_src)
    if require_poses and pose_rec is None:
        raise InputError("no poses found", path=particles,
                         fix="give --poses with a RELION .star, cryoSPARC .cs or cryoDRGN pose .pkl")
    if require_ctf and ctf_rec is None:
        raise InputError("no CTF parameters found", path=particles,
                         fix="give --ctf with a RELION .star, cryoSPARC .cs or cryoDRGN ctf .pkl")

    for rec, src, kind in ((pose_rec, pose_src, "poses"), (ctf_rec, ctf_src, "CTF parameters")):
        if rec is not None and len(rec) != n:
            raise InputError(
                f"has {len(rec)} {kind} but {particles} has {n} images", path=src,
                fix="give the pose/CTF file that was made for this particle stack, in the same order")
    if pose_rec is not None and pose_rec.box_size != box:
        log.info("poses are for box %d; rescaling shifts to the images' box %d", pose_rec.box_size, box)
        pose_rec = pose_rec.rescaled(box)
    if ctf_rec is not None and ctf_rec.box_size != box:
        log.info("CTF is for box %d; rescaling the pixel size to the images' box %d", ctf_rec.box_size, box)
        ctf_rec = ctf_rec.rescaled(box)

    full = ParticleSet(images=images, poses=pose_rec, ctf=ctf_rec, indices=np.arange(n, dtype=np.int64))
    if ind is None:
        return full
    index = load_index(ind, n)
    return full.subset(index)


def check_single_pixel_size(ctf: CTFParams, path: str | os.PathLike | None, rtol: float = 1e-4) -> None:
    """Refuse CTF parameters whose pixel sizes differ (e.g. optics groups of different magnification).

    Raises
    ------
    InvalidMetadataError
        Naming each pixel size with its particle count and the first particle of the minority size.
    """
    pixel = ctf.pixel_size_angstrom
    if pixel.size == 0 or np.allclose(pixel, pixel[0], rtol=rtol, atol=0):
        return
    sizes, first, counts = np.unique(pixel, return_index=True, return_counts=True)
    shown = ", ".join(f"{v:.5g} Å × {c}" for v, c in list(zip(sizes, counts))[:6])
    minority = int(first[np.argmin(counts)])
    raise InvalidMetadataError(
        f"the particles have {sizes.size} different pixel sizes ({shown}; e.g. particle {minority}, 0-based); "
        "one map voxel size cannot describe them", path=path,
        fix="bring all particles to one pixel size (cryoscape downsample each optics group to a common Å/px) "
            "or use one optics group (--ind)")


def load_index(ind: str | os.PathLike | np.ndarray, n: int) -> np.ndarray:
    """Read (if a path) and validate a 0-based index subset against ``n`` images; returns int64 (k,)."""
    index = np.asarray(ind) if isinstance(ind, np.ndarray) else read_index(ind)
    where = None if isinstance(ind, np.ndarray) else ind
    if index.ndim != 1 or index.size == 0:
        raise InputError(f"index subset must be a non-empty 1-D list, got shape {index.shape}", path=where)
    if not np.issubdtype(index.dtype, np.integer):
        raise InputError(f"index subset must hold integers, got {index.dtype}", path=where)
    bad = index[(index < 0) | (index >= n)]
    if bad.size:
        raise InputError(f"index {int(bad[0])} is outside the {n} images (indices are 0-based)", path=where,
                         fix="make the index file for this particle stack")
    if np.unique(index).size != index.size:
        raise InputError("index subset contains duplicates", path=where, fix="remove the repeated indices")
    return index.astype(np.int64)
