"""Rotations of volumes about their centre: the exact cube group and random SO(3).

Two kinds:

- the 24 proper rotations of the cube (4 of the square in 2D), applied
  exactly by axis permutations and flips, no interpolation
  (:func:`cube_rotations`, :func:`rotate_cube`);
- continuous, uniformly distributed rotations of SO(3) applied by trilinear
  interpolation (:func:`random_so3`, :func:`rotate_volume`).

Rotation matrices act on voxel coordinates in the storage order
``(z, y, x)`` relative to the box centre ``(N - 1) / 2``: the rotated volume
is ``(R x)(p) = x(R^T p)``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

__all__ = [
    "quarter_turns_xz",
    "cube_rotations",
    "rotate_cube",
    "random_cube_indices",
    "random_so3",
    "rotate_volume",
]


@lru_cache(maxsize=None)
def _cube_group(ndim: int) -> tuple[np.ndarray, tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]]:
    """Signed permutation matrices of det +1 and the (perm, flips) that apply them."""
    mats, ops = [], []
    for perm in itertools.permutations(range(ndim)):
        for signs in itertools.product((1, -1), repeat=ndim):
            # Operation: y = x.permute(perm).flip(dims where sign == -1).
            # y[p] = x[q] with q[perm[i]] = s_i * p[i] (centred coordinates), i.e. q = R^T p.
            rt = np.zeros((ndim, ndim), dtype=np.int64)
            for i in range(ndim):
                rt[perm[i], i] = signs[i]
            r = rt.T
            if round(np.linalg.det(r)) != 1:
                continue
            mats.append(r)
            ops.append((perm, tuple(i for i in range(ndim) if signs[i] == -1)))
    order = sorted(range(len(mats)), key=lambda k: (not np.array_equal(mats[k], np.eye(ndim)), mats[k].tolist()))
    return np.stack([mats[k] for k in order]), tuple(ops[k] for k in order)


def cube_rotations(ndim: int = 3, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The proper rotations of the cube (24) or of the square (4) as matrices.

    Parameters
    ----------
    ndim : {3, 2}
        3 for volumes ``(z, y, x)``, 2 for images ``(z, x)``.
    dtype : torch.dtype
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        ``(24, 3, 3)`` or ``(4, 2, 2)`` signed permutation matrices with
        determinant +1, acting on ``(z, y, x)`` coordinates; index 0 is the
        identity. :func:`rotate_cube` applies element ``i`` exactly.

    Raises
    ------
    ValueError
        If ``ndim`` is not 2 or 3.

    Notes
    -----
    Source: the book's appendix on notation and conventions (the default rotations of the rotation proxy).
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    mats, _ = _cube_group(ndim)
    return torch.as_tensor(mats, dtype=dtype, device=device)


@lru_cache(maxsize=32)
def _gather_index(shape: tuple[int, ...], device_str: str) -> torch.Tensor:
    """(G, prod(shape)) flat source indices: rotated.flatten()[j] = x.flatten()[idx[g, j]]."""
    ndim = len(shape)
    _, ops = _cube_group(ndim)
    base = torch.arange(int(np.prod(shape)), device=device_str).view(shape)
    out = []
    for perm, flips in ops:
        out.append(base.permute(perm).flip(flips).reshape(-1) if flips else base.permute(perm).reshape(-1))
    return torch.stack(out)


def rotate_cube(x: torch.Tensor, index: int | torch.Tensor, ndim: int = 3) -> torch.Tensor:
    """Rotate volumes exactly by elements of the cube (square) group.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., N, N, N)`` volumes (``(..., N, N)`` images if ``ndim=2``).
    index : int or torch.Tensor
        Group element(s) in ``[0, 24)`` (``[0, 4)`` in 2D), as in
        :func:`cube_rotations`. An int rotates every volume alike; an integer
        tensor of shape ``x.shape[:-ndim]`` (or broadcastable to it) rotates
        each volume by its own element, in one batched gather.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``; ``out(p) = x(R^T p)`` about the
        box centre ``(N - 1) / 2``.

    Raises
    ------
    ValueError
        If the box is not cubic (square), or an index is out of range.

    Notes
    -----
    Source: the book's appendix on notation and conventions. No interpolation: values are permuted exactly.
    """
    if x.ndim < ndim:
        raise ValueError(f"x must have at least {ndim} dims, got shape {tuple(x.shape)}")
    spatial = tuple(x.shape[-ndim:])
    if len(set(spatial)) != 1:
        raise ValueError(f"cube rotations need a cubic box, got spatial shape {spatial}")
    n_group = 24 if ndim == 3 else 4
    if isinstance(index, int):
        if not 0 <= index < n_group:
            raise ValueError(f"rotation index must be in [0, {n_group}), got {index}")
        _, ops = _cube_group(ndim)
        perm, flips = ops[index]
        lead = x.ndim - ndim
        y = x.permute(*range(lead), *(lead + p for p in perm))
        return y.flip(tuple(lead + f for f in flips)) if flips else y
    index = torch.as_tensor(index, device=x.device).long()
    if index.numel() and (index.min() < 0 or index.max() >= n_group):
        raise ValueError(f"rotation indices must be in [0, {n_group})")
    batch = x.shape[:-ndim]
    index = index.expand(batch) if index.ndim else index.expand(batch)
    table = _gather_index(spatial, str(x.device))  # (G, V)
    flat = x.reshape(*batch, -1)
    src = table[index]  # (..., V)
    return torch.gather(flat, -1, src).view(x.shape)


def inverse_cube_index(index: int | torch.Tensor, ndim: int = 3) -> int | torch.Tensor:
    """The group element that undoes cube rotation ``index``: ``rotate_cube(rotate_cube(x, i), inverse_cube_index(i)) == x``.

    Parameters
    ----------
    index : int or torch.Tensor
        Element(s) of :func:`cube_rotations` (integer tensor of any shape).
    ndim : {3, 2}

    Returns
    -------
    int or torch.Tensor
        The inverse element(s), of ``index``'s type (and device).

    Raises
    ------
    ValueError
        If an index is out of range.

    Notes
    -----
    Source: the book's appendix on notation and conventions. The inverse of a
    rotation matrix is its transpose.
    """
    mats = cube_rotations(ndim, dtype=torch.float64)
    table = torch.stack([(mats - m.T).abs().flatten(1).sum(1).argmin() for m in mats])
    if isinstance(index, int):
        if not 0 <= index < len(mats):
            raise ValueError(f"rotation index must be in [0, {len(mats)}), got {index}")
        return int(table[index])
    index = torch.as_tensor(index).long()
    if index.numel() and (index.min() < 0 or index.max() >= len(mats)):
        raise ValueError(f"rotation indices must be in [0, {len(mats)})")
    return table.to(index.device)[index]


def random_cube_indices(n: int, ndim: int = 3, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Draw ``n`` uniformly random elements of the cube (square) group.

    Parameters
    ----------
    n : int
        Number of draws.
    ndim : {3, 2}
    generator : torch.Generator, optional
        Seeds the draw; must live on ``device`` (default CPU).
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        ``(n,)`` int64 indices for :func:`rotate_cube`.
    """
    n_group = 24 if ndim == 3 else 4
    dev = generator.device if generator is not None else device
    return torch.randint(0, n_group, (n,), generator=generator, device=dev).to(device if device is not None else dev)


