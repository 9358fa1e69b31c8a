"""The four methods behind one interface (the book's chapters on the four methods).

``get_method("cryogen2", mask=mask, sigma=sigma).fit(observations, n_steps)``
then ``.reconstruct(y)``, which returns a :class:`Reconstruction`.

- :mod:`~cryolearn.methods.base`: :class:`Method` (shared mathematics: data
  fidelity, rotation proxy, prediction, checkpoint state).
- :mod:`~cryolearn.methods.registry`: :func:`get_method`,
  :func:`available_methods`, :func:`register_method`.
- :mod:`~cryolearn.methods.reconstruction`: :class:`Reconstruction`.
- :mod:`~cryolearn.methods.config`: :class:`MethodConfig`, the typed
  configuration every method's ``Config`` dataclass extends, and
  :class:`config_field`.
- :mod:`~cryolearn.methods.cryogen1`, ``cryogen2``, ``cryowgen1``,
  ``cryowgen2``: one method and its configuration each.
- :mod:`~cryolearn.methods.sampler`: :class:`PosteriorMethod`, what the two
  samplers share, and :class:`PosteriorSample`.
- :mod:`~cryolearn.methods.posterior`: the Boltzmann posterior and its closed
  form; :mod:`~cryolearn.methods.beta`: its precision without ground truth,
  :func:`estimate_beta` (one number) and :func:`estimate_beta_field` (one per voxel),
  and :func:`field_posterior_mean`, the mean under that field around any method's output.
- :mod:`~cryolearn.methods.pretrained`: the reference 3D set-up and the
  committed weights.

The training loop and checkpoint files are in :mod:`cryolearn.training`.
"""

from .base import Method, Reconstruction, available_methods, config_field, get_method, get_method_class, register_method
from .config import MethodConfig
from .cryogen1 import CryoGEN1, CryoGEN1Config
from .cryogen2 import CryoGEN2, CryoGEN2Config
from .cryowgen1 import CryoWGEN1, CryoWGEN1Config
from .cryowgen2 import CryoWGEN2, CryoWGEN2Config
from .beta import BetaEstimate, estimate_beta, estimate_beta_field, field_posterior_mean
from .posterior import BoltzmannPosterior, GaussianPosterior, gaussian_posterior
from .pretrained import ReferenceSetup, load_pretrained, train_reference
from .sampler import PosteriorConfig, PosteriorMethod, PosteriorSample

__all__ = [
    "BetaEstimate",
    "BoltzmannPosterior",
    "CryoGEN1",
    "CryoGEN1Config",
    "CryoGEN2",
    "CryoGEN2Config",
    "CryoWGEN1",
    "CryoWGEN1Config",
    "CryoWGEN2",
    "CryoWGEN2Config",
    "GaussianPosterior",
    "MethodConfig",
    "PosteriorConfig",
    "PosteriorMethod",
    "PosteriorSample",
    "ReferenceSetup",
    "load_pretrained",
    "train_reference",
    "estimate_beta",
    "estimate_beta_field",
    "field_posterior_mean",
    "gaussian_posterior",
    "Method",
    "Reconstruction",
    "available_methods",
    "config_field",
    "get_method",
    "get_method_class",
    "register_method",
]
