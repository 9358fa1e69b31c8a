"""Fourier-grid helpers: the ``rfftn`` half grid, its frequencies, its Hermitian weights, the orthonormal transform.

Every Fourier quantity in cryolearn lives on the ``torch.fft.rfftn`` half grid
with orthonormal transforms (``norm="ortho"``): a real volume of spatial shape
``(D, H, W)`` has the half spectrum ``(D, H, W // 2 + 1)``
(:func:`rfft_shape`), the grid the missing-wedge masks of
:mod:`cryolearn.physics.missing_wedge` live on.

A real volume's full spectrum is Hermitian, ``X(-k) = conj(X(k))``, so a sum
over the full grid equals a weighted sum over the half grid: the columns
``k_x = 0`` and (for even ``W``) ``k_x = -W/2`` hold their own mirrors and
count once, every other column stands for itself and its mirror and counts
twice (:func:`hermitian_weights`, :func:`half_grid_sum`). With orthonormal
transforms Parseval then turns Fourier-region sums into real-space norms,
``sum_k |X(k)|^2 = sum_voxels x^2``.

The layout follows teamtomo's torch-grid-utils (``rfft_shape``,
``fftfreq_grid``); the Hermitian bookkeeping is the one of any real FFT
(Bracewell, *The Fourier Transform and its Applications*, 3rd ed., 2000,
ch. 2); book chapter 1 (``book/01_missing_wedge.ipynb``) draws the grid.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["rfft_shape", "fourier_grid", "hermitian_weights", "half_grid_sum", "ortho_rfftn"]


def rfft_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of the ``rfftn`` half grid of a real array of spatial shape ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape ``(W,)``, ``(D, W)`` or ``(D, H, W)`` (any length >= 1).

    Returns
    -------
    tuple of int
        ``(*shape[:-1], shape[-1] // 2 + 1)``, e.g. ``(8, 8, 5)`` for
        ``(8, 8, 8)`` and ``(4, 4)`` for ``(4, 7)``.

    Raises
    ------
    ValueError
        If ``shape`` is empty.

    Notes
    -----
    The shape of ``torch.fft.rfftn(x, dim=range(-len(shape), 0))``; the name
    and rule follow teamtomo's torch-grid-utils. Source: book chapter 1.
    """
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("rfft_shape needs at least one axis")
    return shape[:-1] + (shape[-1] // 2 + 1,)


def fourier_grid(
    shape: Sequence[int],
    rfft: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """Frequencies of each axis of a (half) Fourier grid, in cycles per voxel.

    Parameters
    ----------
    shape : sequence of int
        Real-space shape ``(W,)``, ``(D, W)`` or ``(D, H, W)``.
    rfft : bool
        If True, the last axis holds the ``W // 2 + 1`` non-negative
        frequencies of ``torch.fft.rfftn``; otherwise the full ``fftfreq``.
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    list of torch.Tensor
        One tensor per axis, broadcastable against each other to the grid
        shape (``(D, 1, 1)``, ``(1, H, 1)``, ``(1, 1, W//2+1)`` in 3D), with
        values in ``[-0.5, 0.5]``.

    Notes
    -----
    ``torch.fft.fftfreq`` on every axis (``rfftfreq`` on the last one with
    ``rfft=True``), in the layout of teamtomo's ``fftfreq_grid``.
    Source: book chapter 1.
    """
    n = len(shape)
    out = []
    for i, s in enumerate(shape):
        if i == n - 1 and rfft:
            f = torch.fft.rfftfreq(s, device=device, dtype=dtype)
        else:
            f = torch.fft.fftfreq(s, device=device, dtype=dtype)
        view = [1] * n
        view[i] = -1
        out.append(f.view(view))
    return out


def hermitian_weights(
    shape: Sequence[int], mask: torch.Tensor | None = None, like: torch.Tensor | None = None
) -> torch.Tensor:
    """Weights that turn a sum over the half grid into the sum over the full Fourier grid.

    Parameters
    ----------
    shape : sequence of int
        Real-space spatial shape ``(..., W)``.
    mask : torch.Tensor, optional
        Half-grid region ``rfft_shape(shape)`` (bool or float); the weights
        are zero outside it (multiplied by it).
    like : torch.Tensor, optional
        The weights take its dtype and device; default float32 on ``mask``'s
        device (or the CPU).

    Returns
    -------
    torch.Tensor
        ``rfft_shape(shape)``: 1 on the column ``k_x = 0`` and, for even
        ``W``, on the Nyquist column ``k_x = -W/2``; 2 elsewhere; times
        ``mask``. Without a mask they sum to ``prod(shape)``.

    Notes
    -----
    ``sum(weights * f(X))`` over the half grid equals ``sum f(X)`` over the
    full grid for any ``f`` with ``f(conj z) = f(z)`` (``|z|^2``,
    ``Re(z conj w)``), since ``X(-k) = conj X(k)`` for a real volume.
    Source: book chapter 1; Bracewell (2000), ch. 2.
    """
    half = rfft_shape(shape)
    if like is not None:
        dtype, device = like.dtype, like.device
    else:
        dtype, device = torch.float32, (mask.device if mask is not None else None)
    w_len = int(shape[-1])
    cols = torch.full((half[-1],), 2.0, dtype=dtype, device=device)
    cols[0] = 1.0
    if w_len % 2 == 0:
        cols[-1] = 1.0
    weight = cols.expand(*half)
    if mask is not None:
        weight = weight * mask.to(device=device, dtype=dtype)
    return weight


def half_grid_sum(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(values * weights)`` over the trailing ``weights.ndim`` axes.

    Parameters
    ----------
    values : torch.Tensor
        ``(..., *half)``, real, on the half grid.
    weights : torch.Tensor
        ``half``, e.g. :func:`hermitian_weights`.

    Returns
    -------
    torch.Tensor
        ``(...)``: the full-grid sum when ``weights`` are Hermitian weights.

    Notes
    -----
    Source: book chapter 1.
    """
    return (values * weights).flatten(-weights.ndim).sum(-1)


def ortho_rfftn(x: torch.Tensor, ndim: int = 3) -> torch.Tensor:
    """Orthonormal real FFT over the trailing ``ndim`` axes.

    Parameters
    ----------
    x : torch.Tensor
        Real ``(..., D, H, W)`` (``ndim`` trailing spatial axes).
    ndim : int
        Number of spatial axes transformed.

    Returns
    -------
    torch.Tensor
        Complex ``(..., *rfft_shape((D, H, W)))``, same device as ``x``.

    Notes
    -----
    ``torch.fft.rfftn(x, dim=(-ndim, ..., -1), norm="ortho")``: with the
    orthonormal scaling Parseval holds without factors. Source: book chapter 1.
    """
    return torch.fft.rfftn(x, dim=tuple(range(-ndim, 0)), norm="ortho")