def random_so3(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Uniformly distributed (Haar) random rotations of SO(3).

    Parameters
    ----------
    n : int
        Number of rotations.
    generator : torch.Generator, optional
        Seeds the draw (on its own device, default CPU).
    dtype : torch.dtype
    device : torch.device or str, optional

    Returns
    -------
    torch.Tensor
        ``(n, 3, 3)`` rotation matrices acting on ``(z, y, x)`` coordinates.

    Notes
    -----
    The construction of ``scipy.spatial.transform.Rotation.random``:
    normalised Gaussian quaternions are uniform on the 3-sphere, which makes
    their rotations Haar-distributed (Shoemake, "Uniform random rotations",
    Graphics Gems III, 1992). The ``n x 4`` Gaussians come from the torch
    ``generator`` (float64), so that one seed gives the same rotations on
    every device, and scipy's ``Rotation.from_quat`` (scalar-last
    quaternions, normalised there) turns them into matrices, read as acting
    on the coordinates in the order the quaternion's vector part names them.
    """
    dev = generator.device if generator is not None else device
    q = torch.randn(n, 4, generator=generator, device=dev, dtype=torch.float64)
    matrices = Rotation.from_quat(q.cpu().numpy()).as_matrix() if n > 0 else np.zeros((0, 3, 3))
    return torch.from_numpy(matrices).to(dtype=dtype, device=device if device is not None else dev)


def rotate_volume(x: torch.Tensor, rotation: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Rotate volumes about their centre by trilinear interpolation.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D, H, W)`` volumes.
    rotation : torch.Tensor
        ``(3, 3)`` or ``(..., 3, 3)`` rotation matrices (one per volume)
        acting on ``(z, y, x)`` voxel coordinates.
    mode : {"bilinear", "nearest"}
        Interpolation (``"bilinear"`` is trilinear for volumes).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``: ``out(p) = x(R^T p)`` about the
        centre ``((D-1)/2, (H-1)/2, (W-1)/2)``; samples from outside the box
        are zero.

    Raises
    ------
    ValueError
        If the rotation's shape does not match the batch of ``x``.

    Notes
    -----
    Source: the book's appendix on notation and conventions (continuous SO(3) option). Interpolation blurs
    slightly; use :func:`rotate_cube` where exactness matters.
    """
    if x.ndim < 3:
        raise ValueError(f"x must be (..., D, H, W), got shape {tuple(x.shape)}")
    batch = x.shape[:-3]
    d, h, w = x.shape[-3:]
    rotation = rotation.to(device=x.device, dtype=x.dtype)
    if rotation.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must be (..., 3, 3), got {tuple(rotation.shape)}")
    rot = rotation.expand(*batch, 3, 3).reshape(-1, 3, 3)
    vol = x.reshape(-1, 1, d, h, w)
    # Coordinates in voxel units (z, y, x) relative to the centre.
    dev, dt = x.device, x.dtype
    zz, yy, xx = torch.meshgrid(
        torch.arange(d, device=dev, dtype=dt) - (d - 1) / 2,
        torch.arange(h, device=dev, dtype=dt) - (h - 1) / 2,
        torch.arange(w, device=dev, dtype=dt) - (w - 1) / 2,
        indexing="ij",
    )
    p = torch.stack([zz, yy, xx], -1).reshape(-1, 3)  # (V, 3)
    q = torch.einsum("bji,vj->bvi", rot, p)  # q = R^T p, (B, V, 3)
    half = torch.tensor([(d - 1) / 2, (h - 1) / 2, (w - 1) / 2], device=dev, dtype=dt).clamp(min=0.5)
    norm = q / half  # in [-1, 1] with align_corners=True
    grid = norm.flip(-1).view(-1, d, h, w, 3)  # grid_sample wants (x, y, z)
    out = F.grid_sample(vol, grid, mode=mode, padding_mode="zeros", align_corners=True)
    return out.view(x.shape)


