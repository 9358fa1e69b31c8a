"""Input checks of the scores (cryolearn.metrics.checks), through the public functions."""

import pytest
import torch

from cryolearn.metrics import (
    calibration_from_samples,
    calibration_gaussian,
    fourier_shell_correlation,
    normalized_cross_correlation,
    psnr,
    rmse,
)
from cryolearn.physics import missing_wedge_mask


def test_bad_inputs_raise():
    x = torch.randn(8, 8, 8)
    mask = missing_wedge_mask((8, 8, 8))
    with pytest.raises(ValueError, match="half grid"):
        fourier_shell_correlation(x, x, mask=missing_wedge_mask((8, 8, 6)))
    with pytest.raises(ValueError, match="bool"):
        rmse(x, x, mask=mask.float())
    with pytest.raises(ValueError, match="spatial shapes"):
        psnr(x, x[:, :, :4])
    with pytest.raises(ValueError, match="real"):
        normalized_cross_correlation(x.to(torch.complex64), x)
    with pytest.raises(ValueError, match="n_shells"):
        fourier_shell_correlation(x, x, n_shells=1)
    with pytest.raises(ValueError, match="ndim"):
        fourier_shell_correlation(x, x, mask=mask, ndim=2)
    with pytest.raises(ValueError, match="levels"):
        calibration_gaussian(x, 1.0, x, levels=(0.5, 1.0))
    with pytest.raises(ValueError, match="S >= 2"):
        calibration_from_samples(x[None], x)
    with pytest.raises(ValueError, match="non-negative"):
        calibration_gaussian(x, -torch.ones(8, 8, 8), x)
