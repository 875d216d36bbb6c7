"""The simulator: image model, files, ground truth, reproducibility (small boxes, few images)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import GroundTruthVolumes, Simulator, run_simulation


def _cfg(**kw):
    base = {"source": "hinge", "box_size": 24, "n_particles": 40, "snr": float("inf"), "ctf": False,
            "max_shift_px": 0.0, "chunk_size": 16, "seed": 3}
    base.update(kw)
    return preset_config(None, **base)


def _np_ft2(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1))), axes=(-2, -1))


def _np_ift2(f: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(f, axes=(-2, -1))), axes=(-2, -1)).real


def _cube_rotations() -> np.ndarray:
    """The 24 proper rotations that permute the axes (signed permutation matrices, det +1)."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return np.array(out)


# ----------------------------------------------------------------------------------------------
# reproducibility
def test_same_seed_same_images_any_chunk_size() -> None:
    a = Simulator(_cfg(snr=0.5, ctf=True, max_shift_px=2.0, chunk_size=16))
    b = Simulator(_cfg(snr=0.5, ctf=True, max_shift_px=2.0, chunk_size=7))
    ia = np.concatenate([a.images(s, e) for s, e in a.chunks()])
    ib = np.concatenate([b.images(s, e) for s, e in b.chunks()])
    assert np.array_equal(ia, ib)
    assert np.array_equal(a.rotations, b.rotations) and np.array_equal(a.coordinates, b.coordinates)
    c = Simulator(_cfg(snr=0.5, ctf=True, max_shift_px=2.0, seed=4))
    assert not np.allclose(c.images(0, 10), ia[:10])


