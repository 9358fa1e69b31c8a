"""The forward model y = M(Rx) + M n and the rotation proxy (SPEC section 1)."""

import pytest
import torch

from cryolearn.physics import (
    apply_missing_wedge,
    missing_wedge_mask,
    noise_sigma,
    rotate_cube,
    rotation_proxy,
    simulate_observation,
)


def test_snr_sets_sigma_and_noise_is_masked():
    g = torch.Generator().manual_seed(0)
    shape = (16, 16, 16)
    m = missing_wedge_mask(shape, (-60, 60))
    x = 3.0 * torch.randn(4, *shape, generator=g, dtype=torch.float64)
    y, sigma = simulate_observation(x, m, snr=0.5, generator=g)
    torch.testing.assert_close(sigma, torch.sqrt(x.flatten(1).var(1, unbiased=False) / 0.5))
    # y lives in the measured subspace, and its residual has the masked-noise variance.
    torch.testing.assert_close(apply_missing_wedge(y, m), y)
    resid = y - apply_missing_wedge(x, m)
    frac = m.double().mean().item()  # rough measured fraction of the half grid
    ratio = resid.var().item() / (sigma**2).mean().item()
    assert 0.8 * frac < ratio < 1.2 * frac


def test_unmasked_noise_fills_the_wedge():
    g = torch.Generator().manual_seed(1)
    shape = (12, 12, 12)
    m = missing_wedge_mask(shape)
    x = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    y, sigma = simulate_observation(x, m, sigma=0.7, masked_noise=False, generator=g)
    resid = y - apply_missing_wedge(x, m)
    assert abs(resid.std().item() - 0.7) < 0.05
    assert (apply_missing_wedge(y, m) - y).norm() > 0.1 * y.norm()


def test_errors():
    m = missing_wedge_mask((8, 8, 8))
    with pytest.raises(ValueError, match="exactly one"):
        simulate_observation(torch.zeros(8, 8, 8), m)
    with pytest.raises(ValueError, match="snr"):
        noise_sigma(torch.zeros(8, 8, 8), 0.0)


def test_rotation_proxy_is_masked_rotation_and_differentiable():
    shape = (8, 8, 8)
    m = missing_wedge_mask(shape)
    x = torch.randn(3, *shape, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([0, 4, 9])
    out = rotation_proxy(x, m, idx)
    for b in range(3):
        torch.testing.assert_close(out[b], apply_missing_wedge(rotate_cube(x[b], int(idx[b])), m))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
