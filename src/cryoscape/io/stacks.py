"""Where the particle images are: an :class:`ImageSource` over ``.mrcs``/``.mrc``/``.star``/``.cs``/``.txt``.

An image source maps each particle (0-based position in the file that lists them) to a stack file and a
0-based image within it. Opening checks every stack's header (existence, square even box, same box
everywhere, enough images for every row) but reads no pixels; :meth:`ImageSource.read` then reads only the
requested images through one lazy memory-mapped reader per stack.

Finding the stacks
------------------
Image names in a STAR file are ``index@path`` (index 1-based); ``.cs`` files give ``blob/path`` and a 0-based
``blob/idx``; a ``.txt`` file lists one stack per line. A relative path is looked for, in this order:

1. in ``datadir`` when one is given (``datadir/path``, then ``datadir/<file name>``): an explicit folder wins;
2. relative to the folder of the listing file (STAR/CS/TXT);
3. relative to that folder's parents, up to three levels (RELION and cryoSPARC write paths relative to the
   project folder, which is usually a parent of the job folder holding the STAR/CS file);
4. relative to the current working directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.cs import blob_paths, read_cs
from cryoscape.io.mrc import MrcStackReader
from cryoscape.io.star import read_star

_STACK_SUFFIXES = (".mrcs", ".mrc", ".st", ".ali")
_PARENT_LEVELS = 3


@dataclass(frozen=True)
class _Location:
    path: Path
    how: str


def _candidates(name: str, listing_dir: Path, datadir: Path | None) -> list[tuple[Path, str]]:
    raw = Path(name)
    found: list[tuple[Path, str]] = []
    if datadir is not None:
        if not raw.is_absolute():
            found.append((datadir / raw, "in the data directory"))
        found.append((datadir / raw.name, "in the data directory (by file name)"))
    if raw.is_absolute():
        found.insert(0, (raw, "at its absolute path"))
        return found
    found.append((listing_dir / raw, "next to the listing file"))
    for level, parent in enumerate(listing_dir.parents, start=1):
        if level > _PARENT_LEVELS:
            break
        found.append((parent / raw, f"relative to {parent} (parent folder of the listing file)"))
    found.append((Path.cwd() / raw, "relative to the working directory"))
    seen: set[Path] = set()
    unique = []
    for path, how in found:
        if path not in seen:
            seen.add(path)
            unique.append((path, how))
    return unique


def _resolve(name: str, listing: Path, datadir: Path | None, row: int, kind: str) -> _Location:
    tried = _candidates(name, listing.parent, datadir)
    for path, how in tried:
        if path.is_file():
            return _Location(path, how)
    shown = ", ".join(str(p) for p, _ in tried)
    fix = ("pass --datadir <folder that holds the stacks>" if datadir is None
           else f"check --datadir {datadir}: the stack is not there either")
    raise InputError(f"image stack '{name}' ({kind} {row}) not found; tried {shown}", path=listing, fix=fix)


class ImageSource:
    """Lazy access to N particle images stored in one or more MRC stacks.

    Build it with :func:`open_images`. Images are numbered 0 … N-1 in the order of the listing file.

    Attributes
    ----------
    path : Path
        The file the source was opened from.
    box_size : int
        Image side D (pixels), even; all images are D × D.
    pixel_size_angstrom : float or None
        Pixel size (Å) when the listing (STAR optics/CS) or the MRC header gives a single value; None when
        unknown or when particles have different pixel sizes (see :attr:`pixel_sizes_angstrom`).
    pixel_sizes_angstrom : ndarray (N,) or None
        Per-image pixel size from a STAR/CS listing.
    files : list of Path
        The stacks, in order of first use.
    file_index, image_index : ndarray (N,)
        Stack (position in :attr:`files`) and 0-based image in that stack, of every particle.
    """

    def __init__(self, path: Path, kind: str, readers: list[MrcStackReader], locations: list[_Location],
                 file_index: np.ndarray, image_index: np.ndarray,
                 pixel_sizes_angstrom: np.ndarray | None = None):
        self.path = path
        self.kind = kind
        self._readers = readers
        self._locations = locations
        self.files = [loc.path for loc in locations]
        self.file_index = np.asarray(file_index, dtype=np.int64)
        self.image_index = np.asarray(image_index, dtype=np.int64)
        boxes = sorted({r.box_size for r in readers})
        if len(boxes) > 1:
            first = {b: next(r.path for r in readers if r.box_size == b) for b in boxes}
            detail = ", ".join(f"{b}×{b} px in {first[b]}" for b in boxes)
            raise InputError(f"the stacks have different box sizes: {detail}", path=path,
                             fix="use particles extracted with one box size (or Fourier-crop them to one)")
        self.box_size = boxes[0] if boxes else 0
        self.pixel_sizes_angstrom = None if pixel_sizes_angstrom is None else np.asarray(
            pixel_sizes_angstrom, dtype=np.float64)
        self.pixel_size_angstrom = self._single_pixel_size()

    def _single_pixel_size(self) -> float | None:
        values = self.pixel_sizes_angstrom
        if values is None:
            header = {r.pixel_size_angstrom for r in self._readers}
            value = header.pop() if len(header) == 1 else None
            return None if value is None or value <= 0 else float(value)
        if values.size == 0 or not np.all(np.isfinite(values)):
            return None
        if np.allclose(values, values[0], rtol=1e-6, atol=0):
            return float(values[0])
        return None

    def __len__(self) -> int:
        return int(self.file_index.shape[0])

    def _check_positions(self, indices: np.ndarray | list[int] | slice) -> np.ndarray:
        if isinstance(indices, slice):
            return np.arange(len(self))[indices]
        index = np.asarray(indices).reshape(-1)
        if index.size and index.dtype.kind not in "iu":
            raise TypeError(f"image indices must be integers, got dtype {index.dtype}")
        index = index.astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            bad = int(index[(index < 0) | (index >= len(self))][0])
            raise IndexError(f"image index {bad} out of range for {len(self)} images in {self.path}")
        return index

    def read(self, indices: np.ndarray | list[int] | slice) -> np.ndarray:
        """Read images by 0-based position, in the requested order (repeats allowed).

        Only the requested images are read from disk, grouped by stack.

        Returns
        -------
        ndarray, shape (k, D, D), float32

        Raises
        ------
        InputError
            An image read contains NaN or infinite values (the message names the stack and the image).
        """
        index = self._check_positions(indices)
        out = np.empty((index.size, self.box_size, self.box_size), dtype=np.float32)
        if index.size == 0:
            return out
        files = self.file_index[index]
        order = np.argsort(files, kind="stable")
        bounds = np.flatnonzero(np.diff(files[order])) + 1
        for group in np.split(order, bounds):
            reader = self._readers[int(files[group[0]])]
            out[group] = reader.read(self.image_index[index[group]])
        return out

    def iter_chunks(self, chunk_size: int, indices: np.ndarray | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, images)`` chunks of at most ``chunk_size`` images (all images by default)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        positions = np.arange(len(self)) if indices is None else self._check_positions(indices)
        for start in range(0, positions.size, chunk_size):
            chunk = positions[start:start + chunk_size]
            yield chunk, self.read(chunk)

    def describe(self) -> str:
        """A short human description: count, box, pixel size, files and where they were found."""
        source = "MRC header" if self.pixel_sizes_angstrom is None else self.kind
        pixel = ""
        if self.pixel_size_angstrom is not None:
            pixel = f", {self.pixel_size_angstrom:g} Å/px (from {source})"
        if self.pixel_size_angstrom is None and self.pixel_sizes_angstrom is not None:
            lo, hi = np.nanmin(self.pixel_sizes_angstrom), np.nanmax(self.pixel_sizes_angstrom)
            pixel = f", {lo:g}–{hi:g} Å/px"
        lines = [f"{len(self):,} images of {self.box_size}×{self.box_size} px{pixel} listed by {self.kind} "
                 f"{self.path}, in {len(self.files)} stack file(s)"]
        shown = self._locations[:3]
        for loc in shown:
            lines.append(f"  {loc.path} (found {loc.how})")
        if len(self._locations) > len(shown):
            hows = sorted({loc.how for loc in self._locations})
            lines.append(f"  ... and {len(self._locations) - len(shown)} more (found {'; '.join(hows)})")
        return "\n".join(lines)

    def close(self) -> None:
        """Release the memory maps (they are re-opened on the next read)."""
        for reader in self._readers:
            reader.close()

    def __repr__(self) -> str:
        return f"ImageSource({str(self.path)!r}, n={len(self)}, box_size={self.box_size})"


def _open_readers(names: np.ndarray, listing: Path, datadir: Path | None, kind: str, row_label: str
                  ) -> tuple[list[MrcStackReader], list[_Location], np.ndarray]:
    """Resolve and open every distinct stack named in ``names`` (N,); readers and per-row file index."""
    unique, first_row, inverse = np.unique(names.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first_row)  # files in order of first use
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    readers, locations = [], []
    for u in order:
        location = _resolve(str(unique[u]), listing, datadir, int(first_row[u]) + 1, row_label)
        readers.append(MrcStackReader(location.path))
        locations.append(location)
    return readers, locations, rank[inverse.reshape(-1)]


def _check_lengths(readers: list[MrcStackReader], file_index: np.ndarray, image_index: np.ndarray,
                   listing: Path, row_label: str, one_based: bool) -> None:
    lengths = np.array([reader.n for reader in readers], dtype=np.int64)
    bad = np.flatnonzero((image_index >= lengths[file_index]) | (image_index < 0))
    if bad.size:
        row = int(bad[0])
        reader = readers[int(file_index[row])]
        shown = int(image_index[row]) + (1 if one_based else 0)
        raise InputError(f"{row_label} {row + 1} asks for image {shown} of {reader.path}, which holds only "
                         f"{reader.n} images", path=listing,
                         fix="the listing does not match the stack: check --datadir or re-export the file")


def _from_star(path: Path, datadir: Path | None) -> ImageSource:
    star = read_star(path)
    if "rlnImageName" not in star.particles.columns:
        raise InputError("the particle table has no rlnImageName column", path=path,
                         fix="give a particle STAR file (e.g. run_data.star) whose rows name their images")
    names = star.particles["rlnImageName"].astype(str)
    parts = names.str.split("@", n=1, expand=True)
    if parts.shape[1] == 1:
        parts[1] = None
    has_at = parts[1].notna().to_numpy()
    stack_names = np.where(has_at, parts[1].fillna(""), parts[0]).astype(str)
    numbers = np.where(has_at, parts[0], "1")
    try:
        image_numbers = np.array([int(n) for n in numbers], dtype=np.int64)
    except ValueError:
        row = next(i for i, n in enumerate(numbers) if not str(n).strip().isdigit())
        raise InputError(f"row {row + 1}: rlnImageName '{names.iloc[row]}' is not of the form index@file",
                         path=path, fix="image names look like 000012@Extract/job005/stack.mrcs") from None
    if image_numbers.size and image_numbers.min() < 1:
        row = int(np.argmin(image_numbers))
        raise InputError(f"row {row + 1}: rlnImageName '{names.iloc[row]}' has index {image_numbers[row]}; "
                         "STAR image indices start at 1", path=path,
                         fix="image names look like 000001@stack.mrcs")
    readers, locations, file_index = _open_readers(stack_names, path, datadir, "STAR file", "row")
    image_index = image_numbers - 1
    _check_lengths(readers, file_index, image_index, path, "row", one_based=True)
    pixel = star.pixel_sizes_angstrom()
    return ImageSource(path, "STAR file", readers, locations, file_index, image_index, pixel)


def _from_cs(path: Path, datadir: Path | None) -> ImageSource:
    array = read_cs(path)
    if len(array) == 0:
        raise InputError("the .cs file lists no particles", path=path, fix="give a .cs file with particles")
    names = blob_paths(array, path)
    readers, locations, file_index = _open_readers(names, path, datadir, "cryoSPARC file", "row")
    image_index = array["blob/idx"].astype(np.int64)
    _check_lengths(readers, file_index, image_index, path, "row", one_based=False)
    pixel = array["blob/psize_A"].astype(np.float64) if "blob/psize_A" in array.dtype.names else None
    return ImageSource(path, "cryoSPARC file", readers, locations, file_index, image_index, pixel)


def _from_txt(path: Path, datadir: Path | None) -> ImageSource:
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except UnicodeDecodeError:
        raise InputError("not a text list of image stacks (binary content)", path=path,
                         fix="a .txt particle list holds one .mrcs path per line") from None
    entries = [(i + 1, line) for i, line in enumerate(lines) if line and not line.startswith("#")]
    if not entries:
        raise InputError("the text file lists no image stacks", path=path,
                         fix="write one .mrcs path per line")
    readers, locations, file_index, image_index = [], [], [], []
    for line_number, name in entries:
        location = _resolve(name, path, datadir, line_number, "line")
        reader = MrcStackReader(location.path)
        file_index.append(np.full(reader.n, len(readers), dtype=np.int64))
        image_index.append(np.arange(reader.n, dtype=np.int64))
        readers.append(reader)
        locations.append(location)
    return ImageSource(path, "text list", readers, locations, np.concatenate(file_index),
                       np.concatenate(image_index))


def open_images(path: str | os.PathLike, datadir: str | os.PathLike | None = None) -> ImageSource:
    """Open the particle images listed by or stored in ``path``.

    Parameters
    ----------
    path
        ``.mrcs``/``.mrc`` stack, RELION ``.star``, cryoSPARC ``.cs`` or ``.txt`` list of stacks.
    datadir
        Folder to look in first for stacks named by a STAR/CS/TXT file (see the module docstring).

    Returns
    -------
    ImageSource

    Raises
    ------
    InputError
        Missing files (naming every path tried), bad headers, odd or non-square or mixed box sizes, rows that
        point past the end of their stack, unknown file type.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("particle file not found", path=path, fix="check the path")
    datadir_path = None if datadir is None else Path(datadir)
    if datadir_path is not None and not datadir_path.is_dir():
        raise InputError("data directory not found", path=datadir_path, fix="check --datadir")
    suffix = path.suffix.lower()
    if suffix in _STACK_SUFFIXES:
        reader = MrcStackReader(path)
        return ImageSource(path, "stack", [reader], [_Location(path, "as given")],
                           np.zeros(reader.n, dtype=np.int64), np.arange(reader.n, dtype=np.int64))
    if suffix == ".star":
        return _from_star(path, datadir_path)
    if suffix == ".cs":
        return _from_cs(path, datadir_path)
    if suffix == ".txt":
        return _from_txt(path, datadir_path)
    raise InputError(f"unknown particle file type '{suffix}'", path=path,
                     fix="give a .mrcs/.mrc stack, a RELION .star, a cryoSPARC .cs or a .txt list of stacks")
