"""Toy energies and their Boltzmann densities, for testing and teaching the samplers.

Each energy maps states ``(K, B, ...)`` to ``(K, B)`` by summing independent
per-coordinate terms over the trailing axes, so it can be passed straight to
:func:`cryolearn.sampling.langevin` (bind the parameters with a lambda or
:func:`functools.partial`). A state with no trailing axes is a scalar.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["double_well", "gaussian_energy", "boltzmann_density"]


def _sum_event(u: torch.Tensor) -> torch.Tensor:
    return u.flatten(2).sum(-1) if u.ndim > 2 else u


def double_well(x: torch.Tensor, a: float = 1.0, tilt: float = 0.0) -> torch.Tensor:
    """Tilted double well ``U(x) = a (x^2 - 1)^2 + tilt * x`` per coordinate.

    Parameters
    ----------
    x : torch.Tensor
        States ``(K, B, ...)`` (dimensionless).
    a : float
        Barrier height: ``U(0) - U(+-1) = a`` without tilt.
    tilt : float
        Linear term; ``tilt > 0`` deepens the well at ``x = -1``.

    Returns
    -------
    torch.Tensor
        ``(K, B)``: the sum over the trailing axes.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions.

    Notes
    -----
    Source: the toy of the CryoWGEN-II chapter; the classic bistable
    potential of Kramers' escape problem.
    """
    if x.ndim < 2:
        raise ValueError(f"x must be (K, B, ...), got shape {tuple(x.shape)}")
    return _sum_event(a * (x.pow(2) - 1).pow(2) + tilt * x)


def gaussian_energy(x: torch.Tensor, mean: torch.Tensor | float = 0.0, var: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Diagonal Gaussian energy ``U(x) = sum_i (x_i - mean_i)^2 / (2 var_i)``.

    Parameters
    ----------
    x : torch.Tensor
        States ``(K, B, ...)``.
    mean, var : torch.Tensor or float
        Broadcastable to ``x`` (e.g. ``(B, ...)`` for one target per
        observation); ``var > 0``.

    Returns
    -------
    torch.Tensor
        ``(K, B)``; ``exp(-U / T)`` is ``N(mean, T var)``.

    Raises
    ------
    ValueError
        If ``x`` has fewer than 2 dimensions.
    RuntimeError
        If ``mean`` or ``var`` does not broadcast to ``x`` (from torch).

    Notes
    -----
    Source: the book's chapters on the four methods (with ``w = 0`` the CryoWGEN posterior is this,
    diagonal in Fourier space).
    """
    if x.ndim < 2:
        raise ValueError(f"x must be (K, B, ...), got shape {tuple(x.shape)}")
    return _sum_event((x - mean).pow(2) / (2 * torch.as_tensor(var, dtype=x.dtype, device=x.device)))


def boltzmann_density(
    potential: Callable[[torch.Tensor], torch.Tensor], grid: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Normalised Boltzmann density ``exp(-U / T) / Z`` of a scalar state on a grid.

    Parameters
    ----------
    potential : callable
        ``U`` mapping ``(K, B)`` scalar states to ``(K, B)`` energies; it is
        evaluated on the grid as one batch ``(1, G)``.
    grid : torch.Tensor
        ``(G,)`` strictly increasing points, ``G >= 2``, covering the mass.
    temperature : float
        ``T > 0``.

    Returns
    -------
    torch.Tensor
        ``(G,)`` density values; their trapezoidal integral over ``grid`` is 1.

    Raises
    ------
    ValueError
        If ``grid`` is not 1-D, strictly increasing with at least 2 points, or
        ``temperature`` is not positive.

    Notes
    -----
    ``Z`` is computed by the trapezoidal rule after subtracting ``min U``
    (no overflow). Source: the book's chapters on the four methods (``q proportional to exp(-U / gamma)``).
    """
    if grid.ndim != 1 or grid.numel() < 2 or not bool((grid.diff() > 0).all()):
        raise ValueError("grid must be a 1-D strictly increasing tensor of at least 2 points")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    u = potential(grid.unsqueeze(0)).squeeze(0)  # (G,)
    p = torch.exp(-(u - u.min()) / temperature)
    return p / torch.trapezoid(p, grid)
