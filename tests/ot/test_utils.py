"""Tests for cryolearn.ot.utils: problem checks, the soft c-transform and the Gibbs plan."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from cryolearn.ot import c_transform
from cryolearn.ot.utils import check_problem, gibbs_plan, soft_c_transform

DTYPE = torch.float64


def test_soft_c_transform_brute_force_both_sides_and_hard_limit():
    g = torch.Generator().manual_seed(0)
    M = torch.rand(2, 5, 4, dtype=DTYPE, generator=g)  # (batch, n, m)
    h_t, h_s = torch.randn(2, 4, dtype=DTYPE, generator=g), torch.randn(2, 5, dtype=DTYPE, generator=g)
    w_t, w_s = torch.rand(2, 4, dtype=DTYPE, generator=g) + 0.1, torch.rand(2, 5, dtype=DTYPE, generator=g) + 0.1
    eps = torch.tensor([[0.3], [0.05]], dtype=DTYPE)  # (batch, 1)
    f = soft_c_transform(h_t, w_t.log(), M, eps, dim=-1)  # (2, 5) on the sources
    g_ = soft_c_transform(h_s, w_s.log(), M, eps, dim=-2)  # (2, 4) on the targets
    Mn, e = M.numpy(), eps.numpy()[:, 0]
    f_ref = [[-e[k] * logsumexp(np.log(w_t[k].numpy()) + (h_t[k].numpy() - Mn[k, i]) / e[k]) for i in range(5)] for k in range(2)]
    g_ref = [[-e[k] * logsumexp(np.log(w_s[k].numpy()) + (h_s[k].numpy() - Mn[k, :, j]) / e[k]) for j in range(4)] for k in range(2)]
    torch.testing.assert_close(f, torch.tensor(f_ref, dtype=DTYPE))
    torch.testing.assert_close(g_, torch.tensor(g_ref, dtype=DTYPE))
    # eps -> 0 with unit-mass weights: the hard c-transform (the soft one is below it by at most eps log m).
    cold = soft_c_transform(h_t, torch.zeros_like(h_t), M, torch.full((2, 1), 1e-6, dtype=DTYPE), dim=-1)
    torch.testing.assert_close(cold, c_transform(h_t, M), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        soft_c_transform(h_t, w_t.log(), M, eps, dim=0)


def test_gibbs_plan_rows_match_after_a_soft_c_transform():
    g = torch.Generator().manual_seed(1)
    M = torch.rand(6, 3, dtype=DTYPE, generator=g)
    a, b = torch.rand(6, dtype=DTYPE, generator=g) + 0.1, torch.rand(3, dtype=DTYPE, generator=g) + 0.1
    a, b = a / a.sum(), b / b.sum()
    phi, eps = torch.randn(3, dtype=DTYPE, generator=g), torch.tensor([0.2], dtype=DTYPE)
    f = soft_c_transform(phi, b.log(), M, eps, dim=-1)
    P = gibbs_plan(f, phi, a, b, M, eps)
    ref = a[:, None] * b[None] * torch.exp((f[:, None] + phi[None] - M) / eps)
    torch.testing.assert_close(P, ref)
    torch.testing.assert_close(P.sum(-1), a)


def test_check_problem_broadcasts_and_rejects():
    M = torch.rand(3, 1, 4, 5, dtype=DTYPE)
    a, b, Mb = check_problem(None, torch.full((2, 5), 0.2, dtype=DTYPE), M, (3, 2))
    assert a.shape == (3, 2, 4) and b.shape == (3, 2, 5) and Mb.shape == (3, 2, 4, 5)
    torch.testing.assert_close(a, torch.full((3, 2, 4), 0.25, dtype=DTYPE))
    with pytest.raises(ValueError, match="floating-point"):
        check_problem(None, None, torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        check_problem(torch.ones(3, dtype=DTYPE) / 3, None, torch.rand(4, 4, dtype=DTYPE))
    with pytest.raises(ValueError, match="broadcast"):
        check_problem(None, None, torch.rand(2, 3, 3, dtype=DTYPE), (4,))
    with pytest.raises(ValueError, match="total mass"):
        check_problem(torch.ones(3, dtype=DTYPE), None, torch.rand(3, 3, dtype=DTYPE))
