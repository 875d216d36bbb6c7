"""Hierarchical pose search of particle images against a voxel map (projection matching, batched).

Grid
----
The global grid of rotations is a HEALPix grid of viewing directions (ring scheme, ``nside = 2**level``,
``12 nside²`` directions) times ``6 · 2**level`` in-plane angles ψ, as in cryoDRGN2: ``72 · 8**level``
rotations with a step of about ``60° / 2**level`` (:func:`grid_step_deg`). Direction ``(θ, φ)`` and ψ give the
RELION Euler angles ``(rot, tilt, psi) = (φ, θ, ψ)`` (``geometry.rotations.euler_to_matrix``).

Score
-----
For image ``X`` (centred 2-D FFT of its periodic component), CTF ``C``, a candidate rotation ``R`` and shift
``t`` (pixels; the image translated by ``+t`` is compared with the centred projection, RELION's sign), the score
is the normalised cross-correlation over the lattice points ``0 < |k| <= k_max`` of one Hermitian half::

    score = Re Σ_k conj(X_t(k)) C(k) S_R(k) / sqrt(Σ_k C(k)² |S_R(k)|²),   X_t = X · exp(-2πi k·t / D)

where ``S_R(k)`` is the map's Fourier transform at ``k @ R`` (trilinear on a 2× zero-padded grid). The image norm
is the same for all candidates of one image and is left out. For a chunk of ``n`` images, ``T`` shifts and ``M``
rotations the numerator is one real matrix product ``(n·T, 2K) @ (2K, M)`` and the denominator one
``(n, K) @ (K, M)``, with ``K`` the number of lattice points.

Hierarchy
---------
1. Global: every rotation of the level-``base_level`` grid and every shift of a square grid (``±max_shift_px``,
   step ``shift_step_px``), scored up to ``global_k_max_px`` only; the ``keep_poses`` best (rotation, shift)
   pairs per image are kept, streaming over rotation chunks (a running top-k), so memory is bounded by
   ``image_chunk × rotation_chunk × T``.
2. Local, ``refine_levels`` times: around each kept pose the 27 rotations ``exp(δ) R`` with ``δ`` on a
   ``{-s, 0, s}³`` axis-angle grid (``s`` the step of the next finer level) and the 9 shifts ``t + {-h, 0, h}²``
   (``h`` halves each level), scored up to the radius ``max(8, 2 / s)`` pixels (``s`` in radians: the
   frequencies that resolve the step); again the ``keep_poses`` best are kept, and after the last level the
   best one.

Cost per image (multiply-adds): global ``T·M·2K + M·K`` (plus the map's projections, shared by all images:
``M·K·8`` trilinear reads); each local level at most ``keep·27·(9·2K + K)`` plus ``keep·27·K·8`` reads for the
image's own projections (fewer points at the coarse levels; :func:`search_cost` gives the bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cryoscape.errors import InputError
from cryoscape.geometry.ctf import ctf_grid
from cryoscape.geometry.fourier import fft2_center
from cryoscape.geometry.rotations import axis_angle_to_matrix, euler_to_matrix
from cryoscape.io.records import CTFParams
from cryoscape.reconstruct.periodic import periodic_component

__all__ = [
    "PoseSearchConfig",
    "Projector",
    "SearchResult",
    "grid_step_deg",
    "healpix_directions",
    "lattice_points",
    "local_search",
    "prepare_images",
    "search_cost",
    "search_poses",
    "so3_grid",
]


@dataclass(frozen=True)
class PoseSearchConfig:
    """Options of :func:`search_poses`.

    Attributes
    ----------
    base_level : int
        HEALPix order of the global grid (``72 · 8**level`` rotations, step ≈ ``60° / 2**level``); 2 gives 4,608
        rotations at 15°, 3 gives 36,864 at 7.5°.
    refine_levels : int
        Local refinement levels after the global search; each halves the rotation and shift steps.
    keep_poses : int
        Best poses kept per image between levels.
    max_shift_px : float
        Half-width of the global shift grid (pixels); 0 searches rotations only.
    shift_step_px : float
        Step of the global shift grid (pixels).
    image_chunk : int
        Images scored at once.
    rotation_chunk : int
        Grid rotations scored at once (memory ≈ ``image_chunk × T × rotation_chunk × 4`` bytes). The grid's
        projections are computed once per map and held: ``M × K_global × 8`` bytes (15 MB at level 2 and
        ``global_k_max_px`` 16, 120 MB at level 3); images stream through in chunks of ``image_chunk``.
    global_k_max_px : float or None
        The global stage scores only the lattice points up to this radius (pixels) when the search radius is
        larger (the coarse grid needs only the low-resolution shape; cost ∝ points); None: the search radius.
    """

    base_level: int = 2
    refine_levels: int = 3
    keep_poses: int = 8
    max_shift_px: float = 4.0
    shift_step_px: float = 2.0
    image_chunk: int = 128
    rotation_chunk: int = 4096
    global_k_max_px: float | None = 16.0

    def __post_init__(self) -> None:
        if not 0 <= int(self.base_level) <= 4:
            raise InputError(f"the base grid level must be 0..4, got {self.base_level}")
        if int(self.refine_levels) < 0 or int(self.keep_poses) < 1:
            raise InputError("refine_levels must be >= 0 and keep_poses >= 1, "
                             f"got {self.refine_levels} and {self.keep_poses}")
        if self.max_shift_px < 0 or self.shift_step_px <= 0:
            raise InputError(f"max_shift_px must be >= 0 and shift_step_px > 0, got {self.max_shift_px} "
                             f"and {self.shift_step_px}")
        if int(self.image_chunk) < 1 or int(self.rotation_chunk) < 1:
            raise InputError("image_chunk and rotation_chunk must be >= 1")
        if self.global_k_max_px is not None and not self.global_k_max_px > 0:
            raise InputError(f"global_k_max_px must be > 0, got {self.global_k_max_px}")

    def global_radius(self, k_max_px: float) -> float:
        """Radius (pixels) scored by the global stage of a search at ``k_max_px``."""
        if self.global_k_max_px is None:
            return float(k_max_px)
        return min(float(k_max_px), float(self.global_k_max_px))


@dataclass(frozen=True)
class SearchResult:
    """Best pose of every searched image.

    Attributes
    ----------
    rotations : ndarray, shape (n, 3, 3), float64
        RELION rotation matrices.
    shifts_px : ndarray, shape (n, 2), float64
        (x, y) shifts in pixels (RELION sign: the image translated by ``+shift`` is centred).
    scores : ndarray, shape (n,), float64
        Normalised cross-correlation of the best pose (module docstring).
    """

    rotations: np.ndarray
    shifts_px: np.ndarray
    scores: np.ndarray


def healpix_directions(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the ``12 nside²`` HEALPix pixels (ring scheme): polar angle θ and azimuth φ (radians).

    Returns
    -------
    theta, phi : ndarray, shape (12 nside²,), float64
    """
    nside = int(nside)
    npix = 12 * nside * nside
    p = np.arange(npix, dtype=np.int64)
    theta = np.empty(npix)
    phi = np.empty(npix)
    ncap = 2 * nside * (nside - 1)
    north = p < ncap
    south = p >= npix - ncap
    eq = ~(north | south)
    # polar caps: ring i (1-based) holds 4i pixels
    for mask, q, sign in ((north, p, 1.0), (south, npix - 1 - p, -1.0)):
        if not mask.any():
            continue
        qq = q[mask]
        i = np.floor(np.sqrt((qq + 1) / 2.0 - np.sqrt(np.floor((qq + 1) / 2.0)))).astype(np.int64) + 1
        j = qq + 1 - 2 * i * (i - 1)
        z = 1.0 - i * i / (3.0 * nside * nside)
        ph = (j - 0.5) * np.pi / (2.0 * i)
        if sign < 0:
            z = -z
            ph = 2 * np.pi - ph
        theta[mask] = np.arccos(z)
        phi[mask] = ph
    if eq.any():
        q = p[eq] - ncap
        i = q // (4 * nside) + nside
        j = q % (4 * nside) + 1
        s = (i - nside + 1) % 2
        z = 4.0 / 3.0 - 2.0 * i / (3.0 * nside)
        theta[eq] = np.arccos(np.clip(z, -1, 1))
        phi[eq] = (j - s / 2.0) * np.pi / (2.0 * nside)
    return theta, phi


