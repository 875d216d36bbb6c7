"""cryoDRGN run folders read as cryoscape runs, and the conversion shared with ``cryoscape import-cryodrgn``.

A cryoDRGN ``train_vae`` / ``train_nn`` output folder holds ``config.yaml`` (or, from old versions,
``config.pkl``), checkpoints ``weights.N.pkl`` and, for a VAE, latents ``z.N.pkl`` (two pickles in one file: the
means, then the log-variances, rows in the order of the particles trained on). :class:`CryoDRGNRunDir` presents
such a folder through the interface of :class:`cryoscape.runs.RunDir`, and :func:`cryoscape.runs.find_run`
returns one for a cryoDRGN folder or for one of its ``weights.N.pkl`` / ``z.N.pkl`` files, so every command that
opens a run reads the folder as it is:

- **epochs** are the folder's own numbers: ``--epoch N`` reads ``weights.N.pkl`` and ``z.N.pkl`` and results go to
  ``analyze.N/``, as with ``cryodrgn analyze RUN N``. cryoDRGN 4 numbers epochs from 1 (``weights.2.pkl`` is the
  model after two epochs), earlier versions from 0.
- **checkpoints** are converted when read, by :func:`cryoscape.models.cryodrgn_compat.import_cryodrgn` (the code
  ``import-cryodrgn`` uses), into the checkpoint dictionary of a cryoscape run (``model``, ``config``, ``epoch``).
- **latents** come in increasing original particle index, mapped through the run's ``dataset_args.ind``.
- **data settings** are cryoDRGN's (see :func:`cryodrgn_train_config`); the pixel size, which cryoDRGN's config
  does not store, is read from the run's CTF pickle when it is found (:func:`pixel_size_from_config`).
- **nothing in the folder is written**: every saving method raises :class:`~cryoscape.errors.InputError`.
  Analysis results go to ``analyze.N/`` and ``landscape.N/`` as for cryoscape's own runs, unless such a folder
  already holds cryoDRGN's own results (it lacks cryoscape's ``analysis.json`` / ``landscape.json``): then to
  ``analyze.N.cryoscape/`` / ``landscape.N.cryoscape/``, so that no cryoDRGN file is replaced.

File paths in a cryoDRGN config (particles, poses, CTF, index file) are absolute as cryoDRGN writes them; a
relative or moved one is looked for, in this order, as given relative to the run folder, to the folder above it
(where ``cryodrgn train_vae ... -o RUN`` was started), by its bare name in the run folder, and relative to the
working directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoscape.errors import InputError
from cryoscape.runs import CHECKPOINT_FORMAT, AnalysisLayout, LandscapeLayout, LatentFile, RunDir

#: Learning rate recorded for a cryoDRGN run: cryoDRGN's default (its config.yaml does not store the rate).
CRYODRGN_LR = 1e-4

_WEIGHTS_PKL_RE = re.compile(r"^weights\.(\d+)\.pkl$")
_Z_PKL_RE = re.compile(r"^z\.(\d+)\.pkl$")
_CONFIG_NAMES = ("config.yaml", "config.pkl")


# --- reading cryoDRGN's files ------------------------------------------------------------------------------------
def read_cryodrgn_config(path: str | os.PathLike) -> dict:
    """A cryoDRGN config as a mapping (yaml, or a ``config.pkl`` read with the restricted unpickler)."""
    import yaml

    from cryoscape.io.legacy import load_pickle

    path = Path(path)
    if not path.is_file():
        raise InputError("cryoDRGN config not found", path=path, fix="give the run's config.yaml")
    if path.suffix.lower() == ".pkl":
        cfg = load_pickle(path)
    else:
        try:
            cfg = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InputError(f"not a readable yaml file ({str(exc).splitlines()[0]})", path=path) from None
    if not isinstance(cfg, dict) or "model_args" not in cfg or "lattice_args" not in cfg:
        raise InputError(
            "not a cryoDRGN config (no model_args/lattice_args)",
            path=path,
            fix="give the config.yaml written by cryodrgn train_vae/train_nn",
        )
    return cfg


def read_cryodrgn_weights(path: str | os.PathLike) -> dict:
    """A cryoDRGN checkpoint, read with ``torch.load(weights_only=True)`` (no code can run)."""
    import torch

    from cryoscape.models.cryodrgn_compat import cryodrgn_checkpoint_safe_globals

    path = Path(path)
    if not path.is_file():
        raise InputError("cryoDRGN weights not found", path=path, fix="give the run's weights.N.pkl")
    try:
        with torch.serialization.safe_globals(cryodrgn_checkpoint_safe_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            f"cannot read the checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            path=path,
            fix="give a cryoDRGN weights.N.pkl",
        ) from None
    if not isinstance(state, dict):
        raise InputError("not a cryoDRGN checkpoint", path=path)
    return state


def find_data_file(value: str, run_folder: str | os.PathLike) -> Path | None:
    """Where a file named in a cryoDRGN config is (see the module docstring for the order); None if nowhere."""
    given = Path(value)
    folder = Path(run_folder)
    if given.is_absolute():
        candidates = [given, folder / given.name]
    else:
        candidates = [folder / given, folder.parent / given, folder / given.name, given]
    return next((p for p in candidates if p.exists()), None)


def pixel_size_from_config(cfg: Mapping[str, Any], config_path: str | os.PathLike, box: int) -> float | None:
    """Pixel size (Å) of the model's box from the cryoDRGN run's CTF pickle (or an Apix entry); None if absent.

    The CTF pickle's pixel size is that of its own box (column 0); it is rescaled to ``box``.

    Raises
    ------
    InputError
        The CTF pickle holds several pixel sizes.
    """
    from cryoscape.io.legacy import read_ctf_pickle

    dataset_args = cfg.get("dataset_args") or {}
    for key in ("Apix", "apix", "pixel_size_angstrom"):
        value = dataset_args.get(key, cfg.get(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    ctf = dataset_args.get("ctf")
    if not isinstance(ctf, str) or not ctf:
        return None
    found = find_data_file(ctf, Path(config_path).parent)
    if found is None or not found.is_file():
        return None
    params = read_ctf_pickle(found, allow_overfocus=True)
    sizes = np.unique(np.asarray(params.pixel_size_angstrom, dtype=np.float64))
    if sizes.size != 1 or not sizes[0] > 0:
        raise InputError(f"the CTF pickle holds {sizes.size} pixel sizes", path=found, fix="give --apix")
    return float(sizes[0]) * params.box_size / box


def cryodrgn_major_version(cfg: Mapping[str, Any]) -> int | None:
    """The major version of the cryoDRGN that wrote ``cfg`` (its ``version`` entry), or None if not recorded."""
    version = cfg.get("version")
    m = re.match(r"\s*(\d+)", str(version)) if version is not None else None
    return int(m.group(1)) if m else None


def epochs_completed(cfg: Mapping[str, Any], checkpoint: Mapping[str, Any],
                     weights_path: str | os.PathLike | None = None) -> int:
    """How many epochs of training a cryoDRGN checkpoint holds: the epoch number of its imported cryoscape run.

    cryoDRGN 4 stores (and names files by) the epoch counted from 1, so ``weights.2.pkl`` gives 2; a config
    without a version ≥ 4 comes from a cryoDRGN that counted from 0 (``weights.49.pkl`` is the 50th epoch). The
    number is the checkpoint's ``epoch`` entry, else the ``N`` of ``weights.N.pkl``, else 1.
    """
    stored = checkpoint.get("epoch")
    if not isinstance(stored, int) or isinstance(stored, bool) or stored < 0:
        m = _WEIGHTS_PKL_RE.match(Path(weights_path).name) if weights_path is not None else None
        stored = int(m.group(1)) if m else None
    if stored is None:
        return 1
    major = cryodrgn_major_version(cfg)
    return max(int(stored), 1) if major is not None and major >= 4 else int(stored) + 1


def cryodrgn_train_config(cfg: Mapping[str, Any], imported: Any, run_folder: str | os.PathLike,
                          pixel_size_angstrom: float | None, poses: str | os.PathLike | None = None):
    """The :class:`~cryoscape.training.config.TrainConfig` of a cryoDRGN run.

    Parameters
    ----------
    cfg : mapping
        The cryoDRGN config.
    imported : cryoscape.models.cryodrgn_compat.CryoDRGNImport
        Its model, imported.
    run_folder : path
        The folder of the cryoDRGN run (file paths in ``cfg`` are looked for from there, see the module
        docstring); found files are recorded with absolute paths, others as ``cfg`` names them.
    pixel_size_angstrom : float or None
        Pixel size of the training images (Å), None when unknown.
    poses : path, optional
        Pose file replacing ``dataset_args.poses`` (a run with refined poses, ``pose.N.pkl``).

    Returns
    -------
    TrainConfig
        cryoDRGN's image preparation (``invert_data`` flipped: cryoDRGN's CTF has the opposite sign to RELION's,
        which cryoscape uses, so its default inversion is cryoscape's default of none), ``data_std`` = its
        ``norm[1]``, its seed, its default learning rate (the rate is not recorded) and the map radius that
        reproduces its maps.
    """
    from cryoscape.training.config import DataConfig, TrainConfig

    dataset_args = cfg.get("dataset_args") or {}

    def path(key: str) -> str | None:
        value = dataset_args.get(key)
        if not isinstance(value, str) or not value:
            return None
        found = find_data_file(value, run_folder)
        return str(found.resolve()) if found is not None else value

    data = DataConfig(
        particles=path("particles"),
        ctf=path("ctf"),
        poses=str(poses) if poses is not None else path("poses"),
        ind=path("ind"),
        datadir=path("datadir"),
        invert_data=not imported.invert_data,
        window=imported.window,
        window_r=imported.window_r,
        data_std=imported.data_std,
        box_size=imported.box_size,
        pixel_size_angstrom=pixel_size_angstrom,
    )
    seed = cfg.get("seed")
    return TrainConfig(
        model=imported.config,
        data=data,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        lr=CRYODRGN_LR,
        volume_radius_px=imported.volume_radius_px,
    )


# --- import-cryodrgn: a cryoDRGN model as a cryoscape run folder ------------------------------------------------
@dataclass(frozen=True)
class ImportedRun:
    """What :func:`import_cryodrgn_run` wrote: the run folder, the checkpoint, its epoch, the model's zdim and
    box, the pixel size and whether that came from the run's CTF file."""

    run: RunDir
    weights_path: Path
    epoch: int
    zdim: int
    box_size: int
    pixel_size_angstrom: float
    pixel_size_from_ctf: bool


