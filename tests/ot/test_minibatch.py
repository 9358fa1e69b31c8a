"""Tests for cryolearn.ot.minibatch: the squared-distance cost and the CryoGEN-II minibatch loss."""

import warnings

import numpy as np
import ot as pot
import pytest
import torch

from cryolearn.ot import minibatch, minibatch_ot_loss, minibatch_ot_plan, sinkhorn, sqeuclidean_cost
from cryolearn.physics import missing_wedge_mask, simulate_observation

DTYPE = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _images(B, seed, shape=(5, 5)):
    return torch.randn(B, *shape, dtype=DTYPE, generator=_gen(seed))


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
    res = minibatch_ot_plan(x, y, method="sinkhorn", reg_rel=0.1)
    assert res.converged
    assert exact <= res.cost.item() < exact * 1.02
    torch.testing.assert_close(res.plan.sum(1), torch.full((8,), 1 / 8, dtype=DTYPE))
    torch.testing.assert_close(res.plan.sum(0), torch.full((8,), 1 / 8, dtype=DTYPE))
    assert res.err < 1e-10
    torch.testing.assert_close(minibatch_ot_loss(x, y, method="sinkhorn", reg_rel=0.1), res.cost)
    # The default, smaller eps is sharper: within 0.1% of the exact cost.
    assert abs(minibatch_ot_loss(x, y, method="sinkhorn").item() - exact) < 1e-3 * exact
    # A larger (relative) eps blurs the plan and raises the cost.
    assert minibatch_ot_plan(x, y, method="sinkhorn", reg_rel=0.3).cost > res.cost


def test_minibatch_sinkhorn_is_the_entropic_plan_of_pot_and_of_sinkhorn():
    x, y = _images(7, 12), _images(6, 13) + 0.2
    C = sqeuclidean_cost(x, y)
    eps = 0.1 * C.std(correction=0).item()
    res = minibatch_ot_plan(x, y, method="sinkhorn", reg=eps)
    assert res.converged
    P_pot = pot.sinkhorn(np.full(7, 1 / 7), np.full(6, 1 / 6), C.numpy(), eps, method="sinkhorn_log", numItermax=100_000, stopThr=1e-14)
    torch.testing.assert_close(res.plan, torch.as_tensor(P_pot), rtol=0, atol=1e-10)
    rel = minibatch_ot_plan(x, y, method="sinkhorn", reg_rel=0.1)  # reg_rel = reg / std(C)
    torch.testing.assert_close((rel.plan, rel.f, rel.g), (res.plan, res.f, res.g))
    sk = sinkhorn(None, None, C, eps, max_iter=100_000, tol=1e-13)
    torch.testing.assert_close(res.plan, sk.plan, rtol=0, atol=1e-10)
    # The potentials are Sinkhorn's up to a constant shift (f + c, g - c).
    shift = (sk.g - res.g).mean()
    torch.testing.assert_close(res.g + shift, sk.g, rtol=0, atol=1e-8 * eps)
    torch.testing.assert_close(res.f - shift, sk.f, rtol=0, atol=1e-8 * eps)


def _cryogen2_minibatch(B=8, n=32, seed=0):
    """Two minibatches in CryoGEN-II's scale: B observations of normalised n^3 volumes (missing wedge, SNR 1) each."""
    g = _gen(seed)
    x = torch.nn.functional.avg_pool3d(torch.randn(2 * B, 1, n, n, n, generator=g), 3, 1, 1)[:, 0]  # smooth volumes
    x = (x - x.mean((-3, -2, -1), keepdim=True)) / x.std((-3, -2, -1), keepdim=True)
    y, _ = simulate_observation(x, missing_wedge_mask((n, n, n), (-60, 60)), sigma=1.0, generator=g)
    return y[:B], y[B:]  # float32, (B, n, n, n) each


