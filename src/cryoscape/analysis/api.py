"""The Python API of a trained run: latents in original particle order, maps at any z, per-particle metadata.

Every analysis command is a thin wrapper over this module and :mod:`cryoscape.analysis.latent`::

    from cryoscape.analysis.api import TrainedRun
    run = TrainedRun.open("run/")              # the latest epoch; TrainedRun.open("run/", epoch=20)
    z = run.z                                   # (N, zdim) posterior means, row i = particle run.indices[i]
    vols = run.volumes(z[:4])                   # (4, D, D, D) float32 maps
    run.write_volumes(z[:4], "maps/")           # maps/vol_001.mrc ... with the voxel size in the header
    table = run.particle_table()                # defocus, Euler angles, shifts + the star/cs columns, row-aligned

Indices are 0-based positions in the *original* particle file the run was trained on (through any ``--ind``
subset); file names of map series are 1-based (``vol_001.mrc`` is the first point), as every command writes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cryoscape.errors import InputError
from cryoscape.runs.layout import AnalysisLayout, LandscapeLayout, series_names

if TYPE_CHECKING:
    from cryoscape.runs import RunDir
    from cryoscape.training.config import TrainConfig


@dataclass(frozen=True)
class MapSeriesFiles:
    """Files of a written map series.

    Attributes
    ----------
    maps : list of Path
        ``<prefix>001.mrc`` … in the order of the latent points.
    z_path : Path
        The latent points, one row per map (text).
    voxel_size_angstrom : float
    """

    maps: list[Path]
    z_path: Path
    voxel_size_angstrom: float


def resolve_run_path(value: str | None, run_path: Path) -> Path | None:
    """A file path stored in a run's config: as given when it exists, else relative to the run folder."""
    if value is None:
        return None
    p = Path(value)
    if p.is_absolute() or p.exists():
        return p
    candidate = run_path / p
    return candidate if candidate.exists() else p


