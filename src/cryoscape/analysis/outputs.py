"""Writing a pipeline's output folder: one recorder of written files, and a folder that appears only when complete.

:class:`OutputRecorder` writes text, ``.npy`` and JSON files atomically and records every path a writer produces,
so a summary can list them. :func:`staged_folder` makes the output folder appear only when everything in it was
written: the writer fills a hidden sibling folder, which is renamed onto the final name at the end (replacing an
earlier folder only when asked); a failure removes the sibling and leaves any earlier folder as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open, current_umask


class OutputRecorder:
    """Writes files under ``root`` atomically and records each written path.

    Parameters
    ----------
    root : Path
        The output folder; recorded paths are reported relative to it.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.paths: list[Path] = []

    def add(self, *paths: str | os.PathLike) -> None:
        """Record files written by someone else (a plotting function, the map writer)."""
        self.paths.extend(Path(p) for p in paths)

    def save_txt(self, path: str | os.PathLike, values: np.ndarray, fmt: str) -> Path:
        """``np.savetxt`` of ``values`` (one row per line) with ``fmt``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as handle:
            np.savetxt(handle, values, fmt=fmt)
        self.add(path)
        return path

    def save_npy(self, path: str | os.PathLike, array: np.ndarray) -> Path:
        """``np.save`` of ``array`` (no pickles)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as handle:
            np.save(handle, np.asarray(array), allow_pickle=False)
        self.add(path)
        return path

    def save_json(self, path: str | os.PathLike, content: Any, indent: int = 1) -> Path:
        """JSON of ``content``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w") as handle:
            json.dump(content, handle, indent=indent)
        self.add(path)
        return path

    def relative(self, *extra: str) -> list[str]:
        """Sorted unique paths written (relative to ``root``, '/'-separated), plus ``extra`` names."""
        names = {Path(os.path.relpath(p, self.root)).as_posix() for p in self.paths}
        return sorted(names | set(extra))


def check_new_folder(path: str | os.PathLike, overwrite: bool, command: str) -> None:
    """Refuse an output folder that already holds files unless ``overwrite`` (before any work starts).

    Raises
    ------
    InputError
        ``path`` is a file, or a folder holding files and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError("is a file, but an output folder is expected here", path=path,
                         fix="give a folder name that is not an existing file")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(f"holds the results of an earlier {command}", path=path,
                         fix="give --overwrite to replace them, or -o NEW_FOLDER to keep them")


@contextmanager
def staged_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a new hidden sibling folder of ``final``; it replaces ``final`` when the block completes.

    On an exception the sibling is removed and ``final`` (if it existed) is left as it was. The parent folders of
    ``final`` are created only when the block completes or already exist.
    """
    final = Path(final)
    parent = final.parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    os.chmod(stage, 0o777 & ~current_umask())
    try:
        yield stage
        if final.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=parent))
            os.replace(final, old / final.name)
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # nearest first: only folders made here, and only while still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
