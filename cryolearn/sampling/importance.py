"""Self-normalised importance reweighting and effective sample size (the book's chapters on the four methods, CryoWGEN-I).

Candidates ``x_k`` drawn from a reference get log-weights ``l_k`` (target over
reference, up to a constant); the weights ``softmax(l)`` turn them into a
weighted sample of the target. Everything is done in the log domain, so the
unknown constants and huge log-weights cause no overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ImportanceResult", "importance_reweight", "effective_sample_size"]


@dataclass
class ImportanceResult:
    """Output of :func:`importance_reweight`.

    The shapes below are for the default ``dim=0``; with another ``dim`` the
    sample axis ``K`` of ``weights`` is there, and the other fields lack it.

    Attributes
    ----------
    weights : torch.Tensor
        Normalised weights ``(K, B)``, summing to 1 over ``K``.
    mean : torch.Tensor or None
        Weighted mean ``sum_k w_k x_k``, ``(B, ...)``; None without samples.
    var : torch.Tensor or None
        Weighted variance ``sum_k w_k (x_k - mean)^2``, ``(B, ...)``; None
        without samples.
    ess : torch.Tensor
        Effective sample size ``1 / sum_k w_k^2``, ``(B,)``, in ``[1, K]``.
    """

    weights: torch.Tensor
    mean: torch.Tensor | None
    var: torch.Tensor | None
    ess: torch.Tensor


def _check_log_weights(log_weights: torch.Tensor, dim: int) -> int:
    if log_weights.ndim == 0 or not log_weights.is_floating_point():
        raise ValueError(f"log_weights must be a floating-point tensor with a sample axis, got {log_weights!r}")
    if not -log_weights.ndim <= dim < log_weights.ndim:
        raise ValueError(f"dim={dim} out of range for log_weights of shape {tuple(log_weights.shape)}")
    if bool(torch.isnan(log_weights).any()) or bool((log_weights == float("inf")).any()):
        raise ValueError("log_weights must not contain NaN or +inf")
    if bool((log_weights == float("-inf")).all(dim).any()):
        raise ValueError("every log-weight of an observation is -inf: no sample has positive weight")
    return dim % log_weights.ndim


def effective_sample_size(
    weights: torch.Tensor | None = None, log_weights: torch.Tensor | None = None, dim: int = 0
) -> torch.Tensor:
    """Kish's effective sample size ``(sum_k w_k)^2 / sum_k w_k^2``.

    Parameters
    ----------
    weights : torch.Tensor, optional
        Non-negative weights ``(K, B)`` (need not be normalised).
    log_weights : torch.Tensor, optional
        Or their logarithms (``-inf`` for zero weight). Give exactly one.
    dim : int
        The sample axis ``K``.

    Returns
    -------
    torch.Tensor
        The ESS with ``dim`` removed, e.g. ``(B,)``; between 1 (one weight
        carries everything) and ``K`` (equal weights).

    Raises
    ------
    ValueError
        If not exactly one of ``weights`` and ``log_weights`` is given, if
        ``weights`` has a negative or non-finite entry, if ``log_weights``
        has NaN or ``+inf``, or if all weights of an observation are zero.

    Notes
    -----
    Source: the book's chapters on the four methods (CryoWGEN-I); Kish (1965), "Survey Sampling".
    Computed in the log domain as ``exp(2 logsumexp(l) - logsumexp(2 l))``.
    """
    if (weights is None) == (log_weights is None):
        raise ValueError("give exactly one of weights and log_weights")
    if weights is not None:
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError("weights must be finite and non-negative")
        log_weights = weights.log()
    dim = _check_log_weights(log_weights, dim)
    return torch.exp(2 * torch.logsumexp(log_weights, dim) - torch.logsumexp(2 * log_weights, dim))


def importance_reweight(
    log_weights: torch.Tensor, samples: torch.Tensor | None = None, dim: int = 0
) -> ImportanceResult:
    """Self-normalised importance weights, weighted mean, variance and ESS.

    Parameters
    ----------
    log_weights : torch.Tensor
        Unnormalised log-weights ``(K, B)`` (any shape; ``dim`` is the sample
        axis), ``log p(x_k) - log q(x_k)`` up to a constant per observation;
        ``-inf`` marks a zero weight.
    samples : torch.Tensor, optional
        Candidates ``(K, B, ...)``: their leading axes equal
        ``log_weights.shape``.
    dim : int
        The sample axis ``K`` of ``log_weights`` (and of ``samples``).

    Returns
    -------
    ImportanceResult
        ``weights = softmax(log_weights, dim)``; ``mean``, ``var`` over the
        sample axis (None without ``samples``); ``ess``.

    Raises
    ------
    ValueError
        If ``log_weights`` has NaN or ``+inf``, if all log-weights of an
        observation are ``-inf``, or if the leading axes of ``samples`` do
        not match ``log_weights``.

    Notes
    -----
    Source: the book's chapters on the four methods (CryoWGEN-I): with candidates from
    ``N(x_bar, (gamma / beta) I)`` and
    ``l_k = -[||y - M x_k||^2 / (2 sigma^2) - w(x_k)] / gamma`` this targets the
    Boltzmann posterior ``q_gamma``. The estimates are consistent but biased
    for finite ``K``; the variance is the weighted second central moment
    (no small-sample correction). The ESS collapses as the dimension grows.
    """
    dim = _check_log_weights(log_weights, dim)
    w = torch.softmax(log_weights, dim)
    ess = 1 / w.pow(2).sum(dim)
    if samples is None:
        return ImportanceResult(weights=w, mean=None, var=None, ess=ess)
    if samples.shape[: log_weights.ndim] != log_weights.shape:
        raise ValueError(
            f"samples {tuple(samples.shape)} must start with the shape of log_weights {tuple(log_weights.shape)}"
        )
    wx = w.view(*w.shape, *[1] * (samples.ndim - w.ndim))
    mean = (wx * samples).sum(dim)
    var = (wx * (samples - mean.unsqueeze(dim)).pow(2)).sum(dim)
    return ImportanceResult(weights=w, mean=mean, var=var, ess=ess)
