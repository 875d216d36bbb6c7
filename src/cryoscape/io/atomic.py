"""Atomic file writes: a temporary file in the destination's folder, renamed onto it when complete.

A crash or an error while writing never leaves a truncated file under the final name, and never destroys the
previous good file (a checkpoint, a map, a star file).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process's file-creation mask (read without changing it where ``/proc`` allows)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read by setting and restoring (not thread-safe, but brief)
    os.umask(mask)
    return mask


def temporary_sibling(path: Path) -> Path:
    """A new empty temporary file next to ``path`` (same folder, so the final rename is atomic).

    ``mkstemp`` creates the file with mode 0600; it is given the mode an ordinary ``open`` would give
    (0666 minus the umask), so results are readable by whoever the user's umask allows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp)


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; it replaces ``path`` when the block completes, else is deleted."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` (for writers that take a file name), then rename ``tmp_path`` onto ``path``."""
    with replacing(path) as tmp:
        write(tmp)
    return Path(path)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` when the block completes."""
    with replacing(path) as tmp, open(tmp, mode) as handle:
        yield handle