def quarter_turns_xz() -> list[int]:
    """Indices of the quarter turns about X and about Z in :func:`cryolearn.physics.cube_rotations`.

    Returns
    -------
    list of int
        Four indices: +-90 degrees about X (the x coordinate fixed) and
        about Z (z fixed). Each moves the missing wedge to a new place.
    """
    mats = cube_rotations()
    about_x = [i for i in range(24) if mats[i][2, 2] == 1 and mats[i][0, 0] == 0]
    about_z = [i for i in range(24) if mats[i][0, 0] == 1 and mats[i][2, 2] == 0]
    return about_x + about_z


def tilt_axis_rotations() -> list[int]:
    """Indices of the 8 cube rotations that keep the tilt axis (Y) on itself, in :func:`cryolearn.physics.cube_rotations`.

    Returns
    -------
    list of int
        The identity and the turns by 90, 180 and 270 degrees about Y
        (``y`` fixed), and the four half turns about axes in the XZ plane
        (X, Z and the two diagonals; ``y -> -y``).

    Notes
    -----
    The rotation proxy assumes that a rotated specimen looks like another
    observation. When the specimen has a preferred direction along the tilt
    axis (filaments such as microtubules lying along Y, as is usual when the
    grid is tilted about the filaments' direction) only these rotations keep
    that true; the others turn the filaments along Z or X, which the data
    never show. The quarter turns about Y still move the whole missing wedge
    (``|k_z| > tan(theta) |k_x|``) into the measured region, so no part of
    the wedge is left without an observation that constrains it. Source: the
    book's appendix on notation and conventions (the rotation proxy) and
    chapter "Restoring a whole tomogram".
    """
    mats = cube_rotations()
    return [i for i in range(24) if abs(int(mats[i][1, 1])) == 1]
