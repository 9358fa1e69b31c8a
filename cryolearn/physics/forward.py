"""The forward model ``y = M(R x) + M n`` and the rotation proxy (the book's appendix on notation and conventions).

Noise is set either by a standard deviation ``sigma`` or by a signal-to-noise
ratio: ``SNR = var(x) / sigma^2``, the variance of the clean (rotated) volume
over the box divided by the variance of the white noise per voxel *before* it
is masked. (Masking keeps the fraction of noise power that falls in the
measured region, so the noise in ``y`` has variance about
``sigma^2 * measured_fraction``.)
"""

from __future__ import annotations

import torch

from .fourier import fourier_grid, rfft_shape
from .missing_wedge import apply_missing_wedge
from .rotations import rotate_cube

__all__ = ["noise_sigma", "estimate_sigma", "add_noise", "simulate_observation", "rotation_proxy", "random_redegrade", "redegrade_all"]


def noise_sigma(x: torch.Tensor, snr: float, ndim: int = 3) -> torch.Tensor:
    """Noise standard deviation that gives a signal-to-noise ratio per volume.

    Parameters
    ----------
    x : torch.Tensor
        Clean volumes ``(..., D, H, W)`` (the last ``ndim`` axes are spatial).
    snr : float
        ``var(x) / sigma^2`` (linear, not dB); must be positive.
    ndim : int
        Number of spatial axes.

    Returns
    -------
    torch.Tensor
        ``sigma`` of shape ``x.shape[:-ndim]`` (one per volume), same unit as
        the voxel values.

    Raises
    ------
    ValueError
        If ``snr`` is not positive.
    """
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr}")
    var = x.flatten(-ndim).var(dim=-1, unbiased=False)
    return torch.sqrt(var / snr)


