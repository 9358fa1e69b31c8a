"""Scores against ground truth: FSC, RMSE, the in-wedge error, calibration (SPEC section 3).

Every Fourier quantity is computed on the ``torch.fft.rfftn`` half grid with
orthonormal transforms, the grid the missing-wedge masks of
:mod:`cryolearn.physics` live on. A real volume's full spectrum is Hermitian,
``X(-k) = conj(X(k))``, so a sum over the full grid equals a weighted sum over
the half grid: the columns ``k_x = 0`` and (for even ``W``) ``k_x = -W/2``
hold their own mirrors and count once, every other column stands for itself
and its mirror and counts twice. With these weights every sum here equals the
same sum over the full ``fftn`` grid; with orthonormal transforms Parseval
then turns Fourier-region sums into real-space norms
(``sum_k |X(k)|^2 = sum_voxels x^2``).

Fourier regions are given by a bool half-grid ``mask`` (True = in the region):
pass the measured-region mask of :func:`cryolearn.physics.missing_wedge_mask`
for the measured region, and its negation ``~mask`` for the missing wedge.
Both are symmetric under ``k -> -k``, so a region sum is a sum over a
symmetric set of full-grid coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .physics import fourier_grid
from .physics.fourier import half_grid_sum, hermitian_weights, ortho_rfftn, rfft_shape

__all__ = [
    "FSCResult",
    "FSCCrossing",
    "PosteriorSpread",
    "fourier_shell_correlation",
    "fsc_crossings",
    "psnr",
    "normalized_cross_correlation",
    "rmse",
    "relative_wedge_error",
    "calibration_from_samples",
    "calibration_gaussian",
    "posterior_spread_in_out",
]


# ---------------------------------------------------------------------------
# helpers


def _check_ndim(ndim: int) -> int:
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim (the number of spatial axes) must be 1, 2 or 3, got {ndim}")
    return ndim


def _resolve_ndim(ndim: int | None, mask: torch.Tensor | None) -> int:
    """Spatial axes: ``mask.ndim`` when a mask is given, else ``ndim`` (default 3)."""
    if mask is not None:
        if ndim is not None and ndim != mask.ndim:
            raise ValueError(f"ndim={ndim} disagrees with the {mask.ndim}-dimensional mask")
        ndim = mask.ndim
    return _check_ndim(3 if ndim is None else ndim)


def _real_pair(
    a: torch.Tensor, b: torch.Tensor, ndim: int, names: tuple[str, str] = ("a", "b")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two real tensors with ``ndim`` equal spatial axes and broadcast them together."""
    for name, t in zip(names, (a, b)):
        if t.is_complex() or not t.is_floating_point():
            raise ValueError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")
        if t.ndim < ndim:
            raise ValueError(f"{name} has {t.ndim} dims, fewer than the {ndim} spatial axes")
    if a.shape[-ndim:] != b.shape[-ndim:]:
        raise ValueError(f"spatial shapes differ: {tuple(a.shape[-ndim:])} and {tuple(b.shape[-ndim:])}")
    try:
        return torch.broadcast_tensors(a, b)
    except RuntimeError:
        raise ValueError(f"batch shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None


def _check_mask(mask: torch.Tensor, spatial: Sequence[int]) -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = in the region), got {mask.dtype}")
    half = rfft_shape(spatial)
    if tuple(mask.shape) != half:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} is not the rfftn half grid {half} of spatial shape {tuple(spatial)}"
        )


# ---------------------------------------------------------------------------
# Fourier shell correlation


@dataclass
class FSCCrossing:
    """Where an FSC curve first drops below a threshold.

    Attributes
    ----------
    threshold : float
        The FSC threshold (0.5, 0.143, ...).
    frequency : torch.Tensor
        ``(...)``: crossing frequency in ``unit`` (1/Angstrom when the voxel
        size is known, else 1/voxel), linearly interpolated between shells.
    resolution : torch.Tensor
        ``(...)``: ``1 / frequency``, in Angstrom (or voxels); ``inf`` when
        the curve starts below the threshold.
    crossed : torch.Tensor
        ``(...)`` bool: False where the curve stays at or above the threshold
        up to the last shell; ``frequency`` is then the last shell's
        frequency, a lower bound (the resolution is limited by the sampling).
    unit : str
        ``"1/Angstrom"`` or ``"1/voxel"``.
    """

    threshold: float
    frequency: torch.Tensor
    resolution: torch.Tensor
    crossed: torch.Tensor
    unit: str


