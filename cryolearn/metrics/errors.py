"""Per-volume errors against ground truth: PSNR, correlation, RMSE by Fourier region, the in-wedge error.

:func:`rmse` splits the voxel error into its measured-region and missing-wedge
parts (Parseval with the Hermitian weights of :mod:`cryolearn.physics.fourier`);
:func:`relative_wedge_error` is the number that says whether a method restores
the wedge (1 for the observation itself, 0 for the truth).
"""

from __future__ import annotations

import math

import torch

from ..physics.fourier import half_grid_sum, hermitian_weights, ortho_rfftn
from .checks import check_mask, check_ndim, real_pair, resolve_ndim

__all__ = ["psnr", "normalized_cross_correlation", "rmse", "relative_wedge_error", "pointwise_square_baseline"]


def psnr(
    x_hat: torch.Tensor, x: torch.Tensor, data_range: float | torch.Tensor | None = None, ndim: int = 3
) -> torch.Tensor:
    """Peak signal-to-noise ratio per volume, in dB.

    ``PSNR = 10 log10(data_range^2 / mean((x_hat - x)^2))``.

    Parameters
    ----------
    x_hat, x : torch.Tensor
        Estimate and ground truth ``(..., D, H, W)``; batch shapes broadcast.
    data_range : float or torch.Tensor, optional
        Peak-to-peak range of the signal (same unit as the voxels); a tensor
        of the batch shape gives one per volume. Default: ``max(x) - min(x)``
        of each ground-truth volume.
    ndim : int
        Number of spatial axes (1, 2 or 3).

    Returns
    -------
    torch.Tensor
        ``(...)`` in dB; ``inf`` where ``x_hat == x``.

    Raises
    ------
    ValueError
        If the inputs are not real or their shapes do not match.

    Notes
    -----
    Source: the book's appendix on notation and conventions (metrics).
    """
    ndim = check_ndim(ndim)
    x_hat, x = real_pair(x_hat, x, ndim, ("x_hat", "x"))
    mse = (x_hat - x).flatten(-ndim).pow(2).mean(-1)
    if data_range is None:
        flat = x.flatten(-ndim)
        data_range = flat.amax(-1) - flat.amin(-1)
    data_range = torch.as_tensor(data_range, dtype=mse.dtype, device=mse.device)
    return 10.0 * torch.log10(data_range**2 / mse)


def normalized_cross_correlation(a: torch.Tensor, b: torch.Tensor, ndim: int = 3) -> torch.Tensor:
    """Pearson correlation of two volumes over their voxels, batched.

    Parameters
    ----------
    a, b : torch.Tensor
        ``(..., D, H, W)``; batch shapes broadcast.
    ndim : int
        Number of spatial axes (1, 2 or 3).

    Returns
    -------
    torch.Tensor
        ``(...)`` in ``[-1, 1]``; ``nan`` where a volume is constant.

    Raises
    ------
    ValueError
        As :func:`psnr`.

    Notes
    -----
    Source: the book's appendix on notation and conventions (metrics) (the correlation with the truth of the reference set-up).
    """
    ndim = check_ndim(ndim)
    a, b = real_pair(a, b, ndim)
    a = a.flatten(-ndim)
    b = b.flatten(-ndim)
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / torch.sqrt(a.pow(2).sum(-1) * b.pow(2).sum(-1))


def rmse(
    x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, ndim: int | None = None
) -> torch.Tensor:
    """Voxel root-mean-square error, optionally of the part of the error in a Fourier region.

    Parameters
    ----------
    x_hat, x : torch.Tensor
        Estimate and ground truth ``(..., D, H, W)``; batch shapes broadcast.
    mask : torch.Tensor, optional
        Bool half-grid region (``mask`` for the measured region, ``~mask``
        for the missing wedge). Sets ``ndim``.
    ndim : int, optional
        Number of spatial axes (1, 2 or 3); default ``mask.ndim`` or 3.

    Returns
    -------
    torch.Tensor
        ``(...)``, in the unit of the voxel values.

    Raises
    ------
    ValueError
        If the inputs are not real, their shapes do not match, or the mask is
        not a bool half-grid mask.

    Notes
    -----
    With a region ``K``: ``sqrt(sum_{k in K} |F(x_hat - x)(k)|^2 / N)`` over the
    full grid (Hermitian weights on the half grid), ``N`` the number of
    voxels. By Parseval (orthonormal FFT) this is the real-space RMSE of the
    error projected on the region, e.g. ``rmse(apply_missing_wedge(x_hat - x,
    mask))`` for the measured region, and the squared RMSEs of the measured
    region and the wedge add up to the squared plain RMSE.
    Source: the book's appendix on notation and conventions (metrics) (RMSE inside/outside the wedge).
    """
    ndim = resolve_ndim(ndim, mask)
    x_hat, x = real_pair(x_hat, x, ndim, ("x_hat", "x"))
    d = x_hat - x
    if mask is None:
        return d.flatten(-ndim).pow(2).mean(-1).sqrt()
    spatial = tuple(d.shape[-ndim:])
    check_mask(mask, spatial)
    D = ortho_rfftn(d, ndim)
    power = half_grid_sum(D.real**2 + D.imag**2, hermitian_weights(spatial, mask, d))
    return torch.sqrt(power / math.prod(spatial))