def import_cryodrgn_run(config: str | os.PathLike, weights: str | os.PathLike, outdir: str | os.PathLike, *,
                        apix: float | None = None, epoch: int | None = None, overwrite: bool = False) -> ImportedRun:
    """Write a cryoscape run folder (``config.yaml``, ``weights.<epoch>.pt``, ``provenance.yaml``) holding the
    cryoDRGN model of ``config`` + ``weights``.

    ``apix`` (Å) defaults to the pixel size of the run's CTF pickle (:func:`pixel_size_from_config`); ``epoch``
    to the epochs the checkpoint was trained for (:func:`epochs_completed`). A folder already holding a run is
    refused unless ``overwrite`` (its run files are deleted first).

    Raises
    ------
    InputError
        For ``epoch`` < 1, ``apix`` ≤ 0, a folder holding a run, an unreadable config or checkpoint, a config
        value of the wrong type (naming the key), settings cryoscape cannot reproduce, or an unknown pixel size.
    """
    from cryoscape.configio import check_range
    from cryoscape.models.cryodrgn_compat import import_cryodrgn
    from cryoscape.training.config import to_dict
    from cryoscape.training.provenance import ProvenanceLog

    if epoch is not None and epoch < 1:
        raise InputError(f"--epoch must be at least 1, got {epoch}", fix="epochs are counted from 1")
    check_range(apix, "apix", minimum=0, exclusive_minimum=True)
    run_dir = RunDir(outdir)
    if run_dir.holds_run() and not overwrite:
        raise InputError("the folder already holds a run", path=run_dir.path,
                         fix="give another -o, or --overwrite to replace it")
    cfg = read_cryodrgn_config(config)
    state = read_cryodrgn_weights(weights)
    imported = import_cryodrgn(cfg, state, source=str(weights), config_source=str(config))
    from_ctf = apix is None
    if apix is None:
        apix = pixel_size_from_config(cfg, config, imported.box_size)
        if apix is None:
            ctf = (cfg.get("dataset_args") or {}).get("ctf")
            why = f"its CTF pickle {ctf} was not found" if ctf else "the run has no CTF file"
            raise InputError(f"the pixel size is unknown (cryoDRGN's config does not store it and {why})",
                             path=config, fix="give --apix (Å per pixel of the training images)")
    train_config = cryodrgn_train_config(cfg, imported, Path(config).parent, apix)
    epoch = int(epoch) if epoch is not None else epochs_completed(cfg, state, weights)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    with run_dir.lock():
        if overwrite:
            run_dir.remove_run_files()
        run_dir.save_config(train_config)
        run_dir.save_checkpoint(epoch, {"model": imported.model.state_dict(), "config": to_dict(train_config),
                                        "imported_from": str(Path(weights).resolve())})
        record = ProvenanceLog(run_dir, options={"config": str(Path(config).resolve()),
                                                 "weights": str(Path(weights).resolve()),
                                                 "epoch": epoch, "apix": apix}, start_epoch=epoch)
        record.finish("imported from cryoDRGN")
    return ImportedRun(run_dir, run_dir.weights_path(epoch), epoch, int(imported.config.zdim),
                       int(imported.box_size), float(apix), from_ctf)


