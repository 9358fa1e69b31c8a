"""Calibration of a family of restorations: coverage of the truth, posterior spread in and out of the wedge.

:func:`calibration_from_samples` and :func:`calibration_gaussian` give the
fraction of voxels whose true value lies in central posterior intervals (ideal:
the interval's probability); :func:`posterior_spread_in_out` compares the
spread of posterior samples inside the missing wedge with the measured region,
in Fourier space (Hermitian weights of :mod:`cryolearn.physics.fourier`).
:func:`std_error_bins` asks whether a std map says *where* the error is
(Levi et al. 2019): voxels sorted by predicted std into bins, the root mean
variance against the RMSE in each, the expected normalised calibration error
(ENCE) and the ratio of the RMSE of the highest-std bin to the lowest's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..physics.fourier import half_grid_sum, hermitian_weights, ortho_rfftn
from .checks import check_mask, check_ndim, real_pair

__all__ = [
    "calibration_from_samples",
    "calibration_gaussian",
    "PosteriorSpread",
    "posterior_spread_in_out",
    "StdErrorBins",
    "std_error_bins",
]


def _check_levels(levels: Sequence[float]) -> list[float]:
    levels = [float(l) for l in levels]
    if not levels or not all(0.0 < l < 1.0 for l in levels):
        raise ValueError(f"levels must be probabilities in (0, 1), got {levels}")
    return levels


def calibration_from_samples(
    samples: torch.Tensor, x: torch.Tensor, levels: Sequence[float] = (0.5, 0.9), ndim: int = 3
) -> torch.Tensor:
    """Coverage of the truth by central posterior intervals estimated from samples.

    Parameters
    ----------
    samples : torch.Tensor
        Posterior samples ``(S, ..., D, H, W)``, ``S >= 2``.
    x : torch.Tensor
        Ground truth ``(..., D, H, W)``, broadcast against ``samples[0]``.
    levels : sequence of float
        Interval probabilities in (0, 1); default ``(0.5, 0.9)``.
    ndim : int
        Number of spatial axes (1, 2 or 3).

    Returns
    -------
    torch.Tensor
        ``(..., len(levels))``: per volume, the fraction of voxels whose true
        value lies in the central interval of each level (ideal: the level).

    Raises
    ------
    ValueError
        If fewer than 2 samples, bad levels, or mismatched shapes.

    Notes
    -----
    Per voxel, the interval runs between the empirical quantiles
    ``(1 - level) / 2`` and ``(1 + level) / 2`` of the samples, linearly
    interpolated between order statistics (numpy's default ``"linear"``
    method), bounds included. With few samples the empirical interval is
    slightly narrower than the true one (coverage about
    ``level (S - 1) / (S + 1)``). Source: the book's appendix on notation and conventions (metrics) (calibration).
    """
    ndim = check_ndim(ndim)
    levels = _check_levels(levels)
    if samples.ndim < ndim + 1 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, ..., spatial) with S >= 2, got shape {tuple(samples.shape)}")
    s, x = real_pair(samples, x, ndim, ("samples", "x"))
    n = s.shape[0]
    srt = s.sort(dim=0).values  # (S, ..., D, H, W)

    def quantile(q: float) -> torch.Tensor:
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return srt[lo] + (pos - lo) * (srt[hi] - srt[lo])

    cover = []
    for l in levels:
        inside = (x[0] >= quantile((1 - l) / 2)) & (x[0] <= quantile((1 + l) / 2))
        cover.append(inside.flatten(-ndim).to(s.dtype).mean(-1))
    return torch.stack(cover, dim=-1)


def calibration_gaussian(
    mean: torch.Tensor,
    std: torch.Tensor | float,
    x: torch.Tensor,
    levels: Sequence[float] = (0.5, 0.9),
    ndim: int = 3,
) -> torch.Tensor:
    """Coverage of the truth by central Gaussian intervals ``mean +- z std``.

    Parameters
    ----------
    mean : torch.Tensor
        Posterior mean ``(..., D, H, W)``.
    std : torch.Tensor or float
        Voxel-wise posterior standard deviation, broadcastable to ``mean``
        (same unit as the voxels), non-negative.
    x : torch.Tensor
        Ground truth ``(..., D, H, W)``.
    levels, ndim
        As in :func:`calibration_from_samples`.

    Returns
    -------
    torch.Tensor
        ``(..., len(levels))``: per volume, the fraction of voxels with
        ``|x - mean| <= z_level std``, ``z_level = sqrt(2) erfinv(level)``
        (0.674 for 50%, 1.645 for 90%).

    Raises
    ------
    ValueError
        If ``std`` is negative somewhere, bad levels, or mismatched shapes.

    Notes
    -----
    Source: the book's appendix on notation and conventions (metrics) and the book's CryoWGEN-II chapter (beta from the rotation proxy) (coverage of the Gaussian posterior).
    """
    ndim = check_ndim(ndim)
    levels = _check_levels(levels)
    mean, x = real_pair(mean, x, ndim, ("mean", "x"))
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    if (std < 0).any():
        raise ValueError("std must be non-negative")
    err = (x - mean).abs()
    z = (math.sqrt(2.0) * torch.special.erfinv(torch.tensor(levels, dtype=torch.float64))).tolist()
    cover = [(err <= zi * std).flatten(-ndim).to(mean.dtype).mean(-1) for zi in z]
    return torch.stack(cover, dim=-1)


@dataclass
class PosteriorSpread:
    """Mean per-coefficient posterior standard deviation in two Fourier regions.

    Attributes
    ----------
    missing : torch.Tensor
        ``(...)``: inside the missing wedge (voxel-value unit).
    measured : torch.Tensor
        ``(...)``: in the measured region.
    """

    missing: torch.Tensor
    measured: torch.Tensor

    @property
    def ratio(self) -> torch.Tensor:
        """``missing / measured``; the book's chapters on the four methods predicts ``sqrt((1/sigma^2 + beta) / beta)`` with ``w = 0``."""
        return self.missing / self.measured


