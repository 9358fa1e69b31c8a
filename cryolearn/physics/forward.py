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

from .fourier import fourier_grid, hermitian_weights, rfft_shape
from .missing_wedge import apply_missing_wedge
from .rotations import rotate_cube

__all__ = ["noise_sigma", "estimate_sigma", "estimate_noise_spectrum", "shell_index", "noise_filter", "add_noise", "simulate_observation", "rotation_proxy", "random_redegrade", "redegrade_all"]


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


def shell_index(shape: tuple[int, ...] | torch.Size, device: torch.device | str | None = None) -> torch.Tensor:
    """Fourier shell of every coefficient of the ``rfftn`` half grid, one Fourier voxel wide.

    Parameters
    ----------
    shape : tuple of int
        Real-space shape ``(D, H, W)`` (or ``(D, W)``).
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        ``rfft_shape(shape)`` long: ``round(|k| N)`` with ``|k|`` in cycles
        per voxel and ``N`` the shortest side, so shell ``s`` holds the
        frequencies ``s / N``; the corners beyond Nyquist get shells up to
        about ``sqrt(ndim) N / 2``.
    """
    n = min(shape)
    radius = torch.sqrt(sum(f**2 for f in fourier_grid(tuple(shape), device=device)))
    return torch.round(radius * n).long()


def estimate_noise_spectrum(y: torch.Tensor, mask: torch.Tensor, quantile: float = 0.1) -> torch.Tensor:
    """Estimate the noise power per Fourier shell of observations (coloured noise) from their measured region.

    Parameters
    ----------
    y : torch.Tensor
        ``(N, D, H, W)`` observations (``(N, D, W)`` with a 2D mask), e.g.
        normalised subtomograms; at least one.
    mask : torch.Tensor
        Half-grid measured-region mask ``(D, H, W // 2 + 1)``
        (:func:`cryolearn.physics.missing_wedge_mask`).
    quantile : float
        Per shell, the quantile over the ``N`` observations of their mean
        measured power (in ``[0, 1]``; ``0.5`` the median, ``0`` the least).

    Returns
    -------
    torch.Tensor
        ``(S,)`` power per Fourier coefficient (orthonormal FFT) in shell
        ``s = 0 .. S-1`` of :func:`shell_index` (``S`` covers every
        coefficient of the half grid, corners included), in the squared unit
        of ``y``, on ``y``'s device and dtype. White noise of standard
        deviation ``sigma`` has the flat spectrum ``sigma^2``; the noise of a
        reconstructed tomogram is not flat (the weighting of weighted
        back-projection and SIRT, binning and interpolation shape it). A
        shell without a measured coefficient takes the value of the nearest
        shell that has one.

    Raises
    ------
    ValueError
        If ``y`` does not match the mask's half grid, is empty or not finite,
        or ``quantile`` is outside ``[0, 1]``.

    Notes
    -----
    The measured power of a shell is signal plus noise. Taking a low
    quantile over many observations keeps the shells' noise floor: boxes
    with little structure at a frequency show mostly noise there. Exact in
    expectation (up to the spread of the quantile) when the signal is absent,
    an over-estimate by the signal's power otherwise, most at low
    frequencies where structure dominates. :func:`estimate_sigma` is the
    white special case (one value, from the outer corners). Used by the
    methods to re-degrade candidates with noise of this spectrum, ``M n_c``
    with ``n_c = F^-1 sqrt(S) F n``. Source: the book's appendix on notation
    and conventions (the noise model); the noise power spectrum per shell is
    the field's usual description of tomographic noise.
    """
    nd = mask.ndim
    shape = tuple(y.shape[-nd:])
    if y.ndim != nd + 1 or rfft_shape(shape) != tuple(mask.shape):
        raise ValueError(f"observations of shape {tuple(y.shape)} are not a batch matching the mask's half grid {tuple(mask.shape)}")
    if y.shape[0] < 1 or not torch.isfinite(y).all():
        raise ValueError("need at least one finite observation")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
    shell = shell_index(shape, device=y.device).flatten()
    n_shells = int(shell.max()) + 1
    m = mask.to(y.device).flatten().to(y.dtype)
    w = hermitian_weights(shape, None, y).flatten() * m  # (K,) weights of measured coefficients
    power = torch.fft.rfftn(y, dim=tuple(range(-nd, 0)), norm="ortho").abs().pow(2).flatten(1)  # (N, K)
    num = power.new_zeros(power.shape[0], n_shells).index_add_(1, shell, power * w)
    den = w.new_zeros(n_shells).index_add_(0, shell, w)
    have = den > 0
    per_shell = torch.quantile(num[:, have] / den[have], quantile, dim=0)  # (S_measured,)
    idx = torch.arange(n_shells, device=y.device)
    src = idx[have]
    nearest = (idx[:, None] - src[None, :]).abs().argmin(dim=1)
    return per_shell[nearest].to(y.dtype)


def noise_filter(spectrum: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Half-grid filter ``m(k) sqrt(S(|k|))`` that turns unit white noise into masked noise of spectrum ``S``.

    Parameters
    ----------
    spectrum : torch.Tensor
        ``(S,)`` noise power per shell of :func:`shell_index` for boxes of the
        mask's shape (from :func:`estimate_noise_spectrum`); non-negative.
    mask : torch.Tensor
        Half-grid measured-region mask ``(D, H, W // 2 + 1)``.

    Returns
    -------
    torch.Tensor
        ``mask.shape``, real, on ``spectrum``'s device and dtype: multiply
        ``rfftn(n, norm="ortho")`` of unit white noise ``n`` by it and
        transform back. A flat spectrum ``sigma^2`` gives ``sigma M n``.

    Raises
    ------
    ValueError
        If the spectrum is not 1D, has a negative or non-finite value, or
        has fewer shells than the mask's grid needs.
    """
    nd = mask.ndim
    shape = tuple(mask.shape[:-1]) + (2 * (mask.shape[-1] - 1),)
    shell = shell_index(shape, device=spectrum.device)
    if spectrum.ndim != 1 or not (torch.isfinite(spectrum).all() and (spectrum >= 0).all()):
        raise ValueError("the noise spectrum must be a 1D tensor of finite non-negative powers")
    if spectrum.numel() <= int(shell.max()):
        raise ValueError(f"the noise spectrum has {spectrum.numel()} shells; boxes of {shape[:nd]} need {int(shell.max()) + 1}")
    return spectrum.sqrt()[shell] * mask.to(spectrum.device).to(spectrum.dtype)


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
    noise_filter: torch.Tensor | None = None,
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
    noise_filter : torch.Tensor, optional
        Half-grid filter of :func:`noise_filter` (the mask times the square
        root of a noise spectrum per shell): the noise is then coloured,
        ``F^-1 (filter * F n)`` with ``n`` unit white noise, and ``sigma``
        only says whether to add it (``None``: no noise).

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
        if noise_filter is None:
            out = out + apply_missing_wedge(n * sigma, mask)
        else:
            dims = tuple(range(-mask.ndim, 0))
            n_hat = torch.fft.rfftn(n, dim=dims, norm="ortho") * noise_filter.to(device=x.device, dtype=x.dtype)
            out = out + torch.fft.irfftn(n_hat, s=x.shape[-mask.ndim:], dim=dims, norm="ortho")
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
