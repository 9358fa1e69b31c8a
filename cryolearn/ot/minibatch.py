"""The CryoGEN-II minibatch transport loss: the squared-distance cost, the optimal plan, the loss with the plan held fixed.

CryoGEN-II compares ``B`` re-degraded reconstructions ``x_i`` with ``B'``
real observations ``y_j`` (uniform weights), cost ``c(x, y) = ||x - y||^2 /
2`` between the flattened volumes. The plan ``pi`` is solved to optimality
without gradients, and the loss ``sum_ij pi_ij c(x_i, y_j)`` is
differentiated with ``pi`` held fixed; by the envelope theorem this is the
gradient of the optimal cost ``W_c`` itself.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import ot as pot
import torch

from .semidual import semidual_ot
from .utils import soft_c_transform

__all__ = ["sqeuclidean_cost", "MinibatchOTResult", "minibatch_ot_plan", "minibatch_ot_loss"]


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
    Source: Peyre & Cuturi (2019), "Computational Optimal Transport",
    Remark 2.18 (the squared Euclidean cost; here halved, ``c(a, b) = ||a -
    b||^2 / 2``, the cost of CryoGEN-II); book chapter "Entropic optimal
    transport and the semi-dual", section 4.
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
        ``(B',)`` dual potential on ``y``: the semi-dual ``phi``
        (:func:`cryolearn.ot.semidual_ot`), defined up to an additive
        constant.
    converged : bool
        True for ``"emd"`` (it raises otherwise); for ``"sinkhorn"``, whether
        the column-marginal error ``err`` reached ``1e-10``.
    err : float
        Column-marginal error ``||1/B' - P^T 1||_1`` of the entropic plan
        before it is rounded to exact marginals (0 for ``"emd"``).
    """

    plan: torch.Tensor
    cost: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    converged: bool
    err: float


_METHODS = ("emd", "sinkhorn")
_TOL = 1e-10  # column-marginal error (L1, mass units) at which the entropic plan counts as converged
_warned = False  # the non-convergence warning is issued once per process


def _emd_iterations(n: int, m: int) -> int:
    """Iteration cap of the network simplex for an ``(n, m)`` problem."""
    return max(100_000, 100 * n * m)


def _temperature(C: torch.Tensor, reg: float | None, reg_rel: float | None) -> torch.Tensor:
    """The absolute ``eps`` ``()`` of the entropic plan: ``reg``, or ``reg_rel * std(C)`` (default ``reg_rel = 0.01``)."""
    if reg is not None and reg_rel is not None:
        raise ValueError("give the temperature as reg (absolute) or reg_rel (relative to std of the costs), not both")
    if reg is not None:
        if not reg > 0 or not math.isfinite(reg):
            raise ValueError(f"reg must be positive and finite, got {reg}")
        return torch.as_tensor(reg, dtype=torch.float64, device=C.device)
    reg_rel = 0.01 if reg_rel is None else reg_rel
    if not reg_rel > 0 or not math.isfinite(reg_rel):
        raise ValueError(f"reg_rel must be positive and finite, got {reg_rel}")
    spread = C.std(correction=0)
    return reg_rel * torch.where(spread > 0, spread, torch.ones_like(spread))


def _solve(C: torch.Tensor, method: str, reg: float | None, reg_rel: float | None, max_iter: int) -> MinibatchOTResult:
    """Optimal plan for cost ``C`` ``(B, B')`` (detached) with uniform weights."""
    n, m = C.shape
    if method == "emd":
        a, b = np.full(n, 1.0 / n), np.full(m, 1.0 / m)
        plan, log = pot.emd(a, b, C.cpu().double().numpy(), numItermax=_emd_iterations(n, m), log=True)
        if log["warning"] is not None:
            raise RuntimeError(f"ot.emd did not reach the optimum: {log['warning']}")
        plan, f, g = (torch.as_tensor(t, dtype=C.dtype).to(C.device) for t in (plan, log["u"], log["v"]))
        converged, err = True, 0.0
    elif method == "sinkhorn":
        # The entropic plan at eps by Newton's method on the smoothed semi-dual (float64, annealed eps):
        # Sinkhorn's own iterations need far more than 1e5 steps at CryoGEN-II's temperatures.
        # Shifting the costs by their minimum changes neither the plan nor g, and keeps (C - min C) / eps small.
        eps, C64 = _temperature(C, reg, reg_rel).double(), C.double()
        res = semidual_ot(None, None, C64 - C64.min(), reg=eps, max_iter=max_iter, tol=_TOL)
        converged, err = bool(res.converged), float(res.err)
        log_b = torch.full((m,), -math.log(m), dtype=torch.float64, device=C.device)
        f = soft_c_transform(res.phi, log_b, C64, eps.reshape(1), dim=-1)  # (B,)
        plan, f, g = (t.to(C.dtype) for t in (res.plan, f, res.phi))
        if not converged:
            _warn_once(
                f"minibatch_ot_plan(method='sinkhorn') did not converge: column-marginal error {err:.1e} > {_TOL:.0e} "
                f"after max_iter={max_iter} Newton steps per level at eps = {float(eps):.3g}; raise max_iter or the "
                "temperature (reg_rel or reg). Warned once per process; the result's converged and err report every solve."
            )
    else:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    return MinibatchOTResult(plan=plan, cost=(plan * C).sum(), f=f, g=g, converged=converged, err=err)


