"""Central slices of a 3-D Fourier volume and their adjoint (torch).

Conventions (DESIGN.md, docs/internal-api.md)
---------------------------------------------
* A Fourier volume of side ``Dv`` is centred: index ``i`` on every axis holds frequency ``i - Dv // 2``
  (cycles per volume box), indexed ``[z, y, x]``.
* A slice of side ``D`` has the 2-D lattice ``k = (kx, ky, 0)`` with ``kx, ky = j - D // 2`` (cycles per slice
  box). Its 3-D point is the row vector ``k @ R`` (RELION's ``Euler_angles2matrix``), expressed on the volume
  grid as ``(Dv / D) * (k @ R)``. A volume grid oversampled by an integer factor (``Dv = 2 D`` for a 2x
  zero-padded volume) therefore gives the slice of the un-padded volume with a finer interpolation grid.
* Values between grid points are trilinear; grid points outside the volume count as zero.

:func:`insert_slices` is the exact adjoint of :func:`extract_slices`: it accumulates each slice value into
the same eight voxels with the same trilinear weights (``<extract(V), S> == <V, insert(S)>``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["extract_slices", "insert_slices", "slice_points"]

# Number of (point, corner) pairs processed at once; bounds the temporary memory (~ 40 bytes each).
_MAX_CORNERS_PER_CHUNK = 1 << 22


def _as_rotations(rotations: torch.Tensor | np.ndarray, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    rot = torch.as_tensor(np.asarray(rotations) if not torch.is_tensor(rotations) else rotations)
    if rot.ndim == 2:
        rot = rot[None]
    if rot.ndim != 3 or rot.shape[1:] != (3, 3):
        raise ValueError(f"rotations must have shape (N, 3, 3), got {tuple(rot.shape)}")
    return rot.to(device=device, dtype=dtype)


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype == torch.complex128 or dtype == torch.float64:
        return torch.float64
    return torch.float32


def slice_points(rotations: torch.Tensor, slice_box: int, volume_box: int) -> torch.Tensor:
    """Continuous volume-grid coordinates of the points of D×D central slices.

    Parameters
    ----------
    rotations : torch.Tensor, shape (N, 3, 3)
        RELION rotation matrices; the 3-D point of lattice vector ``k`` is ``k @ R``.
    slice_box : int
        Slice side ``D`` (pixels).
    volume_box : int
        Volume side ``Dv``; the lattice is scaled by ``Dv / D``.

    Returns
    -------
    torch.Tensor, shape (N, D*D, 3)
        ``(x, y, z)`` array indices (frequency ``+ Dv // 2``), flat row-major over ``(ky, kx)``,
        with the dtype of ``rotations``.
    """
    freqs = torch.arange(slice_box, dtype=rotations.dtype, device=rotations.device) - slice_box // 2
    ky, kx = torch.meshgrid(freqs, freqs, indexing="ij")
    lattice = torch.stack([kx.reshape(-1), ky.reshape(-1), torch.zeros_like(kx).reshape(-1)], dim=-1)
    scale = volume_box / slice_box
    return scale * (lattice @ rotations) + volume_box // 2


def _trilinear(points: torch.Tensor, box: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat voxel indices (P, 8) and trilinear weights (P, 8) of points (P, 3) = (x, y, z); outside: 0."""
    base = torch.floor(points)
    frac = points - base
    base = base.to(torch.int64)
    indices = []
    weights = []
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                ix = base[:, 0] + dx
                iy = base[:, 1] + dy
                iz = base[:, 2] + dz
                wx = frac[:, 0] if dx else 1 - frac[:, 0]
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                wz = frac[:, 2] if dz else 1 - frac[:, 2]
                inside = (ix >= 0) & (ix < box) & (iy >= 0) & (iy < box) & (iz >= 0) & (iz < box)
                flat = (iz * box + iy) * box + ix
                indices.append(torch.where(inside, flat, torch.zeros_like(flat)))
                weights.append(torch.where(inside, wx * wy * wz, torch.zeros_like(wx)))
    return torch.stack(indices, dim=-1), torch.stack(weights, dim=-1)


def _chunk_size(points_per_slice: int) -> int:
    return max(1, _MAX_CORNERS_PER_CHUNK // (8 * points_per_slice))


def extract_slices(volume_ft: torch.Tensor, rotations: torch.Tensor | np.ndarray,
                   slice_box: int | None = None) -> torch.Tensor:
    """Central slices of a centred Fourier volume, by trilinear interpolation.

    Parameters
    ----------
    volume_ft : torch.Tensor, shape (Dv, Dv, Dv), complex or real
        Centred Fourier (or Hartley) volume indexed ``[z, y, x]``; index ``i`` ↔ frequency ``i - Dv // 2``.
    rotations : torch.Tensor or ndarray, shape (N, 3, 3)
        RELION rotation matrices; slice point of lattice vector ``k`` is ``k @ R``.
    slice_box : int, optional
        Slice side ``D`` (default ``Dv``). With ``Dv = f * D`` (f an integer, e.g. 2 for a 2x zero-padded
        volume) lattice vector ``k`` (cycles per slice box) is read at volume frequency ``f * (k @ R)``.

    Returns
    -------
    torch.Tensor, shape (N, D, D)
        Slices on the centred 2-D grid (row = ky, column = kx), dtype of ``volume_ft``; zero where the point
        falls outside the volume.
    """
    if volume_ft.ndim != 3 or len(set(volume_ft.shape)) != 1:
        raise ValueError(f"volume_ft must be a cube (Dv, Dv, Dv), got {tuple(volume_ft.shape)}")
    box = volume_ft.shape[0]
    d = box if slice_box is None else int(slice_box)
    rot = _as_rotations(rotations, _real_dtype(volume_ft.dtype), volume_ft.device)
    flat_volume = volume_ft.reshape(-1)
    n = rot.shape[0]
    out = torch.empty((n, d * d), dtype=volume_ft.dtype, device=volume_ft.device)
    step = _chunk_size(d * d)
    for start in range(0, n, step):
        points = slice_points(rot[start:start + step], d, box).reshape(-1, 3)
        idx, w = _trilinear(points, box)
        values = (flat_volume[idx] * w).sum(-1)
        out[start:start + step] = values.reshape(-1, d * d)
    return out.reshape(n, d, d)


def insert_slices(slices: torch.Tensor, rotations: torch.Tensor | np.ndarray, box: int,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Accumulate slices into a Fourier volume: the exact adjoint of :func:`extract_slices`.

    Parameters
    ----------
    slices : torch.Tensor, shape (N, D, D), complex or real
        Values on the centred 2-D grid of each slice (row = ky, column = kx).
    rotations : torch.Tensor or ndarray, shape (N, 3, 3)
        RELION rotation matrices (as in :func:`extract_slices`).
    box : int
        Side ``Dv`` of the output volume; ``Dv / D`` is the oversampling (see :func:`extract_slices`).
    weights : torch.Tensor, shape (N, D, D) or (D, D), optional
        Real per-pixel weights accumulated the same way into the weight volume (e.g. CTF² for a Wiener
        back-projection). Default: ones, so the weight volume holds the summed trilinear weights.

    Returns
    -------
    data : torch.Tensor, shape (Dv, Dv, Dv)
        ``sum_i sum_k w_trilinear * slices[i, k]``, dtype of ``slices``.
    weight : torch.Tensor, shape (Dv, Dv, Dv), real
        The same accumulation of ``weights``.
    """
    if slices.ndim == 2:
        slices = slices[None]
    n, d, d2 = slices.shape
    if d != d2:
        raise ValueError(f"slices must be square (N, D, D), got {tuple(slices.shape)}")
    real = _real_dtype(slices.dtype)
    rot = _as_rotations(rotations, real, slices.device)
    if rot.shape[0] != n:
        raise ValueError(f"{n} slices but {rot.shape[0]} rotations")
    if weights is not None:
        weights = torch.as_tensor(weights, dtype=real, device=slices.device)
        weights = torch.broadcast_to(weights, (n, d, d))
    box = int(box)
    data = torch.zeros(box ** 3, dtype=slices.dtype, device=slices.device)
    weight = torch.zeros(box ** 3, dtype=real, device=slices.device)
    flat_slices = slices.reshape(n, d * d)
    step = _chunk_size(d * d)
    for start in range(0, n, step):
        stop = min(n, start + step)
        points = slice_points(rot[start:stop], d, box).reshape(-1, 3)
        idx, w = _trilinear(points, box)
        values = flat_slices[start:stop].reshape(-1, 1) * w
        data.index_add_(0, idx.reshape(-1), values.reshape(-1).to(data.dtype))
        wvalues = w if weights is None else weights[start:stop].reshape(-1, 1) * w
        weight.index_add_(0, idx.reshape(-1), wvalues.reshape(-1))
    return data.reshape(box, box, box), weight.reshape(box, box, box)
