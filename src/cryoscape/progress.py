"""Progress bars for long work (tqdm on stderr; silent when ``CRYOSCAPE_NO_PROGRESS`` is set)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", leave: bool = True) -> Any:
    """A tqdm progress bar over ``iterable`` (or a manual bar when ``iterable`` is None)."""
    from tqdm.auto import tqdm

    disable = bool(os.environ.get("CRYOSCAPE_NO_PROGRESS"))
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, dynamic_ncols=True)
