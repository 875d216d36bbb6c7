"""Periodic + smooth decomposition: checked against its defining equations with np.roll, independently of FFTs."""

from __future__ import annotations

import numpy as np
import torch

from cryoscape.reconstruct.periodic import periodic_component, smooth_component


def _periodic_laplacian(u: np.ndarray) -> np.ndarray:
    """Laplacian with wrap-around neighbours (the DFT's view of the image)."""
    return sum(np.roll(u, s, axis=a) for s in (1, -1) for a in (-2, -1)) - 4 * u


def _free_laplacian(u: np.ndarray) -> np.ndarray:
    """Laplacian over the neighbours that exist inside the image (no wrap-around), by explicit loops."""
    m, n = u.shape
    out = np.zeros_like(u)
    for i in range(m):
        for j in range(n):
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= i + di < m and 0 <= j + dj < n:
                    out[i, j] += u[i + di, j + dj] - u[i, j]
    return out


def test_periodic_component_has_the_free_laplacian_of_the_image():
    # Moisan's characterisation: the periodic component p is the periodic image whose periodic Laplacian is the
    # image's Laplacian without the wrap-around neighbours, with the same mean.
    rng = np.random.default_rng(0)
    u = rng.normal(size=(12, 10)) + np.linspace(0, 5, 10)[None, :]  # a ramp: a large jump across the edges
    p = periodic_component(torch.as_tensor(u)).numpy()
    np.testing.assert_allclose(_periodic_laplacian(p), _free_laplacian(u), atol=1e-10)
    assert abs(p.mean() - u.mean()) < 1e-12
    # the jump between opposite edges shrinks (the cross artefact of the DFT)
    assert np.abs(p[:, -1] - p[:, 0]).mean() < 0.5 * np.abs(u[:, -1] - u[:, 0]).mean()


def test_smooth_component_vanishes_without_edge_jumps_and_is_batched():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(8, 8))
    u[-1, :] = u[0, :]
    u[:, -1] = u[:, 0]  # equal opposite edges: nothing to remove
    np.testing.assert_allclose(smooth_component(torch.as_tensor(u)).numpy(), 0.0, atol=1e-12)
    batch = torch.as_tensor(rng.normal(size=(3, 8, 8)), dtype=torch.float32)
    s = smooth_component(batch)
    assert s.dtype == torch.float32 and s.shape == batch.shape
    np.testing.assert_allclose(s[1].numpy(), smooth_component(batch[1:2])[0].numpy(), atol=1e-6)