# --- a cryoDRGN folder as a run directory ----------------------------------------------------------------------
def is_cryodrgn_run_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of cryoDRGN checkpoints (``weights.N.pkl``) and not a cryoscape run."""
    p = Path(path)
    if not p.is_dir() or RunDir(p).epochs():
        return False
    return any(_WEIGHTS_PKL_RE.match(child.name) for child in p.iterdir())


def find_cryodrgn_run(path: str | os.PathLike,
                      config: str | os.PathLike | None = None) -> tuple[CryoDRGNRunDir, int | None] | None:
    """The cryoDRGN run of a folder, or of one of its ``weights.N.pkl`` / ``z.N.pkl`` files (epoch N); else None.

    ``config`` names the run's config when it is not ``config.yaml`` / ``config.pkl`` in the folder (cryoDRGN's
    ``eval_vol WEIGHTS -c CONFIG``).
    """
    p = Path(path)
    if p.is_file():
        m = _WEIGHTS_PKL_RE.match(p.name) or _Z_PKL_RE.match(p.name)
        return (CryoDRGNRunDir(p.parent, config), int(m.group(1))) if m else None
    if is_cryodrgn_run_folder(p):
        return CryoDRGNRunDir(p, config), None
    return None


class CryoDRGNRunDir(RunDir):
    """A cryoDRGN run folder read as a cryoscape run directory (see the module docstring); never written.

    Parameters
    ----------
    path : path
        The folder holding ``weights.N.pkl`` (and ``z.N.pkl``).
    config : path, optional
        The run's cryoDRGN config (default ``config.yaml``, else ``config.pkl``, in the folder).
    """

    writable = False

    def __init__(self, path: str | os.PathLike, config: str | os.PathLike | None = None):
        super().__init__(path)
        if config is None:
            found = [self.path / name for name in _CONFIG_NAMES if (self.path / name).is_file()]
            config = found[0] if found else self.path / _CONFIG_NAMES[0]
        self._config_file = Path(config)
        self._cfg: dict | None = None
        self._pixel_size: tuple[float | None] | None = None
        self._checkpoint: tuple[int, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"CryoDRGNRunDir({str(self.path)!r})"

    # --- names ----------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self._config_file

    def weights_path(self, epoch: int) -> Path:
        return self.path / f"weights.{int(epoch)}.pkl"

    def z_path(self, epoch: int) -> Path:
        return self.path / f"z.{int(epoch)}.pkl"

    def analysis(self, epoch: int) -> AnalysisLayout:
        """``analyze.N``, or ``analyze.N.cryoscape`` where cryoDRGN's own analysis fills ``analyze.N``."""
        return AnalysisLayout(self._output_dir(super().analysis(epoch).root, lambda p: AnalysisLayout(p).summary))

    def landscape(self, epoch: int) -> LandscapeLayout:
        """``landscape.N``, or ``landscape.N.cryoscape`` where cryoDRGN's own landscape fills ``landscape.N``."""
        return LandscapeLayout(self._output_dir(super().landscape(epoch).root,
                                                lambda p: LandscapeLayout(p).summary))

    @staticmethod
    def _output_dir(plain: Path, marker) -> Path:
        """``plain`` unless it holds cryoDRGN's results (files but no cryoscape summary ``marker(plain)``):
        then ``plain.cryoscape`` beside it."""
        if plain.is_dir() and not marker(plain).is_file() and any(plain.iterdir()):
            return plain.with_name(plain.name + ".cryoscape")
        return plain

    # --- discovery ------------------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        """Epoch numbers N of the folder's ``weights.N.pkl``, increasing."""
        if not self.path.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.path.iterdir() if (m := _WEIGHTS_PKL_RE.match(p.name)))

    def holds_run(self) -> bool:
        return True

    def run_files(self, after_epoch: int | None = None) -> list[Path]:
        """None: no file of a cryoDRGN folder is cryoscape's to replace."""
        return []

    # --- reading --------------------------------------------------------------------------------------------
    def cryodrgn_config(self) -> dict:
        """The cryoDRGN config as written (read once)."""
        if self._cfg is None:
            if not self._config_file.is_file():
                raise InputError("the cryoDRGN run's config.yaml was not found", path=self.path,
                                 fix="give the cryoDRGN run folder that holds config.yaml (eval-vol: -c CONFIG)")
            self._cfg = read_cryodrgn_config(self._config_file)
        return self._cfg

    def pixel_size_angstrom(self, box: int) -> float | None:
        """Pixel size (Å) of the run's images from its CTF pickle, None when unknown (read once)."""
        if self._pixel_size is None:
            try:
                value = pixel_size_from_config(self.cryodrgn_config(), self._config_file, box)
            except InputError:  # several pixel sizes: unknown here (commands take --apix)
                value = None
            self._pixel_size = (value,)
        return self._pixel_size[0]

    def load_checkpoint(self, epoch: int | None = None, map_location: str = "cpu") -> dict[str, Any]:
        """``weights.<epoch>.pkl`` (the latest when None) converted into a cryoscape checkpoint dictionary.

        Returns
        -------
        dict
            ``format``, ``epoch`` (the folder's number), ``model`` (state dict of the equivalent cryoscape
            model), ``config`` (the TrainConfig as nested mappings) and ``imported_from`` (the weights file).
        """
        from cryoscape.models.cryodrgn_compat import import_cryodrgn
        from cryoscape.training.config import to_dict

        epoch = self.resolve_epoch(epoch)
        if self._checkpoint is None or self._checkpoint[0] != epoch:
            cfg = self.cryodrgn_config()
            weights = self.weights_path(epoch)
            imported = import_cryodrgn(cfg, read_cryodrgn_weights(weights), source=str(weights),
                                       config_source=str(self._config_file))
            dataset_args = cfg.get("dataset_args") or {}
            refined = self.path / f"pose.{epoch}.pkl"
            poses = refined if dataset_args.get("do_pose_sgd") and refined.is_file() else None
            config = cryodrgn_train_config(cfg, imported, self.path,
                                           self.pixel_size_angstrom(imported.box_size), poses=poses)
            state = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "model": imported.model.state_dict(),
                     "config": to_dict(config), "imported_from": str(weights.resolve())}
            self._checkpoint = (epoch, state)
        state = self._checkpoint[1]
        if map_location != "cpu":
            state = {**state, "model": {k: v.to(map_location) for k, v in state["model"].items()}}
        return state

    def load_config_dict(self) -> dict[str, Any]:
        """The run's TrainConfig as nested mappings (from the latest checkpoint)."""
        return self.load_checkpoint(None)["config"]

    def particle_indices(self, count: int) -> np.ndarray:
        """0-based original particle index of each of the ``count`` particles cryoDRGN trained on (its order)."""
        from cryoscape.io.legacy import read_index

        ind = (self.cryodrgn_config().get("dataset_args") or {}).get("ind")
        if not ind:
            return np.arange(count, dtype=np.int64)
        found = find_data_file(str(ind), self.path)
        if found is None:
            raise InputError(f"the run was trained on the particles of the index file {ind}, which was not found",
                             path=self.config_path,
                             fix="put the index file back where the config names it (or in the run folder)")
        indices = read_index(found)
        if len(indices) != count:
            raise InputError(f"the index file holds {len(indices)} particles but the latents {count}", path=found,
                             fix="give the index file the run was trained with")
        if len(np.unique(indices)) != len(indices):
            raise InputError("the index file repeats particles", path=found,
                             fix="give the index file the run was trained with")
        return indices

    def load_z(self, epoch: int | None = None) -> LatentFile:
        """``z.<epoch>.pkl`` (the latest checkpoint's when None), rows in increasing original particle index."""
        from cryoscape.io.legacy import read_latent_pickle

        path = self.z_path(self.resolve_epoch(epoch))
        if not path.is_file():
            raise InputError("latent file not found", path=path,
                             fix="cryoDRGN train_vae writes z.N.pkl beside weights.N.pkl; train_nn has no latents")
        mean, logvar = read_latent_pickle(path)
        indices = self.particle_indices(len(mean))
        order = np.argsort(indices, kind="stable")
        return LatentFile(mean=mean[order], logvar=logvar[order], indices=indices[order])

    # --- never written --------------------------------------------------------------------------------------
    def _read_only(self, *args: Any, **kwargs: Any):
        raise InputError("a cryoDRGN run folder is read as it is and never written", path=self.path,
                         fix="to train it further, import it: cryoscape import-cryodrgn CONFIG WEIGHTS -o NEW_FOLDER")

    save_config = save_checkpoint = save_z = remove_run_files = remove_stale_temporaries = lock = _read_only
