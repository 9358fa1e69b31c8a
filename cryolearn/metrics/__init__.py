"""Scores: FSC, RMSE, the in-wedge error, calibration; and, for real data, scores without ground truth.

Every Fourier quantity is computed on the ``torch.fft.rfftn`` half grid with
orthonormal transforms, the grid the missing-wedge masks of
:mod:`cryolearn.physics` live on, and weighted with the Hermitian weights of
:mod:`cryolearn.physics.fourier`, so that every sum here equals the same sum
over the full ``fftn`` grid and Parseval turns Fourier-region sums into
real-space norms (``sum_k |X(k)|^2 = sum_voxels x^2``).

Fourier regions are given by a bool half-grid ``mask`` (True = in the region):
pass the measured-region mask of :func:`cryolearn.physics.missing_wedge_mask`
for the measured region, and its negation ``~mask`` for the missing wedge.
Both are symmetric under ``k -> -k``, so a region sum is a sum over a
symmetric set of full-grid coefficients.

Modules:

- :mod:`.fsc`: :func:`fourier_shell_correlation`, :class:`FSCResult`,
  :func:`fsc_crossings`.
- :mod:`.errors`: :func:`psnr`, :func:`normalized_cross_correlation`,
  :func:`rmse` (whole volume or by Fourier region), :func:`relative_wedge_error`,
  :func:`pointwise_square_baseline` (the trivial baseline).
- :mod:`.calibration`: :func:`calibration_from_samples`,
  :func:`calibration_gaussian`, :func:`posterior_spread_in_out`,
  :func:`std_error_bins` (ENCE and the RMSE by std decile).
- :mod:`.no_truth`: without ground truth, for real data:
  :func:`wedge_power_ratio` (in-wedge power relative to measured power per
  shell), :func:`rotation_validation_error` (the held-out rotation test) and
  :func:`rotation_validation_baselines` (the trivial restorations' scores).
- :mod:`.checks`: the input checks they share.

Source: book chapters 1 and 6 onwards use them.
"""

from .calibration import (
    PosteriorSpread,
    StdErrorBins,
    calibration_from_samples,
    calibration_gaussian,
    posterior_spread_in_out,
    std_error_bins,
)
from .errors import normalized_cross_correlation, pointwise_square_baseline, psnr, relative_wedge_error, rmse
from .fsc import FSCCrossing, FSCResult, fourier_shell_correlation, fsc_crossings
from .no_truth import TiltProfile, WedgePower, rotation_validation_baselines, rotation_validation_error, tilt_range_profile, wedge_power_ratio

__all__ = [
    "FSCResult",
    "FSCCrossing",
    "PosteriorSpread",
    "fourier_shell_correlation",
    "fsc_crossings",
    "psnr",
    "normalized_cross_correlation",
    "rmse",
    "relative_wedge_error",
    "pointwise_square_baseline",
    "calibration_from_samples",
    "calibration_gaussian",
    "posterior_spread_in_out",
    "StdErrorBins",
    "std_error_bins",
    "WedgePower",
    "wedge_power_ratio",
    "rotation_validation_baselines",
    "rotation_validation_error",
]
