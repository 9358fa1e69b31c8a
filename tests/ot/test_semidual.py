"""Tests for cryolearn.ot.semidual: c-transform, semi-dual OT, the CryoGEN-II minibatch loss."""

import numpy as np
import ot as pot
import pytest
import torch

from cryolearn.ot import c_transform, minibatch_ot_loss, minibatch_ot_plan, semidual_ot, sqeuclidean_cost

DTYPE = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _weights(shape, g):
    w = torch.rand(shape, dtype=DTYPE, generator=g) + 0.2
    return w / w.sum(-1, keepdim=True)


def _images(B, seed, shape=(5, 5)):
    return torch.randn(B, *shape, dtype=DTYPE, generator=_gen(seed))


def test_c_transform_brute_force_and_batched():
    g = _gen(0)
    C = torch.rand(2, 5, 4, dtype=DTYPE, generator=g)
    phi = torch.randn(4, dtype=DTYPE, generator=g)  # broadcasts over the batch
    got = c_transform(phi, C)
    assert got.shape == (2, 5)
    ref = [[min(C[k, i, j].item() - phi[j].item() for j in range(4)) for i in range(5)] for k in range(2)]
    torch.testing.assert_close(got, torch.tensor(ref, dtype=DTYPE))
    with pytest.raises(ValueError, match="phi"):
        c_transform(torch.zeros(3, dtype=DTYPE), C)


@pytest.mark.parametrize("uniform", [True, False])
def test_semidual_reaches_exact_cost(uniform):
    g = _gen(1)
    x, y = torch.randn(3, 7, 2, dtype=DTYPE, generator=g), torch.randn(3, 5, 2, dtype=DTYPE, generator=g) + 0.5
    M = 0.5 * torch.cdist(x, y) ** 2  # (3, 7, 5)
    a, b = (None, None) if uniform else (_weights((3, 7), g), _weights((3, 5), g))
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


def test_semidual_complementary_slackness():
    g = _gen(2)
    M = torch.rand(6, 6, dtype=DTYPE, generator=g)
    a, b = _weights(6, g), _weights(6, g)
    res = semidual_ot(a, b, M)
    slack = M - res.phi_c[:, None] - res.phi[None, :]
    assert slack.min() >= -1e-14  # phi_c + phi <= C: the c-transform makes the pair admissible
    exact = torch.as_tensor(pot.emd(a.numpy(), b.numpy(), M.numpy()))
    support = exact > 1e-12
    assert slack[support].max() < 1e-4 * (M.max() - M.min())  # tight where the exact plan moves mass
    assert slack[~support].min() > 1e-3  # ... and only there (this problem is non-degenerate)
    # The same for the entropic plan the potential implies: it lives on the exact support.
    assert res.plan[~support].sum() < 1e-6


def test_minibatch_loss_equals_emd2_and_potentials_are_exact_duals():
    x, y = _images(7, 3), _images(5, 4) + 0.3
    C = 0.5 * torch.cdist(x.flatten(1), y.flatten(1)) ** 2
    ref = pot.emd2(np.full(7, 1 / 7), np.full(5, 1 / 5), C.numpy())
    assert minibatch_ot_loss(x, y).item() == pytest.approx(ref, rel=1e-12)
    res = minibatch_ot_plan(x, y)
    assert res.converged and res.cost.item() == pytest.approx(ref, rel=1e-12)
    torch.testing.assert_close(res.plan.sum(1), torch.full((7,), 1 / 7, dtype=DTYPE))
    torch.testing.assert_close(res.plan.sum(0), torch.full((5,), 1 / 5, dtype=DTYPE))
    slack = C - res.f[:, None] - res.g[None, :]
    assert slack.min() > -1e-9 and slack[res.plan > 0].abs().max() < 1e-9
    assert (res.f.sum() / 7 + res.g.sum() / 5).item() == pytest.approx(ref, rel=1e-9)  # strong duality


