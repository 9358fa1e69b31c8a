"""Networks: the reconstructor ``G_theta`` and the scalar critics.

Modules: :mod:`.unet` (the reconstructor), :mod:`.critics` (scalar networks
on volumes), :mod:`.mlp` (the point toys), :mod:`.layers` (shared blocks).

- :class:`UNet`: the shared 2D/3D reconstructor, residual, identity at initialisation.
- :class:`Critic`: CryoGEN-I's observation-space discriminator ``D_psi``.
- :class:`PotentialNet`: CryoGEN-II's potential ``phi_omega``, the CryoWGEN witness.
- :class:`MLP`: the same roles on the point toys.
- :func:`count_parameters`.
"""

from .critics import Critic, PotentialNet
from .mlp import MLP
from .unet import UNet, count_parameters

__all__ = ["UNet", "Critic", "PotentialNet", "MLP", "count_parameters"]
