"""Imaging physics: Fourier-grid helpers, the missing wedge, rotations and the forward model.

- :mod:`.fourier`: the ``rfftn`` half grid (:func:`rfft_shape`), its frequencies (:func:`fourier_grid`), its Hermitian weights, the orthonormal transform.
- :mod:`.missing_wedge`: masks and the operator ``M``.
- :mod:`.rotations`: the cube group, random SO(3), resampling.
- :mod:`.forward`: ``y = M(R x) + noise`` and the noise level.

Source: book chapter 1 (``book/01_missing_wedge.ipynb``).
"""

from .fourier import fourier_grid, half_grid_sum, hermitian_weights, ortho_rfftn, rfft_shape
from .forward import add_noise, estimate_sigma, noise_sigma, rotation_proxy, simulate_observation
from .missing_wedge import (
    apply_missing_wedge,
    check_tilt_range,
    missing_band_mask,
    missing_wedge_mask,
)
from .rotations import (
    cube_rotations,
    quarter_turns_xz,
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
    "half_grid_sum",
    "hermitian_weights",
    "missing_band_mask",
    "missing_wedge_mask",
    "noise_sigma",
    "ortho_rfftn",
    "quarter_turns_xz",
    "random_cube_indices",
    "random_so3",
    "rfft_shape",
    "rotate_cube",
    "rotate_volume",
    "rotation_proxy",
    "simulate_observation",
]
