"""Tilt series: projection of volumes and weighted back-projection.

A tomogram is reconstructed from a tilt series: one projection image per tilt
angle, the specimen rotated about the tilt axis Y and the beam along Z (the
geometry of IMOD and RELION, the same as :mod:`cryolearn.physics.missing_wedge`).
Volumes are stored ``(..., D, H, W) = (z, y, x)`` and images ``(..., T, H, W)
= (tilt, y, x)``. Coordinates are in voxels about the box centre ``n // 2``
of each axis (the centre of :func:`torch.fft.rfftn`).

For the tilt angle ``theta`` the detector axis is ``u = x cos(theta) + z
sin(theta)`` and the rays run along ``(-sin(theta), cos(theta))`` in the
``(x, z)`` plane, so that by the central-slice theorem [1]_ the 2D Fourier
transform of the image is the central plane of the 3D transform that
contains ``k_y`` and the direction ``(k_x, k_z) = (cos(theta), sin(theta))``:
the plane :func:`cryolearn.physics.missing_wedge_mask` counts as measured
for that angle. The union of these planes over a tilt range is the measured
region; what is left is the missing wedge, plus the gaps between neighbouring
planes at high frequency (the Crowther criterion [2]_).

Because the tilt axis is Y, the problem separates into independent 2D
problems, one per ``y`` row: projection samples each ``(z, x)`` plane along
its rays with bilinear interpolation and sums; back-projection smears each
image row back along the rays. Weighted back-projection (WBP) filters each
image across the tilt axis with the ramp ``|k_x|`` (the Ram-Lak kernel built
in real space, so that the mean is kept [3]_) and weights each tilt by the
angle it stands for. Source: book chapter "From a tilt series to a tomogram".

References
----------
.. [1] R. N. Bracewell, "Strip integration in radio astronomy", Aust. J.
   Phys. 9, 198-217 (1956); R. A. Crowther, D. J. DeRosier and A. Klug,
   Proc. R. Soc. Lond. A 317, 319-340 (1970).
.. [2] R. A. Crowther, D. J. DeRosier and A. Klug (1970), as above.
.. [3] A. C. Kak and M. Slaney, "Principles of Computerized Tomographic
   Imaging", IEEE Press (1988), chapter 3.
.. [4] teamtomo, torch-ctf (BSD-3-Clause), https://github.com/teamtomo/torch-ctf
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "project",
    "backproject",
    "ramp_filter",
    "tilt_weights",
    "weighted_backprojection",
    "add_tilt_noise",
    "ctf_2d",
    "apply_ctf",
    "phase_flip",
]


def _angles(tilt_angles: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(tilt_angles, dtype=torch.float64).flatten()
    if a.numel() == 0:
        raise ValueError("tilt_angles is empty")
    if not torch.isfinite(a).all() or (a.abs() >= 90).any():
        raise ValueError(f"tilt angles must be finite and inside (-90, 90) degrees, got {a.tolist()}")
    return torch.deg2rad(a).to(device=like.device, dtype=like.dtype)


def _check_volume(volume: torch.Tensor) -> None:
    if volume.ndim < 3:
        raise ValueError(f"volume must have shape (..., D, H, W), got {tuple(volume.shape)}")
    if not torch.is_floating_point(volume):
        raise ValueError(f"volume must be a floating-point tensor, got {volume.dtype}")
    if not torch.isfinite(volume).all():
        raise ValueError("volume contains NaN or Inf values")


def _norm(coord: torch.Tensor, n: int) -> torch.Tensor:
    """Centre-relative voxel coordinate -> grid_sample's [-1, 1] (align_corners=True)."""
    return (coord + n // 2) * (2.0 / max(n - 1, 1)) - 1.0


def project(volume: torch.Tensor, tilt_angles: Sequence[float] | torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Project volumes at the tilt angles of a tilt series (tilt axis Y, beam Z).

    Parameters
    ----------
    volume : torch.Tensor
        ``(..., D, H, W)`` volumes, ``(z, y, x)``; any box, a slab included.
    tilt_angles : sequence of float or torch.Tensor
        ``(T,)`` tilt angles in degrees, each inside (-90, 90), e.g. from
        :func:`cryolearn.data.read_tlt`.
    chunk : int
        Tilts sampled at once (bounds the memory to about ``chunk * L``
        times the volume, ``L`` the ray length in voxels).

    Returns
    -------
    torch.Tensor
        ``(..., T, H, W)`` images: line integrals along the rays, in voxel
        value times voxel length, with the detector axis ``u`` along X
        (``W`` pixels about ``W // 2``). Device and dtype follow ``volume``.

    Raises
    ------
    ValueError
        If ``volume`` is not at least 3D, not floating point or not finite,
        or if an angle lies outside (-90, 90) degrees or there is none.

    Notes
    -----
    At ``theta = 0`` the image is exactly ``volume.sum(-3)``. Rays are
    sampled at unit steps with bilinear interpolation in the ``(z, x)``
    plane; samples outside the box count as 0.
    """
    _check_volume(volume)
    theta = _angles(tilt_angles, volume)
    batch, (D, H, W) = volume.shape[:-3], volume.shape[-3:]
    v = volume.reshape(-1, D, H, W).permute(0, 2, 1, 3)  # (N, H, D, W): y as channels, (z, x) as the image
    n = v.shape[0]
    L = int(math.ceil(math.hypot(D, W))) + 1
    t = torch.arange(L, device=v.device, dtype=v.dtype) - L // 2  # (L,) along the ray
    u = torch.arange(W, device=v.device, dtype=v.dtype) - W // 2  # (W,) detector
    out = []
    for k in range(0, theta.numel(), chunk):
        th = theta[k : k + chunk].view(-1, 1, 1)  # (t, 1, 1)
        c, s = torch.cos(th), torch.sin(th)
        x = u.view(1, 1, -1) * c - t.view(1, -1, 1) * s  # (t, L, W)
        z = u.view(1, 1, -1) * s + t.view(1, -1, 1) * c
        grid = torch.stack([_norm(x, W), _norm(z, D)], dim=-1)  # (t, L, W, 2) as (x, y) for grid_sample
        grid = grid.reshape(1, -1, W, 2).expand(n, -1, -1, -1)
        smp = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (N, H, t*L, W)
        out.append(smp.view(n, H, -1, L, W).sum(3))  # (N, H, t, W)
    img = torch.cat(out, dim=2).permute(0, 2, 1, 3)  # (N, T, H, W)
    return img.reshape(*batch, theta.numel(), H, W)


def backproject(
    images: torch.Tensor, tilt_angles: Sequence[float] | torch.Tensor, depth: int, weights: torch.Tensor | None = None,
    chunk: int = 8,
) -> torch.Tensor:
    """Back-project images along their rays into a volume (the adjoint of :func:`project`, up to interpolation).

    Parameters
    ----------
    images : torch.Tensor
        ``(..., T, H, W)`` images of a tilt series.
    tilt_angles : sequence of float or torch.Tensor
        ``(T,)`` tilt angles in degrees.
    depth : int
        ``D``, the number of Z slices of the volume to fill.
    weights : torch.Tensor, optional
        ``(T,)`` weight of each tilt (default 1).
    chunk : int
        Tilts back-projected at once.

    Returns
    -------
    torch.Tensor
        ``(..., D, H, W)``: ``sum_t weights_t * images_t(u = x cos + z sin, y)``,
        linear interpolation along ``u``.

    Raises
    ------
    ValueError
        If the images are not ``(..., T, H, W)`` with ``T`` matching the
        angles, are not finite, or ``depth < 1``.
    """
    if images.ndim < 3:
        raise ValueError(f"images must have shape (..., T, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or Inf values")
    theta = _angles(tilt_angles, images)
    T, H, W = images.shape[-3:]
    if theta.numel() != T:
        raise ValueError(f"{theta.numel()} tilt angles for {T} images")
    if depth < 1:
        raise ValueError(f"depth must be positive, got {depth}")
    w = torch.ones(T, device=images.device, dtype=images.dtype) if weights is None else weights.to(images)
    batch = images.shape[:-3]
    img = images.reshape(-1, T, H, W)
    n = img.shape[0]
    x = torch.arange(W, device=img.device, dtype=img.dtype) - W // 2
    z = torch.arange(depth, device=img.device, dtype=img.dtype) - depth // 2
    vol = torch.zeros(n, H, depth, W, device=img.device, dtype=img.dtype)
    for k in range(0, T, chunk):
        th = theta[k : k + chunk].view(-1, 1, 1)
        tk = th.shape[0]
        u = x.view(1, 1, -1) * torch.cos(th) + z.view(1, -1, 1) * torch.sin(th)  # (t, D, W)
        grid = torch.stack([_norm(u, W), torch.zeros_like(u)], dim=-1)  # sample rows: (u, row 0)
        grid = grid.unsqueeze(0).expand(n, -1, -1, -1, -1).reshape(n * tk, depth, W, 2)
        rows = img[:, k : k + tk].reshape(n * tk, H, 1, W)  # y as channels, a 1-pixel-high image per y
        smp = F.grid_sample(rows, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (n*t, H, D, W)
        vol += (smp.view(n, tk, H, depth, W) * w[k : k + tk].view(1, -1, 1, 1, 1)).sum(1)
    return vol.permute(0, 2, 1, 3).reshape(*batch, depth, H, W)


def ramp_filter(images: torch.Tensor) -> torch.Tensor:
    """Filter images across the tilt axis (along X) with the ramp ``|k_x|``.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., W)``: rows along X (e.g. ``(..., T, H, W)`` tilt series).

    Returns
    -------
    torch.Tensor
        Same shape: each row convolved with the band-limited Ram-Lak kernel
        ``h[0] = 1/4``, ``h[n] = -1 / (pi n)^2`` for odd ``n``, 0 for even
        ``n`` (Kak and Slaney 1988, eq. 61), through a zero-padded FFT so
        that nothing wraps around.
    """
    W = images.shape[-1]
    P = 2 * W
    n = torch.arange(P, device=images.device, dtype=images.dtype)
    n = torch.where(n > P // 2, n - P, n)  # signed offsets of the circular kernel
    h = torch.where(n.remainder(2) == 1, -1.0 / (math.pi * n).pow(2).clamp_min(1e-30), torch.zeros_like(n))
    h = torch.where(n == 0, torch.full_like(n, 0.25), h)
    H = torch.fft.rfft(h, dim=-1).real  # real and even kernel
    out = torch.fft.irfft(torch.fft.rfft(images, n=P, dim=-1) * H, n=P, dim=-1)
    return out[..., :W]


def tilt_weights(tilt_angles: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The angle (radians) each tilt stands for: half the gap to each neighbour.

    Parameters
    ----------
    tilt_angles : sequence of float or torch.Tensor
        ``(T,)`` angles in degrees, any order.

    Returns
    -------
    torch.Tensor
        ``(T,)`` float64 weights in radians, in the order given; the end
        tilts count their inner half-gap twice. One tilt gets ``pi``.
    """
    a = torch.as_tensor(tilt_angles, dtype=torch.float64).flatten()
    if a.numel() == 1:
        return torch.full((1,), math.pi, dtype=torch.float64)
    order = torch.argsort(a)
    s = torch.deg2rad(a[order])
    gaps = s[1:] - s[:-1]
    w = torch.empty_like(s)
    w[1:-1] = (gaps[1:] + gaps[:-1]) / 2
    w[0], w[-1] = gaps[0], gaps[-1]
    out = torch.empty_like(w)
    out[order] = w
    return out


def weighted_backprojection(
    images: torch.Tensor, tilt_angles: Sequence[float] | torch.Tensor, depth: int, chunk: int = 8
) -> torch.Tensor:
    """Reconstruct a tomogram from a tilt series by weighted back-projection.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., T, H, W)`` tilt series (line integrals, as :func:`project` makes).
    tilt_angles : sequence of float or torch.Tensor
        ``(T,)`` tilt angles in degrees.
    depth : int
        Number of Z slices of the tomogram.
    chunk : int
        Tilts back-projected at once.

    Returns
    -------
    torch.Tensor
        ``(..., depth, H, W)`` tomogram in the units of the original volume:
        a tilt series covering (-90, 90) in fine steps gives back the volume;
        a limited range leaves the missing wedge empty.

    Notes
    -----
    The filtered back-projection formula ``f = int_0^pi (p_theta * h)(u)
    dtheta`` (Kak and Slaney 1988, chapter 3) with each tilt weighted by
    :func:`tilt_weights`.
    """
    w = tilt_weights(tilt_angles).to(images)
    return backproject(ramp_filter(images), tilt_angles, depth, weights=w, chunk=chunk)


def add_tilt_noise(
    images: torch.Tensor, dose: float | Sequence[float] | torch.Tensor, voxel_size: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Shot noise of a given electron dose per tilt, Gaussian approximation.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., T, H, W)`` projections of the specimen's contrast (unit-free:
        the fraction of electrons scattered out of a pixel, small).
    dose : float or sequence of float
        Electrons per Angstrom^2 per tilt: one number for every tilt, or
        ``(T,)`` (dose-symmetric schemes give later tilts less signal when
        the specimen is damaged; here only the count statistics).
    voxel_size : float
        Angstrom per pixel.
    generator : torch.Generator, optional
        For reproducible noise.

    Returns
    -------
    torch.Tensor
        ``images + n``, ``n ~ N(0, 1 / (dose * voxel_size^2))`` per pixel:
        the relative Poisson fluctuation of ``dose * voxel_size^2`` counts.

    Raises
    ------
    ValueError
        If a dose or the voxel size is not positive, or the number of doses
        does not match the tilts.
    """
    T = images.shape[-3]
    d = torch.as_tensor(dose, dtype=images.dtype, device=images.device).flatten()
    if d.numel() not in (1, T):
        raise ValueError(f"{d.numel()} doses for {T} tilts")
    if not (d > 0).all() or not voxel_size > 0:
        raise ValueError(f"dose and voxel_size must be positive, got dose={d.tolist()}, voxel_size={voxel_size}")
    std = (d * voxel_size**2).rsqrt().expand(T).view(T, 1, 1)
    dev = generator.device if generator is not None else images.device
    n = torch.randn(images.shape, generator=generator, device=dev, dtype=images.dtype).to(images.device)
    return images + n * std


def ctf_2d(
    shape: Sequence[int], voxel_size: float, defocus: float | torch.Tensor, voltage: float = 300.0,
    spherical_aberration: float = 2.7, amplitude_contrast: float = 0.07, device: torch.device | str | None = None,
) -> torch.Tensor:
    """The CTF of images on the rfft half grid, computed by teamtomo's torch-ctf.

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(H, W)``.
    voxel_size : float
        Angstrom per pixel.
    defocus : float or torch.Tensor
        Defocus in micrometres, positive underfocus; ``(T,)`` for one per image.
    voltage : float
        Acceleration voltage in kV.
    spherical_aberration : float
        Cs in mm.
    amplitude_contrast : float
        Fraction of amplitude contrast, in [0, 1].
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        ``(..., H, W//2+1)`` float32 CTF (no astigmatism, no envelope): the
        leading axes follow ``defocus``.

    Raises
    ------
    ValueError
        If ``voxel_size`` is not positive or ``amplitude_contrast`` is outside [0, 1].

    Notes
    -----
    The defocus gradient across a tilted image is not modelled: each image
    gets one defocus.
    """
    from torch_ctf import calculate_ctf_2d

    if not voxel_size > 0 or not 0 <= amplitude_contrast <= 1:
        raise ValueError(f"need voxel_size > 0 and amplitude_contrast in [0, 1], got {voxel_size}, {amplitude_contrast}")
    d = torch.as_tensor(defocus, dtype=torch.float32, device=device)
    return calculate_ctf_2d(
        defocus=d, astigmatism=0.0, astigmatism_angle=0.0, voltage=voltage, spherical_aberration=spherical_aberration,
        amplitude_contrast=amplitude_contrast, phase_shift=0.0, pixel_size=voxel_size, image_shape=tuple(shape),
        rfft=True, fftshift=False,
    )


def apply_ctf(images: torch.Tensor, ctf: torch.Tensor) -> torch.Tensor:
    """Multiply images by a CTF in Fourier space.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., H, W)``.
    ctf : torch.Tensor
        ``(..., H, W//2+1)`` from :func:`ctf_2d`, broadcast against the images.

    Returns
    -------
    torch.Tensor
        ``irfft2(ctf * rfft2(images))``, shape, dtype and device of ``images``.
    """
    f = torch.fft.rfft2(images, dim=(-2, -1), norm="ortho") * ctf.to(images.device, images.dtype)
    return torch.fft.irfft2(f, s=images.shape[-2:], dim=(-2, -1), norm="ortho")


def phase_flip(images: torch.Tensor, ctf: torch.Tensor) -> torch.Tensor:
    """Correct images by phase flipping: multiply by the sign of the CTF.

    Parameters
    ----------
    images : torch.Tensor
        ``(..., H, W)`` images recorded under ``ctf``.
    ctf : torch.Tensor
        ``(..., H, W//2+1)`` from :func:`ctf_2d`.

    Returns
    -------
    torch.Tensor
        Images whose every Fourier coefficient has the sign of the specimen's
        (the amplitudes stay damped by ``|ctf|``; near the zeros nothing is
        recovered).
    """
    return apply_ctf(images, torch.sign(ctf))
