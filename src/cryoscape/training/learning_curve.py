"""A run's learning curve: the mean losses of every epoch, from ``provenance.yaml`` or else ``run.log``.

``provenance.yaml`` (:mod:`cryoscape.training.provenance`) records each epoch's loss, reconstruction error and
(VAE) KL at full precision; runs trained before it existed, or whose provenance lacks the reconstruction error,
are read from the epoch lines of ``run.log`` (``epoch 3/20: loss 0.46, mse 0.46, kl 8.3, …``). Either way an
epoch logged twice (a resumed run repeats epochs after its last checkpoint) takes its last value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cryoscape.runs import RunDir
from cryoscape.training.provenance import read_provenance

CURVE_KEYS = ("epoch", "loss", "mse", "kl")
_EPOCH_LINE = re.compile(r"epoch (\d+)/\d+: loss ([-+0-9.eEinfa]+), mse ([-+0-9.eEinfa]+)(?:, kl ([-+0-9.eEinfa]+))?")


def _as_curve(rows: dict[int, tuple[float, float, float]]) -> dict[str, np.ndarray]:
    epochs = np.array(sorted(rows), dtype=np.int64)
    values = np.array([rows[e] for e in epochs], dtype=np.float64).reshape(-1, 3)
    return {"epoch": epochs, "loss": values[:, 0], "mse": values[:, 1], "kl": values[:, 2]}


def curve_from_provenance(run: RunDir) -> dict[str, np.ndarray]:
    """Per-epoch ``epoch``, ``loss``, ``mse``, ``kl`` arrays from ``provenance.yaml`` (empty arrays if it has none).

    Epochs without a reconstruction error are left out; ``kl`` is NaN for a homogeneous run.
    """
    rows: dict[int, tuple[float, float, float]] = {}
    for record in read_provenance(run):
        for entry in record.get("epochs") or []:
            try:
                rows[int(entry["epoch"])] = (float(entry["loss"]), float(entry["mse"]),
                                             float(entry.get("kl", np.nan)))
            except (KeyError, TypeError, ValueError):
                continue
    return _as_curve(rows)


def curve_from_log(log_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Per-epoch ``epoch``, ``loss``, ``mse`` and ``kl`` arrays from a ``run.log`` (empty arrays when missing)."""
    rows: dict[int, tuple[float, float, float]] = {}
    path = Path(log_path)
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            m = _EPOCH_LINE.search(line)
            if m:
                kl = float(m.group(4)) if m.group(4) else np.nan
                rows[int(m.group(1))] = (float(m.group(2)), float(m.group(3)), kl)
    return _as_curve(rows)


def read_learning_curve(run: RunDir | str | os.PathLike) -> dict[str, np.ndarray]:
    """The learning curve of a run: ``epoch`` (E,) int64 and ``loss``, ``mse``, ``kl`` (E,) float64 arrays.

    Parameters
    ----------
    run : the run (a :class:`RunDir` or its folder); a path to a log file reads that log only

    Returns
    -------
    dict of ndarray
        From ``provenance.yaml`` when it records any epoch with its reconstruction error, else from ``run.log``;
        empty arrays when neither has an epoch. ``kl`` is NaN for a homogeneous run.
    """
    if not isinstance(run, RunDir):
        path = Path(run)
        if path.is_file():
            return curve_from_log(path)
        run = RunDir(path)
    curve = curve_from_provenance(run)
    return curve if len(curve["epoch"]) else curve_from_log(run.log_path)
