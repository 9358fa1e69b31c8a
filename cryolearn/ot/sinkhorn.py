"""Entropic optimal transport by log-domain Sinkhorn, with envelope gradients.

The entropic problem between weights ``a`` (n) and ``b`` (m) with cost ``M``::

    W_eps = min_{P 1 = a, P^T 1 = b}  <P, M> + eps KL(P || a b^T)
          = max_{f, g}  <a, f> + <b, g> - eps <a b^T, exp((f + g - M) / eps) - 1>,

with optimal plan ``P_ij = a_i b_j exp((f_i + g_j - M_ij) / eps)``. Sinkhorn
alternates the exact maximisations over ``g`` and ``f`` (soft c-transforms)::

    g_j = -eps log sum_i a_i exp((f_i - M_ij) / eps)
    f_i = -eps log sum_j b_j exp((g_j - M_ij) / eps)

computed with ``logsumexp``, so a small ``eps`` does not underflow.

Gradients (the geomloss idea): the iterations run under ``torch.no_grad()``
and one final differentiable ``f``-update from the converged ``g`` restores
the gradients. By the envelope theorem ``dW_eps / dM = P``, ``dW_eps / da =
f`` and ``dW_eps / db = g`` (up to constants), so nothing is lost, and the
autograd graph, hence the memory, does not grow with the iteration count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .utils import check_problem, gibbs_plan, soft_c_transform

__all__ = ["SinkhornResult", "sinkhorn"]


@dataclass
class SinkhornResult:
    """Output of :func:`sinkhorn`.

    ``...`` are the batch dims: the leading dims of ``a``, ``b``, ``M`` and
    ``reg``, broadcast together.

    Attributes
    ----------
    plan : torch.Tensor
        ``(..., n, m)`` entropic plan ``P`` (no gradient). Its rows sum to
        ``a`` exactly, its columns to ``b`` up to ``err``.
    cost : torch.Tensor
        ``(...)`` linear transport cost ``<P, M>`` (POT's ``ot.sinkhorn2``),
        differentiable in ``M`` with ``P`` held fixed: its gradient is ``P``.
    value : torch.Tensor
        ``(...)`` entropic OT value ``W_eps = <a, f> + <b, g> = <P, M> + eps
        KL(P || a b^T)`` (POT's ``ot.solve(...).value``), with its exact
        gradients: ``P`` for ``M``, ``f`` for ``a``, ``g - eps`` for ``b``.
    f : torch.Tensor
        ``(..., n)`` dual potential on the sources (units of ``M``; no gradient).
    g : torch.Tensor
        ``(..., m)`` dual potential on the targets (units of ``M``; no gradient).
    n_iter : int
        Sinkhorn iterations (``(g, f)`` update pairs) done.
    converged : torch.Tensor
        ``(...)`` bool, ``err < tol``.
    err : torch.Tensor
        ``(...)`` column-marginal violation ``||P^T 1 - b||_2`` (POT's test).
    """

    plan: torch.Tensor
    cost: torch.Tensor
    value: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    n_iter: int
    converged: torch.Tensor
    err: torch.Tensor


def sinkhorn(
    a: torch.Tensor | None,
    b: torch.Tensor | None,
    M: torch.Tensor,
    reg: float | torch.Tensor,
    max_iter: int = 1000,
    tol: float = 1e-9,
) -> SinkhornResult:
    """Entropic optimal transport for a batch of cost matrices (log-domain Sinkhorn).

    Parameters
    ----------
    a : torch.Tensor or None
        ``(..., n)`` non-negative source weights; uniform ``1/n`` when None.
    b : torch.Tensor or None
        ``(..., m)`` non-negative target weights with the same total mass as
        ``a``; uniform ``1/m`` when None.
    M : torch.Tensor
        ``(..., n, m)`` cost matrices (floating point, finite). The device and
        dtype of the computation are ``M``'s.
    reg : float or torch.Tensor
        Entropic regularisation ``eps > 0`` in the units of ``M``; a tensor
        broadcasting to the batch dims gives one ``eps`` per problem.
    max_iter : int
        Maximum number of Sinkhorn iterations.
    tol : float
        Stop when every problem's column-marginal error ``||P^T 1 - b||_2``
        is below ``tol`` (POT's ``stopThr``). In float32 errors below about
        ``1e-7`` are out of reach; use ``tol >= 1e-6`` there.

    Returns
    -------
    SinkhornResult
        ``plan``, ``cost = <P, M>``, ``value = W_eps``, potentials ``f``,
        ``g``, ``n_iter``, ``converged``, ``err``. The leading dims of ``a``,
        ``b``, ``M`` and ``reg`` are broadcast to the batch dims ``(...)``.

    Raises
    ------
    ValueError
        If ``M`` is not a finite floating-point ``(..., n, m)`` tensor, if the
        weights have the wrong size, are negative or differ in total mass, if
        ``reg`` is not positive, or if ``max_iter < 0`` or ``tol < 0``.

    Notes
    -----
    Source: Cuturi (2013), "Sinkhorn distances", NeurIPS; Peyre & Cuturi
    (2019), "Computational Optimal Transport", Section 4.4 (log-domain
    Sinkhorn); POT's ``ot.sinkhorn(...,
    method="sinkhorn_log")``, whose iterates (``g`` then ``f``) these are,
    with ``log_u = log a + f / eps`` and ``log_v = log b + g / eps``; geomloss
    (Feydy et al. 2019, ``sinkhorn_divergence.py``) for the final
    differentiable step. ``cost`` follows the convention of POT's envelope
    mode for ``value_linear``: its gradient ``P`` is the gradient of
    ``W_eps`` (exact) and tends to that of the unregularised OT cost as
    ``eps -> 0``; the derivative of ``<P(M), M>`` itself also differentiates
    the plan, which no one-step formula gives.
    """
    reg = torch.as_tensor(reg, dtype=M.dtype if M.is_floating_point() else None, device=M.device)
    if not bool((reg > 0).all()) or not bool(torch.isfinite(reg).all()):
        raise ValueError(f"reg must be positive and finite, got {reg}")
    if max_iter < 0 or tol < 0:
        raise ValueError(f"max_iter and tol must be non-negative, got {max_iter} and {tol}")
    a, b, M = check_problem(a, b, M, reg.shape)
    eps = reg.expand(M.shape[:-2]).unsqueeze(-1)  # (..., 1)
    with torch.no_grad():
        a0, b0, M0 = a.detach(), b.detach(), M.detach()
        log_a, log_b = a0.log(), b0.log()
        g = torch.zeros_like(b0)
        f = soft_c_transform(g, log_b, M0, eps, dim=-1)
        for n_iter in range(max_iter + 1):
            g_new = soft_c_transform(f, log_a, M0, eps, dim=-2)
            # Column sums of P(f, g) are b * exp((g - g_new) / eps): the error check is free.
            err = torch.linalg.vector_norm(b0 * torch.expm1((g - g_new) / eps), dim=-1)
            if n_iter == max_iter or bool((err < tol).all()):
                break
            g = g_new
            f = soft_c_transform(g, log_b, M0, eps, dim=-1)

    f = soft_c_transform(g, b.log(), M, eps, dim=-1)  # the one differentiable step
    plan = gibbs_plan(f.detach(), g, a0, b0, M0, eps)
    return SinkhornResult(
        plan=plan,
        cost=(plan * M).sum((-2, -1)),
        value=(a * f).sum(-1) + (b * g).sum(-1),
        f=f.detach(),
        g=g,
        n_iter=n_iter,
        converged=err < tol,
        err=err,
    )