def posterior_spread_in_out(samples: torch.Tensor, mask: torch.Tensor) -> PosteriorSpread:
    """Spread of posterior samples inside vs outside the missing wedge, in Fourier space.

    Parameters
    ----------
    samples : torch.Tensor
        Posterior samples ``(S, ..., D, H, W)``, ``S >= 2``.
    mask : torch.Tensor
        Bool half-grid measured-region mask from
        :func:`cryolearn.physics.missing_wedge_mask`.

    Returns
    -------
    PosteriorSpread
        ``missing`` and ``measured``, each ``(...)``.

    Raises
    ------
    ValueError
        If fewer than 2 samples, a non-real input, or a mask that is not the
        bool half grid of the samples.

    Notes
    -----
    Per coefficient, ``std(k) = sqrt(sum_s |X_s(k) - mean_s X(k)|^2 / (S - 1))``
    of the orthonormal rfftn of the samples; the result is its mean over the
    full-grid coefficients of each region (Hermitian weights). This is the
    complex ("voxel-equivalent") standard deviation: white noise of voxel
    standard deviation ``s`` has ``std(k) = s`` at every ``k``, and the
    Gaussian posterior of the book's chapters on the four methods (``w = 0``) has ``std(k) =
    sqrt(gamma / beta)`` in the wedge and ``sqrt(gamma / (1/sigma^2 + beta))``
    in the measured region. Source: the book's appendix on notation and conventions (metrics).
    """
    ndim = mask.ndim
    if samples.is_complex() or not samples.is_floating_point():
        raise ValueError(f"samples must be a real floating-point tensor, got dtype {samples.dtype}")
    if samples.ndim < ndim + 1 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, ..., spatial) with S >= 2, got shape {tuple(samples.shape)}")
    spatial = tuple(samples.shape[-ndim:])
    check_mask(mask, spatial)
    X = ortho_rfftn(samples, ndim)
    dev = X - X.mean(0)
    std = torch.sqrt((dev.real**2 + dev.imag**2).sum(0) / (samples.shape[0] - 1))  # (..., *half)

    def region_mean(region: torch.Tensor) -> torch.Tensor:
        w = hermitian_weights(spatial, region, std)
        return half_grid_sum(std, w) / w.sum()

    return PosteriorSpread(missing=region_mean(~mask), measured=region_mean(mask))


