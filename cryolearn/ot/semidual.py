"""The semi-dual of optimal transport and the CryoGEN-II minibatch loss (SPEC section 2).

For weights ``a`` (n sources), ``b`` (m targets) and costs ``C`` (n, m)::

    W_c = min_{P 1 = a, P^T 1 = b} <P, C>
        = max_phi  <b, phi> + <a, phi^c>,    phi^c_i = min_j C_ij - phi_j,

a concave, piecewise-linear maximisation over one vector ``phi`` of ``m``
numbers (the semi-dual). Any ``phi`` gives a lower bound; at the optimum the
pair ``(phi^c, phi)`` is a Kantorovich potential pair: ``phi^c_i + phi_j <=
C_ij`` everywhere, with equality wherever an optimal plan moves mass.

CryoGEN-II uses it on minibatches: ``B`` re-degraded reconstructions ``x_i``
against ``B'`` real observations ``y_j``, cost ``c(x, y) = ||x - y||^2 / 2``.
The plan ``pi`` is solved to optimality without gradients, and the loss
``sum_ij pi_ij c(x_i, y_j)`` is differentiated with ``pi`` held fixed; by the
envelope theorem this is the gradient of ``W_c`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ot as pot
import torch

from .sinkhorn import sinkhorn
from .utils import check_problem, gibbs_plan, soft_c_transform

__all__ = [
    "c_transform",
    "SemidualResult",
    "semidual_ot",
    "sqeuclidean_cost",
    "MinibatchOTResult",
    "minibatch_ot_plan",
    "minibatch_ot_loss",
]


def c_transform(phi: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """The c-transform ``phi^c_i = min_j C_ij - phi_j`` over a finite target set.

    Parameters
    ----------
    phi : torch.Tensor
        ``(..., m)`` potential on the targets (units of ``C``).
    C : torch.Tensor
        ``(..., n, m)`` costs ``c(a_i, b_j)``; batch dims broadcast with ``phi``'s.

    Returns
    -------
    torch.Tensor
        ``(..., n)`` potential on the sources; differentiable (the gradient
        picks the minimising ``j``).

    Raises
    ------
    ValueError
        If ``C`` is not ``(..., n, m)`` with ``m`` equal to ``phi``'s last dim.

    Notes
    -----
    Source: SPEC section 2 (CryoGEN-II); Villani (2009), "Optimal Transport,
    Old and New", Definition 5.7; Santambrogio (2015), Section 1.6.
    """
    if C.ndim < 2 or phi.ndim < 1 or C.shape[-1] != phi.shape[-1]:
        raise ValueError(f"need phi (..., m) and C (..., n, m), got {tuple(phi.shape)} and {tuple(C.shape)}")
    return (C - phi.unsqueeze(-2)).amin(-1)


def _round_plan(P: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Nearby plan with marginals exactly ``a`` and ``b`` (Altschuler et al. 2017, Algorithm 2)."""
    tiny = torch.finfo(P.dtype).tiny
    P = P * (a / P.sum(-1).clamp_min(tiny)).clamp(max=1).unsqueeze(-1)
    P = P * (b / P.sum(-2).clamp_min(tiny)).clamp(max=1).unsqueeze(-2)
    ea, eb = a - P.sum(-1), b - P.sum(-2)  # both >= 0, of equal total
    return P + ea.unsqueeze(-1) * eb.unsqueeze(-2) / ea.sum(-1).clamp_min(tiny)[..., None, None]


