"""Whole tomograms in tiles: restoring a tomogram of any size with a method trained on cubic boxes.

The methods restore subtomograms of one box size. A tomogram ``(D, H, W)`` of
any size (each side at least the box) is cut into overlapping cubic tiles
(:func:`tile_starts`), each tile is normalised exactly like a training
subtomogram (:func:`cryolearn.data.normalize`), restored in
batches, brought back to the tomogram's units and blended with a smooth
window (:func:`blend_window`) so that tile borders leave no seams;
:func:`seam_ratio` measures whether they did.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data.mrc import moments, normalize

__all__ = ["tile_starts", "blend_window", "restore_tiled", "seam_ratio"]


def tile_starts(size: int, box: int, overlap: int) -> list[int]:
    """Start indices of tiles of length ``box`` covering ``[0, size)`` along one axis.

    Parameters
    ----------
    size : int
        Length of the axis in voxels.
    box : int
        Tile length in voxels (``1 <= box <= size``).
    overlap : int
        Least number of voxels shared by neighbouring tiles (``0 <= overlap < box``).

    Returns
    -------
    list of int
        ``n = ceil((size - box) / (box - overlap)) + 1`` increasing starts, the
        first 0 and the last ``size - box`` (flush with the end), as evenly
        spread as integers allow: ``start_i = floor(i (size - box) / (n - 1))``.
        Consecutive starts differ by at most ``box - overlap``, so neighbours
        share at least ``overlap`` voxels and every voxel is covered.

    Raises
    ------
    ValueError
        If ``box < 1``, ``size < box``, or ``overlap`` is outside ``[0, box)``.

    Notes
    -----
    Spreading the starts evenly (rather than stepping by ``box - overlap``
    and pushing the last tile back) gives every seam about the same overlap.
    """
    if box < 1 or size < box:
        raise ValueError(f"tiles of {box} voxels need 1 <= box <= size, got size {size}")
    if not 0 <= overlap < box:
        raise ValueError(f"overlap must lie in [0, box) = [0, {box}), got {overlap}")
    n = math.ceil((size - box) / (box - overlap)) + 1
    if n == 1:
        return [0]
    return [i * (size - box) // (n - 1) for i in range(n)]


def blend_window(
    box: int,
    overlap: int,
    ndim: int = 3,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Separable blending weight of a cubic tile: 1 inside, raised-cosine ramps at the faces.

    Parameters
    ----------
    box : int
        Tile side in voxels.
    overlap : int
        Width of the ramp at each face in voxels (``0 <= overlap < box``);
        ``0`` gives a window of ones.
    ndim : int
        Number of axes of the tile (3 for volumes).
    device, dtype
        Of the result; default the current default device and dtype.

    Returns
    -------
    torch.Tensor
        ``(box,) * ndim`` product ``w(i_1) ... w(i_ndim)`` of the 1D window
        ``w(i) = (1 - cos(pi (d + 1/2) / overlap)) / 2`` for ``d < overlap``
        and ``1`` otherwise, where ``d = min(i, box - 1 - i)`` is the distance
        to the nearest face. It lies in ``(0, 1]`` (strictly positive, so
        every voxel of a tiled volume gets weight) and is symmetric under
        ``i -> box - 1 - i`` on each axis.

    Raises
    ------
    ValueError
        If ``box < 1``, ``overlap`` is outside ``[0, box)`` or ``ndim < 1``.

    Notes
    -----
    Half-voxel offsets make ``w(d) + w(overlap - 1 - d) = 1``: two tiles
    overlapping by exactly ``overlap`` voxels have weights summing to one in
    the overlap (a partition of unity). :func:`restore_tiled` divides by the
    summed weights anyway, so larger overlaps blend correctly too.
    """
    if box < 1 or not 0 <= overlap < box or ndim < 1:
        raise ValueError(f"blend_window needs box >= 1, 0 <= overlap < box and ndim >= 1, got {box}, {overlap}, {ndim}")
    i = torch.arange(box, device=device, dtype=dtype or torch.get_default_dtype())
    d = torch.minimum(i, box - 1 - i)  # distance to the nearest face, voxels
    ramp = 0.5 * (1 - torch.cos(math.pi * (d + 0.5) / max(overlap, 1)))
    w = torch.where(d < overlap, ramp, torch.ones_like(ramp))
    out = w
    for _ in range(ndim - 1):
        out = out[..., None] * w
    return out


