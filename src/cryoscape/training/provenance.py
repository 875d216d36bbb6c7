"""``RUN/provenance.yaml``: who trained a run, with what, where, when, and how long each epoch took.

The file is a yaml list with one record per training invocation (the first run and every resume), rewritten
atomically after every epoch::

    - command: [cryoscape, train-vae, particles.star, -n, '20', -o, run]   # the process's argv
      options: {num_epochs: 20, zdim: 8}        # the options given explicitly (resumes: the changes asked)
      cwd: /home/me/project
      host: node12
      pid: 4242
      cryoscape_version: 0.3.0
      torch_version: 2.5.1
      python_version: 3.12.3
      start_time: '2026-11-25T23:40:01+00:00'   # ISO 8601, UTC
      resumed_from: null                          # or the checkpoint continued from
      start_epoch: 0                              # epochs done before this invocation
      epochs:
      - {epoch: 1, seconds: 12.3, loss: 1.07, end_time: '...'}
      end_time: '...'                             # absent while running or after a kill
      status: finished                            # running | finished | stopped: <reason>

Records of earlier invocations are kept as they are, so a killed invocation stays visible (status
``running`` without an ``end_time``).
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import yaml

from cryoscape.io.atomic import atomic_open
from cryoscape.runs import RunDir

log = logging.getLogger("cryoscape.training")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """A yaml-safe copy of ``value`` (tuples to lists, paths and other objects to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def read_provenance(run: RunDir) -> list[dict[str, Any]]:
    """The invocation records of ``run`` (empty when the run has no provenance file or it is unreadable)."""
    try:
        records = yaml.safe_load(run.provenance_path.read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


class ProvenanceLog:
    """Appends this invocation's record to ``RUN/provenance.yaml`` and keeps it up to date.

    Parameters
    ----------
    run : RunDir
    command : sequence of str, optional
        The command line (default ``sys.argv``).
    options : mapping, optional
        The options given explicitly.
    resumed_from : str, optional
        The checkpoint continued from.
    start_epoch : int
        Epochs completed before this invocation.

    A failure to write the file (e.g. a full disk) is logged as a warning and training continues; the
    checkpoint writes report such a disk themselves.
    """

    def __init__(
        self,
        run: RunDir,
        *,
        command: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        resumed_from: str | None = None,
        start_epoch: int = 0,
    ):
        import torch

        from cryoscape import __version__

        self.run = run
        self._earlier = read_provenance(run)
        self.record: dict[str, Any] = {
            "command": [str(a) for a in (sys.argv if command is None else command)],
            "options": _plain(dict(options or {})),
            "cwd": os.getcwd(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cryoscape_version": str(__version__),
            "torch_version": str(torch.__version__),
            "python_version": platform.python_version(),
            "start_time": _now(),
            "resumed_from": resumed_from,
            "start_epoch": int(start_epoch),
            "epochs": [],
            "status": "running",
        }
        self._write()

    def epoch_done(self, epoch: int, seconds: float, loss: float, **extra: float) -> None:
        """Record the wall time (s) and mean loss of ``epoch`` (1-based)."""
        entry = {"epoch": int(epoch), "seconds": round(float(seconds), 3), "loss": float(loss)}
        entry.update({k: float(v) for k, v in extra.items()})
        entry["end_time"] = _now()
        self.record["epochs"].append(entry)
        self._write()

    def finish(self, status: str = "finished") -> None:
        """Close the record with ``status`` (``finished`` or ``stopped: <reason>``) and the end time."""
        self.record["status"] = status
        self.record["end_time"] = _now()
        self._write()

    def _write(self) -> None:
        try:
            with atomic_open(self.run.provenance_path, "w") as handle:
                handle.write(yaml.safe_dump([*self._earlier, self.record], sort_keys=False))
        except OSError as exc:
            log.warning("could not update %s (%s)", self.run.provenance_path, exc)
