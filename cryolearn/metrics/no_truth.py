"""Scores without ground truth, for real data: wedge fill and a held-out rotation test.

On a real tomogram there is no clean volume to compare with. Two questions
can still be answered from the data alone:

- Did the restoration put anything into the missing wedge, and did it keep
  what was measured? :func:`wedge_power_ratio` gives, per Fourier shell, the
  mean power inside the missing wedge over the mean power in the measured
  region of the same shell (about 1 for an isotropic specimen, small for a raw
  tomogram); the FSC with the input over the measured region
  (:func:`cryolearn.metrics.fourier_shell_correlation` with the mask) says
  whether the measured data were kept.
- Is what it puts there right? :func:`rotation_validation_error` turns
  held-out subtomograms by quarter turns, so that part of their *measured*
  region falls into the wedge, masks them again, restores them, and compares
  the restoration with the measured data it never saw, inside that part. The
  rotation proxy of the methods, used as a held-out test: no restoration
  scores exactly 1, a perfect one the noise floor of the data.

Source: book chapter "Restoring a whole tomogram".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..physics import apply_missing_wedge, fourier_grid, hermitian_weights, quarter_turns_xz, rotate_cube, rotated_mask

__all__ = ["WedgePower", "wedge_power_ratio", "rotation_validation_error", "rotation_validation_baselines",
           "TiltProfile", "tilt_range_profile"]


@dataclass
class WedgePower:
    """In-wedge power relative to measured power, per Fourier shell.

    What :func:`wedge_power_ratio` returns; ``...`` are the batch dims of its
    volumes.

    Attributes
    ----------
    frequency : torch.Tensor
        ``(S,)`` shell centres in 1/voxel.
    ratio : torch.Tensor
        ``(..., S)``: mean power per coefficient in the missing wedge over that
        in the measured region, per shell (``nan`` where a region is empty).
    pooled : torch.Tensor
        ``(...)``: the same ratio over all shells between ``f_min`` and
        ``f_max`` together.
    """

    frequency: torch.Tensor
    ratio: torch.Tensor
    pooled: torch.Tensor


def wedge_power_ratio(
    x: torch.Tensor, mask: torch.Tensor, n_shells: int | None = None, f_min: float = 0.05, f_max: float = 0.35
) -> WedgePower:
    """How much power a volume holds inside the missing wedge, relative to the measured region.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D, H, W)`` volumes (a tomogram, tiles, restorations).
    mask : torch.Tensor
        Bool measured-region mask on the rfft half grid ``(D, H, W//2+1)``
        (:func:`cryolearn.physics.missing_wedge_mask`).
    n_shells : int, optional
        Shells one Fourier voxel of the shortest side wide by default.
    f_min, f_max : float
        Band in cycles per voxel pooled in :attr:`WedgePower.pooled` (the
        origin and the corners beyond Nyquist are left out).

    Returns
    -------
    WedgePower

    Raises
    ------
    ValueError
        If the mask does not match the half grid of ``x``, or ``f_min >= f_max``.

    Notes
    -----
    Mean power per coefficient (Hermitian weights on the half grid), so the
    ratio does not depend on how many coefficients each region holds. An
    isotropic specimen gives about 1; the empty wedge of a raw tomogram holds
    only what leaks through interpolation and the gaps between tilts.
    """
    spatial = tuple(x.shape[-3:])
    if tuple(mask.shape) != spatial[:-1] + (spatial[-1] // 2 + 1,):
        raise ValueError(f"mask {tuple(mask.shape)} is not the half grid of volumes {spatial}")
    if not f_min < f_max:
        raise ValueError(f"need f_min < f_max, got {f_min}, {f_max}")
    n = min(spatial)
    n_shells = n // 2 + 1 if n_shells is None else int(n_shells)
    width = (n // 2) / n / (n_shells - 1)
    radius = torch.sqrt(sum(g**2 for g in fourier_grid(spatial, rfft=True, device=x.device))).to(x.dtype)
    shell = torch.round(radius / width).long().clamp(max=n_shells).flatten()  # n_shells: beyond Nyquist
    p = torch.fft.rfftn(x, dim=(-3, -2, -1), norm="ortho").abs().pow(2)
    w = hermitian_weights(spatial, None, x)
    m = mask.to(device=x.device, dtype=x.dtype)

    def per_shell(v: torch.Tensor) -> torch.Tensor:  # (..., *half) -> (..., n_shells + 1)
        v = v.flatten(-3)
        return v.new_zeros(*v.shape[:-1], n_shells + 1).index_add_(-1, shell, v)

    p_in, p_out = per_shell(p * w * (1 - m)), per_shell(p * w * m)
    c_in, c_out = per_shell(w * (1 - m)), per_shell(w * m)
    freq = torch.arange(n_shells + 1, device=x.device, dtype=x.dtype) * width
    ratio = (p_in / c_in) / (p_out / c_out)
    band = (freq >= f_min) & (freq <= f_max) & (c_in > 0) & (c_out > 0)
    pooled = (p_in[..., band].sum(-1) / c_in[band].sum()) / (p_out[..., band].sum(-1) / c_out[band].sum())
    return WedgePower(frequency=freq[:n_shells], ratio=ratio[..., :n_shells], pooled=pooled)


def rotation_validation_error(
    restore: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    rotations: Sequence[int] | None = None,
    pooled: bool = True,
) -> torch.Tensor:
    """Held-out rotation test: restore measured data that a quarter turn moved into the wedge.

    Parameters
    ----------
    restore : callable
        ``(B, N, N, N) -> (B, N, N, N)``: the restoration to score, e.g.
        ``method.predict``; it sees only masked inputs.
    y : torch.Tensor
        ``(B, N, N, N)`` held-out observed subtomograms (cubic boxes),
        normalised as in training.
    mask : torch.Tensor
        Bool measured-region mask ``(N, N, N//2+1)``.
    rotations : sequence of int, optional
        Cube-group elements (:func:`cryolearn.physics.cube_rotations`); default
        the quarter turns about X and Z (:func:`cryolearn.physics.quarter_turns_xz`),
        which move the wedge.
    pooled : bool
        Return one number (sums over all volumes and rotations) or ``(B,)``.

    Returns
    -------
    torch.Tensor
        ``sum_Omega |F(restore(M R y)) - F(R y)|^2 / sum_Omega |F(R y)|^2``
        over ``Omega``, the Fourier region missing under ``mask`` but measured
        in ``R y``. Returning the input unchanged scores exactly 1; a
        restoration that predicts the measured data scores down to the
        noise's share of their power.

    Raises
    ------
    ValueError
        If ``y`` is not a batch of cubes matching the mask, or holds NaN.
    """
    if y.ndim != 4 or len(set(y.shape[-3:])) != 1:
        raise ValueError(f"y must be a batch of cubic boxes (B, N, N, N), got {tuple(y.shape)}")
    if tuple(mask.shape) != tuple(y.shape[-3:-1]) + (y.shape[-1] // 2 + 1,):
        raise ValueError(f"mask {tuple(mask.shape)} does not match boxes of {tuple(y.shape[-3:])}")
    if not torch.isfinite(y).all():
        raise ValueError("y contains NaN or Inf values")
    rots = list(quarter_turns_xz() if rotations is None else rotations)
    mask = mask.to(y.device)
    w = hermitian_weights(tuple(y.shape[-3:]), None, y)
    missing = (~mask).to(y.dtype) * w
    num = y.new_zeros(y.shape[0])
    den = y.new_zeros(y.shape[0])
    for r in rots:  # a handful of rotations; each restores the whole batch at once
        region = missing * rotated_mask(mask, r, y.shape[-3:]).to(y.dtype)
        yr = rotate_cube(y, r)
        out = restore(apply_missing_wedge(yr, mask))
        F_out = torch.fft.rfftn(out, dim=(-3, -2, -1), norm="ortho")
        F_ref = torch.fft.rfftn(yr, dim=(-3, -2, -1), norm="ortho")
        num += ((F_out - F_ref).abs().pow(2) * region).flatten(1).sum(1)
        den += (F_ref.abs().pow(2) * region).flatten(1).sum(1)
    return num.sum() / den.sum() if pooled else num / den


def rotation_validation_baselines(
    y: torch.Tensor, mask: torch.Tensor, rotations: Sequence[int] | None = None
) -> dict[str, float]:
    """:func:`rotation_validation_error` of the trivial restorations, the scores a trained method must beat.

    Parameters
    ----------
    y : torch.Tensor
        ``(B, N, N, N)`` held-out observed subtomograms, normalised as in training.
    mask : torch.Tensor
        Bool measured-region mask ``(N, N, N//2+1)``.
    rotations : sequence of int, optional
        As :func:`rotation_validation_error`.

    Returns
    -------
    dict of str to float
        ``"no restoration"``: the input returned unchanged (1 by
        construction); ``"squared input"``: the pointwise square
        ``a (t^2 - mean t^2)`` of each masked input ``t``, with the one scale
        ``a`` (over all volumes and rotations) that minimises the error, a
        nonlinearity that puts power into the wedge without learning
        anything (:func:`cryolearn.metrics.pointwise_square_baseline`).

    Raises
    ------
    ValueError
        As :func:`rotation_validation_error`.

    Notes
    -----
    The pooled error is quadratic in the scale, ``E(a) = 1 - 2 b a + q a^2``,
    so three evaluations (``a = 0, 1, -1``) give it exactly and its minimum
    is ``1 - b^2 / q``. The scale is fitted on the held-out data themselves,
    which favours the baseline. Source: book chapter "Restoring a whole tomogram"
    (the held-out rotation test) and "Side by side" (the trivial baselines).
    """

    def square(t: torch.Tensor) -> torch.Tensor:
        sq = t.pow(2)
        return sq - sq.mean(dim=(-3, -2, -1), keepdim=True)

    identity = float(rotation_validation_error(lambda t: t, y, mask, rotations))
    plus = float(rotation_validation_error(square, y, mask, rotations))
    minus = float(rotation_validation_error(lambda t: -square(t), y, mask, rotations))
    q, b = (plus + minus) / 2 - 1, (minus - plus) / 4
    best = 1.0 - b * b / q if q > 0 else 1.0
    return {"no restoration": identity, "squared input": best}


@dataclass
class TiltProfile:
    """Power of a tomogram against the angle of its Fourier coefficients from the ``k_x`` axis.

    What :func:`tilt_range_profile` returns.

    Attributes
    ----------
    angle : torch.Tensor
        ``(A,)`` bin centres in degrees, from -90 to 90: ``atan(k_z / k_x)``.
    power : torch.Tensor
        ``(A,)`` mean power per coefficient in each bin, relative to the
        median over the bins within 30 degrees of ``k_x`` (measured at any
        tilt range worth reconstructing).
    tilt_range : tuple of float
        ``(lo, hi)`` degrees: the outer edges of the outermost bins on
        either side of 0 whose power reaches ``threshold``: the edges of the
        measured region. Outermost, not first: the specimen's own
        anisotropy (filaments, membranes) can dip a bin inside the
        measured region below the threshold.
    """

    angle: torch.Tensor
    power: torch.Tensor
    tilt_range: tuple[float, float]


def tilt_range_profile(
    x: torch.Tensor, f_min: float = 0.1, f_max: float = 0.5, bin_width: float = 1.0, threshold: float = 0.5
) -> TiltProfile:
    """Read a tomogram's tilt range off its Fourier power: where the missing wedge begins.

    Parameters
    ----------
    x : torch.Tensor
        ``(D, H, W)`` tomogram (``(z, y, x)``, beam along Z, tilt axis Y), in
        any units; it is apodised by a Hann window along every axis first, so
        that the box edges do not spread power along ``k_z``.
    f_min, f_max : float
        Band of spatial frequencies used, in cycles per voxel.
    bin_width : float
        Width of the angle bins in degrees.
    threshold : float
        Relative power below which a bin counts as missing.

    Returns
    -------
    TiltProfile

    Raises
    ------
    ValueError
        If ``x`` is not 3D, holds NaN or Inf, or the band or bins are empty.

    Notes
    -----
    Source: book chapter "Restoring a whole tomogram". A tilt series over
    ``[theta_min, theta_max]`` measures the coefficients with
    ``theta_min <= atan(k_z / k_x) <= theta_max``
    (:func:`cryolearn.physics.missing_wedge_mask`); beyond, only noise that
    the reconstruction smeared, and leakage, remain. Useful when the
    ``.tlt`` file of a tomogram is lost: the measured edge can be given to
    ``--tilt-range`` (``cryolearn train --tomogram`` reads it off every
    tomogram and says when it differs from the range given). It assumes
    the specimen's power is roughly the same at all angles of the band: a
    spectrum that falls steeply with ``|k_x|`` (a volume made of long
    streaks along X) leaks through the window into the wedge and hides its
    edges.
    """
    if x.ndim != 3:
        raise ValueError(f"x must be one tomogram (D, H, W), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf values")
    if not 0 <= f_min < f_max or not 0 < bin_width <= 30:
        raise ValueError(f"need 0 <= f_min < f_max and 0 < bin_width <= 30, got {f_min}, {f_max}, {bin_width}")
    xd = x.double()
    for axis, n in enumerate(x.shape):
        shape = [1, 1, 1]
        shape[axis] = n
        xd = xd * torch.hann_window(n, periodic=False, dtype=xd.dtype, device=x.device).view(shape)
    p = torch.fft.rfftn(xd - xd.mean(), norm="ortho").abs().pow(2)
    kz, ky, kx = fourier_grid(tuple(x.shape), rfft=True, device=x.device)
    radius = torch.sqrt(kz**2 + ky**2 + kx**2)
    angle = torch.rad2deg(torch.atan2(kz.expand_as(p), kx.expand_as(p)))  # kx >= 0 on the half grid: (-90, 90]
    n_bins = int(round(180 / bin_width))
    idx = ((angle + 90) / bin_width).floor().long().clamp(0, n_bins - 1)
    use = ((radius >= f_min) & (radius <= f_max)).expand_as(p)
    total = torch.zeros(n_bins, dtype=p.dtype, device=p.device).index_add_(0, idx[use], p[use])
    count = torch.zeros(n_bins, dtype=p.dtype, device=p.device).index_add_(0, idx[use], torch.ones_like(p[use]))
    if (count == 0).all():
        raise ValueError(f"no Fourier coefficients between {f_min} and {f_max} cycles per voxel")
    centres = -90 + bin_width * (torch.arange(n_bins, dtype=p.dtype, device=p.device) + 0.5)
    mean = total / count.clamp(min=1)
    ref = mean[(centres.abs() <= 30) & (count > 0)].median()
    power = torch.where(count > 0, mean / ref, torch.full_like(mean, float("nan")))
    high = (power >= threshold).tolist()  # an empty bin (NaN: no coefficient at that angle) is never above
    up = [i for i in range(n_bins) if centres[i] > 0 and high[i]]
    down = [i for i in range(n_bins) if centres[i] < 0 and high[i]]
    hi = float(centres[up[-1]] + bin_width / 2) if up else 0.0
    lo = float(centres[down[0]] - bin_width / 2) if down else 0.0
    return TiltProfile(angle=centres, power=power, tilt_range=(lo, hi))
