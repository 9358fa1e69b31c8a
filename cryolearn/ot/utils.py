"""Building blocks shared by the transport solvers: problem checks, the soft c-transform, the Gibbs plan.

For weights ``a`` (n sources), ``b`` (m targets), costs ``M`` (n, m) and a
temperature ``eps``, the entropic dual potentials ``f`` (n) and ``g`` (m)
define the Gibbs plan ``P_ij = a_i b_j exp((f_i + g_j - M_ij) / eps)``, and
the best ``f`` for a given ``g`` (and the reverse) is a soft c-transform::

    f_i = -eps log sum_j b_j exp((g_j - M_ij) / eps),

the soft minimum that tends to the c-transform ``min_j M_ij - g_j`` as
``eps -> 0``. Sinkhorn (:mod:`cryolearn.ot.sinkhorn`) alternates the two
soft c-transforms; the semi-dual solver (:mod:`cryolearn.ot.semidual`)
maximises over ``g`` with ``f`` its soft c-transform.
"""

from __future__ import annotations

import torch

__all__ = ["check_problem", "gibbs_plan", "soft_c_transform"]


def _marginal(w: torch.Tensor | None, size: int, M: torch.Tensor, name: str) -> torch.Tensor:
    """Weights ``(..., size)`` on ``M``'s device and dtype; uniform when None."""
    if w is None:
        return torch.full((size,), 1.0 / size, dtype=M.dtype, device=M.device)
    w = torch.as_tensor(w, dtype=M.dtype, device=M.device)
    if w.ndim == 0 or w.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}) to match M {tuple(M.shape)}, got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    return w


