"""Progress reporting for long work that keeps logs readable.

Three behaviours, chosen when a bar is made:

* stderr is a terminal: a tqdm bar (redrawn in place);
* stderr is a file or a pipe (a log file, a batch scheduler, ``nohup``): no bar; when the total is known, one
  plain line ``<desc>: 30% (300/1000 img)`` at every 10 % step, so a long job adds ~10 lines per loop instead
  of thousands of carriage-return redraws;
* disabled: nothing at all. Progress is disabled by :func:`set_enabled` ``(False)`` (the ``--no-progress``
  option of every ``cryoscape`` command), by the environment variable ``CRYOSCAPE_NO_PROGRESS`` (any value but
  empty or ``0``), and on every process but rank 0 of a ``torchrun`` job (environment ``RANK`` /
  ``LOCAL_RANK`` > 0), so a distributed run reports once.

The returned object behaves like a tqdm bar for what cryoscape uses: iteration, ``update(n)``,
``set_postfix(**values)``, ``close()`` and use as a context manager.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: Environment variable that turns progress reporting off (set it to any value but "" or "0").
ENV_NO_PROGRESS = "CRYOSCAPE_NO_PROGRESS"

#: Percent step of the plain lines written when stderr is not a terminal.
PLAIN_STEP_PERCENT = 10

_enabled: bool | None = None  # None: decided by the environment


def set_enabled(enabled: bool | None) -> None:
    """Turn progress reporting on or off for this process (``None`` goes back to the environment's choice)."""
    global _enabled
    _enabled = enabled


def is_secondary_rank() -> bool:
    """True on a ``torchrun`` worker other than rank 0 (environment ``RANK`` or ``LOCAL_RANK`` > 0)."""
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "").strip()
        if value.lstrip("-").isdigit() and int(value) > 0:
            return True
    return False


def progress_enabled() -> bool:
    """Whether progress is reported at all (see the module docstring)."""
    if is_secondary_rank():
        return False
    if _enabled is not None:
        return _enabled
    return os.environ.get(ENV_NO_PROGRESS, "").strip() in ("", "0")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced stream
        return False


class PlainProgress:
    """A progress counter that prints one plain line per ``PLAIN_STEP_PERCENT`` of ``total`` (none if unknown).

    Parameters
    ----------
    iterable
        What to iterate over (optional; without it call :meth:`update`).
    total
        Expected number of steps; ``len(iterable)`` when it has a length; None prints nothing.
    desc, unit
        Label and unit shown in the lines.
    stream
        Where lines go (default: ``sys.stderr`` at print time).
    silent
        Count but never print (the disabled mode).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", stream: TextIO | None = None, silent: bool = False):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = None if total is None or total <= 0 else int(total)
        self.desc = desc
        self.unit = unit
        self.n = 0
        self._stream = stream
        self._silent = silent
        self._next_step = PLAIN_STEP_PERCENT
        self._postfix = ""
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress counter has no iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps; print a line each time a 10 % step is crossed."""
        self.n += int(n)
        if self._silent or self.total is None:
            return
        percent = 100 * self.n // self.total
        if percent >= self._next_step:
            self._print(min(percent, 100))
            self._next_step = (percent // PLAIN_STEP_PERCENT + 1) * PLAIN_STEP_PERCENT

    def _print(self, percent: int) -> None:
        label = f"{self.desc}: " if self.desc else ""
        extra = f" {self._postfix}" if self._postfix else ""
        stream = self._stream if self._stream is not None else sys.stderr
        print(f"{label}{percent}% ({self.n}/{self.total} {self.unit}){extra}", file=stream, flush=True)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **values: Any) -> None:
        """Values appended to the next printed line (as tqdm's postfix)."""
        items = {**(ordered_dict or {}), **values}
        self._postfix = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def write(self, text: str) -> None:
        """Print ``text`` as its own line (unless silent)."""
        if not self._silent:
            print(text, file=self._stream if self._stream is not None else sys.stderr, flush=True)

    def refresh(self) -> None:
        """Nothing to redraw (tqdm compatibility)."""

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = True) -> Any:
    """Report progress over ``iterable`` (or a manual counter when ``iterable`` is None).

    Parameters
    ----------
    iterable
        Items to iterate over (yielded unchanged).
    total
        Number of steps (default ``len(iterable)`` when available).
    desc, unit
        Label and unit of the steps.
    leave
        Keep the finished bar on the terminal (tqdm only).

    Returns
    -------
    tqdm or PlainProgress
        A tqdm bar when stderr is a terminal and progress is enabled; otherwise a :class:`PlainProgress` that
        prints a line every 10 % (stderr not a terminal) or nothing (disabled).
    """
    if not progress_enabled():
        return PlainProgress(iterable, total=total, desc=desc, unit=unit, silent=True)
    if not _is_terminal(sys.stderr):
        return PlainProgress(iterable, total=total, desc=desc, unit=unit)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr)
