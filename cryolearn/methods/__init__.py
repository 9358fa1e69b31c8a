"""The four methods behind one interface (SPEC section 2).

``get_method("cryogen2", mask=mask, sigma=sigma).fit(observations, n_steps)``
then ``.reconstruct(y)``, which returns a :class:`Reconstruction`.
"""

from .base import Method, Reconstruction, available_methods, get_method, register_method
from .cryogen1 import CryoGEN1
from .cryogen2 import CryoGEN2
from .cryowgen1 import CryoWGEN1, PosteriorMethod
from .cryowgen2 import CryoWGEN2
from .posterior import BetaEstimate, BoltzmannPosterior, GaussianPosterior, estimate_beta, gaussian_posterior
from .pretrained import ReferenceSetup, load_pretrained, train_reference

__all__ = [
    "BetaEstimate",
    "BoltzmannPosterior",
    "CryoGEN1",
    "CryoGEN2",
    "CryoWGEN1",
    "CryoWGEN2",
    "GaussianPosterior",
    "PosteriorMethod",
    "ReferenceSetup",
    "load_pretrained",
    "train_reference",
    "estimate_beta",
    "gaussian_posterior",
    "Method",
    "Reconstruction",
    "available_methods",
    "get_method",
    "register_method",
]
