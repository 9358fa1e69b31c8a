"""Calibration (cryolearn.metrics.calibration): coverage and posterior spread in and out of the wedge."""

import math

import numpy as np
import pytest
import torch

from cryolearn.metrics import calibration_from_samples, calibration_gaussian, posterior_spread_in_out
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_calibration_of_exact_and_overconfident_gaussians():
    g = _gen(12)
    mean = torch.randn(2, 16, 16, 16, generator=g, dtype=torch.float64)
    std = 0.5 + torch.rand(2, 16, 16, 16, generator=g, dtype=torch.float64)
    x = mean + std * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    samples = mean + std * torch.randn(200, *mean.shape, generator=g, dtype=torch.float64)
    exact = calibration_gaussian(mean, std, x)
    assert exact.shape == (2, 2)
    torch.testing.assert_close(exact, torch.tensor([[0.5, 0.9]] * 2, dtype=torch.float64), atol=0.025, rtol=0)
    emp = calibration_from_samples(samples, x)
    torch.testing.assert_close(emp, exact, atol=0.02, rtol=0)
    # an overconfident family (std halved) covers P(|Z| <= z/2) = erf(z / (2 sqrt 2))
    z = np.array([0.6744897501960817, 1.6448536269514722])
    expect = torch.from_numpy(np.vectorize(math.erf)(z / (2 * math.sqrt(2)))).expand(2, 2)
    torch.testing.assert_close(calibration_gaussian(mean, std / 2, x), expect, atol=0.025, rtol=0)
    torch.testing.assert_close(calibration_from_samples(mean + (samples - mean) / 2, x), expect, atol=0.025, rtol=0)


def test_calibration_from_samples_quantiles_match_numpy():
    g = _gen(13)
    samples = torch.randn(7, 3, 4, 5, generator=g, dtype=torch.float64)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    lo, hi = np.quantile(samples.numpy(), [0.05, 0.95], axis=0)
    expect = ((x.numpy() >= lo) & (x.numpy() <= hi)).mean()
    np.testing.assert_allclose(calibration_from_samples(samples, x, levels=(0.9,)).numpy(), [expect])


def test_posterior_spread_in_and_out_of_the_wedge():
    shape = (12, 12, 12)
    mask = missing_wedge_mask(shape)
    n = torch.randn(64, 2, *shape, generator=_gen(14), dtype=torch.float64)
    mean = torch.randn(2, *shape, generator=_gen(15), dtype=torch.float64)
    samples = mean + 3.0 * apply_missing_wedge(n, ~mask) + 0.5 * apply_missing_wedge(n, mask)
    spread = posterior_spread_in_out(samples, mask)
    torch.testing.assert_close(spread.missing, torch.full((2,), 3.0, dtype=torch.float64), rtol=0.03, atol=0)
    torch.testing.assert_close(spread.measured, torch.full((2,), 0.5, dtype=torch.float64), rtol=0.03, atol=0)
    torch.testing.assert_close(spread.ratio, spread.missing / spread.measured)


def test_std_error_bins_ranks_an_informative_map_and_not_a_flat_one():
    """Errors drawn with a known, varying std: the true std map is calibrated (ENCE ~ 0) and ranks voxels
    (decile ratio = ratio of the std deciles); a flat map with the right global level has ratio far above 1
    only through the error itself, and ENCE large in its bins."""
    from cryolearn.metrics import std_error_bins

    g = torch.Generator().manual_seed(0)
    truth = torch.randn(200_000, generator=g, dtype=torch.float64)
    std = torch.exp(torch.randn(200_000, generator=g, dtype=torch.float64))  # spread over orders of magnitude
    mean = truth + std * torch.randn(200_000, generator=g, dtype=torch.float64)
    good = std_error_bins(mean, std, truth)
    assert good.ence < 0.05
    torch.testing.assert_close(good.rmse, good.rmv, rtol=0.05, atol=0)
    assert good.decile_ratio > 10 and good.error_std_correlation > 0.5
    flat = std_error_bins(mean, torch.full_like(std, std.pow(2).mean().sqrt().item()), truth)
    # equal std everywhere: the bins are arbitrary slices, every bin has about the same RMSE
    assert abs(flat.decile_ratio - 1) < 0.1 and abs(flat.error_std_correlation) < 0.05
    shuffled = std_error_bins(mean, std[torch.randperm(std.numel(), generator=g)], truth)
    assert abs(shuffled.decile_ratio - 1) < 0.1 and shuffled.ence > 0.5  # right marginal, wrong places


def test_std_error_bins_refuses_bad_input():
    from cryolearn.metrics import std_error_bins

    x = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="one shape"):
        std_error_bins(x, x[:2], x)
    with pytest.raises(ValueError, match="non-negative"):
        std_error_bins(x, -torch.ones(4, 4), x)
    with pytest.raises(ValueError, match="bins"):
        std_error_bins(x[:1, :3], x[:1, :3], x[:1, :3])
