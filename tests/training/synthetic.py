"""A tiny, independent projector for training tests: blob volumes → particle files (mrcs + cryoDRGN pickles).

Image formation (DESIGN.md): Hartley slice of the volume at ``k @ R`` (trilinear, ``geometry.slicing``),
times the RELION CTF on the centred grid, inverse transform, then translated by ``-shift`` (so that
translating
the image by ``+shift`` centres the particle), plus white Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryoscape.geometry.fourier import ht3_center, iht2_center, translate_images
from cryoscape.geometry.rotations import random_rotations
from cryoscape.geometry.slicing import extract_slices
from cryoscape.io.legacy import write_ctf_pickle, write_pose_pickle
from cryoscape.io.mrc import write_mrc
from cryoscape.io.records import CTFParams, Poses

PIXEL_SIZE = 4.0


def blob_volume(box: int, centres_px: list[tuple[float, float, float]], sigma_px: float = 1.6) -> np.ndarray:
    """Sum of Gaussian blobs at (x, y, z) offsets (pixels) from the centre voxel; (D, D, D) [z, y, x]."""
    j = np.arange(box) - box // 2
    z, y, x = np.meshgrid(j, j, j, indexing="ij")
    vol = np.zeros((box,) * 3)
    for cx, cy, cz in centres_px:
        vol += np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma_px**2))
    return vol


def make_ctf(n: int, box: int, rng: np.random.Generator) -> CTFParams:
    """RELION CTF parameters with defocus 0.6-1.2 µm at 300 kV (first zero well inside the box at 4 Å/px)."""
    dfu = rng.uniform(6000, 12000, n)
    return CTFParams(
        pixel_size_angstrom=np.full(n, PIXEL_SIZE),
        defocus_u_angstrom=dfu,
        defocus_v_angstrom=dfu - 200,
        defocus_angle_deg=rng.uniform(0, 180, n),
        voltage_kv=np.full(n, 300.0),
        cs_mm=np.full(n, 2.7),
        amplitude_contrast=np.full(n, 0.1),
        phase_shift_deg=np.zeros(n),
        box_size=box,
    )


def project(
    volumes: list[np.ndarray],
    states: np.ndarray,
    poses: Poses,
    ctf: CTFParams | None,
    noise_std: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Images (N, D, D) float32 of ``volumes[states[i]]`` at the poses, with CTF and noise."""
    from cryoscape.geometry.ctf import ctf_grid

    box = volumes[0].shape[0]
    images = np.zeros((len(states), box, box))
    for s, vol in enumerate(volumes):
        sel = np.flatnonzero(states == s)
        if sel.size == 0:
            continue
        h3 = ht3_center(torch.from_numpy(vol))
        slices = extract_slices(h3, torch.from_numpy(poses.rotations[sel])).numpy()
        if ctf is not None:
            sub = ctf.subset(sel)
            slices = slices * ctf_grid(
                box,
                sub.pixel_size_angstrom,
                sub.defocus_u_angstrom,
                sub.defocus_v_angstrom,
                sub.defocus_angle_deg,
                sub.voltage_kv,
                sub.cs_mm,
                sub.amplitude_contrast,
                sub.phase_shift_deg,
            )
        proj = iht2_center(slices)
        images[sel] = translate_images(proj, -poses.shifts_px[sel])
    images += rng.normal(0, noise_std, images.shape)
    return images.astype(np.float32)


@dataclass
class Synthetic:
    """Files and truth of a synthetic set."""

    stack: Path
    poses: Path
    ctf: Path | None
    states: np.ndarray
    images: np.ndarray
    pose_rec: Poses
    ctf_rec: CTFParams | None


def write_dataset(
    folder: Path,
    volumes: list[np.ndarray],
    n: int,
    *,
    seed: int = 0,
    use_ctf: bool = True,
    max_shift_px: float = 1.5,
    noise_std: float = 0.0,
    states: np.ndarray | None = None,
) -> Synthetic:
    """Write ``particles.mrcs``, ``pose.pkl`` and ``ctf.pkl`` to ``folder``; states alternate by default."""
    rng = np.random.default_rng(seed)
    box = volumes[0].shape[0]
    if states is None:
        states = np.arange(n) % len(volumes)
    rots = random_rotations(n, rng)
    shifts = rng.uniform(-max_shift_px, max_shift_px, (n, 2))
    poses = Poses(rots, shifts, box)
    ctf = make_ctf(n, box, rng) if use_ctf else None
    images = project(volumes, states, poses, ctf, noise_std, rng)
    folder.mkdir(parents=True, exist_ok=True)
    stack = write_mrc(folder / "particles.mrcs", images, voxel_size_angstrom=PIXEL_SIZE)
    pose_path = write_pose_pickle(folder / "pose.pkl", poses)
    ctf_path = write_ctf_pickle(folder / "ctf.pkl", ctf) if ctf is not None else None
    return Synthetic(
        Path(stack), Path(pose_path), None if ctf_path is None else Path(ctf_path), states, images, poses, ctf
    )


def two_blob_dataset(folder: Path, box: int, n: int, *, seed: int, noise_std: float = 0.3) -> Synthetic:
    """The two-state set most training tests use: a blob pair along x, and one moved to (−3, 2, 0) px."""
    v0 = blob_volume(box, [(0, 0, 0), (3, 0, 0)])
    v1 = blob_volume(box, [(0, 0, 0), (-3, 2, 0)])
    return write_dataset(folder, [v0, v1], n, noise_std=noise_std, seed=seed)
