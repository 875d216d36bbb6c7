"""Particle metadata without the images: count, box, pixel size, poses and CTF from a .star/.cs alone.

Commands that only need the metadata (``info``, ``export-cryodrgn``) must work where the image stacks are not:
a STAR or cryoSPARC file copied off the cluster, the fixtures of a test suite. :func:`load_particle_metadata`
opens the images when they can be found (then everything agrees with :func:`~cryoscape.data.particles.
load_particles`) and otherwise reads what the listing says, recording why the images are missing.

Box size and pixel size then come from, in order: the images; the listing (RELION 3.1+ optics
``rlnImageSize`` / ``rlnImagePixelSize``, RELION 3.0 ``rlnDetectorPixelSize`` and ``rlnMagnification``,
cryoSPARC ``blob/shape`` / ``blob/psize_A``); the values passed in (``-D`` / ``--apix`` on the command line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cryoscape.data.particles import ParticleSet, load_index
from cryoscape.errors import InputError
from cryoscape.io.cs import read_cs
from cryoscape.io.metadata import read_ctf, read_poses
from cryoscape.io.records import CTFParams, Poses
from cryoscape.io.stacks import ImageSource, open_images
from cryoscape.io.star import read_star
from cryoscape.io.validation import InvalidMetadataError

_LISTING_SUFFIXES = {".star", ".cs"}


@dataclass(frozen=True)
class ParticleMetadata:
    """What is known about a particle dataset, with or without its images.

    Attributes
    ----------
    path : Path
        The particle file (.star, .cs, stack or .txt).
    n_source : int
        Particles listed by the file (before ``--ind``).
    indices : ndarray (N,), int64
        0-based indices of the selected particles in the listing.
    box_size : int or None
        Box of the images (pixels) if known; poses/CTF are expressed for this box.
    box_size_source : str
        Where the box came from ("the images", "the optics table (rlnImageSize)", "blob/shape", "-D", "unknown").
    pixel_size_angstrom : float or None
        Median pixel size (Å) of the selected particles, if known.
    pixel_size_source : str
        Where the pixel size came from.
    poses, ctf : Poses or None, CTFParams or None
        Of the selected particles (``len == len(self)``).
    images : ImageSource or None
        The images, or None when they were not found.
    images_problem : str or None
        Why the images could not be opened (the message of the error), when ``images`` is None.
    notes : dict
        ``{"poses": reason, "CTF": reason}`` when poses/CTF are absent or could not be read.
    """

    path: Path
    n_source: int
    indices: np.ndarray
    box_size: int | None
    box_size_source: str
    pixel_size_angstrom: float | None
    pixel_size_source: str
    poses: Poses | None
    ctf: CTFParams | None
    images: ImageSource | None
    images_problem: str | None
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def has_images(self) -> bool:
        return self.images is not None

    def particle_set(self) -> ParticleSet:
        """The :class:`ParticleSet` of these particles (requires the images)."""
        if self.images is None:
            raise InputError(f"the images are needed here but were not found: {self.images_problem}",
                             path=self.path, fix="pass --datadir <folder that holds the stacks>")
        return ParticleSet(images=self.images, poses=self.poses, ctf=self.ctf, indices=self.indices)


def _listing_box_and_pixel(path: Path) -> tuple[int, int | None, str, np.ndarray | None, str]:
    """(rows, box, box source, per-row pixel sizes, pixel source) from a .star/.cs without its images."""
    if path.suffix.lower() == ".star":
        star = read_star(path)
        sizes = star.image_sizes()
        box = None
        if sizes is not None and np.unique(sizes).size == 1:
            box = int(np.unique(sizes)[0])
        pixel = star.pixel_sizes_angstrom()
        source = "the optics table (rlnImagePixelSize)" if star.has("rlnImagePixelSize") else \
            "rlnDetectorPixelSize/rlnMagnification"
        return len(star), box, "the optics table (rlnImageSize)", pixel, source
    array = read_cs(path)
    names = array.dtype.names or ()
    box = None
    if "blob/shape" in names and len(array):
        shape = np.asarray(array["blob/shape"]).reshape(len(array), -1)
        if np.unique(shape[:, 0]).size == 1 and np.all(shape[:, 0] == shape[:, -1]):
            box = int(shape[0, 0])
    pixel = array["blob/psize_A"].astype(np.float64) if "blob/psize_A" in names else None
    return len(array), box, "blob/shape", pixel, "blob/psize_A"


def _read_record(reader, src, kind: str, explicit: bool, notes: dict, strict: bool, **kwargs):
    """Poses or CTF from ``src``; a missing table or an unknown box becomes a note unless the file was named.

    Values that are present but unusable (:class:`~cryoscape.io.validation.InvalidMetadataError`) raise when
    ``strict``, else become a note too.
    """
    try:
        return reader(src, **kwargs)
    except InvalidMetadataError as exc:
        if strict:
            raise
        notes[kind] = "unusable: " + exc.problem + (f" ({exc.fix})" if exc.fix else "")
        return None
    except InputError as exc:
        if explicit:
            raise
        notes[kind] = exc.problem + (f" ({exc.fix})" if exc.fix else "")
        return None


def load_particle_metadata(
    particles: str | os.PathLike,
    *,
    poses: str | os.PathLike | None = None,
    ctf: str | os.PathLike | None = None,
    ind: str | os.PathLike | np.ndarray | None = None,
    datadir: str | os.PathLike | None = None,
    amplitude_contrast: float | None = None,
    box_size: int | None = None,
    pixel_size_angstrom: float | None = None,
    allow_overfocus: bool = False,
    strict: bool = True,
) -> ParticleMetadata:
    """Read a particle dataset's metadata, with its images when they can be found.

    Parameters
    ----------
    particles
        .star or .cs (images optional), or a stack/.txt list (images required).
    poses, ctf
        Separate pose/CTF files (.star, .cs, cryoDRGN .pkl); default: ``particles`` itself for a .star/.cs.
    ind
        0-based index subset (file or array).
    datadir
        Folder holding the stacks named by the listing.
    amplitude_contrast
        For a RELION 3.0 star without ``rlnAmplitudeContrast``.
    box_size
        Box (pixels) of the images when neither the images nor the listing give it (RELION 3.0 star, cryoDRGN
        pose pickle). When the images are found, their box is used and poses/CTF are rescaled to it.
    pixel_size_angstrom
        Pixel size (Å) when the listing does not give it.
    allow_overfocus
        Accept CTF defocus ≤ 0 (see :func:`~cryoscape.io.metadata.read_ctf`).
    strict
        Raise on poses/CTF values that are present but unusable; False records them in ``notes`` (``info``).

    Returns
    -------
    ParticleMetadata

    Raises
    ------
    InputError
        The particle file is missing or unreadable; a named --poses/--ctf file cannot be read or has another
        length; bad ``ind``; the images of a stack/.txt input are missing.
    """
    path = Path(particles)
    if not path.is_file():
        raise InputError("particle file not found", path=path, fix="check the path")
    listing = path.suffix.lower() in _LISTING_SUFFIXES
    images: ImageSource | None = None
    problem = None
    try:
        images = open_images(path, datadir=datadir)
    except InputError as exc:
        if not listing or "not found" not in exc.problem:
            raise  # not a missing stack (e.g. a row past the end of its stack): an error even for metadata
        problem = exc.problem.split("; tried ")[0]  # the first missing stack, without the places tried

    if images is not None:
        n = len(images)
        box, box_source = int(images.box_size), "the images"
        pixel_rows = images.pixel_sizes_angstrom
        pixel_source = images.kind if pixel_rows is not None else "the MRC header"
        if pixel_rows is None and images.pixel_size_angstrom is not None:
            pixel_rows = np.full(n, images.pixel_size_angstrom)
    else:
        n, box, box_source, pixel_rows, pixel_source = _listing_box_and_pixel(path)
    if box is None and box_size is not None:
        box, box_source = int(box_size), "-D"
    if box is None:
        box_source = "unknown"
    if pixel_rows is None and pixel_size_angstrom is not None:
        pixel_rows, pixel_source = np.full(n, float(pixel_size_angstrom)), "--apix"

    notes: dict[str, str] = {}
    pose_src = poses if poses is not None else (path if listing else None)
    ctf_src = ctf if ctf is not None else (path if listing else None)
    kw = {"box_size": box, "pixel_size_angstrom": pixel_size_angstrom}
    pose_rec = None if pose_src is None else _read_record(read_poses, pose_src, "poses", poses is not None,
                                                           notes, strict, **kw)
    ctf_rec = None if ctf_src is None else _read_record(read_ctf, ctf_src, "CTF", ctf is not None, notes, strict,
                                                         amplitude_contrast=amplitude_contrast,
                                                         allow_overfocus=allow_overfocus, **kw)
    for rec, src, kind in ((pose_rec, pose_src, "poses"), (ctf_rec, ctf_src, "CTF parameters")):
        if rec is not None and len(rec) != n:
            raise InputError(f"has {len(rec)} {kind} but {path} lists {n} particles", path=src,
                             fix="give the pose/CTF file that was made for these particles, in the same order")
    if images is not None:
        if pose_rec is not None and pose_rec.box_size != box:
            pose_rec = pose_rec.rescaled(box)
        if ctf_rec is not None and ctf_rec.box_size != box:
            ctf_rec = ctf_rec.rescaled(box)
    elif box is None:
        box = (pose_rec.box_size if pose_rec is not None else ctf_rec.box_size if ctf_rec is not None else None)
        if box is not None:
            box_source = "--poses/--ctf"
    if ctf_rec is not None:
        pixel_rows, pixel_source = ctf_rec.pixel_size_angstrom, "the CTF parameters"

    index = np.arange(n, dtype=np.int64)
    if ind is not None:
        index = load_index(ind, n)
        pose_rec = None if pose_rec is None else pose_rec.subset(index)
        ctf_rec = None if ctf_rec is None else ctf_rec.subset(index)
    pixel = None
    if pixel_rows is not None and len(index):
        pixel = float(np.median(np.asarray(pixel_rows, dtype=np.float64)[index] if len(pixel_rows) == n
                                else pixel_rows))
    return ParticleMetadata(path=path, n_source=n, indices=index, box_size=box, box_size_source=box_source,
                            pixel_size_angstrom=pixel, pixel_size_source=pixel_source if pixel else "unknown",
                            poses=pose_rec, ctf=ctf_rec, images=images, images_problem=problem, notes=notes)
