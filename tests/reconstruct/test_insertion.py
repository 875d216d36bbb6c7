"""Radial insertion kernel: weights against the formula, geometry against trilinear insertion, effect on accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.errors import InputError
from cryoscape.geometry.slicing import insert_slices
from cryoscape.reconstruct.backproject import BackprojectConfig, backproject_arrays
from cryoscape.reconstruct.fsc import fsc_curve
from cryoscape.reconstruct.insertion import insert_slices_radial, radial_corners
from cryoscape.simulate.config import preset_config
from cryoscape.simulate.simulator import GroundTruthVolumes, Simulator


def test_radial_weights_follow_the_distance_to_each_corner():
    points = torch.tensor([[2.0, 3.0, 4.0], [2.5, 3.0, 4.0], [2.3, 3.3, 4.0], [2.5, 3.5, 4.5], [7.6, 0.0, 0.0]],
                          dtype=torch.float64)
    idx, w = radial_corners(points, 8)
    for p, ids, ws in zip(points.numpy(), idx.numpy(), w.numpy()):
        got = {}
        for i, wi in zip(ids, ws):
            if wi > 0:
                got[i] = got.get(i, 0.0) + wi
        want = {}
        for c in np.ndindex(2, 2, 2):
            v = np.floor(p) + np.array(c)[::-1]  # (x, y, z)
            wv = max(0.0, 1.0 - float(np.linalg.norm(v - p)))
            if wv > 0 and np.all(v >= 0) and np.all(v < 8):
                key = int((v[2] * 8 + v[1]) * 8 + v[0])
                want[key] = want.get(key, 0.0) + wv
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], abs=1e-12)
    # a point on a voxel puts all its weight there; at the centre of a cell each corner gets 1 - √3/2
    assert w[0].max() == pytest.approx(1.0) and w[0].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w[3].numpy(), 1 - np.sqrt(3) / 2)
    # the corner beyond the grid (x = 8) gets nothing
    assert w[4].sum() == pytest.approx(1 - 0.6)  # x = 7 at 0.6; x = 8 (0.4 away) is outside


def test_radial_insertion_puts_slices_where_trilinear_insertion_does():
    # same geometry (k @ R scaled to the grid): the weighted centroid of every voxel's data agrees, and a
    # slice value that is constant gives data == weight in both
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_quat(q).as_matrix()
    ones = torch.ones((3, 16, 16), dtype=torch.complex128)
    d_r, w_r = insert_slices_radial(ones, rot, 16)
    _, w_t = insert_slices(ones, rot, 16)
    np.testing.assert_allclose(d_r.real.numpy(), w_r.numpy(), atol=1e-12)
    g = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij"), -1).reshape(-1, 3)
    cr = (w_r.numpy().reshape(-1, 1) * g).sum(0) / w_r.sum().item()
    ct = (w_t.numpy().reshape(-1, 1) * g).sum(0) / w_t.sum().item()
    np.testing.assert_allclose(cr, ct, atol=0.02)
    # the voxels reached are those within one voxel of a slice point: a subset of the trilinear footprint
    assert bool(((w_r > 0) <= (w_t > 0)).all())


def test_radial_kernel_beats_trilinear_noise_free_and_is_an_option():
    # noise-free astigmatic images, CTF on the box grid, large defocus: the narrower kernel blurs less (on sparse
    # noisy data it loses, so the default stays trilinear: benchmarks/backproject_accuracy.py)
    cfg = preset_config("tiny-32", n_particles=400, snr=float("inf"), defocus_min_angstrom=5000.0,
                        defocus_max_angstrom=30000.0, astigmatism_max_angstrom=300.0, source="hinge",
                        hinge_angles_deg=(30.0, 30.0), box_size=32, pixel_size_angstrom=2.4)
    sim = Simulator(cfg)
    images, truth = sim.images(0, sim.n), GroundTruthVolumes(cfg)(0, 0.0)
    auc = {}
    for kernel in ("radial", "trilinear"):
        vol = backproject_arrays(images, sim.poses(), sim.ctf_params(), 2.4, BackprojectConfig(kernel=kernel)).full
        auc[kernel] = fsc_curve(vol, truth, 2.4).area_under_curve()
    assert auc["radial"] > auc["trilinear"] + 0.007  # measured 0.963 vs 0.950
    assert BackprojectConfig().kernel == "trilinear"
    with pytest.raises(InputError, match="kernel"):
        BackprojectConfig(kernel="cubic")
    with pytest.raises(InputError, match="edge"):
        BackprojectConfig(image_edges="window")
