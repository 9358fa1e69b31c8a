"""The multilayer perceptron of the 1D/2D point toys.

:class:`MLP` plays the reconstructor's role (residual, identity at
initialisation, like :class:`~cryolearn.nn.UNet`) and the critic's or
potential's (one output) when the four methods run on points in place of
volumes, in the book's early chapters (``book/04_entropic_ot.ipynb`` to
``book/06_cryogen1.ipynb``).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import make_activation, zero_init_

__all__ = ["MLP"]


class MLP(nn.Module):
    """Multilayer perceptron for the 1D/2D point toys, ``(..., d_in) -> (..., d_out)``.

    Parameters
    ----------
    d_in : int
        Input dimension.
    d_out : int, optional
        Output dimension; default ``d_in``. Use 1 for a critic or potential
        (the output keeps its last axis of size 1).
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers (``>= 1``).
    residual : bool
        Return ``z + f(z)`` with the last layer zero-initialised, the
        identity at initialisation (the reconstructor's convention, see
        :class:`UNet`); needs ``d_out == d_in``.
    activation : {"silu", "leaky_relu"}

    Raises
    ------
    ValueError
        If a size is not positive, or ``residual`` with ``d_out != d_in``.

    Notes
    -----
    Source: the book's chapters on the four methods (the toys of the book's early chapters use the
    same methods with points in place of volumes).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int | None = None,
        hidden: int = 64,
        layers: int = 2,
        residual: bool = False,
        activation: str = "silu",
    ) -> None:
        super().__init__()
        d_out = d_in if d_out is None else d_out
        if min(d_in, d_out, hidden, layers) < 1:
            raise ValueError(f"d_in, d_out, hidden and layers must be positive, got {d_in}, {d_out}, {hidden}, {layers}")
        if residual and d_out != d_in:
            raise ValueError(f"residual=True needs d_out == d_in, got d_in={d_in}, d_out={d_out}")
        self.residual = bool(residual)
        sizes = [d_in] + [hidden] * layers
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), make_activation(activation)]
        self.body = nn.Sequential(*mods)
        self.out = zero_init_(nn.Linear(hidden, d_out)) if self.residual else nn.Linear(hidden, d_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the network.

        Parameters
        ----------
        z : torch.Tensor
            ``(..., d_in)`` points.

        Returns
        -------
        torch.Tensor
            ``(..., d_out)``.
        """
        f = self.out(self.body(z))
        return z + f if self.residual else f