@dataclass
class SemidualResult:
    """Output of :func:`semidual_ot` (no gradients).

    Attributes
    ----------
    phi : torch.Tensor
        ``(..., m)`` the maximising target potential (units of ``M``; defined
        up to an additive constant).
    phi_c : torch.Tensor
        ``(..., n)`` its exact c-transform; ``phi_c_i + phi_j <= M_ij`` exactly.
    value : torch.Tensor
        ``(...)`` semi-dual objective ``<b, phi> + <a, phi^c>``: a lower
        bound on the OT cost, equal to it at the optimum.
    plan : torch.Tensor
        ``(..., n, m)`` the plan ``phi`` implies at the last smoothing level,
        ``a_i softmax_j((phi_j - M_ij) / eps + log b_j)``, rounded to
        marginals exactly ``a`` and ``b``.
    cost : torch.Tensor
        ``(...)`` ``<plan, M>``: an upper bound on the OT cost.
    gap : torch.Tensor
        ``(...)`` ``(cost - value) / |cost|``, a certified bound on the
        relative error of both.
    n_iter : int
        Newton steps over all smoothing levels.
    converged : torch.Tensor
        ``(...)`` bool: the last level reached ``||b - plan^T 1||_1 <= tol``
        before rounding.
    """

    phi: torch.Tensor
    phi_c: torch.Tensor
    value: torch.Tensor
    plan: torch.Tensor
    cost: torch.Tensor
    gap: torch.Tensor
    n_iter: int
    converged: torch.Tensor


