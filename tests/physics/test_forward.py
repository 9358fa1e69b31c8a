"""The forward model y = M(Rx) + M n and the rotation proxy (the book's appendix on notation and conventions)."""

import pytest
import torch

from cryolearn.physics import (
    apply_missing_wedge,
    estimate_sigma,
    fourier_grid,
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


def test_estimate_sigma_recovers_the_noise_level_and_ignores_a_band_limited_signal():
    g = torch.Generator().manual_seed(2)
    shape = (16, 16, 16)
    m = missing_wedge_mask(shape, (-60, 60))
    n = 0.7 * torch.randn(8, *shape, generator=g, dtype=torch.float64)
    noise_only = estimate_sigma(apply_missing_wedge(n, m), m)
    assert noise_only.shape == (8,)
    # E|n_hat(k)|^2 = sigma^2 per coefficient: about 700 coefficients per volume give ~2% per volume.
    assert (noise_only / 0.7 - 1).abs().max() < 0.08
    assert abs(noise_only.pow(2).mean().sqrt().item() / 0.7 - 1) < 0.03
    # A strong signal with no power beyond the cutoff changes nothing; unmasked noise neither (measured region only).
    kz, ky, kx = fourier_grid(shape, dtype=torch.float64)
    low = (kz**2 + ky**2 + kx**2).sqrt() < 0.45
    x = torch.fft.irfftn(torch.fft.rfftn(10 * torch.randn(8, *shape, generator=g, dtype=torch.float64), dim=(-3, -2, -1)) * low,
                         s=shape, dim=(-3, -2, -1))
    y, _ = simulate_observation(x, m, sigma=0.7, generator=torch.Generator().manual_seed(5))
    y_unmasked, _ = simulate_observation(x, m, sigma=0.7, masked_noise=False, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(estimate_sigma(y, m), estimate_sigma(y_unmasked, m))
    torch.testing.assert_close(estimate_sigma(y, m), estimate_sigma(y - apply_missing_wedge(x, m), m))
    # Batched equals looped; a cutoff below the band picks up the signal.
    torch.testing.assert_close(estimate_sigma(y, m), torch.stack([estimate_sigma(v, m) for v in y]))
    assert (estimate_sigma(y, m, cutoff=0.3) > 2 * estimate_sigma(y, m)).all()


def test_estimate_sigma_errors():
    m = missing_wedge_mask((8, 8, 8))
    with pytest.raises(ValueError, match="half grid"):
        estimate_sigma(torch.zeros(8, 8, 10), m)
    with pytest.raises(ValueError, match="cutoff"):
        estimate_sigma(torch.zeros(8, 8, 8), m, cutoff=1.0)


def test_random_redegrade_draws_rotations_then_noise_from_the_generator():
    from cryolearn.physics import random_redegrade, redegrade_all, rotation_proxy

    mask = missing_wedge_mask((16, 16), (-45, 45))
    x = torch.randn(5, 16, 16, generator=torch.Generator().manual_seed(1))
    rots = torch.tensor([0, 2])
    out = random_redegrade(x, mask, rots, 0.5, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    idx = rots[torch.randint(0, 2, (5,), generator=g)]
    noise = apply_missing_wedge(0.5 * torch.randn(x.shape, generator=g), mask)
    torch.testing.assert_close(out, rotation_proxy(x, mask, idx) + noise)
    clean = random_redegrade(x, mask, rots, None, torch.Generator().manual_seed(7))
    torch.testing.assert_close(clean, rotation_proxy(x, mask, idx))
    every = redegrade_all(x, mask, rots)
    assert every.shape == (2, 5, 16, 16)
    torch.testing.assert_close(every[1], rotation_proxy(x, mask, 2))
