"""Optimal transport on the line: monotone (quantile) matching (CryoGEN-II).

In one dimension, and for any convex cost ``|x - y|^p`` with ``p >= 1``, the
optimal plan is monotone: sort both samples and match them in order (the
north-west corner rule on the quantile functions). With cumulative weights
``F_u``, ``F_v`` and quantile functions ``F_u^{-1}``, ``F_v^{-1}``::

    W_p^p(u, v) = int_0^1 |F_u^{-1}(q) - F_v^{-1}(q)|^p dq,

an exact sum over the ``n + m`` breakpoints of the two step functions. This
is the chapter's first, exactly solvable transport problem, and the book's
check on every other solver.
"""

from __future__ import annotations

import torch

__all__ = ["wasserstein_1d", "wasserstein_distance_1d", "monotone_plan_1d"]


def _weights(values: torch.Tensor, weights: torch.Tensor | None, name: str) -> torch.Tensor:
    """Normalised weights ``(..., n)`` broadcast to ``values``; uniform when None."""
    if weights is None:
        return torch.full_like(values, 1.0 / values.shape[-1])
    weights = torch.as_tensor(weights, dtype=values.dtype, device=values.device)
    try:
        weights = weights.expand_as(values)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(weights.shape)} does not broadcast to values {tuple(values.shape)}") from None
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    total = weights.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(f"{name} must have a positive sum")
    return weights / total