def semidual_ot(
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    M: torch.Tensor,
    reg: float = 1e-6,
    max_iter: int = 50,
    tol: float = 1e-10,
) -> SemidualResult:
    """Exact optimal transport by maximising the semi-dual (Newton's method, annealed smoothing).

    Parameters
    ----------
    a : torch.Tensor or None
        ``(..., n)`` source weights (uniform when None).
    b : torch.Tensor or None
        ``(..., m)`` target weights, same total mass (uniform when None).
    M : torch.Tensor
        ``(..., n, m)`` costs (floating point, finite). The outputs have its
        device and dtype; the computation runs in float64 on that device,
        because the last levels divide costs by a tiny ``eps``.
    reg : float
        Final smoothing ``eps``, relative to the cost range ``max M - min M``
        of each problem, in ``(0, 1]``; the relative error of ``value`` is of
        this order.
    max_iter : int
        Newton steps per smoothing level (at least 1).
    tol : float
        A level is done when the marginal error ``||b - P^T 1||_1`` (total
        mass units) is at most ``tol``.

    Returns
    -------
    SemidualResult
        ``phi``, ``phi_c``, ``value`` (lower bound), ``plan`` and ``cost``
        (upper bound), ``gap``, ``n_iter``, ``converged``; all without
        gradients (for a differentiable loss use :func:`minibatch_ot_loss`).

    Raises
    ------
    ValueError
        As :func:`cryolearn.ot.sinkhorn`, or if ``reg`` is not in ``(0, 1]``,
        ``max_iter < 1`` or ``tol < 0``.

    Notes
    -----
    Source: SPEC section 2 (CryoGEN-II, "W_c by the semi-dual"); Cuturi &
    Peyre (2018), "Semi-dual regularized optimal transport", SIAM Review 60;
    Blondel, Seguy & Rolet (2018), "Smooth and sparse optimal transport",
    AISTATS; Altschuler, Weed & Rigollet (2017), NeurIPS (rounding).

    The semi-dual ``J(phi) = <b, phi> + <a, phi^c>`` is concave but piecewise
    linear. Replacing the minimum in ``phi^c`` by a soft minimum at
    temperature ``eps``, ``phi^{c,eps}_i = -eps log sum_j b_j exp((phi_j -
    M_ij) / eps)``, makes it smooth, with gradient ``b - P^T 1`` and Hessian
    ``-L / eps``, ``L = diag(P^T 1) - P^T diag(1/a) P`` (a graph Laplacian),
    where ``P_ij = a_i softmax_j`` is the plan ``phi`` implies. ``eps``
    starts at the cost range and is divided by 4 down to ``reg`` times it;
    each level is warm-started from the last and solved by damped Newton
    steps:

    - the constant direction, along which ``J`` does not change, is fixed by
      adding ``1 1^T / m`` to ``L``, and a ``1e-9`` ridge guards against a
      near-singular ``L``;
    - Armijo backtracking, with an allowance of a few rounding units so that
      full steps are taken where ``J`` is flat to machine precision.

    The exact c-transform of the final ``phi`` gives ``value``, the rounded
    plan gives ``cost``, and their gap certifies the answer. Cost per step
    ``O(n m^2 + m^3)``: meant for minibatches and teaching-size problems.
    """
    if not 0 < reg <= 1 or max_iter < 1 or not tol >= 0:
        raise ValueError(f"need 0 < reg <= 1, max_iter >= 1 and tol >= 0, got {reg}, {max_iter}, {tol}")
    dtype = M.dtype
    a, b, M = check_problem(a, b, M.detach())
    a, b, M = a.double(), b.double(), M.double()  # the last levels need float64
    b = b * (a.sum(-1, keepdim=True) / b.sum(-1, keepdim=True))  # equal masses to float64 precision
    spread = M.amax((-2, -1)) - M.amin((-2, -1))  # (...), the shift-invariant cost scale
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    log_b, m = b.log(), M.shape[-1]
    ones, eye = torch.ones(m, m, dtype=M.dtype, device=M.device), torch.eye(m, dtype=M.dtype, device=M.device)
    gauge = (ones + 1e-9 * eye) / m  # fixes the constant direction, plus a ridge
    a_safe = a.clamp_min(torch.finfo(M.dtype).tiny).unsqueeze(-1)

    def smoothed(phi: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = soft_c_transform(phi, log_b, M, eps, dim=-1)  # (..., n) soft c-transform
        return (a * f).sum(-1) + (b * phi).sum(-1), f

    phi, n_iter, rel = torch.zeros_like(b), 0, 1.0
    while True:
        rel = max(rel, reg)
        eps = (rel * spread).unsqueeze(-1)  # (..., 1)
        J, f = smoothed(phi, eps)
        for _ in range(max_iter):
            P = gibbs_plan(f, phi, a, b, M, eps)  # (..., n, m), rows sum to a
            grad = b - P.sum(-2)
            converged = grad.abs().sum(-1) <= tol
            if bool(converged.all()):
                break
            L = torch.diag_embed(P.sum(-2)) - P.transpose(-1, -2) @ (P / a_safe)  # (..., m, m)
            mass = P.sum((-2, -1))[..., None]  # (..., 1)
            d = torch.linalg.solve(L + mass.unsqueeze(-1) * gauge, eps * grad)  # Newton ascent direction
            # Should rounding spoil the solve, fall back to the (scaled) gradient.
            d = torch.where(((grad * d).sum(-1) > 0).unsqueeze(-1), d, eps * grad * m / mass)
            slope, t = (grad * d).sum(-1), torch.ones_like(J)
            rounding = 8 * torch.finfo(M.dtype).eps * (J.abs() + spread)  # near the optimum J is flat to rounding
            for _ in range(30):  # Armijo backtracking, per problem
                J_new, _ = smoothed(phi + t.unsqueeze(-1) * d, eps)
                ok = J_new >= J + 0.25 * t * slope - rounding
                if bool(ok.all()):
                    break
                t = torch.where(ok, t, t / 2)
            phi = phi + torch.where(ok, t, torch.zeros_like(t)).unsqueeze(-1) * d
            J, f = smoothed(phi, eps)
            n_iter += 1
        if rel <= reg:
            break
        rel /= 4
    P = gibbs_plan(f, phi, a, b, M, eps)
    converged = (b - P.sum(-2)).abs().sum(-1) <= tol
    phi_c = c_transform(phi, M)
    value = (a * phi_c).sum(-1) + (b * phi).sum(-1)
    plan = _round_plan(P, a, b)
    cost = (plan * M).sum((-2, -1))
    gap = (cost - value) / torch.maximum(cost.abs(), torch.finfo(M.dtype).eps * spread)
    phi, phi_c, value, plan, cost, gap = (v.to(dtype) for v in (phi, phi_c, value, plan, cost, gap))
    return SemidualResult(phi=phi, phi_c=phi_c, value=value, plan=plan, cost=cost, gap=gap, n_iter=n_iter, converged=converged)


def sqeuclidean_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise cost ``C_ij = ||x_i - y_j||^2 / 2`` between two flattened batches.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, ...)``, e.g. ``(B, D, H, W)`` volumes; flattened to ``(B, N)``.
    y : torch.Tensor
        ``(B', ...)`` with the same trailing shape as ``x``.

    Returns
    -------
    torch.Tensor
        ``(B, B')`` costs in squared voxel-value units, differentiable in ``x``
        and ``y`` (``dC_ij / dx_i = x_i - y_j``).

    Raises
    ------
    ValueError
        If the trailing shapes differ, a batch is empty, or the inputs are
        not floating point.

    Notes
    -----
    Source: SPEC section 2 (CryoGEN-II cost ``c(a, b) = ||a - b||^2 / 2``).
    Computed as ``(|x_i|^2 + |y_j|^2 - 2 x_i . y_j) / 2`` with one matrix
    product, so memory is ``O((B + B') N + B B')`` instead of the
    ``O(B B' N)`` of explicit differences. Both batches are first centred on
    the (detached) mean of ``y``: the cost is translation invariant, and the
    norms then stay on the scale of the distances, which avoids the
    cancellation of large norms for long flattened volumes. Rounding can
    still leave tiny negatives, clamped to 0.
    """
    if x.ndim < 1 or y.ndim < 1 or x.shape[1:] != y.shape[1:] or len(x) == 0 or len(y) == 0:
        raise ValueError(
            f"x (B, ...) and y (B', ...) need non-empty batches and equal trailing shapes, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError("x and y must be floating-point tensors")
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)  # (B, N), (B', N)
    centre = y.detach().mean(0)
    x, y = x - centre, y - centre
    sq = x.pow(2).sum(-1).unsqueeze(-1) + y.pow(2).sum(-1).unsqueeze(-2) - 2 * x @ y.T
    return 0.5 * sq.clamp_min(0)


@dataclass
class MinibatchOTResult:
    """Output of :func:`minibatch_ot_plan` (no gradients).

    Attributes
    ----------
    plan : torch.Tensor
        ``(B, B')`` transport plan, marginals ``1/B`` and ``1/B'``.
    cost : torch.Tensor
        ``()`` transport cost ``<plan, C>``.
    f : torch.Tensor
        ``(B,)`` dual potential on ``x`` (units of ``C``).
    g : torch.Tensor
        ``(B',)`` dual potential on ``y``: the semi-dual ``phi`` of SPEC
        section 2, defined up to an additive constant.
    converged : bool
        True for ``"emd"`` (it raises otherwise); for ``"sinkhorn"``, whether
        the column marginals reached ``1e-6`` within ``max_iter``.
    """

    plan: torch.Tensor
    cost: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    converged: bool


_METHODS = ("emd", "sinkhorn")


def _solve(C: torch.Tensor, method: str, reg: float, max_iter: int) -> MinibatchOTResult:
    """Optimal plan for cost ``C`` ``(B, B')`` (detached) with uniform weights."""
    n, m = C.shape
    if method == "emd":
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
        plan, log = pot.emd(a, b, C.cpu().double().numpy(), numItermax=max(100_000, 100 * n * m), log=True)
        if log["warning"] is not None:
            raise RuntimeError(f"ot.emd did not reach the optimum: {log['warning']}")
        plan, f, g = (torch.as_tensor(t, dtype=C.dtype).to(C.device) for t in (plan, log["u"], log["v"]))
        converged = True
    elif method == "sinkhorn":
        if not reg > 0:
            raise ValueError(f"reg must be positive, got {reg}")
        spread = C.std(correction=0)
        res = sinkhorn(None, None, C, reg * torch.where(spread > 0, spread, torch.ones_like(spread)), max_iter=max_iter, tol=1e-6)
        plan, f, g, converged = res.plan, res.f, res.g, bool(res.converged)
    else:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return MinibatchOTResult(plan=plan, cost=(plan * C).sum(), f=f, g=g, converged=converged)


def _check_cost(cost: str) -> None:
    if cost != "sqeuclidean":
        raise ValueError(f"only cost='sqeuclidean' (c = ||a - b||^2 / 2) is implemented, got {cost!r}")


def minibatch_ot_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "emd",
    reg: float = 0.01,
    cost: str = "sqeuclidean",
    max_iter: int = 1000,
) -> MinibatchOTResult:
    """The optimal transport plan between two minibatches, with its dual potentials.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, ...)`` generated samples (e.g. re-degraded reconstructions
        ``M(R G(y)) + M n``), each flattened; uniform weights ``1/B``.
    y : torch.Tensor
        ``(B', ...)`` real observations, same trailing shape; weights ``1/B'``.
    method : {"emd", "sinkhorn"}
        ``"emd"``: exact, POT's network simplex ``ot.emd`` on the CPU in
        float64. ``"sinkhorn"``: :func:`cryolearn.ot.sinkhorn` on the tensors'
        device, until the column marginals are within ``1e-6`` (2-norm) or
        ``max_iter`` iterations; its plan is entropic (blurred by ``eps``).
    reg : float
        For ``"sinkhorn"`` only: ``eps = reg * std(C)``, relative to the
        spread of the costs (dimensionless, so one value serves any volume
        size; the cost's own size, e.g. its median, grows with the volume
        while the differences that decide the plan do not). At ``0.01`` a
        64 x 64 problem on 32 x 32 images is about 0.03% above the exact
        cost after 1000 iterations. Ignored by ``"emd"``.
    cost : {"sqeuclidean"}
        ``c(a, b) = ||a - b||^2 / 2`` (:func:`sqeuclidean_cost`).
    max_iter : int
        Iteration cap of the Sinkhorn solver (the network simplex gets
        ``max(1e5, 100 B B')``).

    Returns
    -------
    MinibatchOTResult
        ``plan`` ``(B, B')``, ``cost``, potentials ``f`` ``(B,)`` and ``g``
        ``(B',)``; on the device and dtype of ``x``, without gradients.

    Raises
    ------
    ValueError
        If the batches do not match (:func:`sqeuclidean_cost`), ``method`` or
        ``cost`` is unknown, or ``reg`` is not positive.
    RuntimeError
        If ``ot.emd`` stops before the optimum.

    Notes
    -----
    Source: SPEC section 2 (CryoGEN-II). For ``"emd"`` the potentials are
    POT's exact duals (``log["u"]``, ``log["v"]``): ``f_i + g_j <= C_ij``
    with equality on the support of the plan.
    """
    _check_cost(cost)
    with torch.no_grad():
        return _solve(sqeuclidean_cost(x, y), method, reg, max_iter)


def minibatch_ot_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "emd",
    reg: float = 0.01,
    cost: str = "sqeuclidean",
    max_iter: int = 1000,
) -> torch.Tensor:
    """The CryoGEN-II transport loss ``sum_ij pi_ij c(x_i, y_j)`` with the plan held fixed.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, ...)`` generated samples, weights ``1/B``; gradients flow to it.
    y : torch.Tensor
        ``(B', ...)`` real observations, weights ``1/B'`` (gradients too, if
        it requires them).
    method, reg, cost, max_iter
        As :func:`minibatch_ot_plan`.

    Returns
    -------
    torch.Tensor
        ``()``, the transport cost of the optimal plan ``pi`` (in squared
        voxel-value units), differentiable in ``x`` and ``y`` with ``pi``
        fixed: ``d loss / d x_i = sum_j pi_ij (x_i - y_j)``. For ``"emd"`` it
        equals POT's ``ot.emd2`` on the same costs.

    Raises
    ------
    ValueError, RuntimeError
        As :func:`minibatch_ot_plan`.

    Notes
    -----
    Source: SPEC section 2 (CryoGEN-II). The plan is solved without
    gradients; by the envelope (Danskin) theorem the gradient with ``pi``
    held fixed is the gradient of the optimal cost ``W_c`` itself wherever
    the optimal plan is unique, so no min-max game and no differentiation
    through the solver are needed. The cost matrix is built once, by
    :func:`sqeuclidean_cost`.
    """
    _check_cost(cost)
    C = sqeuclidean_cost(x, y)  # (B, B')
    return (_solve(C.detach(), method, reg, max_iter).plan * C).sum()
