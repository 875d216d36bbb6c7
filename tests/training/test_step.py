"""The training step's conventions: CTF at the points, slice at k @ R, shift sign, encoder input, bf16
parity.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from cryoscape.data.ctf_batch import CTFBatch
from cryoscape.geometry.ctf import ctf_grid
from cryoscape.geometry.fourier import ht2_center, ht3_center, iht2_center, translate_images
from cryoscape.geometry.lattice import hermitian_half
from cryoscape.io.records import Poses
from cryoscape.models import ModelConfig, build_model
from cryoscape.models.precision import cpu_supports_bf16
from cryoscape.training.step import ReconstructionObjective

from .synthetic import blob_volume, make_ctf, project

BOX = 16


def ctf_tensor(ctf) -> CTFBatch:
    return CTFBatch.from_params(ctf)


def cube_rotations() -> np.ndarray:
    """The 24 proper rotations that map the integer lattice onto itself (signed permutation matrices)."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.isclose(np.linalg.det(m), 1):
                out.append(m)
    return np.array(out)


class OracleDecoder(nn.Module):
    """Returns the exact Hartley pairs of a fixed volume at lattice points (no interpolation)."""

    def __init__(self, volume: np.ndarray):
        super().__init__()
        self.h3 = torch.from_numpy(np.asarray(ht3_center(volume)))
        self.box = volume.shape[0]
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, coords, z=None):
        j = coords.double() * self.box
        assert torch.allclose(j, j.round(), atol=1e-4)
        j = j.round().long()
        c = self.box // 2

        def at(jj):
            return self.h3[jj[..., 2] + c, jj[..., 1] + c, jj[..., 0] + c]

        return torch.stack([at(j), at(-j)], dim=-1).float() + 0 * self.dummy


class OracleModel(nn.Module):
    zdim = 0

    def __init__(self, volume):
        super().__init__()
        self.decoder = OracleDecoder(volume)


def test_ctf_at_points_equals_ctf_grid():
    rng = np.random.default_rng(0)
    ctf = make_ctf(3, BOX, rng)
    module = ReconstructionObjective(build_model(ModelConfig(zdim=0, dec_dim=8, dec_layers=1), BOX), BOX, BOX / 2 - 1)
    got = module.ctf_at_points(ctf_tensor(ctf)).numpy()
    grid = ctf_grid(
        BOX,
        ctf.pixel_size_angstrom,
        ctf.defocus_u_angstrom,
        ctf.defocus_v_angstrom,
        ctf.defocus_angle_deg,
        ctf.voltage_kv,
        ctf.cs_mm,
        ctf.amplitude_contrast,
        ctf.phase_shift_deg,
    )
    idx_half, _ = hermitian_half(BOX, BOX / 2 - 1)
    np.testing.assert_allclose(got, grid.reshape(3, -1)[:, idx_half], atol=2e-5)
    assert np.ptp(got) > 0.5  # the CTF oscillates inside the disc at these defoci


def test_exact_model_has_zero_loss_and_wrong_conventions_do_not():
    """Images made by the independent projector (slice, CTF grid, translate by -shift) are reproduced
    exactly.
    """
    rng = np.random.default_rng(1)
    vol = blob_volume(BOX, [(0, 0, 0), (3, -2, 1), (-2, 0, 3)])
    rots = cube_rotations()[:12]
    n = len(rots)
    poses = Poses(rots, rng.uniform(-2, 2, (n, 2)), BOX)
    ctf = make_ctf(n, BOX, rng)
    images = project([vol], np.zeros(n, int), poses, ctf, 0.0, rng)
    ht = torch.from_numpy(np.asarray(ht2_center(images.astype(np.float64)))).float()
    module = ReconstructionObjective(OracleModel(vol), BOX, BOX / 2 - 1)
    rot_t = torch.from_numpy(rots).float()
    shifts = torch.from_numpy(poses.shifts_px).float()
    ctf_t = ctf_tensor(ctf)
    signal = module.data_pairs(ht, shifts)[0].square().mean().item()
    good = module(ht, rot_t, shifts, ctf_t, beta=0.0).mse.item()
    assert good < 1e-6 * signal
    assert module(ht, rot_t, -shifts, ctf_t, beta=0.0).mse.item() > 0.05 * signal  # shift sign
    flipped = dataclasses.replace(ctf_t, phase_shift_deg=ctf_t.phase_shift_deg + 180.0)  # negates the CTF
    assert module(ht, rot_t, shifts, flipped, beta=0.0).mse.item() > 0.05 * signal
    assert module(ht, rot_t.transpose(1, 2), shifts, ctf_t, beta=0.0).mse.item() > 0.05 * signal  # R vs R^T