def check_problem(
    a: torch.Tensor | None, b: torch.Tensor | None, M: torch.Tensor, *shapes: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate a balanced transport problem and broadcast it to one batch.

    Parameters
    ----------
    a, b : torch.Tensor or None
        Source weights ``(..., n)`` and target weights ``(..., m)``,
        non-negative, of equal total mass; None stands for uniform weights.
    M : torch.Tensor
        ``(..., n, m)`` costs, finite and floating point; the weights are
        converted to its device and dtype.
    *shapes : tuple of int
        Further batch shapes that take part in the broadcast (e.g. the shape
        of a per-problem ``reg``).

    Returns
    -------
    a, b, M : torch.Tensor
        ``(*batch, n)``, ``(*batch, m)`` and ``(*batch, n, m)``, with
        ``batch`` the broadcast of the leading dims of ``a``, ``b``, ``M``
        and ``shapes`` (expanded views, not copies).

    Raises
    ------
    ValueError
        If ``M`` is not a finite floating-point ``(..., n, m)`` tensor with
        ``n, m >= 1``, if a weight vector has the wrong size or is negative
        or not finite, if the batch dims do not broadcast, or if ``a`` and
        ``b`` differ in total mass (relative tolerance ``1e-4``) or have none.

    Notes
    -----
    Source: the input checks of POT's solvers (``ot.emd``, ``ot.sinkhorn``:
    uniform weights when empty, equal masses required), with batch dims.
    """
    if not M.is_floating_point() or M.ndim < 2 or not bool(torch.isfinite(M).all()):
        raise ValueError(f"M must be a finite floating-point tensor of shape (..., n, m), got {M.dtype} {tuple(M.shape)}")
    n, m = M.shape[-2:]
    if n == 0 or m == 0:
        raise ValueError(f"M must have n, m >= 1, got shape {tuple(M.shape)}")
    a, b = _marginal(a, n, M, "a"), _marginal(b, m, M, "b")
    try:
        batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1], M.shape[:-2], *shapes)
    except RuntimeError:
        raise ValueError(f"batch dims of a {tuple(a.shape)}, b {tuple(b.shape)}, M {tuple(M.shape)} (and reg) do not broadcast") from None
    a, b, M = a.expand(*batch, n), b.expand(*batch, m), M.expand(*batch, n, m)
    mass_a, mass_b = a.sum(-1), b.sum(-1)
    if not bool(torch.allclose(mass_a, mass_b, rtol=1e-4, atol=0)) or not bool((mass_a > 0).all()):
        raise ValueError("a and b must have the same positive total mass (balanced transport)")
    return a, b, M


def soft_c_transform(h: torch.Tensor, log_w: torch.Tensor, M: torch.Tensor, eps: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The soft c-transform ``-eps log sum_k w_k exp((h_k - M) / eps)``, summed over targets or sources.

    Parameters
    ----------
    h : torch.Tensor
        The potential summed over: ``(..., m)`` on the targets for
        ``dim=-1``, ``(..., n)`` on the sources for ``dim=-2`` (units of ``M``).
    log_w : torch.Tensor
        Log-weights of the same side, same shape as ``h``; entries of
        ``-inf`` (zero weight) drop out.
    M : torch.Tensor
        ``(..., n, m)`` costs.
    eps : torch.Tensor
        ``(..., 1)`` temperature ``> 0`` per problem, units of ``M``.
    dim : {-1, -2}
        ``-1``: sum over targets ``j``, giving ``f_i = -eps log sum_j b_j
        exp((g_j - M_ij) / eps)`` on the sources; ``-2``: sum over sources
        ``i``, giving ``g_j`` on the targets.

    Returns
    -------
    torch.Tensor
        ``(..., n)`` for ``dim=-1``, ``(..., m)`` for ``dim=-2``: the other
        side's potential, in units of ``M``; differentiable in every input.
        As ``eps -> 0`` it tends to the c-transform ``min_k M - h_k`` over
        the support of ``w`` (:func:`cryolearn.ot.c_transform`).

    Raises
    ------
    ValueError
        If ``dim`` is not ``-1`` or ``-2``.

    Notes
    -----
    Source: Peyre & Cuturi (2019), "Computational Optimal Transport",
    Section 4.4 (the soft minimum ``min_eps`` and the log-domain Sinkhorn
    updates); POT's ``ot.sinkhorn(..., method="sinkhorn_log")``. Computed
    with ``torch.logsumexp``, so a small ``eps`` does not underflow.
    """
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 (sum over targets) or -2 (sum over sources), got {dim}")
    axis = -2 if dim == -1 else -1  # where the summed-over potential broadcasts
    h, log_w = h.unsqueeze(axis), log_w.unsqueeze(axis)
    return -eps * torch.logsumexp(log_w + (h - M) / eps.unsqueeze(-1), dim=dim)


def gibbs_plan(f: torch.Tensor, g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, M: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The Gibbs (entropic) plan ``P_ij = a_i b_j exp((f_i + g_j - M_ij) / eps)`` of a pair of potentials.

    Parameters
    ----------
    f : torch.Tensor
        ``(..., n)`` source potential (units of ``M``).
    g : torch.Tensor
        ``(..., m)`` target potential (units of ``M``).
    a : torch.Tensor
        ``(..., n)`` source weights.
    b : torch.Tensor
        ``(..., m)`` target weights.
    M : torch.Tensor
        ``(..., n, m)`` costs.
    eps : torch.Tensor
        ``(..., 1)`` temperature ``> 0`` per problem, units of ``M``.

    Returns
    -------
    torch.Tensor
        ``(..., n, m)`` non-negative plan (mass units of ``a``). It is the
        optimal entropic plan exactly when its marginals are ``a`` and ``b``;
        with ``f`` the soft c-transform of ``g`` (:func:`soft_c_transform`,
        ``dim=-1``) its rows sum to ``a`` exactly.

    Notes
    -----
    Source: Peyre & Cuturi (2019), "Computational Optimal Transport",
    Proposition 4.3 (the primal-dual relation of entropic transport); POT's
    ``log_u = log a + f / eps``, ``log_v = log b + g / eps``.
    """
    return torch.exp(a.log().unsqueeze(-1) + b.log().unsqueeze(-2) + (f.unsqueeze(-1) + g.unsqueeze(-2) - M) / eps.unsqueeze(-1))
