"""Posterior sampling: Langevin, SGLD and importance reweighting (the book's chapters on the four methods, CryoWGEN-I and -II)."""

from .energies import boltzmann_density, double_well, gaussian_energy
from .importance import ImportanceResult, effective_sample_size, importance_reweight
from .langevin import LangevinResult, langevin, polynomial_decay, pool_chains, sgld

__all__ = [
    "ImportanceResult",
    "LangevinResult",
    "boltzmann_density",
    "double_well",
    "effective_sample_size",
    "gaussian_energy",
    "importance_reweight",
    "langevin",
    "polynomial_decay",
    "pool_chains",
    "sgld",
]