def wasserstein_1d(
    u_values: torch.Tensor,
    v_values: torch.Tensor,
    u_weights: torch.Tensor | None = None,
    v_weights: torch.Tensor | None = None,
    p: float = 2,
) -> torch.Tensor:
    """The ``p``-th power of the ``p``-Wasserstein distance between 1D samples, ``W_p^p``.

    Parameters
    ----------
    u_values : torch.Tensor
        Atoms of the first measure, ``(..., n)``, any units.
    v_values : torch.Tensor
        Atoms of the second measure, ``(..., m)``; the leading dims of the two
        broadcast against each other.
    u_weights, v_weights : torch.Tensor, optional
        Non-negative weights ``(..., n)`` / ``(..., m)`` (or anything that
        broadcasts to the values); normalised to sum to 1 along the last
        axis. Uniform when None.
    p : float
        Order of the ground cost ``|x - y|^p``, at least 1. Default 2
        (note: POT's default is ``p=1``).

    Returns
    -------
    torch.Tensor
        ``(...)``: ``W_p^p = int_0^1 |F_u^{-1}(q) - F_v^{-1}(q)|^p dq``, the
        optimal transport *cost* (not its ``p``-th root), in units of the
        values to the power ``p``. Equals POT's ``ot.wasserstein_1d(u, v,
        u_w, v_w, p)`` with the samples on axis 0 there and on the last axis
        here. Differentiable in the values (and the weights).

    Raises
    ------
    ValueError
        If ``p < 1``, a sample is empty or not floating point, the batch dims do not broadcast, or
        the weights are negative, non-finite or sum to zero.

    Notes
    -----
    Source: Peyre & Cuturi (2019), "Computational Optimal Transport",
    Remark 2.30; POT's
    ``ot.lp.solver_1d.wasserstein_1d``, whose algorithm this is: sort, merge
    the cumulative weights into ``n + m`` quantile levels ``q_k``, and sum
    ``(q_k - q_{k-1}) |F_u^{-1}(q_k) - F_v^{-1}(q_k)|^p``. Unlike POT, weights
    are normalised here (POT assumes they already sum to 1). Cost
    ``O((n + m) log(n + m))`` per problem; the batch is one tensor.
    """
    if not p >= 1:
        raise ValueError(f"p must be at least 1 (W_p is a distance only then), got {p}")
    if u_values.ndim == 0 or v_values.ndim == 0 or u_values.shape[-1] == 0 or v_values.shape[-1] == 0:
        raise ValueError("u_values and v_values need a non-empty last (sample) axis")
    if not (u_values.is_floating_point() and v_values.is_floating_point()):
        raise ValueError("u_values and v_values must be floating-point tensors")
    try:
        batch = torch.broadcast_shapes(u_values.shape[:-1], v_values.shape[:-1])
    except RuntimeError:
        raise ValueError(f"batch dims of u_values {tuple(u_values.shape)} and v_values {tuple(v_values.shape)} do not broadcast") from None
    u_w = _weights(u_values, u_weights, "u_weights").expand(*batch, -1)
    v_w = _weights(v_values, v_weights, "v_weights").expand(*batch, -1)
    u_values, v_values = u_values.expand(*batch, -1), v_values.expand(*batch, -1)

    u_sorted, u_order = torch.sort(u_values, dim=-1)
    v_sorted, v_order = torch.sort(v_values, dim=-1)
    u_cdf = torch.cumsum(u_w.gather(-1, u_order), dim=-1)  # (..., n)
    v_cdf = torch.cumsum(v_w.gather(-1, v_order), dim=-1)  # (..., m)
    qs, _ = torch.sort(torch.cat([u_cdf, v_cdf], dim=-1), dim=-1)  # (..., n + m) quantile levels

    def quantile(cdf: torch.Tensor, sorted_values: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(cdf.detach().contiguous(), qs.detach().contiguous())
        return sorted_values.gather(-1, idx.clamp_max(sorted_values.shape[-1] - 1))

    delta = torch.diff(qs, dim=-1, prepend=torch.zeros_like(qs[..., :1]))
    return (delta * (quantile(u_cdf, u_sorted) - quantile(v_cdf, v_sorted)).abs().pow(p)).sum(-1)


def wasserstein_distance_1d(
    u_values: torch.Tensor, v_values: torch.Tensor,
    u_weights: torch.Tensor | None = None, v_weights: torch.Tensor | None = None, p: float = 1,
) -> torch.Tensor:
    """The ``p``-Wasserstein distance ``W_p = (W_p^p)^(1/p)`` between 1D samples.

    ``p=1`` gives ``W_1`` (scipy's ``wasserstein_distance``), ``p=2`` gives
    ``W_2``, both in the units of the values.

    Parameters
    ----------
    u_values, v_values, u_weights, v_weights
        As :func:`wasserstein_1d`: ``(..., n)`` and ``(..., m)``.
    p : float
        Order, at least 1. Default 1.

    Returns
    -------
    torch.Tensor
        ``(...)``, the distance in the units of the values. Its gradient is
        infinite where the distance is 0 and ``p > 1``.

    Raises
    ------
    ValueError
        As :func:`wasserstein_1d`.

    Notes
    -----
    Source: Villani (2009), "Optimal Transport, Old and New", Definition 6.1.
    """
    return wasserstein_1d(u_values, v_values, u_weights, v_weights, p=p).pow(1.0 / p)


def monotone_plan_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The monotone matching of two equal-size, uniformly weighted 1D samples.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., n)`` source atoms.
    y : torch.Tensor
        ``(..., n)`` target atoms, same shape as ``x``.

    Returns
    -------
    torch.Tensor
        ``(..., n)`` long: ``perm[..., i] = j`` sends ``x_i`` to ``y_j`` (the
        ``k``-th smallest ``x`` to the ``k``-th smallest ``y``). It is optimal
        for every convex cost ``h(x - y)``; the plan matrix is
        ``torch.nn.functional.one_hot(perm, n) / n``, and the matched pairs
        for drawing lines are ``(x, y.gather(-1, perm))``.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in shape or are empty.

    Notes
    -----
    Source: Santambrogio (2015), "Optimal Transport for Applied
    Mathematicians", Section 2.2. Ties are broken by
    ``torch.sort``'s order; any tie-break is optimal.
    """
    if x.shape != y.shape or x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"x and y must have the same non-empty shape (..., n), got {tuple(x.shape)} and {tuple(y.shape)}")
    x_order = torch.argsort(x, dim=-1)
    y_order = torch.argsort(y, dim=-1)
    return torch.empty_like(x_order).scatter_(-1, x_order, y_order)
