"""Tests for cryolearn.ot.semidual: the c-transform and exact OT by the semi-dual."""

import numpy as np
import ot as pot
import pytest
import torch

from cryolearn.ot import c_transform, semidual_ot

DTYPE = torch.float64


def test_c_transform_brute_force_and_batched(gen):
    g = gen(0)
    C = torch.rand(2, 5, 4, dtype=DTYPE, generator=g)
    phi = torch.randn(4, dtype=DTYPE, generator=g)  # broadcasts over the batch
    got = c_transform(phi, C)
    assert got.shape == (2, 5)
    ref = [[min(C[k, i, j].item() - phi[j].item() for j in range(4)) for i in range(5)] for k in range(2)]
    torch.testing.assert_close(got, torch.tensor(ref, dtype=DTYPE))
    with pytest.raises(ValueError, match="phi"):
        c_transform(torch.zeros(3, dtype=DTYPE), C)


@pytest.mark.parametrize("uniform", [True, False])
def test_semidual_reaches_exact_cost(uniform, gen, simplex):
    g = gen(1)
    x, y = torch.randn(3, 7, 2, dtype=DTYPE, generator=g), torch.randn(3, 5, 2, dtype=DTYPE, generator=g) + 0.5
    M = 0.5 * torch.cdist(x, y) ** 2  # (3, 7, 5)
    a, b = (None, None) if uniform else (simplex((3, 7), g, 0.2), simplex((3, 5), g, 0.2))
    res = semidual_ot(a, b, M)
    an = np.full(7, 1 / 7) if uniform else None
    bn = np.full(5, 1 / 5) if uniform else None
    exact = torch.tensor([pot.emd2(an if uniform else a[k].numpy(), bn if uniform else b[k].numpy(), M[k].numpy()) for k in range(3)], dtype=DTYPE)
    assert res.converged.all()
    torch.testing.assert_close(res.value, exact, rtol=1e-4, atol=0)
    # Weak duality both ways: the semi-dual value is a lower bound, the feasible plan's cost an upper one,
    # and the reported gap certifies the error.
    assert (res.value <= exact + 1e-12).all() and (res.cost >= exact - 1e-12).all()
    assert ((exact - res.value) <= res.gap * res.cost.abs() + 1e-12).all() and (res.gap <= 1e-4).all()
    wa = torch.full((3, 7), 1 / 7, dtype=DTYPE) if uniform else a
    wb = torch.full((3, 5), 1 / 5, dtype=DTYPE) if uniform else b
    torch.testing.assert_close(res.plan.sum(-1), wa, rtol=0, atol=1e-13)
    torch.testing.assert_close(res.plan.sum(-2), wb, rtol=0, atol=1e-13)
    torch.testing.assert_close(res.cost, (res.plan * M).sum((-2, -1)))
    if uniform:  # float32 in, float32 out, same accuracy (the solve runs in float64)
        res32 = semidual_ot(None, None, M.float())
        assert res32.value.dtype == res32.plan.dtype == torch.float32
        torch.testing.assert_close(res32.value.double(), exact, rtol=1e-4, atol=0)


def test_semidual_complementary_slackness(gen, simplex):
    g = gen(2)
    M = torch.rand(6, 6, dtype=DTYPE, generator=g)
    a, b = simplex(6, g, 0.2), simplex(6, g, 0.2)
    res = semidual_ot(a, b, M)
    slack = M - res.phi_c[:, None] - res.phi[None, :]
    assert slack.min() >= -1e-14  # phi_c + phi <= C: the c-transform makes the pair admissible
    exact = torch.as_tensor(pot.emd(a.numpy(), b.numpy(), M.numpy()))
    support = exact > 1e-12
    assert slack[support].max() < 1e-4 * (M.max() - M.min())  # tight where the exact plan moves mass
    assert slack[~support].min() > 1e-3  # ... and only there (this problem is non-degenerate)
    # The same for the entropic plan the potential implies: it lives on the exact support.
    assert res.plan[~support].sum() < 1e-6


def test_errors():
    M = torch.rand(3, 3, dtype=DTYPE)
    with pytest.raises(ValueError, match="reg must be positive"):
        semidual_ot(None, None, M, reg=0.0)
    with pytest.raises(ValueError, match="reg_rel"):
        semidual_ot(None, None, M, reg_rel=2.0)
    with pytest.raises(ValueError, match="not both"):
        semidual_ot(None, None, M, reg=0.1, reg_rel=0.1)
    with pytest.raises(ValueError, match="total mass"):
        semidual_ot(torch.ones(3, dtype=DTYPE), None, torch.rand(3, 3, dtype=DTYPE))


def test_absolute_reg_per_problem_equals_reg_rel_times_the_cost_range(gen):
    g = gen(5)
    M = 3.0 + 10 * torch.rand(2, 6, 5, dtype=DTYPE, generator=g)  # (2, n, m)
    rel = semidual_ot(None, None, M, reg_rel=1e-3)
    spread = M.amax((-2, -1)) - M.amin((-2, -1))  # (2,)
    ab = semidual_ot(None, None, M, reg=1e-3 * spread)  # one eps per problem, in the units of M
    assert ab.converged.all() and ab.n_iter == rel.n_iter
    torch.testing.assert_close((ab.phi, ab.value, ab.plan), (rel.phi, rel.value, rel.plan), rtol=1e-12, atol=1e-12)
