"""Networks: the reconstructor ``G_theta`` and the scalar critics (SPEC section 2).

- :class:`UNet`: the shared 2D/3D reconstructor, residual, identity at initialisation.
- :class:`Critic`: CryoGEN-I's observation-space discriminator ``D_psi``.
- :class:`PotentialNet`: CryoGEN-II's potential ``phi_omega``, the CryoWGEN witness.
- :class:`MLP`: the same roles on the point toys.
- :func:`count_parameters`.
"""

from .critics import Critic, PotentialNet
from .unet import MLP, UNet, count_parameters

__all__ = ["UNet", "Critic", "PotentialNet", "MLP", "count_parameters"]