class TrainedRun:
    """A trained run (``train-vae``/``train-nn``/``import-cryodrgn`` output, or a cryoDRGN run folder read as it
    is: ``cryoscape.cryodrgn_run``) at one epoch.

    Use :meth:`open`. The model is loaded on first use (map generation); latents and metadata need no model.

    Attributes
    ----------
    path : Path
        The run folder.
    epoch : int
        The checkpoint epoch (1-based).
    config : cryoscape.training.config.TrainConfig
        The configuration stored in the checkpoint.
    """

    def __init__(self, run_dir: RunDir, epoch: int, config: TrainConfig, device: str = "auto",
                 pixel_size_angstrom: float | None = None):
        self._pixel_size_override = None if pixel_size_angstrom is None else float(pixel_size_angstrom)
        self._run = run_dir
        self.path = Path(run_dir.path)
        self.epoch = int(epoch)
        self.config = config
        self._device_name = device
        self._model = None
        self._device = None
        self._latents = None
        self._table = None

    # --- construction ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, epoch: int | None = None, device: str = "auto",
             pixel_size_angstrom: float | None = None) -> TrainedRun:
        """Open a run folder (or one of its ``weights.N.pt``) at ``epoch`` (the latest when None or -1).

        A cryoDRGN run folder (or its ``weights.N.pkl`` / ``z.N.pkl``) is read as it is, at the folder's own
        epoch numbers (see :func:`cryoscape.runs.find_run`). ``pixel_size_angstrom`` replaces the run's pixel size
        (for imported runs that have none); maps are written with the voxel size derived from it.
        """
        from cryoscape.runs import find_run
        from cryoscape.training.config import config_from_checkpoint

        run_dir, file_epoch = find_run(path)
        epoch = run_dir.resolve_epoch(epoch if epoch is not None else file_epoch)
        weights = run_dir.weights_path(epoch)
        state = run_dir.load_checkpoint(epoch)
        config = config_from_checkpoint(state, weights)
        if pixel_size_angstrom is not None and not pixel_size_angstrom > 0:
            raise InputError(f"the pixel size must be positive, got {pixel_size_angstrom}", path=path)
        return cls(run_dir, epoch, config, device=device, pixel_size_angstrom=pixel_size_angstrom)

    def __repr__(self) -> str:
        return f"TrainedRun({str(self.path)!r}, epoch={self.epoch})"

    # --- properties -----------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> RunDir:
        """The :class:`cryoscape.runs.RunDir`."""
        return self._run

    @property
    def zdim(self) -> int:
        return int(self.config.model.zdim)

    @property
    def box_size(self) -> int:
        return int(self.config.data.box_size)

    @property
    def pixel_size_angstrom(self) -> float | None:
        """Pixel size (Å) of the training images: the override given to :meth:`open`, else the run's."""
        if self._pixel_size_override is not None:
            return self._pixel_size_override
        value = self.config.data.pixel_size_angstrom
        return None if value is None else float(value)

    @property
    def analyze_dir(self) -> Path:
        """``RUN/analyze.<epoch>``: the default output folder of ``cryoscape analyze``."""
        return self._run.analyze_dir(self.epoch)

    @property
    def landscape_dir(self) -> Path:
        """``RUN/landscape.<epoch>``: the default output folder of ``cryoscape analyze-landscape``."""
        return self._run.landscape_dir(self.epoch)

    @property
    def analysis(self) -> AnalysisLayout:
        """The files of ``cryoscape analyze`` in :attr:`analyze_dir`."""
        return AnalysisLayout(self.analyze_dir)

    @property
    def landscape(self) -> LandscapeLayout:
        """The files of ``cryoscape analyze-landscape`` in :attr:`landscape_dir`."""
        return LandscapeLayout(self.landscape_dir)

    # --- latents --------------------------------------------------------------------------------------------
    def _load_latents(self):
        if self._latents is None:
            if self.zdim == 0:
                raise InputError("this run is homogeneous (zdim 0): it has no latent space", path=self.path,
                                 fix="analyse a run of cryoscape train-vae")
            self._latents = self._run.load_z(self.epoch)
        return self._latents

    @property
    def z(self) -> np.ndarray:
        """Posterior means (N, zdim) float32; row i belongs to original particle ``indices[i]``."""
        return self._load_latents().mean

    @property
    def logvar(self) -> np.ndarray:
        """Posterior log-variances (N, zdim) float32, rows as :attr:`z`."""
        return self._load_latents().logvar

    @property
    def indices(self) -> np.ndarray:
        """0-based original particle index of each row of :attr:`z` (N,), increasing."""
        return self._load_latents().indices

    def rows_of(self, original_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row positions in :attr:`z` of the given original particle indices; InputError for any not trained on."""
        original = np.asarray(original_indices, dtype=np.int64).ravel()
        rows = np.searchsorted(self.indices, original)
        rows = np.clip(rows, 0, len(self.indices) - 1)
        missing = self.indices[rows] != original
        if missing.any():
            bad = original[missing][:5].tolist()
            raise InputError(f"{int(missing.sum())} particle index(es) were not part of this run (e.g. {bad})",
                             path=self.path, fix="give 0-based indices into the original particle file that the "
                             "run was trained on")
        return rows

    # --- maps -----------------------------------------------------------------------------------------------
    @property
    def model(self):
        """The trained model (loaded on first use, eval mode)."""
        if self._model is None:
            from cryoscape.runs import load_model
            from cryoscape.training.distributed import choose_device

            self._device = choose_device(self._device_name)
            self._model, _, _ = load_model(self._run, self.epoch, device=str(self._device))
        return self._model

    def voxel_size_angstrom(self, box_size: int | None = None) -> float | None:
        """Voxel size of maps of ``box_size`` (the training box when None): pixel size × D / D'."""
        if self.pixel_size_angstrom is None:
            return None
        out = self.box_size if box_size is None else int(box_size)
        return self.pixel_size_angstrom * self.box_size / out

    def _check_box(self, box_size: int | None) -> int:
        out = self.box_size if box_size is None else int(box_size)
        if out % 2 or out < 2 or out > self.box_size:
            raise InputError(f"map box {out} must be even and at most the training box {self.box_size}",
                             path=self.path, fix="choose an even box ≤ the training box")
        return out

    def iter_volumes(self, z: np.ndarray | None, box_size: int | None = None, batch_size: int = 8,
                     amp: bool | None = None) -> Iterator[np.ndarray]:
        """Maps at latent points ``z`` (n, zdim), one (D', D', D') float32 array at a time, decoded in batches.

        Uses the decoder's inference path (positional encoding once per batch, Hermitian half, inside the map
        radius of the run). ``z`` is None for a homogeneous run (one map). Memory is bounded by ``batch_size``
        maps, whatever n is.
        """
        import torch

        from cryoscape.models.precision import amp_helps

        out_box = self._check_box(box_size)
        model = self.model
        if self.zdim == 0:
            batches = [None]
        else:
            z = np.asarray(z, dtype=np.float32)
            if z.ndim == 1:
                z = z[None, :]
            if z.ndim != 2 or z.shape[1] != self.zdim:
                raise InputError(f"latent points have shape {z.shape} but the model has zdim {self.zdim}",
                                 path=self.path, fix=f"give {self.zdim} values per point")
            if not np.all(np.isfinite(z)):
                raise InputError("latent points contain NaN or inf", path=self.path)
            step = max(1, int(batch_size))
            batches = [z[i:i + step] for i in range(0, len(z), step)]
        use_amp = amp_helps(self._device) if amp is None else bool(amp)
        scale = float(self.config.data.data_std or 1.0)
        for zb in batches:
            zt = None if zb is None else torch.from_numpy(np.ascontiguousarray(zb)).to(self._device)
            vols = model.decoder.eval_volumes(zt, box_size=out_box, radius_px=self.config.volume_radius_px,
                                              scale=scale, amp=use_amp).cpu().numpy()
            yield from vols

    def volumes(self, z: np.ndarray | None, box_size: int | None = None, batch_size: int = 8,
                amp: bool | None = None) -> np.ndarray:
        """Maps at latent points ``z`` (n, zdim) as one array (n, D', D', D') float32 (keep n small)."""
        return np.stack(list(self.iter_volumes(z, box_size=box_size, batch_size=batch_size, amp=amp)))

    def write_volumes(self, z: np.ndarray, out_dir: str | os.PathLike, prefix: str = "vol_",
                      box_size: int | None = None, batch_size: int = 8, amp: bool | None = None,
                      flip: bool = False, invert: bool = False, show_progress: bool = False) -> MapSeriesFiles:
        """Write maps at latent points ``z`` (n, zdim) to ``out_dir/<prefix>001.mrc`` … and ``z_values.txt``.

        Maps are float32 .mrc with the voxel size in the header (pixel size × D/D'); ``flip`` mirrors them
        (reverses the z axis), ``invert`` multiplies by -1. Written one at a time, atomically.
        """
        from cryoscape.io.atomic import atomic_open
        from cryoscape.io.mrc import write_mrc
        from cryoscape.progress import progress
        from cryoscape.runs.layout import SeriesLayout

        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        out_box = self._check_box(box_size)
        voxel = self.voxel_size_angstrom(out_box)
        if voxel is None:
            raise InputError("the run has no pixel size", path=self.path,
                             fix="give --Apix (Å per pixel of the training images)")
        paths = [out / name for name in series_names(len(z), prefix)]
        vols = self.iter_volumes(z, box_size=out_box, batch_size=batch_size, amp=amp)
        if show_progress:
            vols = progress(vols, total=len(z), desc="maps", unit="map")
        for path, vol in zip(paths, vols):
            if flip:
                vol = vol[::-1]
            if invert:
                vol = -vol
            write_mrc(path, np.ascontiguousarray(vol, dtype=np.float32), voxel_size_angstrom=voxel)
        z_path = SeriesLayout(out).z_values
        with atomic_open(z_path, "w") as handle:
            np.savetxt(handle, z, fmt="%.6g")
        return MapSeriesFiles(maps=paths, z_path=z_path, voxel_size_angstrom=voxel)

    # --- per-particle metadata -----------------------------------------------------------------------------
    @property
    def particles_path(self) -> Path | None:
        """The particle file the run was trained on (resolved against the run folder when relative)."""
        return resolve_run_path(self.config.data.particles, self.path)

    def particle_table(self) -> Any:
        """Per-particle metadata as a pandas DataFrame, row i aligned with ``z[i]``.

        Columns: ``index`` (original 0-based index); from the run's CTF and poses where available,
        ``defocus_angstrom`` (mean of U and V), ``defocus_u_angstrom``, ``defocus_v_angstrom``, ``rot_deg``,
        ``tilt_deg``, ``psi_deg``, ``shift_x_px``, ``shift_y_px``; and every scalar column of the original
        RELION star (e.g. ``rlnClassNumber``) or cryoSPARC .cs (e.g. ``alignments3D/class``) file.
        """
        if self._table is None:
            self._table = _particle_table(self, self.indices)
        return self._table


def _particle_table(run: TrainedRun, indices: np.ndarray):
    import pandas as pd

    table = pd.DataFrame({"index": indices})
    data = run.config.data
    source = run.particles_path
    pose_src = resolve_run_path(data.poses, run.path) or source
    ctf_src = resolve_run_path(data.ctf, run.path) or source
    _add_ctf_columns(table, ctf_src, indices, run.box_size)
    _add_pose_columns(table, pose_src, indices, run.box_size)
    if source is not None and source.is_file():
        try:
            extra = _file_columns(source)
        except InputError:
            extra = None
        if extra is not None and len(extra) > int(indices.max(initial=-1)):
            extra = extra.iloc[indices].reset_index(drop=True)
            for name in extra.columns:
                if name not in table.columns:
                    table[name] = extra[name].to_numpy()
    return table


def _add_ctf_columns(table, path: Path | None, indices: np.ndarray, box: int) -> None:
    from cryoscape.io.metadata import read_ctf

    if path is None or not path.is_file() or path.suffix.lower() not in {".star", ".cs", ".pkl"}:
        return
    try:
        ctf = read_ctf(path, box_size=box)
    except InputError:
        return
    if len(ctf.defocus_u_angstrom) <= int(indices.max(initial=-1)):
        return
    du = np.asarray(ctf.defocus_u_angstrom)[indices]
    dv = np.asarray(ctf.defocus_v_angstrom)[indices]
    table["defocus_angstrom"] = 0.5 * (du + dv)
    table["defocus_u_angstrom"] = du
    table["defocus_v_angstrom"] = dv


def _add_pose_columns(table, path: Path | None, indices: np.ndarray, box: int) -> None:
    from cryoscape.geometry.rotations import matrix_to_euler
    from cryoscape.io.metadata import read_poses

    if path is None or not path.is_file() or path.suffix.lower() not in {".star", ".cs", ".pkl"}:
        return
    try:
        poses = read_poses(path, box_size=box)
    except InputError:
        return
    if len(poses.rotations) <= int(indices.max(initial=-1)):
        return
    euler = np.degrees(matrix_to_euler(np.asarray(poses.rotations)[indices]))
    for j, name in enumerate(("rot_deg", "tilt_deg", "psi_deg")):
        table[name] = euler[:, j]
    shifts = np.asarray(poses.shifts_px)[indices]
    table["shift_x_px"] = shifts[:, 0]
    table["shift_y_px"] = shifts[:, 1]


def _file_columns(path: Path):
    """Scalar per-particle columns of a RELION star or cryoSPARC .cs file as a DataFrame (None otherwise)."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".star":
        from cryoscape.io.star import read_star

        return read_star(path).particles.reset_index(drop=True)
    if suffix == ".cs":
        from cryoscape.io.cs import read_cs

        array = read_cs(path)
        columns = {}
        for name in array.dtype.names or ():
            values = array[name]
            if values.ndim == 1 and values.dtype.kind in "biuf":
                columns[name] = values
            elif values.ndim == 1 and values.dtype.kind in "SU":
                columns[name] = values.astype(str)
        return pd.DataFrame(columns)
    return None
