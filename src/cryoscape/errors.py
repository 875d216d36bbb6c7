"""Errors a user can act on.

Every error raised for bad input is an :class:`InputError` whose message is one line that names the file, the
problem (with the offending value) and the fix. The command-line front end prints it as ``error: <message>`` and
exits with status 2, without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import os


class CryoscapeError(Exception):
    """Base class of the errors cryoscape reports to the user without a traceback."""


class InputError(CryoscapeError):
    """Bad or inconsistent input: a file, a value or a combination of options.

    Parameters
    ----------
    message
        What is wrong, with the offending value.
    path
        The file concerned, if any; it is put first in the message.
    fix
        What the user can do about it; appended to the message.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, fix: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        self.fix = fix
        text = message if self.path is None else f"{self.path}: {message}"
        if fix:
            text = f"{text} ({fix})"
        super().__init__(text)


class TrainingError(CryoscapeError):
    """Training cannot continue (e.g. a non-finite loss); the message says where and what was kept."""
