"""Imaging physics: Fourier-grid helpers, the missing wedge, rotations and the forward model.

- :mod:`.fourier`: the ``rfftn`` half grid (:func:`rfft_shape`), its frequencies (:func:`fourier_grid`), its Hermitian weights, the orthonormal transform.
- :mod:`.missing_wedge`: masks and the operator ``M``.
- :mod:`.rotations`: the cube group, random SO(3), resampling.
- :mod:`.forward`: ``y = M(R x) + noise``, the rotation proxy and the noise level.
- :mod:`.tilt_series`: projection, weighted back-projection, dose and CTF of tilt series.

Source: book chapter 1 (``book/01_missing_wedge.ipynb``).
"""

from .fourier import fourier_grid, half_grid_sum, hermitian_weights, ortho_rfftn, rfft_shape
from .forward import add_noise, estimate_noise_spectrum, estimate_sigma, noise_filter, noise_sigma, random_redegrade, redegrade_all, rotation_proxy, shell_index, simulate_observation
from .missing_wedge import (
    apply_missing_wedge,
    check_tilt_range,
    missing_band_mask,
    missing_wedge_mask,
    rotated_mask,
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
    inverse_cube_index,
    quarter_turns_xz,
    random_cube_indices,
    random_so3,
    rotate_cube,
    rotate_volume,
    tilt_axis_rotations,
)

__all__ = [
    "add_noise",
    "add_tilt_noise",
    "apply_ctf",
    "backproject",
    "apply_missing_wedge",
    "rotated_mask",
    "check_tilt_range",
    "ctf_2d",
    "cube_rotations",
    "estimate_noise_spectrum",
    "estimate_sigma",
    "fourier_grid",
    "half_grid_sum",
    "hermitian_weights",
    "missing_band_mask",
    "missing_wedge_mask",
    "noise_filter",
    "noise_sigma",
    "ortho_rfftn",
    "phase_flip",
    "project",
    "inverse_cube_index",
    "quarter_turns_xz",
    "ramp_filter",
    "random_cube_indices",
    "random_redegrade",
    "random_so3",
    "redegrade_all",
    "rfft_shape",
    "rotate_cube",
    "rotate_volume",
    "rotation_proxy",
    "shell_index",
    "simulate_observation",
    "tilt_axis_rotations",
    "tilt_weights",
    "weighted_backprojection",
]
