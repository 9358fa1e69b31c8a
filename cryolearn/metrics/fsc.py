"""Fourier shell correlation: curves, batched and restricted to Fourier regions, and their crossings.

:func:`fourier_shell_correlation` computes the FSC (the ring correlation in
2D) on the ``rfftn`` half grid with the Hermitian weights of
:mod:`cryolearn.physics.fourier`, optionally inside a Fourier region (the
measured region of a missing-wedge mask or its complement, the wedge);
:class:`FSCResult` reads resolutions off a curve (:meth:`FSCResult.resolution_at`,
:func:`fsc_crossings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..physics.fourier import fourier_grid, hermitian_weights, ortho_rfftn
from .checks import check_mask, real_pair, resolve_ndim

__all__ = ["FSCResult", "FSCCrossing", "fourier_shell_correlation", "fsc_crossings"]


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
    Source: the book's appendix on notation and conventions (metrics).
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
        False. Source: the book's appendix on notation and conventions (metrics) (the 0.5 and 0.143 crossings).
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

    Source: the book's appendix on notation and conventions (metrics).
    """
    ndim = resolve_ndim(ndim, mask)
    a, b = real_pair(a, b, ndim)
    spatial = tuple(a.shape[-ndim:])
    if mask is not None:
        check_mask(mask, spatial)
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
    Source: the book's appendix on notation and conventions (metrics).
    """
    return {float(t): result.resolution_at(t) for t in thresholds}