def estimate_sigma(y: torch.Tensor, mask: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Estimate the noise standard deviation of observations from their high-frequency power.

    Parameters
    ----------
    y : torch.Tensor
        Observations ``(..., D, H, W)`` (``(..., D, W)`` with a 2D mask).
    mask : torch.Tensor
        Half-grid measured-region mask of :func:`cryolearn.physics.missing_wedge_mask`,
        ``(D, H, W // 2 + 1)``.
    cutoff : float
        Frequency radius in cycles per voxel above which the observations are
        taken to hold noise only; the default ``0.5`` keeps the corners of the
        Fourier cube outside the Nyquist sphere.

    Returns
    -------
    torch.Tensor
        ``sigma`` of shape ``y.shape[:-mask.ndim]`` (one per volume), the
        noise standard deviation per voxel *before* masking, in the unit of
        ``y``, as :func:`simulate_observation` and the methods use it.

    Raises
    ------
    ValueError
        If ``y``'s last axes do not match the mask's half grid, or no measured
        coefficient lies beyond ``cutoff``.

    Notes
    -----
    With the orthonormal FFT, white noise of variance ``sigma^2`` per voxel has
    ``E |n_hat(k)|^2 = sigma^2`` at every frequency ``k``, and masked noise
    ``M n`` keeps this on the measured coefficients. So
    ``sigma^2 = mean |y_hat(k)|^2`` over measured ``k`` with ``|k| >= cutoff``,
    exactly in expectation when the signal has no power there (a band-limited
    map) and an over-estimate by the signal's power otherwise. On the shipped
    structure maps at SNR 1 (boxes of 32^3) the over-estimate is about 3%; at
    SNR 10 about 30%. Source: the book's appendix on notation and conventions (the noise model ``y = M x + M n``);
    the usual noise-floor estimate from the outer Fourier shells.
    """
    nd = mask.ndim
    shape = tuple(y.shape[-nd:])
    if y.ndim < nd or rfft_shape(shape) != tuple(mask.shape):
        raise ValueError(f"observations of shape {tuple(y.shape)} do not match the mask's half grid {tuple(mask.shape)}")
    freqs = fourier_grid(shape, device=y.device, dtype=y.dtype)
    radius = torch.sqrt(sum(f**2 for f in freqs))
    region = mask.to(y.device) & (radius >= cutoff)
    if not bool(region.any()):
        raise ValueError(f"no measured Fourier coefficient lies beyond the cutoff {cutoff} cycles/voxel")
    y_hat = torch.fft.rfftn(y, dim=tuple(range(-nd, 0)), norm="ortho")
    power = y_hat.abs().pow(2)[..., region]  # (..., n_region)
    return power.mean(dim=-1).sqrt()


def add_noise(
    x: torch.Tensor,
    sigma: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add white Gaussian noise, masked by the missing wedge if a mask is given.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D, H, W)`` (any number of spatial axes matching ``mask``).
    sigma : float or torch.Tensor
        Noise standard deviation per voxel before masking; a tensor of shape
        ``x.shape[:-mask.ndim]`` gives one value per volume.
    mask : torch.Tensor, optional
        Half-grid measured-region mask: adds ``M n`` instead of ``n``.
    generator : torch.Generator, optional
        Seeds the noise (must live on ``x``'s device).

    Returns
    -------
    torch.Tensor
        ``x + n`` or ``x + M n``, same shape, dtype and device as ``x``.
    """
    n = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    s = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if s.ndim:
        s = s.reshape(*s.shape, *[1] * (x.ndim - s.ndim))
    n = n * s
    if mask is not None:
        n = apply_missing_wedge(n, mask)
    return x + n


def simulate_observation(
    x: torch.Tensor,
    mask: torch.Tensor,
    snr: float | None = None,
    sigma: float | torch.Tensor | None = None,
    masked_noise: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate observed subtomograms ``y = M x + M n`` (or ``M x + n``).

    Parameters
    ----------
    x : torch.Tensor
        Clean volumes ``(..., D, H, W)`` (already rotated; see
        :func:`cryolearn.physics.rotate_cube` and
        :func:`cryolearn.physics.rotate_volume`). 2D images ``(..., D, W)``
        work with a 2D mask.
    mask : torch.Tensor
        Half-grid mask from :func:`cryolearn.physics.missing_wedge_mask`.
    snr : float, optional
        Signal-to-noise ratio ``var(x) / sigma^2`` per volume (see
        :func:`noise_sigma`). Give exactly one of ``snr`` and ``sigma``.
    sigma : float or torch.Tensor, optional
        Noise standard deviation per voxel before masking.
    masked_noise : bool
        True (default): ``y = M x + M n``, as in a reconstructed tomogram.
        False: ``y = M x + n``, the form the CryoGEN-I seed writes.
    generator : torch.Generator, optional
        Seeds the noise.

    Returns
    -------
    y : torch.Tensor
        Observations, same shape as ``x``.
    sigma : torch.Tensor
        The noise standard deviation used, shape ``x.shape[:-mask.ndim]``.

    Raises
    ------
    ValueError
        If neither or both of ``snr`` and ``sigma`` are given.

    Notes
    -----
    Source: the book's appendix on notation and conventions.
    """
    if (snr is None) == (sigma is None):
        raise ValueError("give exactly one of snr and sigma")
    nd = mask.ndim
    if snr is not None:
        sigma_t = noise_sigma(x, snr, ndim=nd)
    else:
        sigma_t = torch.as_tensor(sigma, device=x.device, dtype=x.dtype).expand(x.shape[:-nd]).clone()
    mx = apply_missing_wedge(x, mask)
    y = add_noise(mx, sigma_t, mask=mask if masked_noise else None, generator=generator)
    return y, sigma_t


def rotation_proxy(
    x: torch.Tensor,
    mask: torch.Tensor,
    index: int | torch.Tensor,
    sigma: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Re-degrade candidate volumes: ``T(x; R) + M n = M(R x) + M n``.

    Parameters
    ----------
    x : torch.Tensor
        Candidate clean volumes ``(..., N, N, N)`` (or ``(..., N, N)`` with a
        2D mask); cubic box.
    mask : torch.Tensor
        Half-grid measured-region mask.
    index : int or torch.Tensor
        Cube-group element(s) ``R`` (see :func:`cryolearn.physics.cube_rotations`),
        one per volume when a tensor.
    sigma : float or torch.Tensor, optional
        If given, masked noise of this standard deviation is added.
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor
        Same shape as ``x``; differentiable in ``x``.

    Notes
    -----
    Source: the book's appendix on notation and conventions ("the rotation proxy"). If ``x`` is a plausible
    clean volume, the result is distributed like a real observation; the
    four methods learn from comparing such volumes with real observations.
    """
    rx = rotate_cube(x, index, ndim=mask.ndim)
    out = apply_missing_wedge(rx, mask)
    if sigma is not None:
        out = add_noise(out, sigma, mask=mask, generator=generator)
    return out


def random_redegrade(
    x: torch.Tensor,
    mask: torch.Tensor,
    rotations: torch.Tensor,
    sigma: float | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """The rotation proxy ``M(R x) + M n`` with ``R`` drawn per volume from a set of cube rotations.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, D, H, W)`` candidate clean volumes (``(B, D, W)`` with a 2D mask).
    mask : torch.Tensor
        Half-grid measured-region mask, ``(D, H, W//2+1)`` or ``(D, W//2+1)``.
    rotations : torch.Tensor
        ``(G,)`` int64 cube-group indices (:func:`cryolearn.physics.cube_rotations`)
        to draw ``R`` from, uniformly.
    sigma : float, optional
        Standard deviation of the masked noise per voxel, in the unit of
        ``x``; ``None`` adds no noise.
    generator : torch.Generator
        Draws the rotations (``B`` integers), then the noise (``x.shape``
        normals), on the generator's device; the results are moved to
        ``x``'s device.

    Returns
    -------
    torch.Tensor
        ``(B, D, H, W)``, differentiable in ``x``, on ``x``'s device and dtype.

    Notes
    -----
    Source: book chapters "Generative priors for inverse problems" (section
    4, the rotation proxy) and "CryoGEN-II".
    The order of the draws (rotations first, then noise) is part of the
    contract: the methods' training is reproducible from their seed.
    """
    pick = torch.randint(0, rotations.numel(), (x.shape[0],), generator=generator, device=generator.device)
    idx = rotations.to(pick.device)[pick].to(x.device)
    out = rotation_proxy(x, mask, idx)
    if sigma is not None:
        n = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
        out = out + apply_missing_wedge(n * sigma, mask)
    return out


def redegrade_all(x: torch.Tensor, mask: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """``M(R x)`` for every rotation ``R`` of a set, without noise.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D, H, W)`` candidate clean volumes (``(..., D, W)`` with a 2D mask).
    mask : torch.Tensor
        Half-grid measured-region mask.
    rotations : torch.Tensor
        ``(G,)`` int64 cube-group indices.

    Returns
    -------
    torch.Tensor
        ``(G, ..., D, H, W)``, differentiable in ``x``.

    Notes
    -----
    Source: book chapters "CryoGEN-I" (the rotation-averaged energy) and
    "CryoWGEN-I" (the witness).
    """
    rots = rotations.to(x.device)
    xr = x.unsqueeze(0).expand(rots.numel(), *x.shape)
    return rotation_proxy(xr, mask, rots.view(-1, *[1] * (x.ndim - mask.ndim)))