def test_minibatch_sinkhorn_converges_at_the_defaults_on_cryogen2_minibatches(monkeypatch):
    monkeypatch.setattr(minibatch, "_warned", False)
    for seed in range(3):
        a, b = _cryogen2_minibatch(seed=seed)
        C = sqeuclidean_cost(a, b)
        assert C.mean() > 1e4 and (C.max() - C.min()) > 2 * C.std()  # costs of whole 32^3 volumes, range/eps > 200
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            res = minibatch_ot_plan(a, b, method="sinkhorn")
        assert res.converged and res.err < 1e-10 and res.plan.dtype == torch.float32
        exact = minibatch_ot_plan(a, b, method="emd").cost
        assert 0 <= (res.cost / exact - 1).item() < 1e-3


def test_minibatch_sinkhorn_warns_once_when_it_cannot_converge(monkeypatch):
    monkeypatch.setattr(minibatch, "_warned", False)
    a, b = _cryogen2_minibatch(seed=4)
    with pytest.warns(RuntimeWarning, match=r"did not converge: column-marginal error \d\.\de-\d\d") as record:
        res = minibatch_ot_plan(a, b, method="sinkhorn", max_iter=1)  # one Newton step per temperature level
        minibatch_ot_loss(a, b, method="sinkhorn", max_iter=1)  # a second failure stays silent
    assert not res.converged and res.err > 1e-10
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert record[0].filename == __file__  # points at the caller


@pytest.mark.parametrize("method", ["emd", "sinkhorn"])
def test_minibatch_gradient_is_envelope_gradient(method):
    x = _images(4, 7, shape=(3,)).requires_grad_(True)
    y = (_images(3, 8, shape=(3,)) + 0.2).requires_grad_(True)
    loss = minibatch_ot_loss(x, y, method=method, reg_rel=0.1)
    gx, gy = torch.autograd.grad(loss, (x, y))
    plan = minibatch_ot_plan(x, y, method=method, reg_rel=0.1).plan
    diff = (x[:, None] - y[None]).detach()  # (B, B', N)
    torch.testing.assert_close(gx, (plan[..., None] * diff).sum(1))
    torch.testing.assert_close(gy, -(plan[..., None] * diff).sum(0))
    if method == "emd":  # the exact cost is smooth where its plan is unique: finite differences agree
        assert torch.autograd.gradcheck(lambda p, q: minibatch_ot_loss(p, q), (x, y))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_minibatch_gradient_equals_pot_emd2_torch(dtype):
    # POT's ot.emd2 with the torch backend, on costs built independently of sqeuclidean_cost.
    x = _images(6, 10, shape=(4, 3)).to(dtype).requires_grad_(True)
    y = (_images(5, 11, shape=(4, 3)) + 0.4).to(dtype).requires_grad_(True)
    loss = minibatch_ot_loss(x, y)
    assert loss.dtype == dtype
    gx, gy = torch.autograd.grad(loss, (x, y))
    C = 0.5 * (x.flatten(1)[:, None] - y.flatten(1)[None]).pow(2).sum(-1)  # (6, 5)
    ref = pot.emd2(torch.full((6,), 1 / 6, dtype=dtype), torch.full((5,), 1 / 5, dtype=dtype), C)
    hx, hy = torch.autograd.grad(ref, (x, y))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref.to(dtype), **tol)
    torch.testing.assert_close(gx, hx, **tol)
    torch.testing.assert_close(gy, hy, **tol)


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
    with pytest.raises(ValueError, match="reg must be positive"):
        minibatch_ot_loss(x, x, method="sinkhorn", reg=0.0)
    with pytest.raises(ValueError, match="reg_rel must be positive"):
        minibatch_ot_plan(x, x, method="sinkhorn", reg_rel=-1.0)
    with pytest.raises(ValueError, match="not both"):
        minibatch_ot_plan(x, x, method="sinkhorn", reg=1.0, reg_rel=0.1)
    with pytest.raises(TypeError):
        minibatch_ot_plan(x, x, "sinkhorn", 0.01)  # reg and reg_rel are keyword-only