def _is_std(key: str) -> bool:
    return key == "std" or key.endswith("_std")


def restore_tiled(
    volume: torch.Tensor,
    fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    box: int,
    overlap: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Apply a restoration to a whole tomogram by overlapping cubic tiles.

    Parameters
    ----------
    volume : torch.Tensor
        ``(D, H, W)`` floating-point tomogram in ``(z, y, x)`` order, each
        side at least ``box`` voxels, in any units.
    fn : callable
        ``fn(tiles) -> dict``: ``tiles`` is a ``(B, box, box, box)`` batch of
        normalised tiles (zero mean, unit standard deviation each; a constant
        tile is all zeros) on ``volume``'s device and dtype; it returns a
        non-empty dict ``name -> (B, box, box, box)`` tensor, with the same
        names for every batch (e.g. ``{"mean": r.mean, "std": r.std}`` of
        ``r = method.reconstruct(tiles)``, see
        :meth:`cryolearn.methods.Method.reconstruct`). It is called without
        ``torch.no_grad`` (samplers may need gradients); outputs are detached.
    box : int
        Tile side in voxels (the box size the method was trained on).
    overlap : int, optional
        Least overlap between neighbouring tiles in voxels, also the width
        of the blending ramp; default ``box // 4``.
    batch_size : int
        Tiles per call of ``fn``.
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    dict of str to torch.Tensor
        For each name of ``fn``'s output a ``(D, H, W)`` map on ``volume``'s
        device and dtype, in ``volume``'s units. Each tile output ``o`` is
        first brought back from normalised units with the tile's mean ``m``
        and standard deviation ``s``: ``o s + m`` for mean-like outputs, ``o s``
        for standard deviations (a name ``"std"`` or ending in ``"_std"``).
        Then, with ``w`` the :func:`blend_window` of each tile, mean-like
        outputs are blended as ``sum w o / sum w`` and standard deviations as
        variances, ``sqrt(sum w o^2 / sum w)``.

    Raises
    ------
    ValueError
        If ``volume`` is not a 3D floating-point tensor, a side is shorter
        than ``box``, it holds NaN or Inf, ``overlap`` is outside
        ``[0, box)``, ``batch_size < 1``, or ``fn`` does not return a
        non-empty dict of ``(B, box, box, box)`` tensors with the same names
        for every batch.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) (every subtomogram entering a method is normalised
    to zero mean and unit standard deviation; :func:`cryolearn.data.normalize`
    with ``constant="zero"`` is used, so a constant tile, e.g. padding, gives
    zeros and, with ``s ~ 0``, comes back as its constant). Tiles are
    gathered and scattered with broadcast index tensors, a whole batch at a
    time. A tomogram-wide missing wedge (the book's appendix on notation and conventions) is the same in every
    tile, so a method trained with that tilt range applies to each tile.
    """
    if volume.ndim != 3 or not volume.is_floating_point():
        raise ValueError(
            f"restore_tiled needs a 3D floating-point tomogram (D, H, W), got {volume.dtype} of shape {tuple(volume.shape)}"
        )
    if min(volume.shape) < box:
        raise ValueError(f"every side of the tomogram {tuple(volume.shape)} must be at least the box ({box} voxels)")
    if not bool(torch.isfinite(volume).all()):
        raise ValueError("the tomogram contains NaN or Inf values")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    overlap = box // 4 if overlap is None else overlap
    volume = volume.detach()
    dev = volume.device
    axes = [torch.tensor(tile_starts(n, box, overlap), device=dev) for n in volume.shape]
    corners = torch.cartesian_prod(*axes)  # (T, 3) tile corners (z, y, x)
    w = blend_window(box, overlap, 3, device=dev, dtype=volume.dtype)
    r = torch.arange(box, device=dev)
    weight = torch.zeros_like(volume)
    sums: dict[str, torch.Tensor] = {}
    for batch in tqdm(corners.split(batch_size), disable=not progress, desc="tiles", leave=False):
        iz, iy, ix = (batch[:, a, None] + r for a in range(3))  # (B, box) each
        idx = (iz[:, :, None, None], iy[:, None, :, None], ix[:, None, None, :])
        tiles = volume[idx]  # (B, box, box, box)
        m, s, _ = moments(tiles, 3)
        m, s = m.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)
        out = fn(normalize(tiles, constant="zero"))
        _check_output(out, tiles.shape, sums.keys() if sums else None)
        for k, o in out.items():
            o = o.detach().to(device=dev, dtype=volume.dtype)
            v = (o * s) ** 2 if _is_std(k) else o * s + m
            sums.setdefault(k, torch.zeros_like(volume)).index_put_(idx, w * v, accumulate=True)
        weight.index_put_(idx, w.expand_as(tiles), accumulate=True)
    return {k: (v / weight).sqrt() if _is_std(k) else v / weight for k, v in sums.items()}


def seam_ratio(volume: torch.Tensor, box: int, overlap: int | None = None) -> torch.Tensor:
    """How much sharper a tiled volume changes across tile borders than inside tiles, per axis.

    Parameters
    ----------
    volume : torch.Tensor
        ``(..., D, H, W)`` real volumes tiled as :func:`restore_tiled` tiles
        them (e.g. its output, or that output minus its input); batch axes
        are pooled.
    box : int
        Tile side in voxels.
    overlap : int, optional
        Least overlap of the tiling; default ``box // 4`` as in
        :func:`restore_tiled`.

    Returns
    -------
    torch.Tensor
        ``(3,)`` ratios for the axes ``(z, y, x)``, in ``volume``'s dtype and
        on its device: along each axis, the mean absolute finite difference
        ``|v[p] - v[p-1]|`` over the *border faces* divided by that over the
        *interior faces*. A face ``p`` (between planes ``p - 1`` and ``p``)
        is a border face where a tile begins or ends (``p`` is a start other
        than the first, or a start plus ``box`` other than the last), or where
        both planes lie in two or more tiles (the blending bands); it is an
        interior face where both planes lie in the same single tile. About 1
        means no seams; a step between tiles raises it. ``nan`` along an axis
        with a single tile, or without interior faces.

    Raises
    ------
    ValueError
        If ``volume`` is not real with at least 3 axes, or ``box`` and
        ``overlap`` do not fit its sides (as :func:`tile_starts`).

    Notes
    -----
    Hard tiling (tiles written side by side) puts every disagreement between
    neighbouring tiles into a single border face. The raised-cosine blend
    spreads it over the band, whose faces are border faces too, so a blend of
    tiles that disagree strongly is flagged as well; a smooth ramp shows
    as a ratio a little above 1 instead of a step. The ratio of the input
    tomogram, which has no seams, shows how far from 1 the measure wanders on
    the same structure by chance. Source: book chapter "Restoring a whole
    tomogram".
    """
    if volume.ndim < 3 or volume.is_complex() or not volume.is_floating_point():
        raise ValueError(f"seam_ratio needs real floating-point volumes (..., D, H, W), got {volume.dtype} "
                         f"of shape {tuple(volume.shape)}")
    overlap = box // 4 if overlap is None else overlap
    out = []
    for a in range(3):
        n = volume.shape[-3 + a]
        starts = tile_starts(n, box, overlap)
        cover = torch.zeros(n, dtype=torch.long)
        for s in starts:  # a handful of tiles per axis
            cover[s : s + box] += 1
        border = torch.zeros(n + 1, dtype=torch.bool)  # face p sits between planes p - 1 and p
        border[starts[1:]] = True
        border[[s + box for s in starts[:-1]]] = True
        border[1:n] |= (cover[:-1] >= 2) & (cover[1:] >= 2)
        border = border[1:n].to(volume.device)
        if len(starts) == 1 or bool(border.all()):
            out.append(torch.tensor(float("nan"), dtype=volume.dtype, device=volume.device))
            continue
        step = volume.diff(dim=-3 + a).abs().movedim(-3 + a, 0).flatten(1).mean(1)  # (n - 1,) per face
        out.append(step[border].mean() / step[~border].mean())
    return torch.stack(out)


def _check_output(out, shape: torch.Size, keys) -> None:
    if not isinstance(out, dict) or not out:
        raise ValueError(f"fn must return a non-empty dict of tensors, got {type(out).__name__}")
    if keys is not None and set(out) != set(keys):
        raise ValueError(f"fn returned names {sorted(out)} for one batch but {sorted(keys)} for an earlier one")
    for k, o in out.items():
        if not isinstance(o, torch.Tensor) or o.shape != shape:
            got = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
            raise ValueError(f"fn output {k!r} must be a tensor of shape {tuple(shape)}, got {got}")
