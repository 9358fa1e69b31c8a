"""Setting beta without ground truth: the rotation-proxy estimate (book chapter "CryoWGEN-II").

The conditional prior ``N(x_bar, beta^-1)`` of the CryoWGEN posterior is only
honest if ``1 / beta`` matches the real error of ``x_bar = G(y)`` inside the
wedge. :func:`estimate_beta` measures it on wedges the method can check: it
re-degrades the reconstructions under a rotation that moves the wedge
(``y' = M(R x_bar) + M n``), restores them, and takes the residual power in the
missing region as ``1 / beta`` (one value, or one per Fourier shell).
:func:`estimate_beta_field` gives one precision per voxel, and
:func:`field_posterior_mean` the posterior mean under that field around any
method's output.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from ..physics import apply_missing_wedge, fourier_grid, inverse_cube_index, quarter_turns_xz, rotate_cube, rotation_proxy
from ..physics.fourier import hermitian_weights
from .posterior import BoltzmannPosterior

if TYPE_CHECKING:
    from .base import Method

__all__ = ["BetaEstimate", "estimate_beta", "estimate_beta_field", "field_posterior_mean", "maps_measured_region_onto_itself"]


def maps_measured_region_onto_itself(mask: torch.Tensor, index: int) -> bool:
    """Whether the cube rotation ``index`` maps the measured region onto itself (``M R = R M``).

    Such a rotation (the identity; the half turn in 2D; the half turns about
    the three axes for a wedge about Y) gives the rotation proxy no
    information: the rotated volume's wedge is its own wedge, so nothing
    measured is moved into it.

    Parameters
    ----------
    mask : torch.Tensor
        Half-grid measured-region mask of a cubic (square) box.
    index : int
        Cube-group element (:func:`cryolearn.physics.cube_rotations`).

    Returns
    -------
    bool
    """
    nd = mask.ndim
    n = mask.shape[0]
    probe = torch.randn((1,) + (n,) * nd, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = mask.cpu()
    a = apply_missing_wedge(rotate_cube(probe, index, ndim=nd), mask)
    b = rotate_cube(apply_missing_wedge(probe, mask), index, ndim=nd)
    return bool(torch.allclose(a, b, atol=1e-9))


@dataclass
class BetaEstimate:
    """What :func:`estimate_beta` returns.

    Attributes
    ----------
    beta : float
        ``1 / P``, ``P`` the mean residual power per orthonormal Fourier
        coefficient inside the missing wedge, in 1 / (voxel value)^2.
    spectrum : torch.Tensor or None
        ``(D, H, W//2+1)`` (``(D, W//2+1)`` in 2D) Fourier-diagonal reference
        shape ``s_k = P_shell(k) / P`` for ``spectrum=`` of the CryoWGEN
        methods, so that the prior precision of coefficient ``k`` is
        ``beta / s_k = 1 / P_shell(k)``; ``None`` unless ``per_shell``.
    shell_power : torch.Tensor or None
        ``(n_shells,)`` residual power per Fourier shell (shell ``i`` holds
        radii ``|k| N`` rounding to ``i``, ``N`` the box side in voxels),
        ``nan`` where a shell has no missing coefficient; ``None`` unless ``per_shell``.
    """

    beta: float
    spectrum: torch.Tensor | None = None
    shell_power: torch.Tensor | None = None


def estimate_beta(
    method: "Method",
    y: torch.Tensor,
    rotations: Sequence[int] | None = None,
    per_shell: bool = False,
    generator: torch.Generator | None = None,
) -> BetaEstimate:
    """Estimate the conditional-prior precision ``beta`` without ground truth (rotation proxy).

    Re-degrade the reconstructions, ``y' = M(R x_bar) + M n`` with
    ``x_bar = G(y)``, reconstruct ``x_bar' = G(y')``, and take the residual
    power inside the missing wedge, ``mean |F(x_bar' - R x_bar)|^2`` over the
    missing orthonormal Fourier coefficients, as ``1 / beta``.

    Parameters
    ----------
    method : cryolearn.methods.Method
        A trained method (its reconstructor ``G``, mask and ``sigma`` are used).
    y : torch.Tensor
        ``(B, D, H, W)`` observations (``(B, D, W)`` in 2D) of a cubic (square) box.
    rotations : sequence of int, optional
        Cube-group elements ``R`` (:func:`cryolearn.physics.cube_rotations`),
        used in turn over the batch. Default: the quarter turns about X and Z
        in 3D (:func:`cryolearn.physics.quarter_turns_xz`), the two quarter
        turns in 2D (elements 2 and 3 of the square's group; element 1 is the
        half turn), less any that map this mask's measured region onto
        itself (:func:`maps_measured_region_onto_itself`): those move no
        measured coefficient into the wedge, see a zero residual there and
        would make ``beta`` too large (a 2D posterior about ``sqrt(2)`` too
        narrow when half of the batch used the half turn). Given rotations
        that map the measured region onto itself are used, with a warning.
    per_shell : bool
        Also return one power per Fourier shell as a reference ``spectrum``.
    generator : torch.Generator, optional
        Seeds the noise ``n`` of the proxy.

    Returns
    -------
    BetaEstimate

    Raises
    ------
    ValueError
        If ``y`` does not match the method's mask or holds NaN/Inf, the box
        is not cubic, or no default rotation moves the measured region.

    Warns
    -----
    UserWarning
        If a given rotation maps the measured region onto itself.

    Notes
    -----
    Source: the book's CryoWGEN-II chapter (beta from the rotation proxy). The proxy measures how well ``G`` restores wedges
    it can check (a rotated reconstruction whose wedge it knows), which is a
    stand-in for the unknown error of ``x_bar`` in the real wedge; on the
    reference set-up it overestimated ``beta`` (3.2 against 1.7 implied by the
    truth), so report the coverage wherever ground truth exists.
    """
    y, rots = _proxy_inputs(method, y, rotations)
    nd = method.ndim
    box = y.shape[-1]
    r = rots[torch.arange(y.shape[0], device=y.device) % rots.numel()]
    x_bar = method.predict(y)
    y_proxy = rotation_proxy(x_bar, method.mask.to(y.device), r, sigma=method.sigma, generator=generator)
    resid = method.predict(y_proxy) - rotate_cube(x_bar, r, ndim=nd)
    dims = tuple(range(-nd, 0))
    power = torch.fft.rfftn(resid, dim=dims, norm="ortho").abs().pow(2).mean(0)  # (D, H, W//2+1)
    wm = hermitian_weights(y.shape[-nd:], ~method.mask, power)  # full-grid weight of each missing coefficient
    p_mean = (wm * power).sum() / wm.sum()
    if not per_shell:
        return BetaEstimate(beta=1.0 / p_mean.item())
    radius = torch.sqrt(sum(g**2 for g in fourier_grid(y.shape[-nd:], device=y.device)))
    shell = torch.round(radius * box).long().expand(power.shape)
    n_shells = int(shell.max()) + 1
    count = torch.zeros(n_shells, device=y.device, dtype=power.dtype).index_add_(0, shell.flatten(), wm.flatten())
    total = torch.zeros_like(count).index_add_(0, shell.flatten(), (wm * power).flatten())
    shell_power = torch.where(count > 0, total / count.clamp_min(1e-30), torch.full_like(count, float("nan")))
    # Shells with no missing coefficient (the origin, corners) take the nearest shell that has some.
    valid = torch.nonzero(count > 0).squeeze(1)
    nearest = valid[(torch.arange(n_shells, device=y.device)[:, None] - valid[None]).abs().argmin(1)]
    spectrum = (shell_power[nearest][shell] / p_mean).clamp_min(1e-6)
    return BetaEstimate(beta=1.0 / p_mean.item(), spectrum=spectrum.to(y.dtype), shell_power=shell_power)


def _proxy_inputs(method: "Method", y: torch.Tensor, rotations: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``(B, ...)`` observations and the rotations of the proxy (see :func:`estimate_beta`)."""
    nd = method.ndim
    y = method._check_observations(y)
    if y.ndim != nd + 1:
        raise ValueError(f"y must be a batch (B, ...) of {nd}D observations, got shape {tuple(y.shape)}")
    box = y.shape[-1]
    if any(s != box for s in y.shape[-nd:]):
        raise ValueError(f"the rotation proxy needs a cubic box, got {tuple(y.shape[-nd:])}")
    if rotations is None:
        rotations = [i for i in (quarter_turns_xz() if nd == 3 else [2, 3])
                     if not maps_measured_region_onto_itself(method.mask, i)]
        if not rotations:
            raise ValueError("every default rotation maps the measured region onto itself; pass rotations=")
    else:
        idle = [int(i) for i in rotations if maps_measured_region_onto_itself(method.mask, int(i))]
        if idle:
            warnings.warn(f"rotations {idle} map the measured region onto itself: they see no residual in the "
                          "wedge and bias beta upwards", stacklevel=2)
    return y, torch.as_tensor(list(rotations), dtype=torch.long, device=y.device)


def estimate_beta_field(
    method: "Method",
    y: torch.Tensor,
    x_bar: torch.Tensor | None = None,
    rotations: Sequence[int] | None = None,
    smooth: float = 1.0,
    floor: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A per-voxel precision field ``beta_v(y)`` from an ensemble of rotation proxies, without ground truth.

    For each rotation ``R`` the reconstruction is re-degraded,
    ``y'_R = M(R x_bar) + M n``, restored and rotated back,
    ``x_R = R^-1 G(y'_R)``; the local mean square of the residuals
    ``x_R - x_bar`` over the rotations, smoothed by a Gaussian of ``smooth``
    voxels, is the variance ``1 / beta_v`` the conditional prior gives voxel
    ``v``: where ``G`` cannot restore a structure it has made itself, it is
    unsure there.

    Parameters
    ----------
    method : cryolearn.methods.Method
        A trained method (its reconstructor ``G``, mask and ``sigma``).
    y : torch.Tensor
        ``(B, D, H, W)`` observations (``(B, D, W)`` in 2D), cubic box.
    x_bar : torch.Tensor, optional
        ``G(y)``, ``y``'s shape, if already computed.
    rotations : sequence of int, optional
        Cube-group elements; default as :func:`estimate_beta` (the quarter
        turns about X and Z in 3D). Every observation is re-degraded under
        each of them.
    smooth : float
        Standard deviation of the Gaussian smoothing of the squared
        residuals, in voxels (0: none).
    floor : float
        The variance of a voxel is at least ``floor`` times the observation's
        mean variance (the field's precision at most ``1 / floor`` times its
        mean), so that a voxel the proxy happens to restore exactly does not
        get an infinite precision.
    generator : torch.Generator, optional
        Seeds the proxy noise ``n``.

    Returns
    -------
    torch.Tensor
        ``(B, D, H, W)`` precisions in 1 / (voxel value)^2, for ``beta=`` of
        :class:`cryolearn.methods.BoltzmannPosterior`.

    Raises
    ------
    ValueError
        As :func:`estimate_beta`; also if ``x_bar`` has another shape,
        ``smooth`` is negative or ``floor`` is not in ``(0, 1]``.

    Notes
    -----
    Source: book chapter "CryoWGEN-II" (a prior that knows where it is
    unsure). An ensemble of proxy restorations stands in for the unknown
    error of ``x_bar``, as the rotation proxy does for the scalar ``beta``
    (:func:`estimate_beta`); the ensemble of restorations of the same
    reconstruction under several transformations is the test-time
    augmentation estimate of predictive uncertainty (Wang et al. 2019,
    "Aleatoric uncertainty estimation with test-time augmentation for medical
    image segmentation"). It costs ``len(rotations)`` extra passes of ``G``.
    """
    y, rots = _proxy_inputs(method, y, rotations)
    if not smooth >= 0:
        raise ValueError(f"smooth must be a non-negative width in voxels, got {smooth}")
    if not 0 < floor <= 1:
        raise ValueError(f"floor must lie in (0, 1], got {floor}")
    nd = method.ndim
    x_bar = method.predict(y) if x_bar is None else x_bar.to(y)
    if x_bar.shape != y.shape:
        raise ValueError(f"x_bar must have y's shape {tuple(y.shape)}, got {tuple(x_bar.shape)}")
    g, b = rots.numel(), y.shape[0]
    r = rots.repeat_interleave(b)  # (G * B,)
    xr = x_bar.repeat(g, *[1] * nd)  # (G * B, ...)
    y_proxy = rotation_proxy(xr, method.mask.to(y.device), r, sigma=method.sigma, generator=generator)
    back = rotate_cube(method.predict(y_proxy), inverse_cube_index(r), ndim=nd)
    var = (back - xr).pow(2).reshape(g, *y.shape).mean(0)  # (B, ...)
    dims = tuple(range(-nd, 0))
    if smooth > 0:
        k2 = sum(f**2 for f in fourier_grid(y.shape[-nd:], device=y.device, dtype=y.dtype))
        gain = torch.exp(-2 * torch.pi**2 * smooth**2 * k2)
        var = torch.fft.irfftn(torch.fft.rfftn(var, dim=dims) * gain, s=y.shape[-nd:], dim=dims)
    var = torch.maximum(var, floor * var.mean(dims, keepdim=True))
    return 1.0 / var


def field_posterior_mean(
    method: "Method",
    y: torch.Tensor,
    x_bar: torch.Tensor | None = None,
    smooth: float = 1.0,
    inflation: float = 2.0,
    batch_size: int = 8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The posterior mean under a per-voxel precision field around any method's reconstruction.

    The mean of the Gaussian part (``w = 0``) of the CryoWGEN posterior,
    ``argmin_x ||M x - y||^2 / (2 sigma^2) + (1/2) sum_v beta_v (x_v - x_bar_v)^2``,
    with the precision field ``beta_v`` of :func:`estimate_beta_field`
    divided by ``inflation``: the samplers' mean with ``beta_field="proxy"``,
    for a deterministic method (CryoGEN-I, CryoGEN-II). Where the rotation
    proxies agree (large ``beta_v``) the mean stays at ``x_bar``; elsewhere the
    measured data pull it, and because ``beta_v`` varies in space the pull
    reaches into the missing wedge.

    Parameters
    ----------
    method : cryolearn.methods.Method
        A trained method: its reconstructor ``G`` makes the proxies, its mask
        and ``sigma`` the data term.
    y : torch.Tensor
        ``(B, D, H, W)`` observations (``(B, D, W)`` in 2D), cubic box, in the
        units the method was trained on (normalised subtomograms).
    x_bar : torch.Tensor, optional
        ``(B, D, H, W)`` centre of the prior, default ``G(y)`` (pass
        ``method.reconstruct(y).mean`` to centre on CryoGEN-I's MAP).
    smooth : float
        Smoothing of the field, in voxels (:func:`estimate_beta_field`).
    inflation : float
        Factor on the field's variances (the samplers' ``field_inflation``,
        whose default is 2).
    batch_size : int
        Observations per conjugate-gradient solve (each needs
        ``len(rotations)`` extra passes of ``G``).
    generator : torch.Generator, optional
        Seeds the proxy noise, on ``y``'s device.

    Returns
    -------
    torch.Tensor
        ``(B, D, H, W)`` posterior means, on ``y``'s device and dtype.

    Raises
    ------
    ValueError
        As :func:`estimate_beta_field`; also if ``x_bar`` has another shape
        than ``y``, or ``inflation`` or ``batch_size`` is not positive.

    Notes
    -----
    Source: book chapters "CryoWGEN-II" (the precision field) and "Restoring
    a whole tomogram" (where this mean restores the wedge of a simulated
    tomogram that ``G(y)`` alone leaves empty). The mean does not depend on
    the temperature ``gamma``. It solves
    ``(M / sigma^2 + beta) x = M y / sigma^2 + beta x_bar`` by conjugate
    gradients (:meth:`cryolearn.methods.BoltzmannPosterior.gaussian_mean`).
    """
    if not inflation > 0 or batch_size < 1:
        raise ValueError(f"inflation and batch_size must be positive, got {inflation} and {batch_size}")
    y = method._check_observations(y)
    if x_bar is not None and x_bar.shape != y.shape:
        raise ValueError(f"x_bar must have y's shape {tuple(y.shape)}, got {tuple(x_bar.shape)}")
    out = []
    for k in range(0, y.shape[0], batch_size):
        yk = y[k : k + batch_size]
        xk = method.predict(yk) if x_bar is None else x_bar[k : k + batch_size].to(yk)
        beta = estimate_beta_field(method, yk, xk, smooth=smooth, generator=generator) / inflation
        out.append(BoltzmannPosterior(yk, xk, method.mask.to(yk.device), method.sigma, 1.0, beta).gaussian_mean())
    return torch.cat(out)
