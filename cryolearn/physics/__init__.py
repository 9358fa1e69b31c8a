"""Imaging physics: the missing wedge, rotations, the forward model and tilt series (SPEC section 1)."""

from .forward import add_noise, estimate_sigma, noise_sigma, random_redegrade, redegrade_all, rotation_proxy, simulate_observation
from .missing_wedge import (
    apply_missing_wedge,
    check_tilt_range,
    fourier_grid,
    missing_band_mask,
    missing_wedge_mask,
)
from .tilt_series import (
    add_tilt_noise,
    apply_ctf,
    backproject,
    ctf_2d,
    phase_flip,
    project,
    ramp_filter,
    tilt_weights,
    weighted_backprojection,
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
    "add_tilt_noise",
    "apply_ctf",
    "backproject",
    "apply_missing_wedge",
    "check_tilt_range",
    "ctf_2d",
    "cube_rotations",
    "estimate_sigma",
    "fourier_grid",
    "missing_band_mask",
    "missing_wedge_mask",
    "noise_sigma",
    "phase_flip",
    "project",
    "quarter_turns_xz",
    "quaternion_to_matrix",
    "ramp_filter",
    "random_cube_indices",
    "random_redegrade",
    "random_so3",
    "redegrade_all",
    "rotate_cube",
    "rotate_volume",
    "rotation_proxy",
    "simulate_observation",
    "tilt_weights",
    "weighted_backprojection",
]