def test_minibatch_sinkhorn_is_close_to_exact():
    x, y = _images(8, 5), _images(8, 6) + 0.3
    exact = minibatch_ot_loss(x, y, method="emd").item()
    res = minibatch_ot_plan(x, y, method="sinkhorn", reg=0.1)
    assert res.converged
    assert exact <= res.cost.item() < exact * 1.02
    torch.testing.assert_close(res.plan.sum(1), torch.full((8,), 1 / 8, dtype=DTYPE))
    torch.testing.assert_close(res.plan.sum(0), torch.full((8,), 1 / 8, dtype=DTYPE), rtol=0, atol=1e-6)
    torch.testing.assert_close(minibatch_ot_loss(x, y, method="sinkhorn", reg=0.1), res.cost)
    # The default, smaller eps is sharper: within 0.1% of the exact cost (even before full convergence).
    assert abs(minibatch_ot_loss(x, y, method="sinkhorn").item() - exact) < 1e-3 * exact
    # A larger (relative) eps blurs the plan and raises the cost.
    assert minibatch_ot_plan(x, y, method="sinkhorn", reg=0.3).cost > res.cost


@pytest.mark.parametrize("method", ["emd", "sinkhorn"])
def test_minibatch_gradient_is_envelope_gradient(method):
    x = _images(4, 7, shape=(3,)).requires_grad_(True)
    y = (_images(3, 8, shape=(3,)) + 0.2).requires_grad_(True)
    loss = minibatch_ot_loss(x, y, method=method, reg=0.1)
    gx, gy = torch.autograd.grad(loss, (x, y))
    plan = minibatch_ot_plan(x, y, method=method, reg=0.1).plan
    diff = (x[:, None] - y[None]).detach()  # (B, B', N)
    torch.testing.assert_close(gx, (plan[..., None] * diff).sum(1))
    torch.testing.assert_close(gy, -(plan[..., None] * diff).sum(0))
    if method == "emd":  # the exact cost is smooth where its plan is unique: finite differences agree
        assert torch.autograd.gradcheck(lambda p, q: minibatch_ot_loss(p, q), (x, y))


def test_sqeuclidean_cost_is_stable_for_long_offset_vectors():
    g = _gen(9)
    x = torch.randn(3, 16, 16, 16, dtype=DTYPE, generator=g) + 1000.0  # large common offset, N = 4096
    y = torch.randn(4, 16, 16, 16, dtype=DTYPE, generator=g) + 1000.0
    exact = 0.5 * ((x[:, None] - y[None]) ** 2).flatten(2).sum(-1)
    torch.testing.assert_close(sqeuclidean_cost(x, y), exact, rtol=1e-12, atol=0)
    # In float32 the naive |x|^2 + |y|^2 - 2 x.y loses about 3% here; the centred form keeps ~1e-6.
    got32 = sqeuclidean_cost(x.float(), y.float()).double()
    assert ((got32 - exact).abs() / exact).max() < 1e-5
    xf, yf = x.float().flatten(1), y.float().flatten(1)
    naive = 0.5 * (xf.pow(2).sum(-1)[:, None] + yf.pow(2).sum(-1)[None] - 2 * xf @ yf.T)
    assert ((naive.double() - exact).abs() / exact).max() > 1e-3


def test_errors():
    x = torch.zeros(3, 4, dtype=DTYPE)
    with pytest.raises(ValueError, match="trailing shapes"):
        minibatch_ot_loss(x, torch.zeros(3, 5, dtype=DTYPE))
    with pytest.raises(ValueError, match="method"):
        minibatch_ot_loss(x, x, method="auction")
    with pytest.raises(ValueError, match="sqeuclidean"):
        minibatch_ot_plan(x, x, cost="euclidean")
    with pytest.raises(ValueError, match="reg"):
        minibatch_ot_loss(x, x, method="sinkhorn", reg=0.0)
    with pytest.raises(ValueError, match="reg"):
        semidual_ot(None, None, torch.rand(3, 3, dtype=DTYPE), reg=0.0)
    with pytest.raises(ValueError, match="total mass"):
        semidual_ot(torch.ones(3, dtype=DTYPE), None, torch.rand(3, 3, dtype=DTYPE))
