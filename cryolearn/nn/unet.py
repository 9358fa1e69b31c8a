"""The reconstructor ``G_theta : y -> x_hat`` (the book's chapters on the four methods, first paragraph).

:class:`UNet` is the shared reconstructor of the four methods: a small 2D or
3D U-Net with a residual output, ``G(y) = y + f(y)``, whose last layer starts
at zero so that ``G(y) = y`` at initialisation (the no-restoration baseline).
:class:`~cryolearn.nn.mlp.MLP` plays the same role on the 1D/2D point toys.
Volumes carry no channel dimension: a network maps ``(..., D, H, W)`` to
``(..., D, H, W)`` and adds or removes the channel itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import CONV, as_channels, check_count, check_ndim, make_activation, zero_init_

__all__ = ["UNet", "count_parameters"]

_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars of a module.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    int
        ``sum(p.numel())`` over the parameters with ``requires_grad``
        (spectral-norm parametrizations count their ``original`` weight once).

    Notes
    -----
    Reported in the book's cost tables (the book's appendix on notation and conventions (metrics)).
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class UNet(nn.Module):
    """Small 2D/3D U-Net with a residual output, the identity at initialisation.

    ``G(y) = y + f(y)``, where ``f`` is a U-Net: at each of ``depth + 1``
    levels two 3x3(x3) "same" convolutions (zero padding), each followed by
    GroupNorm and an activation; 2x average pooling down, 2x transposed
    convolutions up, skip connections by concatenation; widths
    ``base_channels * 2**level``; a 1x1(x1) output convolution whose weight and
    bias are zero at initialisation, so ``G(y) = y`` exactly before training.

    Parameters
    ----------
    ndim : {3, 2}
        3 for volumes ``(..., D, H, W)``, 2 for images ``(..., D, W)``.
    base_channels : int
        Width of the first level. At the defaults (``ndim=3``,
        ``base_channels=12``, ``depth=2``) the network has 191,461
        parameters (2D: 66,253).
    depth : int
        Number of down-sampling steps (0 gives a plain residual CNN). Box
        sides must be multiples of ``2**depth`` (:attr:`required_multiple`).
    norm : bool
        Use GroupNorm (up to 4 groups) after each convolution; ``False`` for
        none. Never batch statistics: a volume's reconstruction must not
        depend on the other volumes in its batch.
    activation : {"silu", "leaky_relu"}
        Nonlinearity (leaky ReLU with slope 0.2).

    Attributes
    ----------
    required_multiple : int
        ``2**depth``: every box side must be a multiple of it.

    Raises
    ------
    ValueError
        If ``ndim`` is not 2 or 3, ``depth < 0``, ``base_channels < 1`` or
        the activation is unknown.

    Notes
    -----
    Source: the book's chapters on the four methods ("a small 3D U-Net with a residual connection; a
    2D one for the 2D toy") and the reference set-up of the CryoGEN-II chapter (12 base channels); Ronneberger,
    Fischer & Brox, "U-Net", MICCAI 2015. Input and output have the same
    shape; leading dimensions are flattened into one batch and restored.
    The output follows the input's device and dtype once the module has
    been moved there (``net.to(x)``, e.g. ``net.double()``).
    """

    def __init__(
        self, ndim: int = 3, base_channels: int = 12, depth: int = 2, norm: bool = True, activation: str = "silu"
    ) -> None:
        super().__init__()
        self.ndim = check_ndim(ndim)
        self.depth = check_count(depth, "depth", minimum=0)
        base_channels = check_count(base_channels, "base_channels")
        self.required_multiple = 2**self.depth
        conv, widths = CONV[ndim], [int(base_channels) * 2**level for level in range(self.depth + 1)]

        def block(c_in: int, c_out: int) -> nn.Sequential:
            layers = []
            for c in (c_in, c_out):
                layers += [
                    conv(c, c_out, 3, padding=1),
                    nn.GroupNorm(math.gcd(4, c_out), c_out) if norm else nn.Identity(),
                    make_activation(activation),
                ]
            return nn.Sequential(*layers)

        self.encoders = nn.ModuleList(block(1 if lv == 0 else widths[lv - 1], widths[lv]) for lv in range(self.depth + 1))
        self.pool = _POOL[ndim](2)
        self.ups = nn.ModuleList(_CONV_T[ndim](widths[lv + 1], widths[lv], 2, stride=2) for lv in range(self.depth))
        self.decoders = nn.ModuleList(block(2 * widths[lv], widths[lv]) for lv in range(self.depth))
        self.out = zero_init_(conv(widths[0], 1, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x_hat = y + f(y)``.

        Parameters
        ----------
        y : torch.Tensor
            ``(..., D, H, W)`` volumes (``(..., D, W)`` images for
            ``ndim=2``), no channel dimension.

        Returns
        -------
        torch.Tensor
            Same shape, device and dtype as ``y``.

        Raises
        ------
        ValueError
            If ``y`` has fewer than ``ndim`` dimensions or a box side is not
            a multiple of :attr:`required_multiple`.
        """
        h = as_channels(y, self.ndim)  # (N, 1, *box)
        box = tuple(h.shape[2:])
        if any(n % self.required_multiple for n in box):
            raise ValueError(
                f"box sides {box} must be multiples of required_multiple={self.required_multiple} "
                f"(2**depth, depth={self.depth})"
            )
        skips = []
        for level, encoder in enumerate(self.encoders):
            h = encoder(h if level == 0 else self.pool(h))
            skips.append(h)
        for level in reversed(range(self.depth)):
            h = self.decoders[level](torch.cat([skips[level], self.ups[level](h)], dim=1))
        return y + self.out(h).reshape(y.shape)
