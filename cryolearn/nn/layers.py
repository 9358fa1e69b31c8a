"""Building blocks shared by the networks of :mod:`cryolearn.nn`.

The convolution class per dimensionality (:data:`CONV`), the activations by
name (:func:`make_activation`), the check of the number of spatial axes
(:func:`check_ndim`) and the reshape of channel-less volumes into a
convolution batch (:func:`as_channels`). :class:`~cryolearn.nn.UNet` and the
scalar critics of :mod:`cryolearn.nn.critics` build on them; book chapter 6
(``book/06_cryogen1.ipynb``) introduces both networks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CONV", "ACTIVATIONS", "check_ndim", "check_count", "make_activation", "as_channels", "zero_init_"]

#: ``{2: nn.Conv2d, 3: nn.Conv3d}``: the convolution for images ``(z, x)`` and volumes ``(z, y, x)``.
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
#: Activation constructors by name: ``"silu"`` and ``"leaky_relu"`` (slope 0.2).
ACTIVATIONS = {"silu": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def check_ndim(ndim: int) -> int:
    """Validate the number of spatial axes of a convolutional network.

    Parameters
    ----------
    ndim : int
        2 (images ``(z, x)``) or 3 (volumes ``(z, y, x)``).

    Returns
    -------
    int
        ``ndim``.

    Raises
    ------
    ValueError
        If ``ndim`` is neither 2 nor 3 (the message says which axes each means).

    Notes
    -----
    Source: book chapter 6.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 (images (z, x)) or 3 (volumes (z, y, x)), got {ndim!r}")
    return ndim


def check_count(value: int, name: str, minimum: int = 1) -> int:
    """Validate an integer size (channels, depth) of a network.

    Parameters
    ----------
    value : int
        The size; an integral float such as ``8.0`` is accepted.
    name : str
        The argument's name, for the message.
    minimum : int
        0 or 1: the smallest valid value.

    Returns
    -------
    int
        ``int(value)``.

    Raises
    ------
    ValueError
        If ``value`` is not integral or below ``minimum`` ("a positive
        integer" for ``minimum=1``, "a non-negative integer" for 0).
    """
    if int(value) != value or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return int(value)


def zero_init_(layer: nn.Module) -> nn.Module:
    """Set a layer's weight and bias to zero, in place: a residual network then starts as the identity.

    Parameters
    ----------
    layer : torch.nn.Module
        A layer with ``weight`` and ``bias`` (``nn.Linear``, ``nn.Conv3d``, ...).

    Returns
    -------
    torch.nn.Module
        ``layer``.
    """
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name.

    Parameters
    ----------
    name : str
        A key of :data:`ACTIVATIONS` (``"silu"``, ``"leaky_relu"``).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid names.

    Notes
    -----
    Source: book chapter 6.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def as_channels(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Flatten the batch dimensions and add one channel: ``(..., *box) -> (N, 1, *box)``.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., D, H, W)`` (``(..., D, W)`` for ``ndim=2``), no channel dimension.
    ndim : int
        Number of spatial axes.

    Returns
    -------
    torch.Tensor
        ``(N, 1, *box)`` with ``N = prod(x.shape[:-ndim])`` (1 for an
        unbatched volume), a view of ``x`` where possible.

    Raises
    ------
    ValueError
        If ``x`` has fewer than ``ndim`` dimensions.

    Notes
    -----
    Source: book chapter 6.
    """
    if x.ndim < ndim:
        raise ValueError(f"expected a tensor of shape (..., {'D, H, W' if ndim == 3 else 'D, W'}), got {tuple(x.shape)}")
    return x.reshape(math.prod(x.shape[: x.ndim - ndim]), 1, *x.shape[x.ndim - ndim :])
