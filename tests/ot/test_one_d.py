"""Tests for cryolearn.ot.one_d: 1D monotone optimal transport against POT, scipy and brute force."""

import itertools

import numpy as np
import ot as pot
import pytest
import scipy.stats
import torch

from cryolearn.ot import monotone_plan_1d, wasserstein_1d, wasserstein_distance_1d

DTYPE = torch.float64


@pytest.mark.parametrize("p", [1, 2, 1.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_pot_batched(p, weighted, gen, simplex):
    g = gen(0)
    u = torch.randn(3, 7, dtype=DTYPE, generator=g)  # (batch, n): POT wants (n, batch)
    v = torch.randn(3, 5, dtype=DTYPE, generator=g) * 2 + 0.5
    uw, vw = (simplex((3, 7), g, 0.1), simplex((3, 5), g, 0.1)) if weighted else (None, None)
    got = wasserstein_1d(u, v, uw, vw, p=p)
    ref = pot.wasserstein_1d(u.T.numpy(), v.T.numpy(), None if uw is None else uw.T.numpy(), None if vw is None else vw.T.numpy(), p=p)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    looped = torch.stack([wasserstein_1d(u[k], v[k], None if uw is None else uw[k], None if vw is None else vw[k], p=p) for k in range(3)])
    torch.testing.assert_close(got, looped, rtol=1e-14, atol=0)


def test_broadcasting_and_weight_normalisation(gen):
    g = gen(1)
    u = torch.randn(2, 4, 6, dtype=DTYPE, generator=g)
    v = torch.randn(9, dtype=DTYPE, generator=g)
    w = torch.rand(9, dtype=DTYPE, generator=g)
    got = wasserstein_1d(u, v, v_weights=5 * w)  # unnormalised weights are normalised
    assert got.shape == (2, 4)
    ref = torch.stack([torch.stack([wasserstein_1d(u[i, j], v, v_weights=w / w.sum()) for j in range(4)]) for i in range(2)])
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=0)


def test_closed_forms_and_scipy(gen):
    g = gen(2)
    u = torch.randn(11, dtype=DTYPE, generator=g)
    # A translation by c moves every atom by c: W_p^p = |c|^p.
    for p in (1, 2, 3):
        torch.testing.assert_close(wasserstein_1d(u, u + 0.7, p=p), torch.tensor(0.7**p, dtype=DTYPE))
    # A dilation about the mean: W_2^2 = (s - 1)^2 * mean (u - mean)^2.
    c = u - u.mean()
    torch.testing.assert_close(wasserstein_1d(c, 3 * c, p=2), 4 * c.pow(2).mean())
    v, uw, vw = torch.randn(8, dtype=DTYPE, generator=g), torch.rand(11, dtype=DTYPE, generator=g), torch.rand(8, dtype=DTYPE, generator=g)
    ref = scipy.stats.wasserstein_distance(u.numpy(), v.numpy(), uw.numpy(), vw.numpy())
    assert wasserstein_distance_1d(u, v, uw, vw, p=1).item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(wasserstein_distance_1d(u, v, p=2), wasserstein_1d(u, v, p=2).sqrt())


def test_monotone_plan_is_optimal_by_brute_force(gen):
    g = gen(3)
    x = torch.randn(4, 6, dtype=DTYPE, generator=g)
    y = torch.randn(4, 6, dtype=DTYPE, generator=g) + 1.0
    perm = monotone_plan_1d(x, y)
    assert perm.dtype == torch.long and perm.shape == (4, 6)
    assert (perm.sort(-1).values == torch.arange(6)).all()  # a permutation
    perms = torch.tensor(list(itertools.permutations(range(6))))  # (720, 6)
    for p in (1, 2, 3):
        brute = (x[:, None] - y[:, perms]).abs().pow(p).mean(-1).amin(-1)  # (4,)
        got = (x - y.gather(-1, perm)).abs().pow(p).mean(-1)
        torch.testing.assert_close(got, brute, rtol=1e-12, atol=0)
        torch.testing.assert_close(got, wasserstein_1d(x, y, p=p), rtol=1e-12, atol=0)
    # The plan matrix has uniform marginals.
    plan = torch.nn.functional.one_hot(perm, 6) / 6
    torch.testing.assert_close(plan.sum(-1), torch.full((4, 6), 1 / 6, dtype=plan.dtype))
    torch.testing.assert_close(plan.sum(-2), torch.full((4, 6), 1 / 6, dtype=plan.dtype))


def test_gradient_finite_differences_and_closed_form(gen, simplex):
    g = gen(4)
    u = torch.randn(2, 5, dtype=DTYPE, generator=g, requires_grad=True)
    v = torch.randn(2, 7, dtype=DTYPE, generator=g)
    w = simplex((2, 5), g, 0.1)
    assert torch.autograd.gradcheck(lambda t: wasserstein_1d(t, v, w, p=2), (u,))
    assert torch.autograd.gradcheck(lambda t: wasserstein_1d(t, v, w, p=1.5), (u,))
    # Equal sizes, uniform weights: d W_2^2 / d x_i = 2 (x_i - y_perm(i)) / n.
    x = torch.randn(6, dtype=DTYPE, generator=g, requires_grad=True)
    y = torch.randn(6, dtype=DTYPE, generator=g)
    wasserstein_1d(x, y, p=2).backward()
    torch.testing.assert_close(x.grad, 2 * (x - y[monotone_plan_1d(x, y)]).detach() / 6)


def test_errors():
    u = torch.zeros(3, dtype=DTYPE)
    with pytest.raises(ValueError, match="at least 1"):
        wasserstein_1d(u, u, p=0.5)
    with pytest.raises(ValueError, match="non-negative"):
        wasserstein_1d(u, u, u_weights=torch.tensor([1.0, -1.0, 1.0], dtype=DTYPE))
    with pytest.raises(ValueError, match="positive sum"):
        wasserstein_1d(u, u, v_weights=torch.zeros(3, dtype=DTYPE))
    with pytest.raises(ValueError, match="broadcast"):
        wasserstein_1d(torch.zeros(2, 3, dtype=DTYPE), torch.zeros(4, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="floating"):
        wasserstein_1d(torch.arange(3), torch.arange(3))
    with pytest.raises(ValueError, match="same non-empty shape"):
        monotone_plan_1d(u, torch.zeros(4, dtype=DTYPE))
