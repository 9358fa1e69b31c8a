"""Scalar networks on observation space: the critic ``D_psi`` and the potential ``phi_omega`` (the book's chapters on the four methods).

Both map a volume ``(..., D, H, W)`` to one number per volume ``(...)``:

- :class:`Critic` is CryoGEN-I's discriminator, whose output defines the
  energy ``E_psi(x) = softplus(-D_psi(M(R x) + M n))`` (or ``-D_psi`` under
  WGAN-GP);
- :class:`PotentialNet` is CryoGEN-II's potential ``phi_omega``, regressed onto
  the minibatch OT dual potentials, and the witness ``w(x) = mean_R
  phi_omega(M(R x))`` of the CryoWGEN samplers. It is the same network with a
  smooth activation, because the samplers follow its input gradient.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations

from .layers import CONV, as_channels, check_count, check_ndim, make_activation

__all__ = ["Critic", "PotentialNet"]


class Critic(nn.Module):
    """Convolutional scalar network ``(..., D, H, W) -> (...)``.

    A 3x3(x3) convolution to ``base_channels``, then ``depth`` stride-2
    3x3(x3) convolutions doubling the width, each followed by the activation,
    a global average over the box and a linear layer to one number. No
    normalisation layer: the output for one volume never depends on the rest
    of the batch (required by the WGAN-GP gradient penalty).

    Parameters
    ----------
    ndim : {3, 2}
        3 for volumes ``(..., D, H, W)``, 2 for images ``(..., D, W)``.
    base_channels : int
        Width of the first convolution.
    depth : int
        Number of stride-2 convolutions (each halves the box, rounding up;
        any box size is accepted).
    spectral_norm : bool
        Wrap every convolution and the linear layer with
        :func:`torch.nn.utils.parametrizations.spectral_norm` (Miyato et al.
        2018), bounding the Lipschitz constant of each layer's reshaped
        weight matrix by about 1.
    activation : {"leaky_relu", "silu"}, optional
        Nonlinearity; default :attr:`default_activation` (``"leaky_relu"``,
        slope 0.2, the GAN custom; ``"silu"`` for :class:`PotentialNet`).

    Raises
    ------
    ValueError
        If ``ndim`` is not 2 or 3, ``base_channels < 1``, ``depth < 0`` or
        the activation is unknown.

    Notes
    -----
    Source: the book's chapters on the four methods, CryoGEN-I (the observation-space discriminator
    ``D_psi``). At ``ndim=3, base_channels=8, depth=3`` it has 72,977
    parameters. The output follows the input's device and dtype once the
    module has been moved there.
    """

    #: The activation used when ``activation`` is not given.
    default_activation: str = "leaky_relu"

    def __init__(
        self,
        ndim: int = 3,
        base_channels: int = 8,
        depth: int = 3,
        spectral_norm: bool = False,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        activation = self.default_activation if activation is None else activation
        self.ndim = check_ndim(ndim)
        base_channels = check_count(base_channels, "base_channels")
        depth = check_count(depth, "depth", minimum=0)
        sn = parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        conv, c = CONV[ndim], int(base_channels)
        layers = [sn(conv(1, c, 3, padding=1)), make_activation(activation)]
        for level in range(int(depth)):
            layers += [sn(conv(c * 2**level, c * 2 ** (level + 1), 3, stride=2, padding=1)), make_activation(activation)]
        self.features = nn.Sequential(*layers)
        self.head = sn(nn.Linear(c * 2 ** int(depth), 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Score each volume.

        Parameters
        ----------
        y : torch.Tensor
            ``(..., D, H, W)`` observations (``(..., D, W)`` for ``ndim=2``),
            no channel dimension.

        Returns
        -------
        torch.Tensor
            ``(...)`` one real number per volume, differentiable in ``y``.

        Raises
        ------
        ValueError
            If ``y`` has fewer than ``ndim`` dimensions.
        """
        h = self.features(as_channels(y, self.ndim))  # (N, C, *box')
        return self.head(h.flatten(2).mean(-1)).reshape(y.shape[: y.ndim - self.ndim])


class PotentialNet(Critic):
    """Scalar potential ``phi(y)`` per volume, ``(..., D, H, W) -> (...)``.

    The architecture of :class:`Critic` with a smooth (SiLU) default
    activation, so that the input gradient the samplers follow is
    continuous; the parameters are those of :class:`Critic`.

    Notes
    -----
    Source: the book's chapters on the four methods. CryoGEN-II fits it by regression onto the
    minibatch semi-dual potentials ``g_j`` of the real observations (no
    min-max game); CryoWGEN-I/II use it as the witness potential
    ``w(x) = mean_R phi_omega(M(R x))``.
    """

    default_activation = "silu"
