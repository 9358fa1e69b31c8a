"""Langevin sampling: unadjusted Langevin and SGLD (the book's chapters on the four methods, CryoWGEN-II).

A potential ``U`` maps a batch of states ``(K, B, ...)`` -- ``K`` chains for
each of ``B`` observations, one tensor -- to energies ``(K, B)``. Each step is

``x <- x - eta_t * grad U(x) / T + sqrt(2 eta_t) xi``,  ``xi ~ N(0, I)``,

which leaves ``exp(-U / T)`` invariant up to a bias of order ``eta``
(no Metropolis correction). The gradient is taken with autograd inside the
loop and the iterates are detached after every step, so memory does not grow
with the number of steps; only the thinned post-burn-in states are kept, and
``keep_samples=False`` keeps none, only their running mean and variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

__all__ = ["LangevinResult", "langevin", "sgld", "polynomial_decay", "pool_chains"]

Potential = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LangevinResult:
    """Output of :func:`langevin` and :func:`sgld`.

    Attributes
    ----------
    samples : torch.Tensor or None
        Kept states ``(S, K, B, ...)`` (thinned, after burn-in; the final state
        is always the last one), or None when run with ``keep_samples=False``.
    final : torch.Tensor
        Last state ``(K, B, ...)``.
    mean : torch.Tensor
        Mean of the ``S`` kept states per chain and observation, ``(K, B, ...)``.
    var : torch.Tensor
        Their variance (divided by ``S``, not ``S - 1``), ``(K, B, ...)``; pool
        over chains with :func:`pool_chains`.
    n_samples : int
        ``S``, the number of kept states.
    potential_trace : torch.Tensor
        ``U`` of the state before each step, ``(n_steps, K, B)``: entry ``t``
        is the energy of the state after ``t`` steps.
    step_sizes : torch.Tensor
        ``eta_t`` used at each step, ``(n_steps,)``.

    All tensors are detached (``requires_grad`` is False).
    """

    samples: torch.Tensor | None
    final: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    n_samples: int
    potential_trace: torch.Tensor
    step_sizes: torch.Tensor


def polynomial_decay(b: float, gamma: float = 0.55) -> Callable[[int], float]:
    """Polynomially decaying step-size factor ``t -> (b / (b + t))^gamma``.

    Parameters
    ----------
    b : float
        Steps over which the step size stays near its initial value; ``> 0``.
    gamma : float
        Decay exponent; Welling & Teh require ``0.5 < gamma <= 1`` for the
        Robbins-Monro conditions.

    Returns
    -------
    callable
        ``schedule(t)`` for the step index ``t = 0, 1, ...``, a float in
        ``(0, 1]`` equal to 1 at ``t = 0``.

    Raises
    ------
    ValueError
        If ``b`` or ``gamma`` is not positive.

    Notes
    -----
    Used as ``step_schedule`` it multiplies ``step_size``, giving
    ``eta_t = a (b + t)^(-gamma)`` with ``a = step_size * b^gamma``, the
    schedule of Welling & Teh (2011), "Bayesian learning via stochastic
    gradient Langevin dynamics", ICML.
    """
    if not b > 0:
        raise ValueError(f"b must be positive, got {b}")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    return lambda t: (b / (b + t)) ** gamma


def langevin(
    potential: Potential,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    temperature: float = 1.0,
    burn_in: int = 0,
    thin: int = 1,
    generator: torch.Generator | None = None,
    step_schedule: Callable[[int], float] | None = None,
    progress: bool = False,
    keep_samples: bool = True,
    preconditioner: torch.Tensor | None = None,
) -> LangevinResult:
    """Unadjusted Langevin dynamics on a batch of chains.

    Parameters
    ----------
    potential : callable
        ``U``: states ``(K, B, ...)`` to energies ``(K, B)``, differentiable in
        its input (it may close over the observations ``y``; its own
        parameters receive no gradient). Each energy must depend on its own
        state only (no coupling across chains, e.g. batch norm in training
        mode), since the gradient is taken of their sum.
    x0 : torch.Tensor
        Initial states ``(K, B, ...)``: ``K`` chains for each of ``B``
        observations. Floating point; sets the device and dtype.
    step_size : float
        Initial step ``eta_0 > 0`` (squared units of ``x``).
    n_steps : int
        Number of steps, ``>= 1``.
    temperature : float
        ``T > 0``: the target is ``exp(-U / T)``, all widths scale with
        ``sqrt(T)`` (``gamma`` in the book's chapters on the four methods).
    burn_in : int
        Steps whose states are discarded, ``0 <= burn_in < n_steps``.
    thin : int
        Keep every ``thin``-th state after burn-in, counted back from the last.
    generator : torch.Generator, optional
        Seeds the noise ``xi`` (must live on ``x0``'s device).
    step_schedule : callable, optional
        ``t -> factor`` for the step index ``t = 0 .. n_steps - 1``; step ``t``
        uses ``eta_t = step_size * step_schedule(t)`` (see
        :func:`polynomial_decay`). Default: constant.
    progress : bool
        Show a tqdm progress bar.
    keep_samples : bool
        Keep the ``S`` states (``S * K * B * ...`` numbers); if False only
        their running mean and variance are kept.
    preconditioner : torch.Tensor, optional
        A positive diagonal preconditioner ``D``, broadcastable to ``x0``
        (e.g. ``(B, ...)``: one value per voxel and observation). The update
        becomes ``x <- x - eta_t D grad U(x) / T + sqrt(2 eta_t D) xi``,
        which leaves the same target invariant (in the small-step limit) and
        lets each coordinate move at its own scale; ``step_size`` is then in
        units of ``D``. Default: ``D = 1``.

    Returns
    -------
    LangevinResult
        Kept states ``S = ceil((n_steps - burn_in) / thin)``: the states after
        steps ``n_steps, n_steps - thin, ...`` that come after burn-in.

    Raises
    ------
    ValueError
        If ``x0`` has fewer than 2 dimensions or is not floating point, if a
        step count, step size or temperature is out of range, or if the
        potential does not return ``(K, B)`` energies.

    Notes
    -----
    Source: the book's chapters on the four methods (CryoWGEN-II); a constant
    diagonal preconditioner as in Girolami & Calderhead (2011), "Riemann
    manifold Langevin and Hamiltonian Monte Carlo methods", JRSS B; Roberts & Tweedie (1996),
    "Exponential convergence of Langevin distributions and their discrete
    approximations", Bernoulli. The update is
    ``x <- x - eta_t * grad U(x) / T + sqrt(2 eta_t) xi``. Without a
    Metropolis test the stationary law carries an ``O(eta)`` bias: for a
    Gaussian of variance ``s^2`` it is ``T s^2 / (1 - eta / (2 T s^2))``.
    The gradient is taken under ``torch.enable_grad()`` (so this works under
    ``torch.no_grad()``) and each iterate is detached. Mean and variance are
    accumulated with Welford's update, batched over all chains.
    """
    if x0.ndim < 2 or not x0.is_floating_point():
        raise ValueError(f"x0 must be a floating-point tensor (K, B, ...), got {tuple(x0.shape)} of {x0.dtype}")
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not (isinstance(burn_in, int) and 0 <= burn_in < n_steps):
        raise ValueError(f"burn_in must be an integer in [0, n_steps={n_steps}), got {burn_in!r}")
    if not (isinstance(thin, int) and thin >= 1):
        raise ValueError(f"thin must be a positive integer, got {thin!r}")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if preconditioner is not None and not (torch.isfinite(preconditioner).all() and (preconditioner > 0).all()):
        raise ValueError("preconditioner must be finite and positive")

    etas = [step_size * (1.0 if step_schedule is None else float(step_schedule(t))) for t in range(n_steps)]
    if not all(eta > 0 and math.isfinite(eta) for eta in etas):
        raise ValueError("step_schedule must give positive finite step sizes")
    n_samples = (n_steps - burn_in - 1) // thin + 1
    kb = x0.shape[:2]
    x = x0.detach()
    trace = x.new_empty((n_steps, *kb))
    samples = x.new_empty((n_samples, *x.shape)) if keep_samples else None
    mean = torch.zeros_like(x)
    m2 = torch.zeros_like(x)
    s = 0
    for t in tqdm(range(n_steps), disable=not progress, desc="Langevin"):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            u = potential(x)
            if u.shape != kb:
                raise ValueError(f"potential must return energies of shape (K, B) = {tuple(kb)}, got {tuple(u.shape)}")
            (grad,) = torch.autograd.grad(u.sum(), x)
        trace[t] = u.detach()
        xi = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if preconditioner is None:
            x = x.detach() - (etas[t] / temperature) * grad + math.sqrt(2 * etas[t]) * xi
        else:
            x = x.detach() - (etas[t] / temperature) * preconditioner * grad + (2 * etas[t] * preconditioner).sqrt() * xi
        if t + 1 > burn_in and (n_steps - t - 1) % thin == 0:
            if samples is not None:
                samples[s] = x
            s += 1
            d = x - mean
            mean += d / s
            m2 += d * (x - mean)
    return LangevinResult(
        samples=samples,
        final=x,
        mean=mean,
        var=m2 / n_samples,
        n_samples=n_samples,
        potential_trace=trace,
        step_sizes=torch.tensor(etas, dtype=x.dtype, device=x.device),
    )


def sgld(
    potential: Potential,
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    step_schedule: Callable[[int], float] | None = None,
    **options: Any,
) -> LangevinResult:
    """Stochastic-gradient Langevin dynamics (SGLD) on a batch of chains.

    Parameters
    ----------
    potential : callable
        A stochastic, unbiased estimate of ``U``: states ``(K, B, ...)`` to
        energies ``(K, B)``. It is called once per step and should draw a
        fresh minibatch (or fresh rotations and noise) on each call, e.g. a
        sum over ``n`` of ``N`` data terms scaled by ``N / n``.
    x0, step_size, n_steps
        As :func:`langevin`.
    step_schedule : callable, optional
        As :func:`langevin`. Default:
        ``polynomial_decay(b=max(1, n_steps / 10), gamma=0.55)``, so the last
        step is about a quarter of the first.
    **options
        The other keywords of :func:`langevin` (``temperature``, ``burn_in``,
        ``thin``, ``generator``, ``progress``, ``keep_samples``, ``preconditioner``).

    Returns
    -------
    LangevinResult
        As :func:`langevin`.

    Raises
    ------
    ValueError
        As :func:`langevin`.

    Notes
    -----
    Source: the book's chapters on the four methods (CryoWGEN-II); Welling & Teh (2011), "Bayesian
    learning via stochastic gradient Langevin dynamics", ICML. The same loop
    as :func:`langevin`; only the default schedule differs. As the step
    decays the injected noise (``sqrt(eta)``) dominates the gradient noise
    (``eta``), so the chains approach the target without a Metropolis test.
    """
    if step_schedule is None:
        step_schedule = polynomial_decay(b=max(1.0, n_steps / 10))
    return langevin(potential, x0, step_size, n_steps, step_schedule=step_schedule, **options)


def pool_chains(mean: torch.Tensor, var: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool per-chain means and variances into one mean and variance.

    Parameters
    ----------
    mean, var : torch.Tensor
        Per-chain mean and variance ``(K, B, ...)`` (as in
        :class:`LangevinResult`), each over the same number of samples and
        divided by that number.
    dim : int
        The chain axis.

    Returns
    -------
    mean : torch.Tensor
        ``(B, ...)``: the mean of all samples of all chains.
    var : torch.Tensor
        ``(B, ...)``: their variance (divided by the total count), by the law
        of total variance ``mean_k var_k + mean_k (mean_k - mean)^2``.

    Raises
    ------
    ValueError
        If ``mean`` and ``var`` differ in shape.

    Notes
    -----
    Source: Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise
    algorithm for computing sample variances". Equals the variance of
    ``samples.flatten(0, 1)`` over its first axis.
    """
    if mean.shape != var.shape:
        raise ValueError(f"mean and var must have the same shape, got {tuple(mean.shape)} and {tuple(var.shape)}")
    m = mean.mean(dim)
    v = var.mean(dim) + (mean - m.unsqueeze(dim)).pow(2).mean(dim)
    return m, v
