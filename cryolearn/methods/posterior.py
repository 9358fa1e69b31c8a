"""The Boltzmann posterior of CryoWGEN and its closed form with no witness (SPEC section 2).

Entropy ``gamma * KL(pi || pi_ref)`` added to the transport problem makes the
optimal coupling a Gibbs density. With a Gaussian conditional reference
centred on the reconstructor's output ``x_bar = G(y)``::

    q_gamma(x | y)  ~  exp(-U(x) / gamma),
    U(x) = ||y - M x||^2 / (2 sigma^2) - w(x) + (beta / 2) ||x - x_bar||^2

``gamma`` is the temperature (widths scale with ``sqrt(gamma)``), ``beta`` the
precision of the conditional prior, ``w`` the witness potential (0 if none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from ..physics import apply_missing_wedge, fourier_grid, quarter_turns_xz, rotate_cube, rotation_proxy
from ..physics.fourier import hermitian_weights

if TYPE_CHECKING:
    from .base import Method

__all__ = ["BetaEstimate", "BoltzmannPosterior", "GaussianPosterior", "estimate_beta", "gaussian_posterior"]


@dataclass
class GaussianPosterior:
    """Closed-form posterior with ``w = 0``.

    Attributes
    ----------
    mean : torch.Tensor
        ``(..., D, H, W)`` posterior mean.
    std : torch.Tensor
        ``(..., D, H, W)`` voxel-wise posterior standard deviation (the same
        in every voxel: with ``w = 0`` the posterior is stationary).
    var_fourier : torch.Tensor
        ``(D, H, W//2+1)`` variance ``E|F_k - E F_k|^2`` of each orthonormal
        Fourier coefficient: ``gamma / (1/sigma^2 + beta)`` where measured,
        ``gamma / beta`` in the missing wedge. (A coefficient with a
        Hermitian partner splits it equally between its real and imaginary
        parts; a self-conjugate one puts it all in the real part.)
    """

    mean: torch.Tensor
    std: torch.Tensor
    var_fourier: torch.Tensor


def _check_gamma_beta(gamma: float, beta: float) -> None:
    if not gamma > 0:
        raise ValueError(f"temperature gamma must be positive, got {gamma}")
    if not beta > 0:
        raise ValueError(f"conditional-prior precision beta must be positive, got {beta}")


def _check_spectrum(spectrum: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if tuple(spectrum.shape) != tuple(mask.shape):
        raise ValueError(f"spectrum must have the mask's half-grid shape {tuple(mask.shape)}, got {tuple(spectrum.shape)}")
    if not (torch.isfinite(spectrum).all() and (spectrum > 0).all()):
        raise ValueError("spectrum must be finite and positive")
    return spectrum


def gaussian_posterior(
    y: torch.Tensor,
    x_bar: torch.Tensor,
    mask: torch.Tensor,
    sigma: float,
    gamma: float = 1.0,
    beta: float = 1.0,
    spectrum: torch.Tensor | None = None,
) -> GaussianPosterior:
    """Mean and voxel-wise std of ``q_gamma(x | y)`` when ``w = 0`` (the test oracle).

    Parameters
    ----------
    y : torch.Tensor
        ``(..., D, H, W)`` observations (``(..., D, W)`` in 2D).
    x_bar : torch.Tensor
        ``(..., D, H, W)`` centre of the conditional reference, ``G(y)``.
    mask : torch.Tensor
        Half-grid measured-region mask.
    sigma : float
        Noise standard deviation.
    gamma : float
        Temperature (> 0).
    beta : float
        Precision of the conditional prior (> 0), in 1 / (voxel value)^2.
    spectrum : torch.Tensor, optional
        ``(D, H, W//2+1)`` positive, Hermitian-symmetric shape ``s_k`` of a
        Fourier-diagonal reference covariance ``C`` (a stationary Gaussian
        field): the prior precision of coefficient ``k`` is ``beta / s_k``.
        ``None`` is white (``s_k = 1``).

    Returns
    -------
    GaussianPosterior

    Raises
    ------
    ValueError
        If ``gamma``, ``beta`` or ``sigma`` is not positive.

    Notes
    -----
    Source: SPEC section 2. Per orthonormal Fourier coefficient: measured,
    mean ``(y_hat / sigma^2 + beta x_bar_hat) / (1/sigma^2 + beta)`` and
    variance ``gamma / (1/sigma^2 + beta)``; missing, mean ``x_bar_hat`` and
    variance ``gamma / beta``. A voxel's variance is the average of the
    per-coefficient variances over the full Fourier grid.
    """
    _check_gamma_beta(gamma, beta)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    nd = mask.ndim
    dims = tuple(range(-nd, 0))
    m = mask.to(device=y.device, dtype=y.dtype)
    prec = 1.0 / sigma**2
    b = beta if spectrum is None else beta / _check_spectrum(spectrum, mask).to(device=y.device, dtype=y.dtype)
    yf = torch.fft.rfftn(y, dim=dims, norm="ortho")
    xf = torch.fft.rfftn(x_bar, dim=dims, norm="ortho")
    mean_f = m * (prec * yf + b * xf) / (prec + b) + (1 - m) * xf
    mean = torch.fft.irfftn(mean_f, s=y.shape[-nd:], dim=dims, norm="ortho")
    var_f = (m * gamma / (prec + b) + (1 - m) * gamma / b) * torch.ones_like(m)
    w = hermitian_weights(y.shape[-nd:], None, var_f)  # mean over the full grid from the half grid
    voxel_var = (var_f * w).sum() / w.sum()
    std = torch.sqrt(voxel_var).expand(mean.shape)
    return GaussianPosterior(mean=mean, std=std, var_fourier=var_f)


class BoltzmannPosterior:
    """``q_gamma(x | y) ~ exp(-U(x) / gamma)`` for a batch of observations.

    Parameters
    ----------
    y : torch.Tensor
        ``(B, D, H, W)`` observations.
    x_bar : torch.Tensor
        ``(B, D, H, W)`` reference centres ``G(y)``.
    mask : torch.Tensor
        Half-grid measured-region mask.
    sigma : float
        Noise standard deviation.
    gamma : float
        Temperature.
    beta : float
        Conditional-prior precision.
    witness : callable, optional
        ``w(x)`` mapping ``(..., D, H, W)`` to ``(...)`` (e.g.
        :meth:`cryolearn.methods.CryoGEN2.witness`); ``None`` means ``w = 0``.
    spectrum : torch.Tensor, optional
        ``(D, H, W//2+1)`` shape of a Fourier-diagonal reference covariance
        (see :func:`gaussian_posterior`); the prior term becomes
        ``(beta / 2) ||C^(-1/2) (x - x_bar)||^2`` and reference draws are
        smoother. ``None`` is white.

    Raises
    ------
    ValueError
        If ``gamma`` or ``beta`` is not positive, or shapes disagree.

    Notes
    -----
    Source: SPEC section 2 ("The Boltzmann posterior of CryoWGEN").
    """

    def __init__(
        self,
        y: torch.Tensor,
        x_bar: torch.Tensor,
        mask: torch.Tensor,
        sigma: float,
        gamma: float = 1.0,
        beta: float = 1.0,
        witness: Callable[[torch.Tensor], torch.Tensor] | None = None,
        spectrum: torch.Tensor | None = None,
    ) -> None:
        _check_gamma_beta(gamma, beta)
        self.spectrum = None if spectrum is None else _check_spectrum(spectrum, mask).to(device=y.device, dtype=y.dtype)
        if y.shape != x_bar.shape:
            raise ValueError(f"y {tuple(y.shape)} and x_bar {tuple(x_bar.shape)} must have one shape")
        self.y, self.x_bar, self.mask = y, x_bar, mask
        self.sigma, self.gamma, self.beta, self.witness = float(sigma), float(gamma), float(beta), witness
        self.ndim = mask.ndim

    def log_likelihood_term(self, x: torch.Tensor) -> torch.Tensor:
        """``||y - M x||^2 / (2 sigma^2) - w(x)`` for ``x`` of shape ``(K, B, ...)``; returns ``(K, B)``."""
        r = self.y - apply_missing_wedge(x, self.mask)
        e = r.pow(2).flatten(-self.ndim).sum(-1) / (2 * self.sigma**2)
        if self.witness is not None:
            e = e - self.witness(x)
        return e

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """``U(x)`` for ``x`` of shape ``(K, B, D, H, W)``; returns ``(K, B)``."""
        d = x - self.x_bar
        if self.spectrum is not None:
            d = self._filter(d, self.spectrum.rsqrt())
        prior = 0.5 * self.beta * d.pow(2).flatten(-self.ndim).sum(-1)
        return self.log_likelihood_term(x) + prior

    def sample_reference(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``K`` draws per observation from ``N(x_bar, (gamma / beta) C)``: ``(K, B, D, H, W)`` (``C = I`` if white)."""
        noise = torch.randn((k, *self.x_bar.shape), generator=generator, device=self.x_bar.device, dtype=self.x_bar.dtype)
        if self.spectrum is not None:
            noise = self._filter(noise, self.spectrum.sqrt())
        return self.x_bar + (self.gamma / self.beta) ** 0.5 * noise

    def _filter(self, v: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Real-space result of multiplying the orthonormal rfft of ``v`` by ``gain``."""
        dims = tuple(range(-self.ndim, 0))
        vf = torch.fft.rfftn(v, dim=dims, norm="ortho") * gain
        return torch.fft.irfftn(vf, s=v.shape[-self.ndim :], dim=dims, norm="ortho")


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
        turns in 2D; each moves the wedge onto measured coefficients. (The
        identity and half turns do not, and give no information.)
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
        If ``y`` does not match the method's mask or holds NaN/Inf, or the box is not cubic.

    Notes
    -----
    Source: SPEC section 8. The proxy measures how well ``G`` restores wedges
    it can check (a rotated reconstruction whose wedge it knows), which is a
    stand-in for the unknown error of ``x_bar`` in the real wedge; SPEC
    reports it overestimating ``beta`` (3.2 against 1.7 implied by the truth),
    so report the coverage wherever ground truth exists.
    """
    nd = method.ndim
    y = method._check_observations(y)
    if y.ndim != nd + 1:
        raise ValueError(f"y must be a batch (B, ...) of {nd}D observations, got shape {tuple(y.shape)}")
    box = y.shape[-1]
    if any(s != box for s in y.shape[-nd:]):
        raise ValueError(f"the rotation proxy needs a cubic box, got {tuple(y.shape[-nd:])}")
    if rotations is None:
        rotations = quarter_turns_xz() if nd == 3 else [1, 3]
    rots = torch.as_tensor(list(rotations), dtype=torch.long, device=y.device)
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