@dataclass
class StdErrorBins:
    """Predicted std against actual error, voxels binned by predicted std (Levi et al. 2019).

    Attributes
    ----------
    rmv : torch.Tensor
        ``(n_bins,)`` root mean variance ``sqrt(mean std^2)`` per bin, lowest std first.
    rmse : torch.Tensor
        ``(n_bins,)`` root mean squared error of the mean against the truth per bin.
    ence : float
        Expected normalised calibration error ``mean_bins |RMV - RMSE| / RMV``
        (0 is perfect).
    decile_ratio : float
        ``RMSE(highest-std bin) / RMSE(lowest-std bin)``: 1 when the map does
        not rank voxels by error at all, larger when it does.
    error_std_correlation : float
        Pearson correlation between the std map and the absolute error, voxel by voxel.
    """

    rmv: torch.Tensor
    rmse: torch.Tensor
    ence: float
    decile_ratio: float
    error_std_correlation: float


def std_error_bins(mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor, n_bins: int = 10) -> StdErrorBins:
    """Does a std map say where the error is? Voxels binned by predicted std (Levi et al. 2019).

    Parameters
    ----------
    mean : torch.Tensor
        ``(..., D, H, W)`` posterior means (any shape: voxels are pooled).
    std : torch.Tensor
        Predicted voxel-wise standard deviations, same shape.
    truth : torch.Tensor
        Ground truth, same shape.
    n_bins : int
        Number of equally populated bins (10: deciles).

    Returns
    -------
    StdErrorBins

    Raises
    ------
    ValueError
        If the shapes differ, a value is not finite, a std is negative, or
        there are fewer voxels than bins.

    Notes
    -----
    Source: D. Levi, L. Gispan, N. Giladi and E. Fetaya, "Evaluating and
    calibrating uncertainty prediction in regression tasks", arXiv:1905.11659
    (2019); book appendix on notation and conventions (metrics). Global
    coverage alone cannot tell a flat std map from an informative one; the
    decile ratio can.
    """
    if not (mean.shape == std.shape == truth.shape):
        raise ValueError(f"mean, std and truth must have one shape, got {tuple(mean.shape)}, {tuple(std.shape)}, "
                         f"{tuple(truth.shape)}")
    if not all(torch.isfinite(t).all() for t in (mean, std, truth)):
        raise ValueError("mean, std and truth must be finite")
    if (std < 0).any():
        raise ValueError("std must be non-negative")
    s, e = std.flatten().double(), (mean - truth).flatten().double()
    if s.numel() < n_bins or n_bins < 2:
        raise ValueError(f"need at least 2 bins and as many voxels as bins, got {n_bins} bins, {s.numel()} voxels")
    order = torch.argsort(s)
    bins = torch.arange(s.numel(), device=s.device) * n_bins // s.numel()  # equally populated, lowest std first
    var_sum = torch.zeros(n_bins, dtype=s.dtype, device=s.device).index_add_(0, bins, s[order].pow(2))
    err_sum = torch.zeros(n_bins, dtype=s.dtype, device=s.device).index_add_(0, bins, e[order].pow(2))
    count = torch.zeros(n_bins, dtype=s.dtype, device=s.device).index_add_(0, bins, torch.ones_like(s))
    rmv, rmse = (var_sum / count).sqrt(), (err_sum / count).sqrt()
    ence = ((rmv - rmse).abs() / rmv.clamp_min(torch.finfo(s.dtype).tiny)).mean().item()
    a = e.abs()
    corr = torch.corrcoef(torch.stack([s, a]))[0, 1].item() if s.std() > 0 and a.std() > 0 else 0.0
    return StdErrorBins(rmv=rmv, rmse=rmse, ence=ence, decile_ratio=(rmse[-1] / rmse[0].clamp_min(1e-300)).item(),
                        error_std_correlation=corr)
