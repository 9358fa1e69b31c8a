"""Imaging physics: the missing wedge, rotations and the forward model (SPEC section 1)."""

from .forward import add_noise, estimate_sigma, noise_sigma, random_redegrade, redegrade_all, rotation_proxy, simulate_observation
from .missing_wedge import (
    apply_missing_wedge,
    check_tilt_range,
    fourier_grid,
    missing_band_mask,
    missing_wedge_mask,
)
from .rotations import (
    cube_rotations,
    quarter_turns_xz,
    quaternion_to_matrix,
    random_cube_indices,
    random_so3,
    rotate_cube,
    rotate_volume,
)

__all__ = [
    "add_noise",
    "apply_missing_wedge",
    "check_tilt_range",
    "cube_rotations",
    "estimate_sigma",
    "fourier_grid",
    "missing_band_mask",
    "missing_wedge_mask",
    "noise_sigma",
    "quarter_turns_xz",
    "quaternion_to_matrix",
    "random_cube_indices",
    "random_redegrade",
    "random_so3",
    "redegrade_all",
    "rotate_cube",
    "rotate_volume",
    "rotation_proxy",
    "simulate_observation",
]
