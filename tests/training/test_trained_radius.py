"""The maps a run decodes hold exactly the frequencies its loss trains (default loss disc = map sphere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryoscape.geometry.lattice import hermitian_half
from cryoscape.models.config import ModelConfig
from cryoscape.models.decoders import Decoder
from cryoscape.training.config import TrainConfig


@pytest.mark.parametrize("box", [16, 32])
def test_default_loss_disc_and_map_sphere_agree(box):
    config = TrainConfig()
    loss_radius = config.loss_radius(box)
    torch.manual_seed(0)
    decoder = Decoder(ModelConfig(zdim=0, dec_dim=16, dec_layers=1), box)
    hartley = decoder.eval_hartley_volumes(None, box, radius_px=config.volume_radius_px)[0].numpy()
    j = np.arange(box) - box // 2
    jz, jy, jx = np.meshgrid(j, j, j, indexing="ij")
    r = np.sqrt(jx**2 + jy**2 + jz**2)
    support = hartley != 0
    # no decoded energy beyond the trained radius
    assert not support[r > loss_radius + 1e-9].any()
    # every trained point of a central slice (the kz = 0 plane) is decoded
    idx_half, idx_mirror = hermitian_half(box, loss_radius)
    trained = np.zeros(box * box, dtype=bool)
    trained[idx_half] = True
    trained[idx_mirror] = True
    plane = support[box // 2].reshape(-1)
    assert plane[trained].all()
    # decoded but untrained in-plane points: only the Nyquist-edge points whose mirror is off the lattice
    extra = np.flatnonzero(plane & ~trained)
    ey, ex = np.unravel_index(extra, (box, box))
    assert len(extra) <= 2 and ((ey == 0) | (ex == 0)).all()
    # the sphere fills the trained disc: at least 99 % of the decoded voxels lie within the loss radius
    assert support.sum() >= 0.99 * (r <= loss_radius).sum()


def test_loss_radius_default_is_nyquist_and_explicit_value_wins():
    assert TrainConfig().loss_radius(64) == 32.0
    assert TrainConfig(loss_radius_px=10.0).loss_radius(64) == 10.0
