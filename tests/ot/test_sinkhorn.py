"""Tests for cryolearn.ot.sinkhorn: log-domain Sinkhorn against POT, marginals, envelope gradients."""

import numpy as np
import ot as pot
import pytest
import torch

from cryolearn.ot import sinkhorn

DTYPE = torch.float64


def _problem(n=6, m=4, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*batch, n, 2, dtype=DTYPE, generator=g)
    y = torch.randn(*batch, m, 2, dtype=DTYPE, generator=g) + 0.5
    a = torch.rand(*batch, n, dtype=DTYPE, generator=g) + 0.2
    b = torch.rand(*batch, m, dtype=DTYPE, generator=g) + 0.2
    return a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True), 0.5 * torch.cdist(x, y) ** 2, x, y


def _graph_size(t):
    """Number of autograd nodes behind ``t``."""
    seen, stack = set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            stack.extend(f for f, _ in fn.next_functions)
    return len(seen)


@pytest.mark.parametrize("reg", [1.0, 0.1, 0.02])
def test_matches_pot_sinkhorn_log(reg):
    a, b, M, _, _ = _problem()
    res = sinkhorn(a, b, M, reg, max_iter=20000, tol=1e-12)
    assert res.converged and res.err < 1e-12
    an, bn, Mn = a.numpy(), b.numpy(), M.numpy()
    plan, log = pot.sinkhorn(an, bn, Mn, reg, method="sinkhorn_log", numItermax=20000, stopThr=1e-13, log=True)
    np.testing.assert_allclose(res.plan.numpy(), plan, atol=1e-11)
    cost = pot.sinkhorn2(an, bn, Mn, reg, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
    assert res.cost.item() == pytest.approx(float(cost), rel=1e-9)
    # Entropic value W_eps = <P, M> + eps KL(P || a b^T), as ot.solve computes it.
    assert res.value.item() == pytest.approx(pot.solve(M, a, b, reg=reg).value.item(), rel=1e-9)
    # Potentials: POT's log-scalings are log a + f / eps and log b + g / eps, up to one shared constant.
    s = reg * (log["log_u"][:, None] + log["log_v"][None, :] - np.log(an)[:, None] - np.log(bn)[None, :])
    np.testing.assert_allclose((res.f[:, None] + res.g[None, :]).numpy(), s, atol=1e-9)


def test_marginals_and_exact_limit():
    a, b, M, _, _ = _problem(n=5, m=5, seed=1)
    res = sinkhorn(a, b, M, 0.05, tol=1e-10, max_iter=5000)
    torch.testing.assert_close(res.plan.sum(-1), a, rtol=0, atol=1e-14)  # rows exact by construction
    torch.testing.assert_close(res.plan.sum(-2), b, rtol=0, atol=1e-10)
    assert (res.plan >= 0).all()
    # As eps -> 0 the cost tends to the exact OT cost, from above.
    exact = pot.emd2(a.numpy(), b.numpy(), M.numpy())
    small = sinkhorn(a, b, M, 5e-3, max_iter=5000, tol=1e-10)
    assert exact <= small.cost.item() < exact * (1 + 1e-3)
    assert small.cost.item() < res.cost.item()


def test_batched_equals_looped_with_batched_reg_and_uniform_weights():
    a, b, M, _, _ = _problem(batch=(2, 3), seed=2)
    reg = torch.tensor([0.3, 0.1, 0.05], dtype=DTYPE)  # broadcasts over the last batch dim
    res = sinkhorn(a, b, M, reg, tol=1e-11, max_iter=5000)
    assert res.plan.shape == (2, 3, 6, 4) and res.f.shape == (2, 3, 6) and res.converged.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = sinkhorn(a[i, j], b[i, j], M[i, j], reg[j].item(), tol=1e-11, max_iter=5000)
            torch.testing.assert_close(res.plan[i, j], one.plan, rtol=0, atol=1e-10)
            torch.testing.assert_close(res.cost[i, j], one.cost, rtol=1e-9, atol=0)
    # None means uniform weights, shared by the whole batch.
    uni = sinkhorn(None, None, M, 0.2, tol=1e-11)
    ref = sinkhorn(torch.full((6,), 1 / 6, dtype=DTYPE), torch.full((4,), 1 / 4, dtype=DTYPE), M, 0.2, tol=1e-11)
    torch.testing.assert_close(uni.plan, ref.plan)


def test_gradients_finite_differences():
    a, b, M, x, y = _problem(n=4, m=3, seed=3)
    reg = 0.2
    # W_eps has exact envelope gradients: gradcheck it in M and through M in the point positions.
    M = M.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda C: sinkhorn(a, b, C, reg, tol=1e-13, max_iter=5000).value, (M,))
    x = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: sinkhorn(a, b, 0.5 * torch.cdist(p, y) ** 2, reg, tol=1e-13, max_iter=5000).value, (x,))
    # The gradients are the plan (M) and the potentials (a, b, up to a constant on the simplex).
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    res = sinkhorn(a, b, M, reg, tol=1e-13, max_iter=5000)
    gM, ga, gb = torch.autograd.grad(res.value, (M, a, b))
    torch.testing.assert_close(gM, res.plan, rtol=0, atol=1e-12)
    torch.testing.assert_close(ga - ga.mean(), res.f - res.f.mean())
    torch.testing.assert_close(gb - gb.mean(), res.g - res.g.mean())
    # cost = <P, M> is differentiated with P held fixed: its gradient is also P.
    torch.testing.assert_close(torch.autograd.grad(res.cost, M)[0], res.plan, rtol=0, atol=0)


def test_graph_does_not_grow_with_iterations():
    a, b, M, x, y = _problem(n=8, m=8, seed=4)
    x = x.clone().requires_grad_(True)
    sizes, grads = [], []
    for max_iter in (5, 5000):  # 5000 iterations: a differentiable loop would hold 10^4 graph nodes
        res = sinkhorn(a, b, 0.5 * torch.cdist(x, y) ** 2, 0.01, max_iter=max_iter, tol=0.0)  # tol=0: all iterations run
        assert res.n_iter == max_iter
        sizes += [_graph_size(res.value), _graph_size(res.cost)]
        (gx,) = torch.autograd.grad(res.value, x)
        # Envelope formula: d/dx_i sum_ij P_ij |x_i - y_j|^2 / 2 = sum_j P_ij (x_i - y_j).
        torch.testing.assert_close(gx, (res.plan[..., None] * (x[:, None] - y[None])).sum(1).detach())
        grads.append(gx)
    assert sizes[:2] == sizes[2:]
    assert not torch.allclose(grads[0], grads[1])  # the 5000 iterations did change the answer


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    a, b, M, _, _ = _problem(batch=(3,))
    cpu = sinkhorn(a, b, M, 0.1, tol=1e-11)
    gpu = sinkhorn(a.cuda(), b.cuda(), M.cuda(), 0.1, tol=1e-11)
    assert gpu.plan.is_cuda
    torch.testing.assert_close(gpu.plan.cpu(), cpu.plan)


def test_errors():
    a, b, M, _, _ = _problem()
    with pytest.raises(ValueError, match="reg"):
        sinkhorn(a, b, M, 0.0)
    with pytest.raises(ValueError, match="same positive total mass"):
        sinkhorn(a, 2 * b, M, 0.1)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        sinkhorn(a, a, M, 0.1)
    with pytest.raises(ValueError, match="non-negative"):
        sinkhorn(-a, b, M, 0.1)
    with pytest.raises(ValueError, match="finite floating-point"):
        sinkhorn(a, b, M[0], 0.1)
