"""Tell a 3-D map (volume) from a stack of 2-D particle images, from the file name and the MRC header.

Rules, in order:

1. ``.mrcs`` is a stack (the RELION convention for image stacks);
2. a header space group ``ispg = 0`` marks a stack of images;
3. otherwise a cubic file (nx = ny = nz) is a volume (``ispg`` 1..230 is a volume; a map with a non-standard
   ``ispg`` is still a volume when it is a cube), and anything else is a stack (e.g. cryoSPARC writes particle
   stacks as ``.mrc`` with ``ispg = 1``: they are stacks because N differs from the box).

The rare ambiguous case, a ``.mrc`` holding exactly D images of D × D pixels without ``ispg = 0``, is taken
as a volume; commands that care offer ``--is-vol`` / ``--is-stack`` to say so explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryoscape.io.mrc import read_header

VOLUME = "volume"
STACK = "stack"


def mrc_kind(path: str | os.PathLike) -> str:
    """``"volume"`` or ``"stack"`` for an ``.mrc``/``.mrcs`` file (rules in the module docstring).

    Raises
    ------
    InputError
        Missing or unreadable MRC file.
    """
    path = Path(path)
    header = read_header(path)
    if path.suffix.lower() == ".mrcs" or header.is_image_stack:
        return STACK
    nz, ny, nx = header.shape
    return VOLUME if nx == ny == nz else STACK


def is_volume(path: str | os.PathLike) -> bool:
    """True when ``path`` is an MRC file holding one 3-D map (see :func:`mrc_kind`)."""
    return mrc_kind(path) == VOLUME
