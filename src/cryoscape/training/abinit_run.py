"""``cryoscape abinit``: ab initio poses and map, then a train-nn/train-vae run on the poses found.

Run folder (``RUN``)::

    RUN/abinit/config.yaml     the AbinitRunConfig
    RUN/abinit/log.txt         one line per epoch (radius scored, cost per image, mean score, half-map FSC)
    RUN/abinit/poses.N.npz     poses after epoch N (1-based): ``rotations`` (n, 3, 3), ``euler_deg`` (n, 3)
                               RELION (rot, tilt, psi), ``shifts_px`` (n, 2), ``shifts_angstrom`` (n, 2),
                               ``scores`` (n,), ``indices`` (n,) original particle indices, ``box_size``,
                               ``pixel_size_angstrom``, ``k_max_px``
    RUN/abinit/map.N.mrc       the voxel map back-projected with those poses (and half1.N.mrc, half2.N.mrc
                               for the last epoch)
    RUN/abinit/poses.pkl       the last epoch's poses as a cryoDRGN pose pickle (``--poses`` of train-nn)
    RUN/config.yaml, weights.N.pt, reconstruct.N.mrc / z.N.npz, run.log ...
                               a train-nn run (``zdim = 0``) or train-vae run (``zdim > 0``) trained on
                               ``abinit/poses.pkl`` for ``train_epochs`` epochs; every command that reads a
                               training run (eval-vol, analyze, select, ...) reads this one.

A killed run resumes where it stopped when the same command is given again: the search continues after the last
epoch whose ``poses.N.npz`` and ``map.N.mrc`` are both on disk (the epochs are deterministic, so the result is
the same), and the training stage resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from cryoscape.configio import dataclass_from_mapping
from cryoscape.data.particles import ParticleSet, load_particles
from cryoscape.errors import InputError
from cryoscape.io.atomic import atomic_open, atomic_write
from cryoscape.io.legacy import write_pose_pickle
from cryoscape.io.mrc import write_mrc
from cryoscape.io.records import Poses
from cryoscape.progress import progress
from cryoscape.reconstruct import abinit as ab
from cryoscape.runs import RunDir
from cryoscape.training.pose_files import load_pose_file, save_pose_file

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class AbinitRunConfig:
    """Everything ``cryoscape abinit`` does (flag = field = yaml key).

    Attributes
    ----------
    particles, ctf, ind, datadir : str or None
        The standard particle options (``data.particles.load_particles``); poses in the input are ignored.
    abinit : AbinitConfig
        Projection matching (epochs, frequency marching, search grid).
    train_epochs : int
        Epochs of the train-nn (``zdim = 0``) or train-vae (``zdim > 0``) stage on the poses found (0: none,
        the folder then holds only ``abinit/``).
    zdim : int
        Latent dimension of the training stage (0: homogeneous).
    refine_input_poses : bool
        Start from the poses of the input (``particles``' own .star/.cs) and refine them locally every epoch
        (``reconstruct.abinit.refine_poses``: first level at the step of grid level ``base_level + 1``, at the
        end radius) instead of searching ab initio.
    device : str
        ``auto``, ``cpu`` or ``cuda`` for both stages.
    """

    particles: str | None = None
    ctf: str | None = None
    ind: str | None = None
    datadir: str | None = None
    abinit: ab.AbinitConfig = field(default_factory=ab.AbinitConfig)
    train_epochs: int = 5
    zdim: int = 0
    refine_input_poses: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        if int(self.train_epochs) < 0 or int(self.zdim) < 0:
            raise InputError(f"train_epochs and zdim must be >= 0, got {self.train_epochs} and {self.zdim}")


def _config_dict(config: AbinitRunConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(values: dict, path: str | os.PathLike | None = None) -> AbinitRunConfig:
    """An :class:`AbinitRunConfig` from the nested mappings of ``abinit/config.yaml``."""
    return dataclass_from_mapping(AbinitRunConfig, values, path=path)


def _resumable(config: AbinitRunConfig) -> dict:
    """The settings a resumed run must share with the stopped one (all but the device and the training epochs)."""
    values = _config_dict(config)
    values["abinit"] = {k: v for k, v in values["abinit"].items() if k != "device"}
    return {k: v for k, v in values.items() if k not in ("train_epochs", "device")}


def _open(config: AbinitRunConfig) -> ParticleSet:
    particles = load_particles(config.particles, ctf=config.ctf, ind=config.ind, datadir=config.datadir)
    ab.check_particles(particles)
    return particles


def _start_epoch(run: RunDir, config: AbinitRunConfig, overwrite: bool) -> int:
    """Epochs already done in ``run`` (0 for a new folder); refuses a folder of another abinit config."""
    folder = run.abinit.root
    saved = run.abinit.config
    if overwrite:
        if folder.is_dir():
            shutil.rmtree(folder)
        run.remove_run_files()
        return 0
    if not saved.is_file():
        if run.holds_run():
            raise InputError("the folder already holds a training run", path=run.path,
                             fix="give another -o, or --overwrite to start over")
        return 0
    try:
        old = config_from_dict(yaml.safe_load(saved.read_text()) or {}, path=saved)
    except yaml.YAMLError:
        raise InputError("cannot read the ab initio configuration", path=saved,
                         fix="give another -o, or --overwrite to start over") from None
    if _resumable(old) != _resumable(config):
        raise InputError("the folder holds an ab initio run with other settings", path=run.path,
                         fix="give the same options to resume it, another -o, or --overwrite to start over")
    done = [e for e in run.abinit.pose_epochs() if run.abinit.map(e).is_file()]
    return min(done[-1], int(config.abinit.num_epochs)) if done else 0


def run_abinit(config: AbinitRunConfig, out_dir: str | os.PathLike, *, overwrite: bool = False,
               particles: ParticleSet | None = None, show_progress: bool = True) -> RunDir:
    """Run ab initio projection matching and the training stage into ``out_dir`` (module docstring).

    Parameters
    ----------
    config : AbinitRunConfig
    out_dir : path
        The run folder (created).
    overwrite : bool
        Delete an earlier run in the folder first; without it an ab initio run with the same settings is
        resumed and anything else is refused.
    particles : ParticleSet, optional
        Use these particles instead of opening ``config.particles`` (tests).

    Returns
    -------
    RunDir
    """
    from cryoscape.training.distributed import choose_device

    device = str(choose_device(config.device))
    if particles is None:
        particles = _open(config)
    else:
        ab.check_particles(particles)
    abc = dataclasses.replace(config.abinit, device=device)
    run = RunDir(out_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        done = _start_epoch(run, config, overwrite)
        folder = run.abinit.root
        folder.mkdir(exist_ok=True)
        with atomic_open(run.abinit.config, "w") as handle:
            handle.write(yaml.safe_dump(_config_dict(config), sort_keys=False))
        apix = particles.pixel_size_angstrom or 1.0
        if done:
            log.info("resuming ab initio after epoch %d", done)
            previous = load_pose_file(run.abinit.poses(done)).poses()
            # the search references (padded grid) rebuilt from the saved poses
            volume, halves = ab.backproject_map(particles, previous, abc, with_halves=True)
        elif config.refine_input_poses:
            if particles.poses is None:
                raise InputError("refining the input poses needs poses in the input", path=config.particles,
                                 fix="give a .star/.cs with poses, or leave out --refine-input-poses")
            previous = particles.poses
            volume, halves = ab.backproject_map(particles, previous, abc, with_halves=True)
        else:
            volume, halves = ab.initial_map(particles, abc), None
            previous = None
        n_epochs = int(abc.num_epochs)
        refine = {"local": True, "start_level": abc.search.base_level + 1} if config.refine_input_poses else {}
        for epoch in range(done + 1, n_epochs + 1):
            t0 = time.perf_counter()
            bar = progress(total=len(particles), desc=f"abinit epoch {epoch}/{n_epochs}", unit="img") \
                if show_progress else None
            result = ab.run_epoch(particles, volume, n_epochs if refine else epoch, abc, previous,
                                  on_chunk=None if bar is None else bar.update, halves=halves, **refine)
            if bar is not None:
                bar.close()
            seconds = time.perf_counter() - t0
            save_pose_file(run.abinit.poses(epoch), result.poses, result.scores, particles.indices, apix,
                           result.k_max_px)
            _write_map(run.abinit.map(epoch), result.volume, apix)
            if epoch == n_epochs:
                _write_map(run.abinit.half_map(1, epoch), result.half1, apix)
                _write_map(run.abinit.half_map(2, epoch), result.half2, apix)
            local = bool(refine) or abc.is_local(epoch)
            line = (f"epoch {epoch}: {'local' if local else 'global'} search, "
                    f"{ab.describe_cost(result)}; mean score {result.scores.mean():.4g}; half-map FSC 0.143 "
                    f"{result.fsc.resolution_angstrom(0.143):.2f} Å; {seconds:.1f} s "
                    f"({1e3 * seconds / len(particles):.2f} ms/image)")
            log.info(line)
            with open(run.abinit.log, "a") as handle:
                handle.write(line + "\n")
            volume, previous = result.reference, result.poses
            halves = (result.reference_half1, result.reference_half2)
        final = load_pose_file(run.abinit.poses(n_epochs)).poses()
        atomic_write(run.abinit.poses_pickle, lambda tmp: write_pose_pickle(tmp, _full_table(final, particles)))
    if int(config.train_epochs) > 0:
        _train_stage(config, run, particles, device)
    return run


def _full_table(poses: Poses, particles: ParticleSet) -> Poses:
    """Poses of the selected particles placed at their original indices (identity elsewhere): the pose file
    train-nn reads is indexed like the particle stack, before ``--ind``."""
    n_total = len(particles.images)
    rot = np.broadcast_to(np.eye(3), (n_total, 3, 3)).copy()
    shifts = np.zeros((n_total, 2))
    rot[particles.indices] = poses.rotations
    shifts[particles.indices] = poses.shifts_px
    return Poses(rot, shifts, poses.box_size)


def _write_map(path: Path, volume: np.ndarray, apix: float) -> None:
    write_mrc(path, np.asarray(volume, dtype=np.float32), voxel_size_angstrom=apix)


def _train_stage(config: AbinitRunConfig, run: RunDir, particles: ParticleSet, device: str) -> None:
    """train-nn (zdim 0) or train-vae on ``abinit/poses.pkl``, into the run folder; resumes a stopped one."""
    from cryoscape.models.config import ModelConfig
    from cryoscape.training.config import DataConfig, TrainConfig
    from cryoscape.training.loop import fit

    poses_file = str(run.abinit.poses_pickle.resolve())
    data = DataConfig(particles=config.particles, poses=poses_file, ctf=config.ctf, ind=config.ind,
                      datadir=config.datadir, invert_data=config.abinit.invert_contrast)
    train = TrainConfig(model=ModelConfig(zdim=int(config.zdim)), data=data, num_epochs=int(config.train_epochs),
                        device=device, seed=int(config.abinit.seed))
    kind = "vae" if config.zdim else "homogeneous"
    with_poses = dataclasses.replace(particles, poses=_full_table(
        load_pose_file(run.abinit.poses(int(config.abinit.num_epochs))).poses(), particles).subset(particles.indices))
    latest = run.latest_epoch()
    if latest is not None:
        if latest >= int(config.train_epochs):
            return
        fit(None, run.path, resume_from=run.path, changes={"num_epochs": int(config.train_epochs)},
            model_kind=kind, particles=with_poses)
    else:
        fit(train, run.path, model_kind=kind, particles=with_poses)
