"""The missing wedge: Fourier masks and the operator ``M`` (the book's appendix on notation and conventions).

Geometry follows IMOD and RELION: the beam runs along Z, the tilt axis along
Y, and volumes are stored ``(..., D, H, W) = (z, y, x)`` as mrcfile reads
them. A tilt series over ``[theta_min, theta_max]`` (degrees) measures the
central Fourier planes that contain the ``k_y`` axis and make an angle
``theta`` with the ``k_x`` axis in the ``(k_x, k_z)`` plane, so a Fourier
sample ``(k_z, k_y, k_x)`` with ``k_x != 0`` is measured when
``theta_min <= atan(k_z / k_x) <= theta_max``. For a symmetric range this is
``|k_z| <= tan(theta_max) |k_x|``. The ``k_y`` axis (``k_x = k_z = 0``) and the
origin are always measured.

Every mask is made symmetric under ``k -> -k`` (the Nyquist planes of even
sizes are kept only where both a sample and its mirror are measured), so
``M x`` is real, and ``M`` is an orthogonal projection: idempotent and
self-adjoint.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .fourier import fourier_grid, rfft_shape

__all__ = [
    "missing_wedge_mask",
    "missing_band_mask",
    "apply_missing_wedge",
    "check_tilt_range",
    "rotated_mask",
]


def check_tilt_range(tilt_range: Sequence[float]) -> tuple[float, float]:
    """Validate a tilt range and return it as two floats.

    Parameters
    ----------
    tilt_range : (float, float)
        ``(theta_min, theta_max)`` in degrees.

    Returns
    -------
    (float, float)

    Raises
    ------
    ValueError
        If it is not two finite numbers, if either lies outside (-90, 90),
        or if ``theta_min >= theta_max``.
    """
    try:
        lo, hi = (float(t) for t in tilt_range)
    except (TypeError, ValueError):
        raise ValueError(f"tilt_range must be two numbers (theta_min, theta_max) in degrees, got {tilt_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tilt_range must be finite, got {tilt_range!r}")
    if not (-90.0 < lo < 90.0 and -90.0 < hi < 90.0):
        raise ValueError(f"tilt range must lie inside (-90, 90) degrees, got [{lo}, {hi}]")
    if lo >= hi:
        raise ValueError(f"tilt range needs theta_min < theta_max, got [{lo}, {hi}]")
    return lo, hi


def _mirror_full(mask: torch.Tensor) -> torch.Tensor:
    """``mask[-k]`` on a full FFT grid: index ``i -> (-i) mod n`` on every axis."""
    dims = tuple(range(mask.ndim))
    return torch.roll(torch.flip(mask, dims), shifts=(1,) * mask.ndim, dims=dims)


def _angle_rule(kz: torch.Tensor, kx: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    # atan(kz / kx) in (-90, 90) degrees; kx == 0 means the z axis (90 deg), measured only at kz == 0.
    ang = torch.rad2deg(torch.atan(kz / torch.where(kx == 0, torch.ones_like(kx), kx)))
    measured = (ang >= lo - 1e-9) & (ang <= hi + 1e-9)
    return torch.where(kx == 0, kz == 0, measured)


def missing_band_mask(
    n: int,
    band: tuple[float, float],
    rfft: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """1D analogue of the missing wedge: a band of missing frequencies.

    Parameters
    ----------
    n : int
        Signal length (samples).
    band : (float, float)
        ``(k_lo, k_hi)`` in cycles per sample, ``0 <= k_lo < k_hi <= 0.5``:
        frequencies with ``k_lo <= |k| <= k_hi`` are missing. The zero
        frequency is always measured.
    rfft : bool
        Half grid (``n // 2 + 1``) if True, else full grid (``n``).
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        Bool, shape ``(n // 2 + 1,)`` or ``(n,)``; True where measured.

    Raises
    ------
    ValueError
        If the band is not inside ``[0, 0.5]`` with ``k_lo < k_hi``.

    Notes
    -----
    Source: the book's appendix on notation and conventions (the 1D analogue) and the side-by-side chapter.
    """
    k_lo, k_hi = (float(b) for b in band)
    if not (0.0 <= k_lo < k_hi <= 0.5):
        raise ValueError(f"band must satisfy 0 <= k_lo < k_hi <= 0.5 (cycles/sample), got {band!r}")
    (k,) = fourier_grid((n,), rfft=rfft, device=device)
    ak = k.abs()
    return ~((ak >= k_lo) & (ak <= k_hi)) | (ak == 0)


def missing_wedge_mask(
    shape: Sequence[int],
    tilt_range: Sequence[float] = (-60.0, 60.0),
    rfft: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fourier-space mask of the measured region: 1 measured, 0 missing.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape: ``(D, H, W)`` for a subtomogram (z, y, x; tilt
        axis Y, beam Z), ``(D, W)`` for a 2D limited-angle image (z, x), or
        ``(W,)`` for the 1D analogue.
    tilt_range : (float, float)
        ``(theta_min, theta_max)`` in degrees, inside (-90, 90). In 1D the
        missing band covers the lowest non-zero frequencies
        ``0 < |k| <= 0.5 * (1 - (theta_max - theta_min) / 180)``, the same
        fraction of the axis as the wedge takes of the angles (use
        :func:`missing_band_mask` to place the band elsewhere).
    rfft : bool
        If True, the mask lives on the ``torch.fft.rfftn`` half grid
        ``(D, H, W // 2 + 1)``; otherwise on the full grid ``(D, H, W)``
        (unshifted, zero frequency at index 0).
    device : torch.device or str, optional
        Where the mask is made.

    Returns
    -------
    torch.Tensor
        Bool tensor of the (half) grid shape, True where measured,
        symmetric under ``k -> -k``.

    Raises
    ------
    ValueError
        If ``shape`` has not 1 to 3 positive entries, or the tilt range is
        outside (-90, 90) or has ``theta_min >= theta_max``.

    Notes
    -----
    Source: the book's appendix on notation and conventions. The measured fraction of the samples inside the
    sphere ``|k| <= 1/2`` is close to ``(theta_max - theta_min) / 180``.

    Examples
    --------
    >>> m = missing_wedge_mask((32, 32, 32), tilt_range=(-60, 60))
    >>> m.shape
    torch.Size([32, 32, 17])
    """
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= 3 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be (W,), (D, W) or (D, H, W) with positive sizes, got {shape}")
    lo, hi = check_tilt_range(tilt_range)
    if len(shape) == 1:
        frac = (hi - lo) / 180.0
        return missing_band_mask(shape[0], (1e-12, 0.5 * (1.0 - frac)), rfft=rfft, device=device) if frac < 1 else torch.ones(
            rfft_shape(shape) if rfft else shape, dtype=torch.bool, device=device)
    # Build on the full grid, symmetrise, then cut to the half grid.
    grids = fourier_grid(shape, rfft=False, device=device)
    kz, kx = grids[0], grids[-1]
    full = _angle_rule(kz, kx, lo, hi)
    full = full.expand(shape)
    full = full & _mirror_full(full)
    if rfft:
        full = full[..., : rfft_shape(shape)[-1]]
    return full.contiguous()


def apply_missing_wedge(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply the missing-wedge operator ``M x = irfftn(m * rfftn(x))``.

    Parameters
    ----------
    x : torch.Tensor
        Real tensor ``(..., D, H, W)`` (or ``(..., D, W)``, ``(..., W)``);
        the last ``mask.ndim`` axes are transformed.
    mask : torch.Tensor
        Measured-region mask from :func:`missing_wedge_mask` on the half
        grid ``(D, H, W // 2 + 1)``, bool or float (a float mask applies a
        Fourier filter). It is moved to ``x``'s device.

    Returns
    -------
    torch.Tensor
        ``M x``, same shape, dtype and device as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is complex or its trailing shape does not match the mask.

    Notes
    -----
    Source: the book's appendix on notation and conventions. Orthonormal FFTs; with a bool mask ``M`` is an
    orthogonal projection (``M M = M``, ``M^T = M``).
    """
    if x.is_complex():
        raise ValueError("apply_missing_wedge expects a real tensor")
    nd = mask.ndim
    if x.ndim < nd:
        raise ValueError(f"x has {x.ndim} dims but the mask is {nd}-dimensional")
    spatial = tuple(x.shape[-nd:])
    half = rfft_shape(spatial)
    if tuple(mask.shape) != half:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the half grid {half} of x's shape {spatial}")
    dims = tuple(range(-nd, 0))
    xf = torch.fft.rfftn(x, dim=dims, norm="ortho")
    m = mask.to(device=x.device, dtype=x.dtype)
    return torch.fft.irfftn(xf * m, s=spatial, dim=dims, norm="ortho")


def rotated_mask(mask: torch.Tensor, index: int, shape: Sequence[int]) -> torch.Tensor:
    """Where ``R (M x)`` is measured: the half-grid mask of a masked volume turned by a cube rotation.

    Parameters
    ----------
    mask : torch.Tensor
        Bool measured-region mask on the half grid of ``shape``
        (:func:`missing_wedge_mask`).
    index : int
        Cube-group element (:func:`cryolearn.physics.cube_rotations`).
    shape : sequence of int
        The volumes' shape ``(D, H, W)`` (cubic for a rotation that swaps
        axes; voxels).

    Returns
    -------
    torch.Tensor
        Bool ``(D, H, W//2+1)`` on the mask's device: True where the Fourier
        transform of ``R (M x)`` can be non-zero. Where it is False and
        ``mask`` is True, a turn has moved the wedge over data that ``M``
        measures; where it is True and ``mask`` is False, measured data
        that the rotation moved into the wedge (the region that the
        held-out rotation test, :func:`cryolearn.metrics.rotation_validation_error`,
        and the masked rotation term of training score).

    Raises
    ------
    ValueError
        If the mask does not match the half grid of ``shape``.

    Notes
    -----
    Exact: the mask is applied to a unit impulse at the origin, whose Fourier
    transform is 1 everywhere, the result is turned by
    :func:`cryolearn.physics.rotate_cube`, and its Fourier amplitudes (0 or
    1: the flips of a turn only add phases) are read back.
    """
    from .rotations import rotate_cube

    shape = tuple(int(s) for s in shape)
    if tuple(mask.shape) != rfft_shape(shape):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the half grid of volumes {shape}")
    impulse = torch.zeros(shape, device=mask.device)
    impulse[(0,) * len(shape)] = 1.0
    turned = rotate_cube(apply_missing_wedge(impulse, mask), index, ndim=len(shape))
    dims = tuple(range(-len(shape), 0))
    return torch.fft.rfftn(turned, dim=dims).abs() > 0.5
