"""Loss terms: Hartley-pair translation against real-space translation, KL against torch.distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.geometry.fourier import ht2_center, translate_images
from cryoscape.geometry.lattice import frequencies_2d, hermitian_half
from cryoscape.training.losses import gaussian_kl, pair_mse, reparameterize, translate_pairs


@pytest.mark.parametrize("box", [16, 18])
def test_pair_translation_equals_real_space_translation(box):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(5, box, box))
    shifts = rng.uniform(-4, 4, (5, 2))
    shifts[0] = (1.0, 0.0)  # an integer shift: pure np.roll
    idx_half, idx_mirror = hermitian_half(box, box / 2 - 1)
    points = torch.from_numpy(frequencies_2d(box).reshape(-1, 2)[idx_half])
    h = ht2_center(torch.from_numpy(images)).reshape(5, -1)
    moved_pos, moved_neg = translate_pairs(h[:, idx_half], h[:, idx_mirror], points, torch.from_numpy(shifts))
    expected = ht2_center(translate_images(images, shifts)).reshape(5, -1)
    np.testing.assert_allclose(moved_pos.numpy(), expected[:, idx_half], atol=1e-9)
    np.testing.assert_allclose(moved_neg.numpy(), expected[:, idx_mirror], atol=1e-9)
    rolled = ht2_center(np.roll(images[0], 1, axis=1)).reshape(-1)
    np.testing.assert_allclose(moved_pos[0].numpy(), rolled[idx_half], atol=1e-9)
    # the opposite sign is wrong (the test can fail)
    wrong_pos, _ = translate_pairs(h[:, idx_half], h[:, idx_mirror], points, -torch.from_numpy(shifts))
    assert np.abs(wrong_pos.numpy() - expected[:, idx_half]).max() > 1.0


@pytest.mark.parametrize("box, radius", [(16, 6), (16, 7), (18, 8.5)])
def test_pair_mse_is_the_mean_over_the_disc(box, radius):
    """Against a direct full-disc MSE: the centred FFTs of two real images, every disc point once (DC once)."""
    rng = np.random.default_rng(2)
    a_img, b_img = rng.normal(size=(2, 3, box, box))
    a, b = (np.asarray(ht2_center(x)).reshape(3, -1) for x in (a_img, b_img))
    idx_half, idx_mirror = hermitian_half(box, radius)
    self_mirrored = torch.from_numpy(idx_half == idx_mirror)
    assert int(self_mirrored.sum()) == 1  # DC
    got = pair_mse(
        *(torch.from_numpy(x) for x in (a[:, idx_half], a[:, idx_mirror], b[:, idx_half], b[:, idx_mirror])),
        self_mirrored=self_mirrored,
        reduce=False,
    )
    # independent: the disc |k| D <= radius of the centred lattice (radius < D/2: every -k is on the lattice)
    j = np.arange(box) - box // 2
    disc = (j[:, None] ** 2 + j[None, :] ** 2 <= radius**2).reshape(-1)
    expected = ((a - b)[:, disc] ** 2).mean(axis=1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # the DC error counts once: an error only at DC gives 1 / n_disc of it, not 2 / (2 P)
    dc = box // 2 * box + box // 2
    b_dc = a.copy()
    b_dc[:, dc] += 3.0
    got_dc = pair_mse(
        *(torch.from_numpy(x) for x in (a[:, idx_half], a[:, idx_mirror], b_dc[:, idx_half], b_dc[:, idx_mirror])),
        self_mirrored=self_mirrored,
    )
    assert got_dc.item() == pytest.approx(9.0 / disc.sum(), rel=1e-12)
    # without the mask the pairs count DC twice (what a caller without self-mirrored points gets)
    unmasked = pair_mse(*(torch.from_numpy(x) for x in (a[:, idx_half], a[:, idx_mirror], b_dc[:, idx_half],
                                                         b_dc[:, idx_mirror])))
    assert unmasked.item() == pytest.approx(18.0 / (2 * len(idx_half)), rel=1e-12)


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, logvar, reduce=False), expected)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected.mean())


def test_reparameterize_uses_the_generator():
    mu, logvar = torch.zeros(1000, 2), torch.full((1000, 2), np.log(4.0))
    z1 = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    z2 = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    z3 = reparameterize(mu, logvar, torch.Generator().manual_seed(4))
    assert torch.equal(z1, z2)
    assert not torch.equal(z1, z3)
    assert abs(z1.std().item() - 2.0) < 0.15  # std = exp(logvar / 2)
