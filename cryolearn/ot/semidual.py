"""Exact optimal transport by the semi-dual: the c-transform and a Newton solver with annealed smoothing.

For weights ``a`` (n sources), ``b`` (m targets) and costs ``C`` (n, m)::

    W_c = min_{P 1 = a, P^T 1 = b} <P, C>
        = max_phi  <b, phi> + <a, phi^c>,    phi^c_i = min_j C_ij - phi_j,

a concave, piecewise-linear maximisation over one vector ``phi`` of ``m``
numbers (the semi-dual). Any ``phi`` gives a lower bound; at the optimum the
pair ``(phi^c, phi)`` is a Kantorovich potential pair: ``phi^c_i + phi_j <=
C_ij`` everywhere, with equality wherever an optimal plan moves mass.

The CryoGEN-II minibatch loss, which uses these potentials, lives in
:mod:`cryolearn.ot.minibatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .utils import check_problem, gibbs_plan, soft_c_transform

__all__ = ["c_transform", "SemidualResult", "semidual_ot"]


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
    Source: Villani (2009), "Optimal Transport, Old and New", Definition
    5.7; Santambrogio (2015), Section 1.6.
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
        ``(...)`` bool, ``err <= tol``.
    err : torch.Tensor
        ``(...)`` column-marginal error ``||b - P^T 1||_1`` (mass units) of
        the last level's plan before rounding (its rows sum to ``a``).
    """

    phi: torch.Tensor
    phi_c: torch.Tensor
    value: torch.Tensor
    plan: torch.Tensor
    cost: torch.Tensor
    gap: torch.Tensor
    n_iter: int
    converged: torch.Tensor
    err: torch.Tensor


def semidual_ot(
    a: torch.Tensor | None, b: torch.Tensor | None, M: torch.Tensor,
    *, reg: float | torch.Tensor | None = None, reg_rel: float | None = None, max_iter: int = 50, tol: float = 1e-10,
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
    reg : float or torch.Tensor, optional
        Final smoothing ``eps > 0`` in the units of ``M`` (a tensor
        broadcasting to the batch dims gives one per problem). The last
        level's plan (before rounding) is then the entropic plan of
        :func:`cryolearn.ot.sinkhorn` at ``reg = eps``.
    reg_rel : float, optional
        Final smoothing relative to the cost range ``max M - min M`` of each
        problem, ``eps = reg_rel * (max M - min M)``, in ``(0, 1]``; the
        relative error of ``value`` is of this order. Used when ``reg`` is
        None; default ``1e-6``.
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
        As :func:`cryolearn.ot.sinkhorn`, if both ``reg`` and ``reg_rel``
        are given, if ``reg`` is not positive and finite, ``reg_rel`` not in
        ``(0, 1]``, ``max_iter < 1`` or ``tol < 0``.

    Notes
    -----
    Source: Cuturi & Peyre (2018), "Semi-dual regularized optimal
    transport", SIAM Review 60; Blondel, Seguy & Rolet (2018), "Smooth and
    sparse optimal transport", AISTATS; Altschuler, Weed & Rigollet (2017),
    NeurIPS (rounding).

    The semi-dual ``J(phi) = <b, phi> + <a, phi^c>`` is concave but piecewise
    linear. Replacing the minimum in ``phi^c`` by a soft minimum at
    temperature ``eps``, ``phi^{c,eps}_i = -eps log sum_j b_j exp((phi_j -
    M_ij) / eps)``, makes it smooth, with gradient ``b - P^T 1`` and Hessian
    ``-L / eps``, ``L = diag(P^T 1) - P^T diag(1/a) P`` (a graph Laplacian),
    where ``P_ij = a_i softmax_j`` is the plan ``phi`` implies. ``eps``
    starts at the cost range and is divided by 4 down to the final ``eps``;
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
    if reg is not None and reg_rel is not None:
        raise ValueError("give the final smoothing as reg (absolute) or reg_rel (relative to the cost range), not both")
    if max_iter < 1 or not tol >= 0:
        raise ValueError(f"need max_iter >= 1 and tol >= 0, got {max_iter} and {tol}")
    if reg is None:
        reg_rel = 1e-6 if reg_rel is None else reg_rel
        if not 0 < reg_rel <= 1:
            raise ValueError(f"reg_rel must be in (0, 1], got {reg_rel}")
        reg = torch.zeros(())
    else:
        reg = torch.as_tensor(reg, dtype=torch.float64, device=M.device)
        if not bool((reg > 0).all()) or not bool(torch.isfinite(reg).all()):
            raise ValueError(f"reg must be positive and finite, got {reg}")
    dtype = M.dtype
    a, b, M = check_problem(a, b, M.detach(), reg.shape)
    a, b, M = a.double(), b.double(), M.double()  # the last levels need float64
    b = b * (a.sum(-1, keepdim=True) / b.sum(-1, keepdim=True))  # equal masses to float64 precision
    spread = M.amax((-2, -1)) - M.amin((-2, -1))  # (...), the shift-invariant cost scale
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    target = torch.full_like(spread, reg_rel) if reg_rel is not None else reg.expand_as(spread) / spread  # final eps / spread
    log_b, m = b.log(), M.shape[-1]
    ones, eye = torch.ones(m, m, dtype=M.dtype, device=M.device), torch.eye(m, dtype=M.dtype, device=M.device)
    gauge = (ones + 1e-9 * eye) / m  # fixes the constant direction, plus a ridge
    a_safe = a.clamp_min(torch.finfo(M.dtype).tiny).unsqueeze(-1)

    def smoothed(phi: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = soft_c_transform(phi, log_b, M, eps, dim=-1)  # (..., n) soft c-transform
        return (a * f).sum(-1) + (b * phi).sum(-1), f

    phi, n_iter, rel = torch.zeros_like(b), 0, 1.0
    while True:
        eps = (torch.clamp(target, min=rel) * spread).unsqueeze(-1)  # (..., 1)
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
        if bool((rel <= target).all()):
            break
        rel /= 4
    P = gibbs_plan(f, phi, a, b, M, eps)
    err = (b - P.sum(-2)).abs().sum(-1)
    converged = err <= tol
    phi_c = c_transform(phi, M)
    value = (a * phi_c).sum(-1) + (b * phi).sum(-1)
    plan = _round_plan(P, a, b)
    cost = (plan * M).sum((-2, -1))
    gap = (cost - value) / torch.maximum(cost.abs(), torch.finfo(M.dtype).eps * spread)
    phi, phi_c, value, plan, cost, gap, err = (v.to(dtype) for v in (phi, phi_c, value, plan, cost, gap, err))
    return SemidualResult(phi=phi, phi_c=phi_c, value=value, plan=plan, cost=cost, gap=gap, n_iter=n_iter, converged=converged, err=err)
