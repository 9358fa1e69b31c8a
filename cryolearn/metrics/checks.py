"""Input checks shared by the scores of :mod:`cryolearn.metrics`.

Real floating-point volumes with ``ndim`` trailing spatial axes whose batch
shapes broadcast (:func:`real_pair`), a number of spatial axes taken from a
Fourier mask when one is given (:func:`resolve_ndim`), and bool regions on the
``rfftn`` half grid (:func:`check_mask`). Each raises ``ValueError`` with a
message naming the offending input.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..physics.fourier import rfft_shape

__all__ = ["check_ndim", "resolve_ndim", "real_pair", "check_mask"]


def check_ndim(ndim: int) -> int:
    """Validate a number of spatial axes for the scores: 1 (signals), 2 (images) or 3 (volumes).

    Returns ``ndim``; raises ``ValueError`` for any other value.
    """
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim (the number of spatial axes) must be 1, 2 or 3, got {ndim}")
    return ndim


def resolve_ndim(ndim: int | None, mask: torch.Tensor | None) -> int:
    """Number of spatial axes: ``mask.ndim`` when a mask is given, else ``ndim`` (default 3).

    Parameters
    ----------
    ndim : int, optional
        Requested number of spatial axes.
    mask : torch.Tensor, optional
        Half-grid Fourier region; its dimensionality wins.

    Returns
    -------
    int
        1, 2 or 3.

    Raises
    ------
    ValueError
        If ``ndim`` and ``mask.ndim`` disagree or the result is not 1, 2 or 3.
    """
    if mask is not None:
        if ndim is not None and ndim != mask.ndim:
            raise ValueError(f"ndim={ndim} disagrees with the {mask.ndim}-dimensional mask")
        ndim = mask.ndim
    return check_ndim(3 if ndim is None else ndim)


def real_pair(
    a: torch.Tensor, b: torch.Tensor, ndim: int, names: tuple[str, str] = ("a", "b")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two real tensors with ``ndim`` equal spatial axes and broadcast them together.

    Parameters
    ----------
    a, b : torch.Tensor
        Real floating-point ``(..., D, H, W)`` (``ndim`` trailing spatial axes).
    ndim : int
        Number of spatial axes.
    names : (str, str)
        The names the error messages use.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``a`` and ``b`` broadcast to one shape.

    Raises
    ------
    ValueError
        If either is not real floating point, has fewer than ``ndim`` axes,
        the spatial shapes differ or the batch shapes do not broadcast.
    """
    for name, t in zip(names, (a, b)):
        if t.is_complex() or not t.is_floating_point():
            raise ValueError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")
        if t.ndim < ndim:
            raise ValueError(f"{name} has {t.ndim} dims, fewer than the {ndim} spatial axes")
    if a.shape[-ndim:] != b.shape[-ndim:]:
        raise ValueError(f"spatial shapes differ: {tuple(a.shape[-ndim:])} and {tuple(b.shape[-ndim:])}")
    try:
        return torch.broadcast_tensors(a, b)
    except RuntimeError:
        raise ValueError(f"batch shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None


def check_mask(mask: torch.Tensor, spatial: Sequence[int]) -> None:
    """Check that ``mask`` is a bool region on the ``rfftn`` half grid of ``spatial``.

    Parameters
    ----------
    mask : torch.Tensor
        Bool ``rfft_shape(spatial)`` (True = in the region).
    spatial : sequence of int
        Real-space shape ``(D, H, W)``.

    Raises
    ------
    ValueError
        If ``mask`` is not bool or not of the half-grid shape.
    """
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = in the region), got {mask.dtype}")
    half = rfft_shape(spatial)
    if tuple(mask.shape) != half:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} is not the rfftn half grid {half} of spatial shape {tuple(spatial)}"
        )
