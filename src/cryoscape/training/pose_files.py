"""Pose files of a run: ``poses.N.npz`` written by ``cryoscape abinit`` (``RUN/abinit/``) and by training with
``--refine-poses`` (``RUN/``), read by ``write-star/write-cs --poses-from``.

Each file holds ``rotations`` (n, 3, 3) RELION matrices, ``euler_deg`` (n, 3) RELION (rot, tilt, psi),
``shifts_px`` (n, 2) and ``shifts_angstrom`` (n, 2) (RELION's sign), ``scores`` (n,) (the search's score; NaN for
refined poses), ``indices`` (n,) original particle indices, ``box_size``, ``pixel_size_angstrom`` and ``k_max_px``
(the frequency radius the poses were fitted to).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryoscape.errors import InputError
from cryoscape.geometry.rotations import matrix_to_euler
from cryoscape.io.atomic import atomic_open
from cryoscape.io.records import Poses
from cryoscape.runs import RunDir


@dataclass(frozen=True)
class PoseFile:
    """Contents of a ``poses.N.npz`` (module docstring)."""

    rotations: np.ndarray
    shifts_px: np.ndarray
    scores: np.ndarray
    indices: np.ndarray
    box_size: int
    pixel_size_angstrom: float
    epoch: int

    @property
    def shifts_angstrom(self) -> np.ndarray:
        return self.shifts_px * self.pixel_size_angstrom

    def poses(self) -> Poses:
        return Poses(self.rotations, self.shifts_px, self.box_size)


def save_pose_file(path: Path, poses: Poses, scores: np.ndarray | None, indices: np.ndarray,
                   pixel_size_angstrom: float, k_max_px: float) -> None:
    """Write ``poses.N.npz`` atomically (module docstring); ``scores`` None writes NaN."""
    if scores is None:
        scores = np.full(len(poses), np.nan)
    arrays = {
        "rotations": poses.rotations, "euler_deg": np.degrees(matrix_to_euler(poses.rotations)),
        "shifts_px": poses.shifts_px, "shifts_angstrom": poses.shifts_px * pixel_size_angstrom,
        "scores": np.asarray(scores, dtype=np.float64), "indices": np.asarray(indices, dtype=np.int64),
        "box_size": np.int64(poses.box_size), "pixel_size_angstrom": np.float64(pixel_size_angstrom),
        "k_max_px": np.float64(k_max_px),
    }
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_pose_file(path: str | os.PathLike, epoch: int = -1) -> PoseFile:
    """Read a ``poses.N.npz`` written by :func:`save_pose_file`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return PoseFile(rotations=data["rotations"], shifts_px=data["shifts_px"], scores=data["scores"],
                            indices=data["indices"].astype(np.int64), box_size=int(data["box_size"]),
                            pixel_size_angstrom=float(data["pixel_size_angstrom"]), epoch=int(epoch))
    except FileNotFoundError:
        raise InputError("pose file not found", path=path,
                         fix="give a run folder of cryoscape abinit or of training with --refine-poses") from None
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"not a cryoscape pose file ({exc})", path=path) from None


def load_run_poses(run_path: str | os.PathLike, epoch: int | None = None) -> PoseFile:
    """The poses of a run folder at ``epoch`` (the latest when None or -1).

    The poses refined by training (``RUN/poses.N.npz``, N a training epoch) when the run has them, else those of
    ``cryoscape abinit`` (``RUN/abinit/poses.N.npz``, N a search epoch).
    """
    run = RunDir(run_path)
    found, path_of, where = run.pose_epochs(), run.poses_path, run.path
    if not found:
        found, path_of, where = run.abinit.pose_epochs(), run.abinit.poses, run.abinit.root
    if not found:
        raise InputError("no poses.N.npz found", path=run.path,
                         fix="give the output folder of cryoscape abinit, or of train-vae/train-nn --refine-poses")
    if epoch is None or int(epoch) == -1:
        epoch = found[-1]
    if int(epoch) not in found:
        raise InputError(f"no poses for epoch {epoch} (found {', '.join(map(str, found))})", path=where)
    return load_pose_file(path_of(int(epoch)), int(epoch))