def grid_step_deg(level: int) -> float:
    """Approximate angular step (degrees) of the level-``level`` grid: the in-plane step ``60° / 2**level``."""
    return 60.0 / 2 ** int(level)


def so3_grid(level: int) -> np.ndarray:
    """Rotations of the level-``level`` grid: HEALPix directions (``nside = 2**level``) × ``6 · 2**level`` ψ.

    Returns
    -------
    ndarray, shape (72 · 8**level, 3, 3), float64
        RELION rotation matrices, direction-major.
    """
    nside = 2 ** int(level)
    theta, phi = healpix_directions(nside)
    n_psi = 6 * nside
    psi = (np.arange(n_psi) + 0.5) * 2 * np.pi / n_psi
    angles = np.empty((theta.size, n_psi, 3))
    angles[..., 0] = phi[:, None]
    angles[..., 1] = theta[:, None]
    angles[..., 2] = psi[None, :]
    return euler_to_matrix(angles.reshape(-1, 3))


def _local_offsets(step_rad: float) -> np.ndarray:
    """The 27 rotations ``exp(δ)``, δ on the ``{-s, 0, s}³`` axis-angle grid; (27, 3, 3)."""
    g = np.array([-1.0, 0.0, 1.0]) * step_rad
    d = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    return axis_angle_to_matrix(d)