def _warn_once(message: str) -> None:
    """``warnings.warn(message, RuntimeWarning)`` the first time in this process, pointing at the caller of the public function."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _check_cost(cost: str) -> None:
    if cost != "sqeuclidean":
        raise ValueError(f"only cost='sqeuclidean' (c = ||a - b||^2 / 2) is implemented, got {cost!r}")


def minibatch_ot_plan(
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "emd",
    *,
    reg: float | None = None,
    reg_rel: float | None = None,
    cost: str = "sqeuclidean",
    max_iter: int = 50,
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
        float64. ``"sinkhorn"``: the entropic (Sinkhorn) plan at temperature
        ``eps``, the plan :func:`cryolearn.ot.sinkhorn` converges to (blurred
        by ``eps``), solved to a column-marginal error of ``1e-10`` on the
        tensors' device in float64 and rounded to exact marginals.
    reg : float, optional
        For ``"sinkhorn"`` only: the temperature ``eps > 0`` itself, in the
        units of the costs (squared voxel values), as in
        :func:`cryolearn.ot.sinkhorn`. Ignored by ``"emd"``.
    reg_rel : float, optional
        For ``"sinkhorn"`` only, used when ``reg`` is None: ``eps = reg_rel *
        std(C)``, relative to the spread of the costs (dimensionless, so one
        value serves any volume size; the cost's own size, e.g. its median,
        grows with the volume while the differences that decide the plan do
        not). Default ``0.01``, at which a 64 x 64 problem on 32 x 32 images
        is about 0.03% above the exact cost. Ignored by ``"emd"``.
    cost : {"sqeuclidean"}
        ``c(a, b) = ||a - b||^2 / 2`` (:func:`sqeuclidean_cost`).
    max_iter : int
        For ``"sinkhorn"``: Newton steps per temperature level (see Notes).
        The network simplex gets ``max(1e5, 100 B B')`` iterations.

    Returns
    -------
    MinibatchOTResult
        ``plan`` ``(B, B')``, ``cost``, potentials ``f`` ``(B,)`` and ``g``
        ``(B',)`` on the device and dtype of ``x``, without gradients;
        ``converged`` and ``err``.

    Raises
    ------
    ValueError
        If the batches do not match (:func:`sqeuclidean_cost`), ``method`` or
        ``cost`` is unknown, ``reg`` or ``reg_rel`` is not positive and
        finite, or both are given.
    RuntimeError
        If ``ot.emd`` stops before the optimum.

    Warns
    -----
    RuntimeWarning
        Once per process, with the marginal error, the first time a
        ``"sinkhorn"`` plan does not converge within ``max_iter``.

    Notes
    -----
    Source: Cuturi (2013), "Sinkhorn distances", NeurIPS (the entropic
    plan); Cuturi & Peyre (2018), "Semi-dual regularized optimal transport",
    SIAM Review 60 (its semi-dual). For ``"emd"`` the potentials are POT's
    exact duals (``log["u"]``, ``log["v"]``): ``f_i + g_j <= C_ij`` with
    equality on the support of the plan.

    For ``"sinkhorn"`` the plan is computed by
    :func:`cryolearn.ot.semidual_ot` with ``reg = eps`` (damped Newton steps
    on the smoothed semi-dual, ``eps`` annealed from the cost range down by
    factors of 4), not by Sinkhorn's iterations: at the default ``reg_rel =
    0.01`` on ``B = 8`` re-degraded 32^3 volumes against observations
    (``range(C) / eps`` about 400) log-domain Sinkhorn still has a marginal
    error of ``1e-4`` after 1000 iterations and ``6e-7`` after 300000, in
    float64, while the Newton solver reaches ``1e-10`` in about 20 steps
    (tens of ms on a CPU core). ``g`` is its potential ``phi``, ``f`` the
    soft c-transform of ``g`` at ``eps`` (Sinkhorn's ``f``).
    """
    _check_cost(cost)
    with torch.no_grad():
        return _solve(sqeuclidean_cost(x, y), method, reg, reg_rel, max_iter)


def minibatch_ot_loss(
    x: torch.Tensor, y: torch.Tensor, method: str = "emd",
    *, reg: float | None = None, reg_rel: float | None = None, cost: str = "sqeuclidean", max_iter: int = 50,
) -> torch.Tensor:
    """The CryoGEN-II transport loss ``sum_ij pi_ij c(x_i, y_j)`` with the plan held fixed.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, ...)`` generated samples, weights ``1/B``; gradients flow to it.
    y : torch.Tensor
        ``(B', ...)`` real observations, weights ``1/B'`` (gradients too, if
        it requires them).
    method, reg, reg_rel, cost, max_iter
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
    Source: Genevay, Peyre & Cuturi (2018), "Learning generative models with
    Sinkhorn divergences", AISTATS (minibatch transport losses); Fatras et
    al. (2020), "Learning with minibatch Wasserstein", AISTATS. The plan is
    solved without gradients; by the envelope (Danskin) theorem the gradient
    with ``pi`` held fixed is the gradient of the optimal cost ``W_c``
    itself wherever the optimal plan is unique, so no min-max game and no
    differentiation through the solver are needed. For ``"emd"`` the loss
    is POT's ``ot.emd2`` with the torch backend, which attaches exactly this
    gradient (the plan for the costs); its value is computed in float64 and
    returned in the dtype of ``x``. The cost matrix is built once, by
    :func:`sqeuclidean_cost`.
    """
    _check_cost(cost)
    C = sqeuclidean_cost(x, y)  # (B, B')
    if method != "emd":
        return (_solve(C.detach(), method, reg, reg_rel, max_iter).plan * C).sum()
    # POT's exact cost with the torch backend: its gradient in C is the optimal plan (the envelope gradient).
    n, m = C.shape
    a, b = (torch.full((k,), 1.0 / k, dtype=torch.float64, device=C.device) for k in (n, m))
    value, log = pot.emd2(a, b, C, numItermax=_emd_iterations(n, m), log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"ot.emd2 did not reach the optimum: {log['warning']}")
    return value.to(C.dtype)