# ---------------------------------------------------------------------------------------------- image model
def test_noiseless_image_is_projection_of_ground_truth_grid_aligned() -> None:
    """Axis-permuting rotations: the projection of the gt volume is an exact sum along one array axis."""
    sim = Simulator(_cfg(n_particles=24))
    sim.rotations = _cube_rotations()
    images = sim.clean_images(0, 24)
    for i, rot in enumerate(sim.rotations):
        volume = sim.source.volume(0, sim.coordinates[i]).astype(np.float64)
        # image(x, y) = sum_z v(Rᵀ r): build the rotated volume w[r] = v[Rᵀ r] by index permutation
        d = volume.shape[0]
        grid = np.arange(d) - d // 2
        z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
        r = np.stack([x, y, z], -1) @ rot  # row r @ R = (Rᵀ r)ᵀ
        idx = np.mod(r + d // 2, d).astype(int)  # periodic: band-limited volumes wrap
        rotated = volume[idx[..., 2], idx[..., 1], idx[..., 0]]
        expected = rotated.sum(axis=0)
        # Nyquist planes are unpaired; compare away from them
        diff = _np_ft2(images[i]) - _np_ft2(expected)
        assert np.abs(diff[1:, 1:]).max() < 1e-6 * np.abs(_np_ft2(expected)).max()


def test_noiseless_image_matches_real_space_projection_random_rotations() -> None:
    sim = Simulator(_cfg(n_particles=6, source="assembly", resolution_angstrom=None))
    images = sim.clean_images(0, 6)
    d = sim.box_size
    grid = np.arange(d) - d // 2
    z, y, x = np.meshgrid(grid, grid, grid, indexing="ij")
    pts = np.stack([x, y, z], -1).reshape(-1, 3)
    for i in range(6):
        volume = sim.source.volume(int(sim.states[i])).astype(np.float64)
        src = pts @ sim.rotations[i] + d // 2  # v(Rᵀ r), coordinates (x, y, z)
        values = ndimage.map_coordinates(volume, [src[:, 2], src[:, 1], src[:, 0]], order=3, mode="constant")
        expected = values.reshape(d, d, d).sum(axis=0)
        assert np.corrcoef(expected.ravel(), images[i].ravel())[0, 1] > 0.99


def test_shift_moves_the_projection_by_minus_shift() -> None:
    from cryoscape.geometry.fourier import translate_images

    sim = Simulator(_cfg(max_shift_px=3.0, n_particles=8))
    unshifted = sim.clean_images(0, 8, shifts=False)
    # integer shifts: exactly np.roll by −shift (independent of any Fourier code)
    sim.shifts_px = np.round(sim.shifts_px)
    shifted = sim.clean_images(0, 8)
    for i in range(8):
        sx, sy = sim.shifts_px[i].astype(int)
        assert np.allclose(shifted[i], np.roll(unshifted[i], (-sy, -sx), axis=(0, 1)), atol=1e-9)
    # sub-pixel shifts: translating the image by +shift (records.py convention) recentres it
    sim2 = Simulator(_cfg(max_shift_px=3.0, n_particles=8))
    back = translate_images(sim2.clean_images(0, 8), sim2.shifts_px)
    # the Nyquist row/column of a sub-pixel shift is not invertible
    ft_diff = _np_ft2(back - unshifted)[:, 1:, 1:]
    assert np.abs(ft_diff).max() < 1e-6 * np.abs(_np_ft2(unshifted)).max()


def test_ctf_is_geometry_ctf_grid_and_particles_are_white() -> None:
    from cryoscape.geometry.ctf import ctf_grid

    sim = Simulator(_cfg(ctf=True, n_particles=5, bfactor_angstrom2=80.0))
    plain = sim.clean_images(0, 5, ctf=False)
    with_ctf = sim.clean_images(0, 5)
    ctf = sim.ctf_params()
    grid = ctf_grid(sim.box_size, ctf.pixel_size_angstrom, ctf.defocus_u_angstrom, ctf.defocus_v_angstrom,
                    ctf.defocus_angle_deg, ctf.voltage_kv, ctf.cs_mm, ctf.amplitude_contrast,
                    ctf.phase_shift_deg, ctf.bfactor_angstrom2)
    expected = _np_ft2(plain) * grid
    # the unpaired Nyquist row/column is symmetrised by taking real images; compare everything else
    diff = (_np_ft2(with_ctf) - expected)[:, 1:, 1:]
    assert np.abs(diff).max() < 1e-9 * np.abs(expected).max()
    # RELION sign: +w at zero frequency, so the image mean keeps the sign of the density (white particles)
    assert np.allclose(with_ctf.mean((1, 2)), 0.1 * plain.mean((1, 2)), rtol=1e-9)
    assert (plain.mean((1, 2)) > 0).all()


def test_snr_of_the_noisy_stack() -> None:
    snr = 0.2
    noisy_sim = Simulator(_cfg(snr=snr, ctf=True, n_particles=200, chunk_size=64))
    noisy = np.concatenate([noisy_sim.images(s, e) for s, e in noisy_sim.chunks()]).astype(np.float64)
    clean = np.concatenate([noisy_sim.clean_images(s, e) for s, e in noisy_sim.chunks()])
    measured = clean.var() / (noisy - clean).var()
    assert measured == pytest.approx(snr, rel=0.1)
    # the noise is white: its spectrum is flat (low vs high frequencies within 10 %)
    power = np.abs(_np_ft2(noisy - clean)) ** 2
    d = noisy.shape[-1]
    r = np.hypot(*np.meshgrid(np.arange(d) - d // 2, np.arange(d) - d // 2, indexing="ij"))
    assert power[:, r < d / 6].mean() == pytest.approx(power[:, (r > d / 3) & (r < d / 2)].mean(), rel=0.1)


# ---------------------------------------------------------------------------------------------- ground truth
def test_continuous_coordinate_changes_projection_continuously() -> None:
    sim = Simulator(_cfg(n_particles=1))
    rot = torch.as_tensor(sim.rotations[:1])

    def image(c: float) -> np.ndarray:
        spec = sim.source.projections_ft(rot, np.zeros(1, dtype=np.int64), np.array([c]))
        return _np_ift2(spec.numpy())[0]

    base = image(0.3)
    steps = [np.abs(image(0.3 + e) - base).max() for e in (1e-4, 1e-3, 1e-2, 0.3)]
    assert steps[0] > 0
    assert steps[0] < steps[1] < steps[2] < steps[3]
    assert steps[1] / steps[0] == pytest.approx(10, rel=0.05)  # linear for small changes: not quantised
    # and the true volume follows the same coordinate
    truth = GroundTruthVolumes(_cfg())
    v1, v2 = truth(0, 0.3), truth(0, 0.3 + 1e-3)
    assert 0 < np.abs(v1 - v2).max() < 0.05 * np.abs(v1).max()


def test_assembly_states_differ_where_the_subunits_are() -> None:
    from cryoscape.simulate.datasets import assembly_molecule

    sim = Simulator(_cfg(source="assembly", box_size=32, n_particles=300))
    core, core_a, core_ab = (sim.source.volume(s) for s in range(3))
    mol = assembly_molecule()
    d = core.shape[0]

    def mass_centre(v: np.ndarray) -> np.ndarray:
        w = np.clip(v, 0, None)
        idx = np.indices(v.shape).reshape(3, -1)
        zyx = (idx * w.ravel()).sum(1) / w.sum()
        return (zyx[::-1] - d // 2) * sim.pixel_size_angstrom + sim.source.centre_angstrom  # (x, y, z) Å

    for diff, group in ((core_a - core, 1), (core_ab - core_a, 2)):
        expected = mol.coords_angstrom[mol.groups == group].mean(0)
        assert np.linalg.norm(mass_centre(diff) - expected) < 2 * sim.pixel_size_angstrom
    assert np.abs(core_a - core).max() > 0.3 * np.abs(core).max()
    counts = np.bincount(sim.states, minlength=3) / sim.n
    assert np.allclose(counts, [0.3, 0.3, 0.4], atol=0.08)


def test_coordinate_sampling_laws() -> None:
    from cryoscape.simulate.datasets import NONCONTIGUOUS_INTERVALS, sample_coordinates

    rng = np.random.default_rng(0)
    gaps = sample_coordinates(4000, "noncontiguous", rng)
    inside = np.zeros(gaps.shape, dtype=bool)
    for lo, hi in NONCONTIGUOUS_INTERVALS:
        inside |= (gaps >= lo) & (gaps <= hi)
    assert inside.all() and ((gaps > 0.3) & (gaps < 0.35)).sum() == 0
    coop = sample_coordinates(4000, "cooperative", rng)
    hist, _ = np.histogram(coop, bins=10, range=(0, 1))
    assert hist[1] > 2 * hist[3] and hist[5] > 2 * hist[3] and hist[8] > 2 * hist[6]  # three modes
    assert ((coop >= 0) & (coop <= 1)).all()


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    cfg = _cfg(source="assembly", snr=1.0, ctf=True, max_shift_px=2.5, n_particles=60, box_size=32,
               downsample_box=24)
    return run_simulation(cfg, out, show_progress=False)


def test_star_reads_back_through_io(written) -> None:
    from cryoscape.io.metadata import read_ctf, read_poses
    from cryoscape.io.stacks import open_images

    sim = Simulator(written.config)
    poses = read_poses(written.star_path)
    ctf = read_ctf(written.star_path)
    assert poses.box_size == 24 and ctf.box_size == 24
    assert np.abs(poses.rotations - sim.rotations).max() < 1e-5
    assert np.allclose(poses.shifts_px, sim.shifts_px * 24 / 32, atol=1e-6)
    assert np.allclose(ctf.defocus_u_angstrom, sim.defocus_u_angstrom)
    assert np.allclose(ctf.defocus_v_angstrom, sim.defocus_v_angstrom)
    assert np.allclose(ctf.defocus_angle_deg, sim.defocus_angle_deg)
    assert np.allclose(ctf.pixel_size_angstrom, sim.pixel_size_angstrom * 32 / 24)
    assert np.allclose(ctf.voltage_kv, 300) and np.allclose(ctf.cs_mm, 2.7)
    assert np.allclose(ctf.amplitude_contrast, 0.1)
    source = open_images(written.star_path)
    assert len(source) == 60 and source.box_size == 24
    expected = np.concatenate([sim.images(s, e) for s, e in sim.chunks()])
    assert np.array_equal(source.read(np.arange(60)), expected)
    truth = pd.read_csv(written.ground_truth_path)
    assert list(truth["index"]) == list(range(60))
    assert np.array_equal(truth["state"], sim.states) and truth["coordinate"].isna().all()
    assert np.allclose(truth[["shift_x_px", "shift_y_px"]], poses.shifts_px)


def test_ground_truth_volumes_written(written) -> None:
    from cryoscape.io.mrc import read_mrc

    assert len(written.volume_paths) == 3
    truth = GroundTruthVolumes(written.config)
    for state, path in enumerate(written.volume_paths):
        volume, header = read_mrc(path)
        assert volume.shape == (24, 24, 24)
        assert header.voxel_size_angstrom == pytest.approx(written.pixel_size_angstrom, rel=1e-5)
        assert np.allclose(volume, truth(state), atol=1e-5 * np.abs(volume).max())


def test_downsample_box_is_the_fourier_crop_of_the_full_images() -> None:
    full = Simulator(_cfg(snr=0.5, ctf=True, max_shift_px=2.0, box_size=32, n_particles=10))
    small = Simulator(_cfg(snr=0.5, ctf=True, max_shift_px=2.0, box_size=32, n_particles=10,
                           downsample_box=16))
    big = full.images(0, 10).astype(np.float64)
    f = _np_ft2(big)[:, 8:25, 8:25]  # frequencies −8 .. +8 of the 32 box
    f[:, 0, :] += f[:, -1, :]  # ±Nyquist of the 16 box are one frequency
    f[:, :, 0] += f[:, :, -1]
    expected = _np_ift2(f[:, :16, :16]) * (16 / 32) ** 2
    assert np.allclose(small.images(0, 10), expected, atol=1e-5 * np.abs(expected).max())
    assert small.output_pixel_size_angstrom == pytest.approx(2 * full.pixel_size_angstrom)
    assert np.allclose(small.poses().shifts_px, full.shifts_px / 2)


# ---------------------------------------------------------------------------------------------- other sources
PDB = """\
ATOM      1  N   ALA A   1      -6.000   0.000   0.000  1.00  0.00           N
ATOM      2  CA  ALA A   1       0.000   0.000   0.000  1.00  0.00           C
ATOM      3  C   ALA A   1       6.000   3.000   0.000  1.00  0.00           C
ATOM      4  O   ALA A   1       6.000   3.000   5.000  1.00  0.00           O
ATOM      5  SG  CYS A   2       0.000  -8.000   2.000  1.00  0.00           S
END
"""


def test_atomic_model_molmap(tmp_path) -> None:
    from cryoscape.simulate.atoms import molmap, read_atomic_model

    path = tmp_path / "tiny.pdb"
    path.write_text(PDB)
    model = read_atomic_model(path)
    assert model.coords_angstrom.shape == (5, 3) and list(model.atomic_numbers) == [7, 6, 6, 8, 16]
    volume = molmap(model.coords_angstrom, model.atomic_numbers, 32, 1.0, 4.0, centre_angstrom=np.zeros(3))
    sigma = 0.225 * 4.0
    # independent: the sulphur peak sits at voxel (x, y, z) = (16, 8, 18) with height ~16
    assert volume[18, 8, 16] == pytest.approx(16, rel=0.01)
    # a voxel one Å off the oxygen centre: 8 exp(-1/(2σ²)) plus tails of the others (tiny)
    assert volume[21, 19, 23] == pytest.approx(8 * np.exp(-1 / (2 * sigma**2)), rel=0.02)
    cfg = _cfg(source=str(path), box_size=24, n_particles=8)
    sim = Simulator(cfg)
    gt = sim.source.volume()
    com = np.array([(np.indices(gt.shape)[a] * gt).sum() / gt.sum() for a in range(3)])
    mass_com = model.centre_of_mass()
    # the gt is centred on the centre of mass (within the Z-vs-mass weighting difference)
    zweighted = (model.coords_angstrom * model.atomic_numbers[:, None]).sum(0) / model.atomic_numbers.sum()
    expected = (zweighted - mass_com)[::-1] / sim.pixel_size_angstrom + 12
    assert np.allclose(com, expected, atol=0.3)
    assert np.isfinite(sim.clean_images(0, 8)).all()


def test_map_source_projects_like_the_analytic_source(tmp_path) -> None:
    from cryoscape.io.mrc import write_mrc

    analytic = Simulator(_cfg(n_particles=6, box_size=32))
    volume = analytic.source.volume(0, 0.5)
    path = write_mrc(tmp_path / "gt.mrc", volume, analytic.pixel_size_angstrom)
    from_map = Simulator(_cfg(source=str(path), box_size=None, n_particles=6))
    assert from_map.box_size == 32
    assert from_map.pixel_size_angstrom == pytest.approx(analytic.pixel_size_angstrom, rel=1e-5)
    analytic.coordinates[:] = 0.5
    a = analytic.clean_images(0, 6)
    b = from_map.clean_images(0, 6)
    assert np.array_equal(analytic.rotations, from_map.rotations)
    for x, y in zip(a, b):
        assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.99
