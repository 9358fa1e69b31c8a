"""Batched conjugate gradients for the Gaussian part of the CryoWGEN posterior (book chapter "CryoWGEN-I").

With a per-voxel prior precision the quadratic part of the posterior potential
is no longer diagonal in Fourier space, so its minimiser (the posterior mean)
and its perturb-and-MAP draws are found by solving ``A x = b`` with ``A``
symmetric positive definite, for many right-hand sides at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["CGResult", "conjugate_gradient"]


@dataclass
class CGResult:
    """What :func:`conjugate_gradient` returns.

    Attributes
    ----------
    x : torch.Tensor
        ``(..., *event)`` solutions.
    iterations : int
        Iterations run.
    residual : torch.Tensor
        ``(...)`` final relative residuals ``||b - A x|| / ||b||``.
    converged : bool
        Whether every residual fell below the tolerance.
    """

    x: torch.Tensor
    iterations: int
    residual: torch.Tensor
    converged: bool


def conjugate_gradient(
    apply_a: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    event_ndim: int,
    x0: torch.Tensor | None = None,
    precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
    tol: float = 1e-5,
    max_iter: int = 200,
    warn: bool = True,
) -> CGResult:
    """Solve ``A x = b`` for a batch of right-hand sides by (preconditioned) conjugate gradients.

    Parameters
    ----------
    apply_a : callable
        ``v -> A v`` on ``(..., *event)`` tensors, the same symmetric positive
        definite ``A`` for every batch element (or one per element, acting
        elementwise over the batch dimensions).
    b : torch.Tensor
        ``(..., *event)`` right-hand sides; sets device and dtype.
    event_ndim : int
        How many trailing dimensions form one vector (3 for volumes).
    x0 : torch.Tensor, optional
        Starting point, ``b``'s shape; default zeros.
    precondition : callable, optional
        ``r -> P^-1 r`` with ``P`` symmetric positive definite (e.g. a
        Fourier-diagonal approximation of ``A``); default the identity.
    tol : float
        Stop when every relative residual ``||b - A x|| / ||b||`` is below it.
    max_iter : int
        At most this many iterations.
    warn : bool
        Warn when ``max_iter`` is reached before ``tol``.

    Returns
    -------
    CGResult

    Raises
    ------
    ValueError
        If ``event_ndim`` exceeds ``b.ndim``, ``x0`` has another shape,
        ``b`` holds NaN/Inf, or ``tol``/``max_iter`` is not positive.

    Warns
    -----
    RuntimeWarning
        If not converged after ``max_iter`` iterations (and ``warn``).

    Notes
    -----
    Hestenes & Stiefel (1952), "Methods of conjugate gradients for solving
    linear systems"; the preconditioned form as in Saad (2003), "Iterative
    Methods for Sparse Linear Systems", algorithm 9.1. All right-hand sides
    advance together (one batched ``apply_a`` per iteration); an element
    that has converged keeps its solution (its step is set to zero).
    """
    if not 1 <= event_ndim <= b.ndim:
        raise ValueError(f"event_ndim must be in [1, b.ndim={b.ndim}], got {event_ndim}")
    if not torch.isfinite(b).all():
        raise ValueError("b holds NaN or Inf values")
    if not (tol > 0 and max_iter >= 1):
        raise ValueError(f"tol and max_iter must be positive, got {tol} and {max_iter}")
    dims = tuple(range(-event_ndim, 0))
    pre = precondition if precondition is not None else (lambda r: r)

    def dot(u, v):
        return (u * v).sum(dims, keepdim=True)

    x = torch.zeros_like(b) if x0 is None else x0.clone()
    if x.shape != b.shape:
        raise ValueError(f"x0 has shape {tuple(x.shape)}, b {tuple(b.shape)}")
    r = b - apply_a(x) if x0 is not None else b.clone()
    b_norm = dot(b, b).sqrt().clamp_min(torch.finfo(b.dtype).tiny)
    z = pre(r)
    p = z.clone()
    rz = dot(r, z)
    it = 0
    rel = dot(r, r).sqrt() / b_norm
    while it < max_iter and bool((rel > tol).any()):
        active = (rel > tol).to(b.dtype)
        ap = apply_a(p)
        alpha = active * rz / dot(p, ap).clamp_min(torch.finfo(b.dtype).tiny)
        x = x + alpha * p
        r = r - alpha * ap
        z = pre(r)
        rz_new = dot(r, z)
        p = z + (rz_new / rz.clamp_min(torch.finfo(b.dtype).tiny)) * p
        rz = rz_new
        rel = dot(r, r).sqrt() / b_norm
        it += 1
    converged = not bool((rel > tol).any())
    if warn and not converged:
        warnings.warn(f"conjugate gradients stopped at max_iter={max_iter} with relative residual "
                      f"{float(rel.max()):.2e} > tol={tol}", RuntimeWarning, stacklevel=2)
    return CGResult(x=x, iterations=it, residual=rel.reshape(b.shape[: b.ndim - event_ndim]), converged=converged)
