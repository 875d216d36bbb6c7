"""The run directory: every file name of a training run, and saving/loading its checkpoints and config.

Layout (``N`` = number of completed epochs, 1-based)::

    RUN/config.yaml          the TrainConfig (flag = field = key)
    RUN/run.log              the training log
    RUN/weights.N.pt         model + optimizer + RNG state + config (torch.load(weights_only=True))
    RUN/z.N.npz              latent means ``mean`` (n, zdim), log-variances ``logvar`` and original particle
                             ``indices`` (n,), rows in increasing original index
    RUN/reconstruct.N.mrc    homogeneous runs: the map after epoch N
    RUN/provenance.yaml      one record per training invocation: command line, versions, host, start time,
                             per-epoch wall time and loss (see ``cryoscape.training.provenance``)
    RUN/analyze.N/           analysis output of epoch N  (``RunDir.analysis``; named in ``cryoscape.runs.layout``)
    RUN/landscape.N/         analyze-landscape output     (``RunDir.landscape``)
    RUN/traversals.N/        trajectory commands' output  (``RunDir.traversals``)
    RUN/.lock                held (``fcntl.flock``) while a training writes the folder; holds "pid host"

Every file is written atomically (temporary file ``.NAME.XXXX.tmp`` in the same folder, then ``os.replace``);
a killed write leaves only such a temporary, which :meth:`RunDir.remove_stale_temporaries` deletes.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open, atomic_write
from cryoscape.runs.layout import (
    POSES_RE,
    AbinitLayout,
    AnalysisLayout,
    LandscapeLayout,
    SelectionsLayout,
    TraversalsLayout,
    analysis_dir_name,
    landscape_dir_name,
    traversals_dir_name,
)

CHECKPOINT_FORMAT = "cryoscape-checkpoint-1"

_WEIGHTS_RE = re.compile(r"^weights\.(\d+)\.pt$")
#: Files and analysis folders that belong to one training run; the group is the epoch, if any.
_RUN_FILE_RE = re.compile(
    r"^(?:config\.yaml|run\.log|provenance\.yaml|weights\.(\d+)\.pt|z\.(\d+)\.npz|reconstruct\.(\d+)\.mrc"
    r"|poses\.(\d+)\.npz"
    r"|analyze\.(\d+)|landscape\.(\d+)|traversals\.(\d+))$"
)
#: Temporary siblings written by ``cryoscape.io.atomic`` (``.NAME.XXXX.tmp``).
_TEMPORARY_RE = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")
LOCK_NAME = ".lock"

log = logging.getLogger("cryoscape.runs")


@dataclass(frozen=True)
class LatentFile:
    """Contents of ``z.N.npz``.

    Attributes
    ----------
    mean, logvar : ndarray, shape (n, zdim), float32
        Posterior mean and log-variance of every particle.
    indices : ndarray, shape (n,), int64
        0-based index of each row's particle in the original stack (increasing).
    """

    mean: np.ndarray
    logvar: np.ndarray
    indices: np.ndarray


class RunDir:
    """Names and contents of a run directory.

    Parameters
    ----------
    path : str or os.PathLike
        The run directory (need not exist yet).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- names ----------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.path / "run.log"

    def weights_path(self, epoch: int) -> Path:
        return self.path / f"weights.{int(epoch)}.pt"

    def z_path(self, epoch: int) -> Path:
        return self.path / f"z.{int(epoch)}.npz"

    def volume_path(self, epoch: int) -> Path:
        return self.path / f"reconstruct.{int(epoch)}.mrc"

    def poses_path(self, epoch: int) -> Path:
        """``poses.N.npz``: the poses refined by training (``--refine-poses``) after epoch N."""
        return self.path / f"poses.{int(epoch)}.npz"

    def pose_epochs(self) -> list[int]:
        """Epochs with a ``poses.N.npz`` of refined poses (increasing)."""
        if not self.path.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.path.iterdir() if (m := POSES_RE.match(p.name)))

    def analyze_dir(self, epoch: int) -> Path:
        return self.analysis(epoch).root

    def landscape_dir(self, epoch: int) -> Path:
        return self.landscape(epoch).root

    def analysis(self, epoch: int) -> AnalysisLayout:
        """``RUN/analyze.N``: what ``cryoscape analyze`` writes for epoch N."""
        return AnalysisLayout(self.path / analysis_dir_name(epoch))

    def landscape(self, epoch: int) -> LandscapeLayout:
        """``RUN/landscape.N``: what ``cryoscape analyze-landscape`` writes for epoch N."""
        return LandscapeLayout(self.path / landscape_dir_name(epoch))

    def traversals(self, epoch: int) -> TraversalsLayout:
        """``RUN/traversals.N``: the trajectory commands' folders for epoch N."""
        return TraversalsLayout(self.path / traversals_dir_name(epoch))

    @property
    def abinit(self) -> AbinitLayout:
        """``RUN/abinit``: the pose search of ``cryoscape abinit``."""
        return AbinitLayout(self.path / "abinit")

    @property
    def selections(self) -> SelectionsLayout:
        """``RUN/selections``: particle selections of this run."""
        return SelectionsLayout(self.path / "selections")

    @property
    def provenance_path(self) -> Path:
        return self.path / "provenance.yaml"

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    # --- discovery ------------------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        """Epochs with a checkpoint, increasing."""
        if not self.path.is_dir():
            return []
        found = [int(m.group(1)) for p in self.path.iterdir() if (m := _WEIGHTS_RE.match(p.name))]
        return sorted(found)

    def latest_epoch(self) -> int | None:
        """The last checkpointed epoch, or None."""
        found = self.epochs()
        return found[-1] if found else None

    #: Whether cryoscape may write this folder (False for a cryoDRGN run read as it is).
    writable = True

    def holds_cryodrgn_run(self) -> bool:
        """Whether the folder holds cryoDRGN checkpoints (``weights.N.pkl``): its files are cryoDRGN's."""
        return self.path.is_dir() and any(re.match(r"^weights\.\d+\.pkl$", p.name) for p in self.path.iterdir())

    def holds_run(self) -> bool:
        """Whether the folder already holds a training run (``config.yaml`` or a ``weights.N.pt``)."""
        return self.config_path.is_file() or bool(self.epochs())

    def held_files_text(self) -> str:
        """What the folder holds of a run, for messages: ``weights.1..3.pt`` (the checkpoints) or ``config.yaml``."""
        epochs = self.epochs()
        if not epochs:
            return self.config_path.name
        first, last = self.weights_path(epochs[0]).name, self.weights_path(epochs[-1]).name
        return first if first == last else f"{first.rsplit('.', 1)[0]}..{epochs[-1]}.{last.rsplit('.', 1)[1]}"

    def run_files(self, after_epoch: int | None = None) -> list[Path]:
        """The run's own files and its analysis folders (those of epochs > ``after_epoch`` when given)."""
        if not self.path.is_dir():
            return []
        found = []
        for p in sorted(self.path.iterdir()):
            m = _RUN_FILE_RE.match(p.name)
            if not m:
                continue
            epoch = next((int(g) for g in m.groups() if g is not None), None)
            if after_epoch is None or (epoch is not None and epoch > after_epoch):
                found.append(p)
        return found

    def remove_run_files(self, after_epoch: int | None = None) -> list[Path]:
        """Delete :meth:`run_files` (all, or those of epochs after ``after_epoch``); returns what was removed.

        Other files in the folder are left alone. A folder holding cryoDRGN checkpoints (``weights.N.pkl``) is
        refused: its ``config.yaml``, ``run.log`` and ``analyze.N`` are cryoDRGN's.
        """
        if self.holds_cryodrgn_run():
            raise InputError("the folder holds a cryoDRGN run (weights.N.pkl), whose files cryoscape never deletes",
                             path=self.path, fix="give another output folder")
        removed = self.run_files(after_epoch)
        for p in removed:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        return removed

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporaries of run files left by a killed atomic write (call while holding the lock)."""
        if not self.path.is_dir():
            return []
        stale = []
        for p in self.path.iterdir():
            m = _TEMPORARY_RE.match(p.name)
            if m and _RUN_FILE_RE.match(m.group("name")) and p.is_file():
                p.unlink(missing_ok=True)
                stale.append(p)
        return sorted(stale)

    def lock(self) -> RunLock:
        """The lock that keeps a second training out of this folder (a context manager)."""
        return RunLock(self.lock_path)

    def resolve_epoch(self, epoch: int | None) -> int:
        """``epoch`` if its checkpoint exists, the latest when None; InputError otherwise."""
        found = self.epochs()
        if not found:
            raise InputError(
                "no checkpoint weights.N.pt found",
                path=self.path,
                fix="give the output folder of cryoscape train-vae/train-nn/import-cryodrgn",
            )
        if epoch is None:
            return found[-1]
        if epoch == -1:
            return found[-1]
        if int(epoch) not in found:
            raise InputError(
                f"no checkpoint for epoch {epoch} (found {', '.join(map(str, found))})",
                path=self.path,
                fix="choose one of the saved epochs",
            )
        return int(epoch)

    # --- config ---------------------------------------------------------------------------------------------
    def save_config(self, config: Any) -> None:
        """Write ``config.yaml`` atomically from a (nested) config dataclass or a mapping."""
        values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        with atomic_open(self.config_path, "w") as handle:
            handle.write(yaml.safe_dump(values, sort_keys=False))

    def load_config_dict(self) -> dict[str, Any]:
        """``config.yaml`` as nested mappings (``training.config.read_run_config`` makes the TrainConfig)."""
        if not self.config_path.is_file():
            raise InputError(
                "config.yaml not found",
                path=self.path,
                fix="give the output folder of cryoscape train-vae/train-nn/import-cryodrgn",
            )
        try:
            values = yaml.safe_load(self.config_path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(
                f"cannot read the run configuration: {str(exc).splitlines()[0]}",
                path=self.config_path,
                fix="restore the config.yaml written by training",
            ) from None
        if not isinstance(values, dict):
            raise InputError("the run configuration is not a mapping", path=self.config_path)
        return values

    # --- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self, epoch: int, state: dict[str, Any]) -> Path:
        """Write ``weights.<epoch>.pt`` atomically; ``state`` holds tensors, numbers, strings, dicts, lists."""
        import torch

        path = self.weights_path(epoch)
        payload = dict(state)
        payload["format"] = CHECKPOINT_FORMAT
        payload["epoch"] = int(epoch)
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        return path

    def load_checkpoint(self, epoch: int | None = None, map_location: str = "cpu") -> dict[str, Any]:
        """Read ``weights.<epoch>.pt`` (the latest when None) with ``weights_only=True``."""
        return load_checkpoint_file(self.weights_path(self.resolve_epoch(epoch)), map_location=map_location)

    # --- latents --------------------------------------------------------------------------------------------
    def save_z(self, epoch: int, mean: np.ndarray, logvar: np.ndarray, indices: np.ndarray) -> Path:
        """Write ``z.<epoch>.npz`` atomically, rows sorted by original particle index."""
        return save_latents(self.z_path(epoch), mean, logvar, indices)

    def load_z(self, epoch: int | None = None) -> LatentFile:
        """Read ``z.<epoch>.npz`` (the latest checkpoint's when None)."""
        path = self.z_path(self.resolve_epoch(epoch))
        return load_z_file(path)


class RunLock:
    """Exclusive lock of a run folder: ``RUN/.lock`` held with ``fcntl.flock`` and holding "pid host".

    The kernel releases the lock when its process dies, so a lock file left by a killed training is taken over
    (with a warning naming the process recorded in it) by the next one; a lock held by a live process raises
    :class:`~cryoscape.errors.InputError` naming that process.

    Parameters
    ----------
    path : path
        The lock file (its folder must exist).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    log.warning("%s: this filesystem does not support locks; not guarding against a second "
                                "training in the folder", self.path.parent)
                    break
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = _read_holder(self.path)
                raise InputError(
                    f"another training ({holder or 'unknown process'}) is writing to this folder",
                    path=self.path.parent,
                    fix="wait for it to finish, or give another -o",
                ) from None
            # the file may have been unlinked by its previous holder between our open and flock: retry
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = os.read(fd, 4096).decode(errors="replace").strip()
        if previous and previous != _this_holder():
            log.warning("taking over the stale lock %s left by %s (no longer running)", self.path, previous)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (_this_holder() + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _this_holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def save_latents(
    path: str | os.PathLike,
    mean: np.ndarray,
    logvar: np.ndarray,
    indices: np.ndarray,
    **per_particle: np.ndarray,
) -> Path:
    """Write a latent file (``mean``, ``logvar``, ``indices`` and any other per-particle arrays) atomically.

    Rows are sorted by original particle index, whatever order they are given in.
    """
    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    arrays = {
        "mean": np.asarray(mean, dtype=np.float32)[order],
        "logvar": np.asarray(logvar, dtype=np.float32)[order],
        "indices": indices[order],
    }
    for name, values in per_particle.items():
        arrays[name] = np.asarray(values)[order]
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_z_file(path: str | os.PathLike) -> LatentFile:
    """Read a ``z.N.npz`` file written by :meth:`RunDir.save_z`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return LatentFile(
                mean=data["mean"], logvar=data["logvar"], indices=data["indices"].astype(np.int64)
            )
    except FileNotFoundError:
        raise InputError(
            "latent file not found", path=path, fix="run training with a checkpoint at this epoch"
        ) from None
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(
            f"not a cryoscape latent file ({exc})", path=path, fix="give a z.N.npz written by cryoscape"
        ) from None


def load_checkpoint_file(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` (no code can run)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path=path, fix="give a weights.N.pt written by cryoscape")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise InputError(
            f"cannot read the checkpoint ({type(exc).__name__}: {exc})".splitlines()[0],
            path=path,
            fix="give a weights.N.pt written by cryoscape",
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            "not a cryoscape checkpoint", path=path, fix="give a weights.N.pt written by cryoscape"
        )
    return state


def find_run(path: str | os.PathLike, cryodrgn_config: str | os.PathLike | None = None) -> tuple[RunDir, int | None]:
    """A run directory and an epoch from a run folder or a ``weights.N.pt`` path (epoch None for a folder).

    A cryoDRGN run folder, or one of its ``weights.N.pkl`` / ``z.N.pkl`` files (epoch N), gives a
    :class:`cryoscape.cryodrgn_run.CryoDRGNRunDir`, which reads the folder as it is; ``cryodrgn_config`` names
    its config when it is not the folder's ``config.yaml``.
    """
    from cryoscape.cryodrgn_run import find_cryodrgn_run

    p = Path(path)
    found = find_cryodrgn_run(p, config=cryodrgn_config)
    if found is not None:
        return found
    if cryodrgn_config is not None:
        raise InputError("a cryoDRGN config is given, but this is not a cryoDRGN run (no weights.N.pkl)", path=p,
                         fix="give a cryoDRGN weights.N.pkl with its config.yaml; a cryoscape run holds its own")
    if p.is_file():
        m = _WEIGHTS_RE.match(p.name)
        if not m:
            raise InputError("expected a run folder or a checkpoint (weights.N.pt; cryoDRGN: weights.N.pkl)",
                             path=p)
        return RunDir(p.parent), int(m.group(1))
    if p.is_dir():
        return RunDir(p), None
    raise InputError(
        "run folder or checkpoint not found",
        path=p,
        fix="give the output folder of cryoscape train-vae/train-nn/import-cryodrgn or of cryodrgn train_vae",
    )


def load_model(run: RunDir, epoch: int | None = None, device: str = "cpu"):
    """The trained model of ``run`` at ``epoch`` (latest when None), in eval mode.

    Returns
    -------
    (model, dict, int)
        The model (``build_model(ModelConfig, box_size)`` with the checkpoint's weights), the run
        configuration stored in the checkpoint (nested mappings; ``training.config.train_config_from_dict`` makes the
        TrainConfig) and the epoch loaded.
    """
    from cryoscape.models import ModelConfig, build_model

    epoch = run.resolve_epoch(epoch)
    path = run.weights_path(epoch)
    state = run.load_checkpoint(epoch, map_location=device)
    config = state.get("config")
    try:
        model_config = ModelConfig.from_dict(config["model"], path=str(path))
        box = int(config["data"]["box_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the checkpoint's configuration is unreadable ({exc})", path=path) from None
    model = build_model(model_config, box)
    model.load_state_dict(state["model"])
    model.to(device)
    model.eval()
    return model, config, epoch