def _shift_grid(max_shift_px: float, step_px: float) -> np.ndarray:
    """Square grid of (x, y) shifts within ±max (pixels), always holding (0, 0); (T, 2)."""
    n = math.floor(max_shift_px / step_px + 1e-9)
    g = np.arange(-n, n + 1) * step_px
    return np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)


def lattice_points(box_size: int, k_max_px: float) -> np.ndarray:
    """Lattice points ``(kx, ky)`` of one Hermitian half with ``0 < |k| <= k_max`` (cycles per box).

    Returns
    -------
    ndarray, shape (K, 2), int64
        ``ky > 0``, or ``ky == 0`` and ``kx > 0``.
    """
    d = int(box_size)
    f = np.arange(d) - d // 2
    ky, kx = np.meshgrid(f, f, indexing="ij")
    r2 = kx ** 2 + ky ** 2
    half = (ky > 0) | ((ky == 0) & (kx > 0))
    keep = half & (r2 <= float(k_max_px) ** 2) & (np.abs(kx) < d // 2) & (np.abs(ky) < d // 2)
    return np.stack([kx[keep], ky[keep]], -1).astype(np.int64)


def search_cost(config: PoseSearchConfig, k_points: int, k_points_global: int | None = None) -> dict[str, float]:
    """Multiply-adds per image of each search level for ``k_points`` lattice points (``k_points_global`` in the
    global stage, default the same; module docstring).

    Returns
    -------
    dict
        ``global`` and ``local`` (per local level, an upper bound) multiply-adds per image, ``grid_rotations`` and
        ``global_shifts``.
    """
    m = 72 * 8 ** int(config.base_level)
    t = _shift_grid(config.max_shift_px, config.shift_step_px).shape[0]
    k = int(k_points)
    kg = k if k_points_global is None else int(k_points_global)
    local = config.keep_poses * 27 * (9 * 2 * k + k + 8 * k)
    return {"global": float(t * m * 2 * kg + m * kg), "local": float(local), "grid_rotations": float(m),
            "global_shifts": float(t)}


class Projector:
    """Fourier transform of a real map on a 2× zero-padded grid, sampled at rotated lattice points.

    Parameters
    ----------
    volume : ndarray or torch.Tensor, shape (D, D, D)
        Real-space map indexed ``[z, y, x]``.
    device : str or torch.device
    """

    def __init__(self, volume: np.ndarray | torch.Tensor, device: str | torch.device = "cpu"):
        vol = torch.as_tensor(np.asarray(volume) if not torch.is_tensor(volume) else volume,
                              dtype=torch.float32, device=device)
        d = vol.shape[0]
        p = 2 * d
        padded = torch.zeros((p, p, p), dtype=torch.float32, device=device)
        lo = p // 2 - d // 2
        padded[lo:lo + d, lo:lo + d, lo:lo + d] = vol
        ft = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(padded)))
        self.box_size = d
        self.grid = p
        self.device = torch.device(device)
        # (1, 2, P, P, P): real and imaginary parts as two channels for grid_sample
        self._ft = torch.stack([ft.real, ft.imag])[None].contiguous()

    def project(self, rotations: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Values of the map's transform at ``k @ R`` for lattice points ``k`` (cycles per image box).

        Parameters
        ----------
        rotations : torch.Tensor, shape (M, 3, 3)
        points : torch.Tensor, shape (K, 2), float
            ``(kx, ky)`` lattice points.

        Returns
        -------
        torch.Tensor, shape (M, K), complex64
        """
        real, imag = self.project_parts(rotations, points)
        return torch.complex(real, imag)

    def project_parts(self, rotations: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`project` as its real and imaginary parts, each (M, K) float32."""
        k3 = torch.cat([points, torch.zeros_like(points[:, :1])], -1).to(torch.float32)
        # (M, K, 3) volume-grid coordinates: 2 (k @ R) on the padded grid; with align_corners=True index i sits
        # at -1 + 2 i / (P - 1), and frequency f at index f + P/2
        scale = 2.0 * 2.0 / (self.grid - 1)
        offset = (self.grid // 2) * (2.0 / (self.grid - 1)) - 1.0
        grid = torch.matmul(k3 * scale, rotations.to(torch.float32)) + offset
        out = torch.nn.functional.grid_sample(self._ft, grid[None, :, :, None, :], mode="bilinear",
                                              padding_mode="zeros", align_corners=True)
        return out[0, 0, :, :, 0], out[0, 1, :, :, 0]


def prepare_images(images: np.ndarray, ctf: CTFParams | None, points: np.ndarray,
                   device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Image spectra and CTF at the lattice points.

    Parameters
    ----------
    images : ndarray, shape (n, D, D)
    ctf : CTFParams or None
        CTF of the n images (None: no CTF, C = 1).
    points : ndarray, shape (K, 2), int
        Lattice points from :func:`lattice_points`.

    Returns
    -------
    spectra : torch.Tensor, shape (n, K), complex64
        Centred FFT of each image's periodic component at the points.
    ctf_values : torch.Tensor, shape (n, K), float32
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float64, device=device)
    d = x.shape[-1]
    ft = fft2_center(periodic_component(x)).reshape(x.shape[0], -1)
    flat = torch.as_tensor((points[:, 1] + d // 2) * d + (points[:, 0] + d // 2), device=device)
    spectra = ft[:, flat].to(torch.complex64)
    if ctf is None:
        c = torch.ones(spectra.shape, dtype=torch.float32, device=device)
    else:
        values = ctf_grid(d, ctf.pixel_size_angstrom, ctf.defocus_u_angstrom, ctf.defocus_v_angstrom,
                          ctf.defocus_angle_deg, ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast,
                          ctf.phase_shift_deg, bfactor_angstrom2=ctf.bfactor_angstrom2)
        c = torch.as_tensor(np.asarray(values).reshape(len(ctf), -1)[:, flat.cpu().numpy()],
                            dtype=torch.float32, device=device)
    return spectra, c


def _phases(points: torch.Tensor, shifts: torch.Tensor, box: int) -> torch.Tensor:
    """``exp(-2πi k·t / D)`` for points (K, 2) and shifts (..., 2) → (..., K) complex64."""
    arg = -2 * math.pi * (shifts[..., None, :].to(torch.float32) * points.to(torch.float32)).sum(-1) / box
    return torch.polar(torch.ones_like(arg), arg)


def _global_search(projections: list[torch.Tensor], grid_offsets: list[int], spectra: torch.Tensor,
                   ctf: torch.Tensor, points: torch.Tensor, shifts: torch.Tensor, box: int,
                   keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best ``keep`` (rotation index, shift index) of every image over the precomputed grid projections.

    Returns (scores (n, keep), rotation indices (n, keep), shift indices (n, keep)).
    """
    n, k = spectra.shape
    t = shifts.shape[0]
    a = (spectra[:, None, :] * _phases(points, shifts, box)[None]) * ctf[:, None, :]  # (n, T, K)
    a_real = torch.cat([a.real, a.imag], -1).reshape(n * t, 2 * k)
    c2 = ctf * ctf
    best = torch.full((n, 0), -torch.inf, device=spectra.device)
    best_idx = torch.zeros((n, 0), dtype=torch.int64, device=spectra.device)
    for proj, offset in zip(projections, grid_offsets):
        m = proj.shape[0]
        p_real = torch.cat([proj.real, proj.imag], -1)  # (m, 2K)
        cross = (a_real @ p_real.T).reshape(n, t, m)
        norm = c2 @ (proj.real ** 2 + proj.imag ** 2).T  # (n, m)
        score = cross / torch.sqrt(norm.clamp_min(1e-20))[:, None, :]
        flat = score.permute(0, 2, 1).reshape(n, m * t)  # index = rot_local * T + shift
        top_v, top_i = torch.topk(flat, min(keep, flat.shape[1]), dim=1)
        best = torch.cat([best, top_v], 1)
        best_idx = torch.cat([best_idx, top_i + offset * t], 1)
        if best.shape[1] > keep:
            best, sel = torch.topk(best, keep, dim=1)
            best_idx = torch.gather(best_idx, 1, sel)
    return best, best_idx // t, best_idx % t


def local_search(projector: Projector, spectra: torch.Tensor, ctf: torch.Tensor, points: torch.Tensor,
                 rotations: torch.Tensor, shifts_px: torch.Tensor, step_rad: float, shift_step_px: float,
                 keep: int, max_shift_px: float | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One local refinement level around ``c`` candidate poses per image.

    Parameters
    ----------
    projector : Projector
    spectra, ctf : torch.Tensor, shape (n, K)
        From :func:`prepare_images`.
    points : torch.Tensor, shape (K, 2)
    rotations : torch.Tensor, shape (n, c, 3, 3)
        Candidate rotations.
    shifts_px : torch.Tensor, shape (n, c, 2)
        Candidate shifts (pixels).
    step_rad : float
        Axis-angle step of the 27 local rotations.
    shift_step_px : float
        Step of the 9 local shifts (0: shifts kept as they are).
    keep : int
        Poses returned per image.
    max_shift_px : float, optional
        Shifts are clipped to ±this on each axis.

    Returns
    -------
    scores : torch.Tensor, shape (n, keep)
    rotations : torch.Tensor, shape (n, keep, 3, 3)
    shifts_px : torch.Tensor, shape (n, keep, 2)
    """
    n, c = rotations.shape[:2]
    dev = spectra.device
    if step_rad > 0:  # a coarse step needs only the frequencies that resolve it: radius 1 / step (pixels)
        radius2 = (points ** 2).sum(1)
        sel = torch.nonzero(radius2 <= max(2.0 / step_rad, 8.0) ** 2).reshape(-1)
        if sel.numel() < points.shape[0]:
            spectra, ctf, points = spectra[:, sel], ctf[:, sel], points[sel]
    k = spectra.shape[1]
    offsets = torch.as_tensor(_local_offsets(step_rad), dtype=rotations.dtype, device=dev)  # (27, 3, 3)
    cand = torch.einsum("rij,ncjk->ncrik", offsets, rotations)  # (n, c, 27, 3, 3): exp(δ) R
    if shift_step_px > 0:
        ds = torch.as_tensor(_shift_grid(shift_step_px, shift_step_px), dtype=shifts_px.dtype, device=dev)
    else:
        ds = torch.zeros((1, 2), dtype=shifts_px.dtype, device=dev)
    cand_t = shifts_px[:, :, None, :] + ds[None, None]  # (n, c, S, 2)
    if max_shift_px is not None:
        cand_t = cand_t.clamp(-max_shift_px, max_shift_px)
    s = ds.shape[0]
    p_re, p_im = projector.project_parts(cand.reshape(-1, 3, 3), points)
    p_re, p_im = p_re.reshape(n, c, 27, k), p_im.reshape(n, c, 27, k)
    a = spectra[:, None, None, :] * _phases(points, cand_t, projector.box_size) * ctf[:, None, None, :]
    cross = torch.matmul(a.real, p_re.transpose(-1, -2)) + torch.matmul(a.imag, p_im.transpose(-1, -2))
    norm = torch.matmul((p_re * p_re + p_im * p_im), (ctf * ctf)[:, None, :, None]).squeeze(-1)  # (n, c, 27)
    score = cross / torch.sqrt(norm.clamp_min(1e-20))[:, :, None, :]  # (n, c, S, 27)
    flat = score.reshape(n, c * s * 27)
    top_v, top_i = torch.topk(flat, min(keep, flat.shape[1]), dim=1)
    ci = top_i // (s * 27)
    si = (top_i // 27) % s
    ri = top_i % 27
    rows = torch.arange(n, device=dev)[:, None]
    return top_v, cand[rows, ci, ri], cand_t[rows, ci, si]


def search_poses(projector: Projector, images: np.ndarray, ctf: CTFParams | None, k_max_px: float,
                 config: PoseSearchConfig = PoseSearchConfig(),
                 start_rotations: np.ndarray | None = None, start_shifts_px: np.ndarray | None = None,
                 start_level: int | None = None,
                 grid_projections: tuple[list[torch.Tensor], list[int], np.ndarray] | None = None
                 ) -> SearchResult:
    """Best pose of each image against the map of ``projector`` (module docstring: grid, score, hierarchy).

    Parameters
    ----------
    projector : Projector
    images : ndarray, shape (n, D, D)
    ctf : CTFParams or None
    k_max_px : float
        Highest lattice radius scored (pixels of the Fourier box, ≤ D/2).
    config : PoseSearchConfig
    start_rotations, start_shifts_px : ndarray, shape (n, 3, 3) and (n, 2), optional
        Skip the global search and refine locally from these poses.
    start_level : int, optional
        With start poses: the grid level whose step the first local level refines at (default
        ``config.base_level``).
    grid_projections : optional
        ``(projections, offsets, rotations)`` from :func:`grid_projections` (computed here when None).

    Returns
    -------
    SearchResult
    """
    dev = projector.device
    d = projector.box_size
    pts_np = lattice_points(d, k_max_px)
    points = torch.as_tensor(pts_np, dtype=torch.float32, device=dev)
    keep = int(config.keep_poses)
    out_r, out_t, out_s = [], [], []
    local_start = start_rotations is not None
    level0 = int(config.base_level if start_level is None else start_level)
    if not local_start and grid_projections is None:
        grid_projections = make_grid_projections(projector, k_max_px, config)
    max_shift = float(config.max_shift_px)
    with torch.no_grad():
        for start in range(0, images.shape[0], int(config.image_chunk)):
            stop = min(images.shape[0], start + int(config.image_chunk))
            sub_ctf = None if ctf is None else ctf.subset(np.arange(start, stop))
            spectra, c = prepare_images(images[start:stop], sub_ctf, pts_np, dev)
            if local_start:
                rot = torch.as_tensor(start_rotations[start:stop], dtype=torch.float32, device=dev)[:, None]
                sh = torch.as_tensor(start_shifts_px[start:stop], dtype=torch.float32, device=dev)[:, None]
                shift_step = float(config.shift_step_px) / 2
                scores = None
            else:
                projs, offsets, grid_rot = grid_projections
                shifts = torch.as_tensor(_shift_grid(max_shift, config.shift_step_px), dtype=torch.float32,
                                         device=dev)
                low = torch.as_tensor(np.flatnonzero((pts_np ** 2).sum(1) <= config.global_radius(k_max_px) ** 2),
                                      device=dev)
                scores, ri, si = _global_search(projs, offsets, spectra[:, low], c[:, low], points[low], shifts,
                                                d, keep)
                rot = torch.as_tensor(grid_rot, dtype=torch.float32, device=dev)[ri]
                sh = shifts[si]
                shift_step = float(config.shift_step_px) / 2
            for level in range(int(config.refine_levels)):
                step = math.radians(grid_step_deg(level0 + level + 1))
                scores, rot, sh = local_search(projector, spectra, c, points, rot, sh, step, shift_step, keep,
                                               max_shift_px=max_shift + float(config.shift_step_px))
                shift_step /= 2
            if scores is None:  # no refinement level: score the start poses as they are
                scores, rot, sh = local_search(projector, spectra, c, points, rot, sh, 0.0, 0.0, 1)
            out_r.append(rot[:, 0].double().cpu().numpy())
            out_t.append(sh[:, 0].double().cpu().numpy())
            out_s.append(scores[:, 0].double().cpu().numpy())
    rotations = _orthonormalise(np.concatenate(out_r))
    return SearchResult(rotations=rotations, shifts_px=np.concatenate(out_t), scores=np.concatenate(out_s))


def make_grid_projections(projector: Projector, k_max_px: float, config: PoseSearchConfig
                          ) -> tuple[list[torch.Tensor], list[int], np.ndarray]:
    """Projections of the map on the global grid at the lattice points of the global stage of a search at
    ``k_max_px`` (radius ``config.global_radius(k_max_px)``), in rotation chunks.

    Returns
    -------
    projections : list of torch.Tensor, each (m, K) complex64
    offsets : list of int
        Grid index of each chunk's first rotation.
    rotations : ndarray, shape (M, 3, 3)
    """
    grid_rot = so3_grid(config.base_level)
    pts = lattice_points(projector.box_size, k_max_px)
    pts = pts[(pts ** 2).sum(1) <= config.global_radius(k_max_px) ** 2]
    points = torch.as_tensor(pts, dtype=torch.float32, device=projector.device)
    rot_t = torch.as_tensor(grid_rot, dtype=torch.float32, device=projector.device)
    projs, offsets = [], []
    with torch.no_grad():
        for start in range(0, rot_t.shape[0], int(config.rotation_chunk)):
            projs.append(projector.project(rot_t[start:start + int(config.rotation_chunk)], points))
            offsets.append(start)
    return projs, offsets, grid_rot


def _orthonormalise(rotations: np.ndarray) -> np.ndarray:
    """Nearest rotation matrices (SVD) of float32-rounded matrices; (n, 3, 3) float64."""
    u, _, vt = np.linalg.svd(np.asarray(rotations, dtype=np.float64))
    r = u @ vt
    det = np.linalg.det(r)
    u[det < 0, :, -1] *= -1
    return u @ vt
