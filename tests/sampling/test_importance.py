"""Tests for cryolearn.sampling.importance."""

import math

import pytest
import torch

from cryolearn.sampling import effective_sample_size, importance_reweight

DTYPE = torch.float64


def _log_normal(x, mu, s):
    return -((x - mu) ** 2) / (2 * s**2) - torch.log(torch.as_tensor(s, dtype=DTYPE))


def test_ess_of_equal_and_one_hot_weights():
    K = 7
    equal = torch.full((K, 3), -2.5, dtype=DTYPE)
    torch.testing.assert_close(importance_reweight(equal).ess, torch.full((3,), float(K), dtype=DTYPE))
    torch.testing.assert_close(effective_sample_size(weights=equal.exp()), torch.full((3,), float(K), dtype=DTYPE))
    one_hot = torch.full((K, 2), float("-inf"), dtype=DTYPE)
    one_hot[3, 0] = 0.0
    one_hot[5, 1] = 1e4  # huge log-weights do not overflow
    res = importance_reweight(one_hot)
    torch.testing.assert_close(res.ess, torch.ones(2, dtype=DTYPE))
    torch.testing.assert_close(res.weights[:, 1], torch.eye(K, dtype=DTYPE)[5])
    torch.testing.assert_close(effective_sample_size(log_weights=one_hot), torch.ones(2, dtype=DTYPE))


def test_ess_is_kish_formula_and_shift_invariant():
    lw = torch.randn(50, 4, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    w = lw.exp()
    kish = w.sum(0) ** 2 / (w**2).sum(0)
    torch.testing.assert_close(effective_sample_size(log_weights=lw), kish)
    torch.testing.assert_close(effective_sample_size(weights=3 * w), kish)
    a, b = importance_reweight(lw), importance_reweight(lw + 800.0)
    torch.testing.assert_close(a.weights, b.weights)
    torch.testing.assert_close(a.ess, kish)
    torch.testing.assert_close(a.weights.sum(0), torch.ones(4, dtype=DTYPE))


def test_reweighting_standard_normal_toward_shifted_gaussian():
    # Samples from p = N(0, 1) reweighted toward q = N(mu, s^2), one (mu, s) per observation.
    K = 200_000
    mu = torch.tensor([0.5, -0.3, 0.0], dtype=DTYPE)
    s = torch.tensor([0.8, 1.1, 0.5], dtype=DTYPE)  # s^2 < 4/3: the weights have finite fourth moment
    x = torch.randn(K, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(1))  # (K, B)
    res = importance_reweight(_log_normal(x, mu, s) - _log_normal(x, 0.0, 1.0), x)
    torch.testing.assert_close(res.mean, mu, atol=0.02 * s.max().item(), rtol=0)
    torch.testing.assert_close(res.var, s**2, rtol=0.03, atol=0)
    # ESS / K -> 1 / E_p[(q/p)^2] = s sqrt(2 - s^2) exp(-mu^2 / (2 - s^2)).
    ess_ratio = s * torch.sqrt(2 - s**2) * torch.exp(-(mu**2) / (2 - s**2))
    torch.testing.assert_close(res.ess / K, ess_ratio, rtol=0.05, atol=0)


def test_gaussian_posterior_of_cryowgen1():
    # the book's chapters on the four methods, w = 0, a measured coefficient: reference N(x_bar, gamma / beta),
    # l = -(y - x)^2 / (2 sigma^2 gamma) targets N((y / s2 + beta x_bar) / (1 / s2 + beta), gamma / (1 / s2 + beta)).
    y, x_bar, sigma, beta, gamma = 1.0, -0.5, 0.7, 2.0, 0.5
    xi = torch.randn(100_000, 1, dtype=DTYPE, generator=torch.Generator().manual_seed(2))  # (K, B)
    x = x_bar + math.sqrt(gamma / beta) * xi
    res = importance_reweight(-((y - x) ** 2) / (2 * sigma**2 * gamma), x)
    prec = 1 / sigma**2 + beta
    assert res.mean.item() == pytest.approx((y / sigma**2 + beta * x_bar) / prec, abs=0.01)
    assert res.var.item() == pytest.approx(gamma / prec, rel=0.03)


def test_batched_equals_looped_and_dim():
    g = torch.Generator().manual_seed(3)
    lw = 3 * torch.randn(20, 4, dtype=DTYPE, generator=g)  # (K, B)
    x = torch.randn(20, 4, 2, 3, dtype=DTYPE, generator=g)  # (K, B, ...)
    res = importance_reweight(lw, x)
    assert res.mean.shape == res.var.shape == (4, 2, 3) and res.ess.shape == (4,)
    for b in range(4):
        w = torch.softmax(lw[:, b], 0)
        m = torch.einsum("k,kij->ij", w, x[:, b])
        torch.testing.assert_close(res.mean[b], m)
        torch.testing.assert_close(res.var[b], torch.einsum("k,kij->ij", w, (x[:, b] - m) ** 2))
        one = importance_reweight(lw[:, b : b + 1], x[:, b : b + 1])
        torch.testing.assert_close(one.mean[0], res.mean[b])
        torch.testing.assert_close(one.ess[0], res.ess[b])
    t = importance_reweight(lw.T, x.transpose(0, 1), dim=1)  # (B, K, ...) with the sample axis second
    torch.testing.assert_close(t.mean, res.mean)
    torch.testing.assert_close(t.var, res.var)
    torch.testing.assert_close(t.ess, res.ess)
    torch.testing.assert_close(t.weights, res.weights.T)
    assert importance_reweight(lw).mean is None


def test_bad_input_raises():
    lw = torch.zeros(5, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match="NaN"):
        importance_reweight(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="-inf"):
        importance_reweight(torch.tensor([[0.0, float("-inf")], [0.0, float("-inf")]]))
    with pytest.raises(ValueError, match="samples"):
        importance_reweight(lw, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="dim"):
        importance_reweight(lw, dim=2)
    with pytest.raises(ValueError, match="exactly one"):
        effective_sample_size(weights=lw, log_weights=lw)
    with pytest.raises(ValueError, match="non-negative"):
        effective_sample_size(weights=-torch.ones(3))
