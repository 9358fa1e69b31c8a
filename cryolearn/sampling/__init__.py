"""Posterior sampling: Langevin, SGLD, importance reweighting and conjugate gradients (the book's chapters on the four methods, CryoWGEN-I and -II)."""

from .conjugate_gradient import CGResult, conjugate_gradient
from .energies import boltzmann_density, double_well, gaussian_energy
from .importance import ImportanceResult, effective_sample_size, importance_reweight
from .langevin import LangevinResult, langevin, polynomial_decay, pool_chains, sgld

__all__ = [
    "CGResult",
    "ImportanceResult",
    "LangevinResult",
    "boltzmann_density",
    "conjugate_gradient",
    "double_well",
    "effective_sample_size",
    "gaussian_energy",
    "importance_reweight",
    "langevin",
    "polynomial_decay",
    "pool_chains",
    "sgld",
]