@pytest.mark.parametrize("radius", [BOX / 2 - 1, 5.0])
def test_mse_is_the_full_disc_mse_with_dc_once(radius):
    """A model predicting zero: the batch's mse is the mean square of the centred data over the disc, each
    lattice point once (computed directly on the (D, D) transform, not from the pairs)."""
    rng = np.random.default_rng(4)
    n = 4
    images = rng.normal(size=(n, BOX, BOX)) + 2.0  # a large DC term
    ht = torch.from_numpy(np.asarray(ht2_center(images))).float()
    module = ReconstructionObjective(OracleModel(np.zeros((BOX, BOX, BOX))), BOX, radius)
    rots = torch.from_numpy(cube_rotations()[:n]).float()
    parts = module(ht, rots, None, None, beta=0.0, reduce=False)
    j = np.arange(BOX) - BOX // 2
    disc = j[:, None] ** 2 + j[None, :] ** 2 <= radius**2
    expected = (np.asarray(ht2_center(images)) ** 2)[:, disc].mean(axis=1)
    np.testing.assert_allclose(parts.mse.detach().numpy(), expected, rtol=1e-5)
    assert module.n_disc == disc.sum()


@pytest.mark.parametrize("mode", ["hartley", "real"])
def test_encoder_input_is_the_centred_phase_flipped_image(mode):
    rng = np.random.default_rng(2)
    n = 3
    images = rng.normal(size=(n, BOX, BOX))
    shifts = rng.uniform(-3, 3, (n, 2))
    ctf = make_ctf(n, BOX, rng)
    model = build_model(ModelConfig(zdim=2, enc_dim=8, dec_dim=8, encoder_input=mode), BOX)
    module = ReconstructionObjective(model, BOX, BOX / 2 - 1)
    ht = torch.from_numpy(np.asarray(ht2_center(images))).float()
    ctf_t = ctf_tensor(ctf)
    sh = torch.from_numpy(shifts).float()
    pairs = module.data_pairs(ht, sh)
    got = module.encoder_input(ht, sh, ctf_t, pairs, module.ctf_at_points(ctf_t)).numpy()
    centred = np.asarray(ht2_center(translate_images(images, shifts)))
    if mode == "hartley":
        grid = ctf_grid(
            BOX,
            ctf.pixel_size_angstrom,
            ctf.defocus_u_angstrom,
            ctf.defocus_v_angstrom,
            ctf.defocus_angle_deg,
            ctf.voltage_kv,
            ctf.cs_mm,
            ctf.amplitude_contrast,
            ctf.phase_shift_deg,
        )
        expected = (centred * np.sign(grid)).reshape(n, -1)
    else:
        centred[:, 0, :] = 0.0  # the -Nyquist row and column have no mirror on the lattice
        centred[:, :, 0] = 0.0
        expected = np.asarray(iht2_center(centred)).reshape(n, -1)
    idx = model.enc_mask_indices.numpy()
    np.testing.assert_allclose(got, expected[:, idx], atol=2e-4)


@pytest.mark.skipif(
    not cpu_supports_bf16(), reason="this CPU has no native bf16 (autocast would be emulated)"
)
def test_bf16_autocast_matches_fp32():
    torch.manual_seed(0)
    model = build_model(ModelConfig(zdim=4, enc_dim=64, dec_dim=64), BOX)
    module = ReconstructionObjective(model, BOX, BOX / 2 - 1)
    rng = np.random.default_rng(3)
    n = 8
    ht = torch.randn(n, BOX, BOX)
    rots = torch.from_numpy(cube_rotations()[:n]).float()
    shifts = torch.from_numpy(rng.uniform(-2, 2, (n, 2))).float()
    ctf_t = ctf_tensor(make_ctf(n, BOX, rng))
    results = []
    for amp in (False, True):
        module.zero_grad()
        parts = module(
            ht, rots, shifts, ctf_t, beta=0.25, generator=torch.Generator().manual_seed(0), amp=amp
        )
        parts.loss.backward()
        assert parts.loss.dtype == torch.float32
        grads = torch.cat([p.grad.reshape(-1) for p in module.parameters() if p.grad is not None])
        results.append((parts.loss.item(), grads))
    (l32, g32), (l16, g16) = results
    assert l16 == pytest.approx(l32, rel=1e-2)
    cos = torch.nn.functional.cosine_similarity(g32, g16, dim=0).item()
    assert cos > 0.99
    assert all(p.dtype == torch.float32 for p in module.parameters())  # fp32 master weights
