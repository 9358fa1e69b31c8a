"""The Boltzmann posterior of CryoWGEN and its closed form with no witness (the book's chapters on the four methods).

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
import math
from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint

from ..physics import apply_missing_wedge, rotation_proxy
from ..physics.fourier import hermitian_weights
from ..sampling.conjugate_gradient import conjugate_gradient

__all__ = [
    "BoltzmannPosterior",
    "GaussianPosterior",
    "chunked_witness",
    "gaussian_posterior",
]


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
    Source: the book's chapters on the four methods. Per orthonormal Fourier coefficient: measured,
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


def chunked_witness(
    potential: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    mask: torch.Tensor,
    rotations: torch.Tensor,
    chunk: int | None = None,
) -> torch.Tensor:
    """Witness ``w(x) = N_vox * mean_R phi(M(R x))``, evaluated a bounded number of volumes at a time.

    The same value as :meth:`cryolearn.methods.CryoGEN2.witness`, but the
    ``G x (number of candidates)`` re-degraded volumes are never all held at
    once: the (rotation, candidate) pairs are cut into chunks of ``chunk``
    volumes. When gradients are recorded (Langevin chains), each chunk is
    recomputed in the backward pass (activation checkpointing), so memory
    stays bounded there too.

    Parameters
    ----------
    potential : callable
        ``phi``: ``(n, D, H, W)`` volumes to ``(n,)`` scores, per voxel.
    x : torch.Tensor
        ``(..., D, H, W)`` candidate clean volumes (``(..., D, W)`` in 2D), cubic box.
    mask : torch.Tensor
        Half-grid measured-region mask (its ``ndim`` is the spatial dimension).
    rotations : torch.Tensor
        ``(G,)`` cube-group indices (:func:`cryolearn.physics.cube_rotations`).
    chunk : int, optional
        Re-degraded volumes per pass, ``>= 1``. Default: as many as hold
        about ``2**22`` voxels (128 boxes of ``32^3``), at least one.

    Returns
    -------
    torch.Tensor
        ``(...)``, in the units of the data-fidelity term summed over voxels;
        differentiable in ``x``.

    Raises
    ------
    ValueError
        If ``chunk`` is not positive or ``rotations`` is empty.
    """
    nd = mask.ndim
    n_vox = math.prod(x.shape[-nd:])
    if chunk is None:
        chunk = max(1, 2**22 // n_vox)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of volumes, got {chunk}")
    rots = torch.as_tensor(rotations, dtype=torch.long).to(x.device).flatten()
    if rots.numel() == 0:
        raise ValueError("rotations must not be empty")
    lead = x.shape[:-nd]
    flat = x.reshape(-1, *x.shape[-nd:])
    n = flat.shape[0]
    mask = mask.to(x.device)
    grad = torch.is_grad_enabled() and flat.requires_grad
    parts = []
    for start in range(0, rots.numel() * n, chunk):
        pair = torch.arange(start, min(start + chunk, rots.numel() * n), device=x.device)
        g, i = pair // n, pair % n

        def score(v, g=g, i=i):
            return potential(rotation_proxy(v[i], mask, rots[g])).to(v.dtype)

        phi = checkpoint(score, flat, use_reentrant=False) if grad else score(flat)
        parts.append((i, phi))
    out = torch.zeros(n, device=x.device, dtype=x.dtype)
    for i, phi in parts:
        out = out.index_add(0, i, phi)
    return (out * (n_vox / rots.numel())).reshape(lead)


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
    beta : float or torch.Tensor
        Conditional-prior precision, in 1 / (voxel value)^2: one number, or a
        precision field ``beta_v`` of ``y``'s shape ``(B, D, H, W)`` (one
        value per voxel, e.g. :func:`cryolearn.methods.estimate_beta_field`),
        which makes the prior term ``(1/2) sum_v beta_v (x_v - x_bar_v)^2``.
        With a field the Gaussian part is no longer diagonal in Fourier
        space: its mean and draws come from batched conjugate gradients
        (perturb-and-MAP).
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
        If ``gamma`` or ``beta`` is not positive, shapes disagree, or a
        precision field is combined with ``spectrum``.

    Notes
    -----
    Source: the book's chapters on the four methods ("The Boltzmann posterior
    of CryoWGEN") and chapter "CryoWGEN-II" (a prior that knows where it is
    unsure). Perturb-and-MAP: Papandreou & Yuille (2011), "Perturb-and-MAP random
    fields", ICCV; the draws are exact once the linear solve has converged.
    """

    #: Relative residual at which the conjugate-gradient solves of a precision field stop.
    cg_tol: float = 1e-5
    #: At most this many conjugate-gradient iterations.
    cg_max_iter: int = 200

    def __init__(
        self,
        y: torch.Tensor,
        x_bar: torch.Tensor,
        mask: torch.Tensor,
        sigma: float,
        gamma: float = 1.0,
        beta: float | torch.Tensor = 1.0,
        witness: Callable[[torch.Tensor], torch.Tensor] | None = None,
        spectrum: torch.Tensor | None = None,
    ) -> None:
        self.is_field = isinstance(beta, torch.Tensor) and beta.ndim > 0
        if self.is_field:
            if tuple(beta.shape) != tuple(y.shape):
                raise ValueError(f"a precision field beta must have y's shape {tuple(y.shape)}, got {tuple(beta.shape)}")
            if not (torch.isfinite(beta).all() and (beta > 0).all()):
                raise ValueError("the precision field beta must be finite and positive")
            if spectrum is not None:
                raise ValueError("a precision field beta and a Fourier-diagonal spectrum cannot be combined")
            _check_gamma_beta(gamma, 1.0)
            beta = beta.to(device=y.device, dtype=y.dtype)
        else:
            _check_gamma_beta(gamma, float(beta))
            beta = float(beta)
        self.spectrum = None if spectrum is None else _check_spectrum(spectrum, mask).to(device=y.device, dtype=y.dtype)
        if y.shape != x_bar.shape:
            raise ValueError(f"y {tuple(y.shape)} and x_bar {tuple(x_bar.shape)} must have one shape")
        self.y, self.x_bar, self.mask = y, x_bar, mask
        self.sigma, self.gamma, self.beta, self.witness = float(sigma), float(gamma), beta, witness
        self.ndim = mask.ndim
        self._mean: torch.Tensor | None = None

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
        prior = 0.5 * (self.beta * d.pow(2)).flatten(-self.ndim).sum(-1)
        return self.log_likelihood_term(x) + prior

    def sample_reference(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``K`` draws per observation from ``N(x_bar, gamma C / beta)``: ``(K, B, D, H, W)`` (``C = I`` if white; ``beta`` per voxel for a field)."""
        noise = torch.randn((k, *self.x_bar.shape), generator=generator, device=self.x_bar.device, dtype=self.x_bar.dtype)
        if self.spectrum is not None:
            noise = self._filter(noise, self.spectrum.sqrt())
        return self.x_bar + (self.gamma / self.beta) ** 0.5 * noise

    def apply_precision(self, v: torch.Tensor) -> torch.Tensor:
        """``A v = M v / sigma^2 + beta v``, the Hessian of the ``w = 0`` part of ``U`` (white or field ``beta``), for ``(..., B, D, H, W)``."""
        if self.spectrum is not None:
            return self._filter(v, self.gaussian_precision())
        return apply_missing_wedge(v, self.mask) / self.sigma**2 + self.beta * v

    def langevin_preconditioner(self) -> torch.Tensor:
        """``(B, D, H, W)`` diagonal preconditioner ``1 / (1/sigma^2 + beta_v)`` for Langevin chains on ``U``.

        It bounds the preconditioned Hessian of the ``w = 0`` part by 1 in
        every direction (``M`` is a projector), so one step size in these units
        is stable for every voxel, whatever its precision.
        """
        return (1.0 / (1.0 / self.sigma**2 + self.beta)) * torch.ones_like(self.y)

    def _solve(self, b: torch.Tensor) -> torch.Tensor:
        """``A^-1 b`` for ``(..., B, D, H, W)`` by conjugate gradients, preconditioned by the Fourier-diagonal ``A`` of the mean precision."""
        dims = tuple(range(-self.ndim, 0))
        m = self.mask.to(device=b.device, dtype=b.dtype)
        b_mean = self.beta.mean(dims, keepdim=True)  # (B, 1, 1, 1)
        gain = 1.0 / (m / self.sigma**2 + b_mean)  # (B, D, H, W//2+1)
        res = conjugate_gradient(self.apply_precision, b, self.ndim, precondition=lambda r: self._filter(r, gain),
                                 tol=self.cg_tol, max_iter=self.cg_max_iter)
        return res.x

    def gaussian_precision(self) -> torch.Tensor:
        """Precision of each orthonormal Fourier coefficient in the ``w = 0`` part of ``U``.

        Returns
        -------
        torch.Tensor
            ``(D, H, W//2+1)``: ``m_k / sigma^2 + beta / s_k`` (``s_k = 1`` when
            white), in 1 / (voxel value)^2; the posterior variance of
            coefficient ``k`` is ``gamma`` over it.
        """
        if self.is_field:
            raise ValueError("with a precision field the Gaussian part is not diagonal in Fourier space; use apply_precision")
        m = self.mask.to(device=self.y.device, dtype=self.y.dtype)
        b = self.beta if self.spectrum is None else self.beta / self.spectrum
        return m / self.sigma**2 + b * torch.ones_like(m)

    def gaussian_mean(self) -> torch.Tensor:
        """``(B, D, H, W)`` minimiser of the ``w = 0`` part of ``U`` (the mean of :func:`gaussian_posterior`).

        With a precision field it solves ``A mean = M y / sigma^2 + beta x_bar``
        by conjugate gradients (computed once, then kept).
        """
        if self.is_field:
            if self._mean is None:
                self._mean = self._solve(apply_missing_wedge(self.y, self.mask) / self.sigma**2 + self.beta * self.x_bar)
            return self._mean
        dims = tuple(range(-self.ndim, 0))
        m = self.mask.to(device=self.y.device, dtype=self.y.dtype)
        b = self.beta if self.spectrum is None else self.beta / self.spectrum
        yf = torch.fft.rfftn(self.y, dim=dims, norm="ortho")
        xf = torch.fft.rfftn(self.x_bar, dim=dims, norm="ortho")
        mean_f = (m * yf / self.sigma**2 + b * xf) / self.gaussian_precision()
        return torch.fft.irfftn(mean_f, s=self.y.shape[-self.ndim :], dim=dims, norm="ortho")

    def sample_gaussian(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``K`` exact draws per observation from the ``w = 0`` posterior (the Gaussian part of ``q_gamma``).

        Parameters
        ----------
        k : int
            Draws per observation.
        generator : torch.Generator, optional
            Seeds the draws (on the observations' device).

        Returns
        -------
        torch.Tensor
            ``(K, B, D, H, W)`` real volumes, of the observations' dtype and
            device, distributed as ``N(mean, gamma F^* P^-1 F)`` with ``F`` the
            orthonormal Fourier transform and ``P`` the diagonal of
            :meth:`gaussian_precision`; with a precision field, as
            ``N(mean, gamma A^-1)`` with ``A`` of :meth:`apply_precision`
            (perturb-and-MAP: ``A^-1`` applied by conjugate gradients to
            ``sqrt(gamma) (M e1 / sigma + sqrt(beta) e2)``, whose covariance is
            ``gamma A``).

        Notes
        -----
        The orthonormal ``rfftn`` of real white noise has exactly the
        statistics of a real field's coefficients: unit ``E|F_k|^2``, split
        equally between real and imaginary parts where ``k`` has a Hermitian
        partner, all real where ``k = -k``. Scaling each coefficient by
        ``sqrt(gamma / P_k)`` (a real gain that is the same at ``k`` and
        ``-k``, since mask and spectrum are) and transforming back therefore
        gives real volumes with covariance ``gamma F^* P^-1 F``, the
        covariance of :func:`gaussian_posterior` (Rasmussen & Williams 2006,
        "Gaussian Processes for Machine Learning", section 2.2, for the
        Gaussian conditioning; the per-coefficient formulas are those of
        :func:`gaussian_posterior`).
        """
        noise = torch.randn((k, *self.y.shape), generator=generator, device=self.y.device, dtype=self.y.dtype)
        if self.is_field:
            # Perturb-and-MAP: eta = sqrt(gamma) (M e1 / sigma + sqrt(beta) e2) has covariance gamma A,
            # so A^-1 eta has covariance gamma A^-1.
            e2 = torch.randn((k, *self.y.shape), generator=generator, device=self.y.device, dtype=self.y.dtype)
            eta = self.gamma**0.5 * (apply_missing_wedge(noise, self.mask) / self.sigma + self.beta.sqrt() * e2)
            return self.gaussian_mean() + self._solve(eta)
        return self.gaussian_mean() + self._filter(noise, (self.gamma / self.gaussian_precision()).sqrt())

    def _filter(self, v: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """Real-space result of multiplying the orthonormal rfft of ``v`` by ``gain``."""
        dims = tuple(range(-self.ndim, 0))
        vf = torch.fft.rfftn(v, dim=dims, norm="ortho") * gain
        return torch.fft.irfftn(vf, s=v.shape[-self.ndim :], dim=dims, norm="ortho")