@dataclass
class FSCResult:
    """Fourier shell (ring) correlation curves.

    Attributes
    ----------
    frequency : torch.Tensor
        ``(n_shells,)``: shell centres in cycles per voxel (1/voxel).
    fsc : torch.Tensor
        ``(..., n_shells)``: the correlation in each shell; ``nan`` in shells
        with no Fourier sample in the region (``n_samples == 0``), ``0`` in
        shells where either input has no power.
    n_samples : torch.Tensor
        ``(n_shells,)`` long: number of full-grid Fourier coefficients in each
        shell and region (a Hermitian pair counts as two).
    voxel_size : float or None
        Voxel size in Angstrom, if known.

    Notes
    -----
    Source: SPEC section 3.
    """

    frequency: torch.Tensor
    fsc: torch.Tensor
    n_samples: torch.Tensor
    voxel_size: float | None = None

    @property
    def unit(self) -> str:
        """``"1/Angstrom"`` when the voxel size is known, else ``"1/voxel"``."""
        return "1/Angstrom" if self.voxel_size else "1/voxel"

    @property
    def spatial_frequency(self) -> torch.Tensor:
        """``(n_shells,)``: shell centres in :attr:`unit` (``frequency / voxel_size``)."""
        return self.frequency / self.voxel_size if self.voxel_size else self.frequency

    def resolution_at(self, threshold: float) -> FSCCrossing:
        """First crossing of ``threshold``, linearly interpolated.

        Parameters
        ----------
        threshold : float
            FSC threshold, e.g. 0.5 or 0.143.

        Returns
        -------
        FSCCrossing
            Crossing frequency (1/Angstrom or 1/voxel) and resolution
            (Angstrom or voxels), shape ``fsc.shape[:-1]``.

        Raises
        ------
        ValueError
            If every shell is empty.

        Notes
        -----
        Shells without samples (``nan``) and the origin shell (which holds
        only the mean, zero for normalised volumes) are skipped. The crossing is the first
        shell ``i`` with ``fsc_i < threshold``; between it and the previous
        shell ``p`` the frequency is interpolated linearly,
        ``f = f_p + (fsc_p - t) / (fsc_p - fsc_i) (f_i - f_p)``. If the first
        shell is already below, the crossing is that shell's frequency; if no
        shell is below, it is the last shell's frequency and ``crossed`` is
        False. Source: SPEC section 3 (the 0.5 and 0.143 crossings).
        """
        valid = (self.n_samples > 0) & (self.frequency > 0)
        if not valid.any():
            raise ValueError("every FSC shell is empty (the region holds no Fourier sample)")
        f = self.spatial_frequency[valid]
        c = self.fsc[..., valid]
        t = float(threshold)
        below = c < t
        crossed = below.any(-1)
        i = below.int().argmax(-1)  # first shell below (0 if none)
        p = (i - 1).clamp(min=0)
        c_i = c.gather(-1, i.unsqueeze(-1)).squeeze(-1)
        c_p = c.gather(-1, p.unsqueeze(-1)).squeeze(-1)
        first = i == 0
        frac = (c_p - t) / torch.where(first, torch.ones_like(c_p), c_p - c_i)
        freq = torch.where(first, f[i], f[p] + frac * (f[i] - f[p]))
        freq = torch.where(crossed, freq, f[-1].expand_as(freq))
        return FSCCrossing(threshold=t, frequency=freq, resolution=1.0 / freq, crossed=crossed, unit=self.unit)