def relative_wedge_error(
    x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, pooled: bool = False
) -> torch.Tensor:
    """Relative error inside the missing wedge, ``sum_wedge |F(x_hat) - F(x)|^2 / sum_wedge |F(x)|^2``.

    The number that says whether a method restores the wedge: an observation
    (nothing in the wedge) scores exactly 1, the truth 0.

    Parameters
    ----------
    x_hat, x : torch.Tensor
        Estimate and ground truth ``(..., D, H, W)``; batch shapes broadcast.
    mask : torch.Tensor
        Bool half-grid measured-region mask from
        :func:`cryolearn.physics.missing_wedge_mask`; the sums run over its
        complement (the missing coefficients).
    pooled : bool
        False (default): one ratio per volume, shape ``(...)``. True: sum
        numerator and denominator over the whole batch first and return one
        ratio (a 0-dim tensor), the figure the reference set-up of the book's CryoGEN-II chapter reports for a
        held-out set; it weights volumes by their in-wedge power instead of
        equally.

    Returns
    -------
    torch.Tensor
        ``(...)`` or ``()``, dimensionless.

    Raises
    ------
    ValueError
        As :func:`rmse` (non-real inputs, mismatched shapes, a mask that is
        not the bool half grid).

    Notes
    -----
    Sums over the full grid (Hermitian weights on the half grid), orthonormal
    FFT. Source: the reference set-up of the book's CryoGEN-II chapter.
    """
    ndim = mask.ndim
    x_hat, x = real_pair(x_hat, x, ndim, ("x_hat", "x"))
    spatial = tuple(x.shape[-ndim:])
    check_mask(mask, spatial)
    weight = hermitian_weights(spatial, ~mask, x)
    D, X = ortho_rfftn(x_hat - x, ndim), ortho_rfftn(x, ndim)
    num = half_grid_sum(D.real**2 + D.imag**2, weight)
    den = half_grid_sum(X.real**2 + X.imag**2, weight)
    if pooled:
        return num.sum() / den.sum()
    return num / den


def pointwise_square_baseline(y: torch.Tensor, x: torch.Tensor, ndim: int = 3) -> torch.Tensor:
    """The trivial baseline a restoration must beat: the squared observation, one scale fitted on the truth.

    Any pointwise nonlinearity mixes Fourier frequencies, so it puts power into
    the missing wedge; for positive densities that power is correlated with
    the truth. A method that does not beat this inside the wedge has not
    learned anything a square could not do.

    Parameters
    ----------
    y : torch.Tensor
        ``(..., D, H, W)`` observations (normalised as the methods see them).
    x : torch.Tensor
        ``(..., D, H, W)`` ground truth in the same units (used only to fit
        one scale ``a`` over all volumes, by least squares).
    ndim : int
        Number of spatial axes (3, or 2 for images).

    Returns
    -------
    torch.Tensor
        ``a * (y^2 - mean(y^2))`` per volume, the shape of ``y``.

    Raises
    ------
    ValueError
        If the shapes differ.

    Notes
    -----
    Source: book chapter "Side by side" (the baselines next to the methods).
    The truth enters only through one number, the scale, which favours the
    baseline.
    """
    if y.shape != x.shape:
        raise ValueError(f"y and x must have one shape, got {tuple(y.shape)} and {tuple(x.shape)}")
    dims = tuple(range(-ndim, 0))
    sq = y.pow(2) - y.pow(2).mean(dims, keepdim=True)
    a = (sq * x).sum() / sq.pow(2).sum().clamp_min(torch.finfo(sq.dtype).tiny)
    return a * sq
