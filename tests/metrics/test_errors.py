"""Per-volume errors (cryolearn.metrics.errors): PSNR, correlation, RMSE by region, the in-wedge error."""

import math

import numpy as np
import pytest
import torch

from cryolearn.metrics import normalized_cross_correlation, psnr, relative_wedge_error, rmse
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask, simulate_observation


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_psnr_and_ncc_closed_forms():
    x = torch.randn(2, 6, 6, 6, generator=_gen(6), dtype=torch.float64)
    rng = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    torch.testing.assert_close(psnr(x + 0.1, x), 10 * torch.log10(rng**2 / 0.01))
    expect = torch.full((2,), 10 * math.log10(400.0), dtype=torch.float64)
    torch.testing.assert_close(psnr(x + 0.1, x, data_range=2.0), expect)
    torch.testing.assert_close(normalized_cross_correlation(x, 3 * x + 2), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(normalized_cross_correlation(x, -x), -torch.ones(2, dtype=torch.float64))
    y = x + torch.randn(2, 6, 6, 6, generator=_gen(7), dtype=torch.float64)
    ref = [np.corrcoef(x[i].numpy().ravel(), y[i].numpy().ravel())[0, 1] for i in range(2)]
    np.testing.assert_allclose(normalized_cross_correlation(y, x).numpy(), ref)
    ref2d = np.corrcoef(x[0, 0].numpy().ravel(), y[0, 0].numpy().ravel())[0, 1]
    np.testing.assert_allclose(normalized_cross_correlation(y[0, 0], x[0, 0], ndim=2).numpy(), ref2d)


@pytest.mark.parametrize("shape", [(8, 10, 12), (9, 7, 11), (12, 9)])
def test_rmse_regions_by_parseval(shape):
    g = _gen(8)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    x_hat = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    mask = missing_wedge_mask(shape, (-45, 55))
    d = x_hat - x
    plain = rmse(x_hat, x, ndim=len(shape))
    torch.testing.assert_close(plain, d.flatten(1).pow(2).mean(1).sqrt())
    measured, missing = rmse(x_hat, x, mask=mask), rmse(x_hat, x, mask=~mask)
    torch.testing.assert_close(measured, apply_missing_wedge(d, mask).flatten(1).pow(2).mean(1).sqrt())
    torch.testing.assert_close(missing, apply_missing_wedge(d, ~mask).flatten(1).pow(2).mean(1).sqrt())
    torch.testing.assert_close(measured**2 + missing**2, plain**2)
    torch.testing.assert_close(rmse(x_hat, x, mask=torch.ones_like(mask)), plain)


def test_relative_wedge_error_baselines_and_pooling():
    shape = (16, 16, 16)
    mask = missing_wedge_mask(shape)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(-1, 1, 1, 1)
    x = torch.randn(4, *shape, generator=_gen(9), dtype=torch.float64) * scale
    y, _ = simulate_observation(x, mask, sigma=0.5, generator=_gen(10))
    torch.testing.assert_close(relative_wedge_error(y, x, mask), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(relative_wedge_error(x, x, mask), torch.zeros(4, dtype=torch.float64))
    x_hat = x + torch.randn(4, *shape, generator=_gen(11), dtype=torch.float64)
    per = relative_wedge_error(x_hat, x, mask)
    looped = torch.stack([relative_wedge_error(x_hat[i], x[i], mask) for i in range(4)])
    torch.testing.assert_close(per, looped)
    # closed form via Parseval: wedge power = real-space power of the wedge projection
    num = apply_missing_wedge(x_hat - x, ~mask).pow(2).flatten(1).sum(1)
    den = apply_missing_wedge(x, ~mask).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(per, num / den)
    pooled = relative_wedge_error(x_hat, x, mask, pooled=True)
    assert pooled.ndim == 0
    torch.testing.assert_close(pooled, num.sum() / den.sum())
    assert not torch.allclose(pooled, per.mean())  # the two reductions differ here


def test_pointwise_square_baseline_is_the_best_scaled_square():
    from cryolearn.metrics import pointwise_square_baseline

    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 8, 8, 8, generator=g, dtype=torch.float64)
    x = torch.randn(3, 8, 8, 8, generator=g, dtype=torch.float64)
    b = pointwise_square_baseline(y, x)
    sq = y**2 - (y**2).mean((-3, -2, -1), keepdim=True)
    a = (b / sq).flatten()[0]
    torch.testing.assert_close(b, a * sq)
    # least squares: the residual is orthogonal to the square, and any other scale does worse
    assert abs(((x - b) * sq).sum().item()) < 1e-8
    assert ((x - 1.1 * b) ** 2).sum() > ((x - b) ** 2).sum() < ((x - 0.9 * b) ** 2).sum()
    # a volume that is a square already is recovered exactly, mean removed
    z = torch.rand(1, 8, 8, 8, generator=g, dtype=torch.float64)
    t = 3 * (z**2 - (z**2).mean())
    torch.testing.assert_close(pointwise_square_baseline(z, t), t)