def fourier_shell_correlation(
    a: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor | None = None,
    n_shells: int | None = None,
    voxel_size: float | None = None,
    ndim: int | None = None,
) -> FSCResult:
    """Fourier shell correlation (ring correlation in 2D), batched, optionally in a Fourier region.

    ``FSC(r) = sum_{|k| in r} Re(A(k) conj B(k)) / sqrt(sum |A(k)|^2 sum |B(k)|^2)``
    over the full Fourier grid, computed on the rfftn half grid with Hermitian
    weights.

    Parameters
    ----------
    a, b : torch.Tensor
        Real volumes ``(..., D, H, W)`` (or images ``(..., D, W)`` with
        ``ndim=2``); batch shapes broadcast (e.g. samples ``(S, ..., D, H, W)``
        against one truth ``(D, H, W)``).
    mask : torch.Tensor, optional
        Bool half-grid region ``(D, H, W // 2 + 1)``: the measured-region mask
        of :func:`cryolearn.physics.missing_wedge_mask` restricts the sums to
        the measured coefficients, ``~mask`` to the missing wedge. Its
        dimensionality sets ``ndim``.
    n_shells : int, optional
        Number of shells (at least 2). Default ``N // 2 + 1`` with ``N`` the
        shortest side: shells one Fourier voxel wide up to Nyquist.
    voxel_size : float, optional
        Voxel size in Angstrom; stored so that frequencies and resolutions
        come out in 1/Angstrom and Angstrom.
    ndim : int, optional
        Number of spatial axes (1, 2 or 3); default ``mask.ndim`` or 3.

    Returns
    -------
    FSCResult
        ``frequency (n_shells,)`` in 1/voxel, ``fsc (..., n_shells)``,
        ``n_samples (n_shells,)``; :meth:`FSCResult.resolution_at` gives the
        crossings.

    Raises
    ------
    ValueError
        If the inputs are not real, their spatial shapes differ or their batch
        shapes do not broadcast, the mask is not bool or not the half grid,
        ``n_shells < 2``, the shortest side is below 2, or ``voxel_size`` is
        not positive.

    Notes
    -----
    Shell ``i`` is centred at ``f_i = i f_max / (n_shells - 1)`` cycles per
    voxel, with ``f_max = (N // 2) / N`` the highest frequency sampled along
    the shortest side (0.5 for even ``N``); a coefficient at radius ``|k|``
    joins shell ``round(|k| / width)``, and coefficients beyond the last shell
    (the corners of the box) are left out. ``|k|`` is measured in cycles per
    voxel, so non-cubic boxes are handled with isotropic shells.

    Empty shells: a shell with no coefficient in the region gives ``nan``; a
    shell with coefficients but no power in ``a`` or ``b`` gives ``0`` (an
    empty missing wedge correlates with nothing). "No power" means at most
    ``finfo(dtype).eps`` times the volume's total power, the round-off level
    of the FFTs (so that the round-off left in the wedge of ``M x`` is not
    read as a correlation). Hence the wedge-restricted FSC of an observation
    ``M x`` against ``x`` is 0 in every non-empty shell (and ``nan`` in the
    origin shell, which holds no missing coefficient).

    Source: SPEC section 3.
    """
    ndim = _resolve_ndim(ndim, mask)
    a, b = _real_pair(a, b, ndim)
    spatial = tuple(a.shape[-ndim:])
    if mask is not None:
        _check_mask(mask, spatial)
    if voxel_size is not None and not voxel_size > 0:
        raise ValueError(f"voxel_size must be positive (Angstrom), got {voxel_size}")
    n = min(spatial)
    if n < 2:
        raise ValueError(f"FSC needs every side of at least 2 voxels, got spatial shape {spatial}")
    n_shells = n // 2 + 1 if n_shells is None else int(n_shells)
    if n_shells < 2:
        raise ValueError(f"n_shells must be at least 2, got {n_shells}")
    width = (n // 2) / n / (n_shells - 1)  # cycles per voxel

    # Shell index of every half-grid coefficient (radius in float64).
    grids = fourier_grid(spatial, rfft=True, device=a.device)
    radius = torch.sqrt(sum(g**2 for g in grids))
    shell = torch.round(radius / width).long()
    inside = shell < n_shells
    weight = hermitian_weights(spatial, mask, a) * inside.to(a.dtype)
    shell = shell.clamp(max=n_shells - 1).flatten()  # (G,)

    A, B = ortho_rfftn(a, ndim), ortho_rfftn(b, ndim)

    def shell_sum(v: torch.Tensor) -> torch.Tensor:  # (..., *half) -> (..., n_shells)
        v = (v * weight).flatten(-ndim)
        return v.new_zeros(*v.shape[:-1], n_shells).index_add_(-1, shell, v)

    num = shell_sum((A * B.conj()).real)
    pa, pb = shell_sum(A.real**2 + A.imag**2), shell_sum(B.real**2 + B.imag**2)
    # Power at the FFT's round-off level (relative to the whole volume's power) counts as none.
    eps = torch.finfo(a.dtype).eps
    floor_a = eps * a.flatten(-ndim).pow(2).sum(-1, keepdim=True)
    floor_b = eps * b.flatten(-ndim).pow(2).sum(-1, keepdim=True)
    empty = (pa <= floor_a) | (pb <= floor_b)
    fsc = torch.where(empty, torch.zeros_like(num), num / torch.sqrt(torch.where(empty, torch.ones_like(pa), pa * pb)))
    n_samples = weight.flatten().new_zeros(n_shells).index_add_(0, shell, weight.flatten()).round().long()
    fsc = torch.where(n_samples > 0, fsc, torch.full_like(fsc, math.nan))
    frequency = torch.arange(n_shells, device=a.device, dtype=a.dtype) * width
    return FSCResult(frequency=frequency, fsc=fsc, n_samples=n_samples, voxel_size=voxel_size)


def fsc_crossings(result: FSCResult, thresholds: Sequence[float] = (0.5, 0.143)) -> dict[float, FSCCrossing]:
    """The FSC crossings at several thresholds.

    Parameters
    ----------
    result : FSCResult
        From :func:`fourier_shell_correlation`.
    thresholds : sequence of float
        Default ``(0.5, 0.143)``: the half-bit-like 0.5 criterion against
        ground truth and the gold-standard 0.143 one.

    Returns
    -------
    dict of float to FSCCrossing
        ``{threshold: result.resolution_at(threshold)}``.

    Notes
    -----
    Source: SPEC section 3.
    """
    return {float(t): result.resolution_at(t) for t in thresholds}


# ---------------------------------------------------------------------------
# real-space scores


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
    Source: SPEC section 3.
    """
    ndim = _check_ndim(ndim)
    x_hat, x = _real_pair(x_hat, x, ndim, ("x_hat", "x"))
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
        If the inputs are not real or their shapes do not match.

    Notes
    -----
    Source: SPEC section 3 (the correlation with the truth of section 6).
    """
    ndim = _check_ndim(ndim)
    a, b = _real_pair(a, b, ndim)
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
    Source: SPEC section 3 (RMSE inside/outside the wedge).
    """
    ndim = _resolve_ndim(ndim, mask)
    x_hat, x = _real_pair(x_hat, x, ndim, ("x_hat", "x"))
    d = x_hat - x
    if mask is None:
        return d.flatten(-ndim).pow(2).mean(-1).sqrt()
    spatial = tuple(d.shape[-ndim:])
    _check_mask(mask, spatial)
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
        ratio (a 0-dim tensor), the figure SPEC section 6 reports for a
        held-out set; it weights volumes by their in-wedge power instead of
        equally.

    Returns
    -------
    torch.Tensor
        ``(...)`` or ``()``, dimensionless.

    Raises
    ------
    ValueError
        If the inputs are not real, their shapes do not match, or the mask is
        not a bool half-grid mask.

    Notes
    -----
    Sums over the full grid (Hermitian weights on the half grid), orthonormal
    FFT. Source: SPEC section 6.
    """
    ndim = mask.ndim
    x_hat, x = _real_pair(x_hat, x, ndim, ("x_hat", "x"))
    spatial = tuple(x.shape[-ndim:])
    _check_mask(mask, spatial)
    weight = hermitian_weights(spatial, ~mask, x)
    D, X = ortho_rfftn(x_hat - x, ndim), ortho_rfftn(x, ndim)
    num = half_grid_sum(D.real**2 + D.imag**2, weight)
    den = half_grid_sum(X.real**2 + X.imag**2, weight)
    if pooled:
        return num.sum() / den.sum()
    return num / den


# ---------------------------------------------------------------------------
# calibration of a family of restorations


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
    ``level (S - 1) / (S + 1)``). Source: SPEC section 3 (calibration).
    """
    ndim = _check_ndim(ndim)
    levels = _check_levels(levels)
    if samples.ndim < ndim + 1 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, ..., spatial) with S >= 2, got shape {tuple(samples.shape)}")
    s, x = _real_pair(samples, x, ndim, ("samples", "x"))
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
    levels : sequence of float
        Interval probabilities in (0, 1); default ``(0.5, 0.9)``.
    ndim : int
        Number of spatial axes (1, 2 or 3).

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
    Source: SPEC sections 3 and 8 (coverage of the Gaussian posterior).
    """
    ndim = _check_ndim(ndim)
    levels = _check_levels(levels)
    mean, x = _real_pair(mean, x, ndim, ("mean", "x"))
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
        """``missing / measured``; SPEC section 2 predicts ``sqrt((1/sigma^2 + beta) / beta)`` with ``w = 0``."""
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
    Gaussian posterior of SPEC section 2 (``w = 0``) has ``std(k) =
    sqrt(gamma / beta)`` in the wedge and ``sqrt(gamma / (1/sigma^2 + beta))``
    in the measured region. Source: SPEC section 3.
    """
    ndim = mask.ndim
    if samples.is_complex() or not samples.is_floating_point():
        raise ValueError(f"samples must be a real floating-point tensor, got dtype {samples.dtype}")
    if samples.ndim < ndim + 1 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, ..., spatial) with S >= 2, got shape {tuple(samples.shape)}")
    spatial = tuple(samples.shape[-ndim:])
    _check_mask(mask, spatial)
    X = ortho_rfftn(samples, ndim)
    dev = X - X.mean(0)
    std = torch.sqrt((dev.real**2 + dev.imag**2).sum(0) / (samples.shape[0] - 1))  # (..., *half)

    def region_mean(region: torch.Tensor) -> torch.Tensor:
        w = hermitian_weights(spatial, region, std)
        return half_grid_sum(std, w) / w.sum()

    return PosteriorSpread(missing=region_mean(~mask), measured=region_mean(mask))
