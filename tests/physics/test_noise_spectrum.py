"""Coloured noise: its spectrum per Fourier shell estimated from observations, and re-degradation with it."""

import pytest
import torch

from cryolearn.methods import Method, get_method
from cryolearn.physics import (
    apply_missing_wedge,
    estimate_noise_spectrum,
    missing_wedge_mask,
    noise_filter,
    random_redegrade,
    shell_index,
)

SHAPE = (16, 16, 16)


def _radial_filter(shape):
    """A smooth low-pass per shell, like the weighting of a SIRT reconstruction: (S,) amplitudes."""
    n_shells = int(shell_index(shape).max()) + 1
    s = torch.arange(n_shells, dtype=torch.float64)
    return 0.3 + 2.0 * torch.exp(-((s / 4.0) ** 2))


def test_white_noise_has_a_flat_spectrum_at_its_variance():
    g = torch.Generator().manual_seed(0)
    m = missing_wedge_mask(SHAPE, (-60, 60))
    y = apply_missing_wedge(0.7 * torch.randn(200, *SHAPE, generator=g, dtype=torch.float64), m)
    spec = estimate_noise_spectrum(y, m, quantile=0.5)
    assert spec.shape == (int(shell_index(SHAPE).max()) + 1,) and spec.dtype == torch.float64
    # Shells of a few coefficients scatter (the innermost, the outermost corners); shells 2-11 are within 10% of 0.49.
    torch.testing.assert_close(spec[2:12], torch.full_like(spec[2:12], 0.49), rtol=0.1, atol=0)
    # A lower quantile can only lower the estimate (the floor over observations).
    assert (estimate_noise_spectrum(y, m, quantile=0.1) <= spec + 1e-12).all()


def test_filtered_noise_spectrum_matches_the_filter():
    g = torch.Generator().manual_seed(1)
    m = missing_wedge_mask(SHAPE, (-60, 60))
    amp = _radial_filter(SHAPE)
    n = torch.randn(200, *SHAPE, generator=g, dtype=torch.float64)
    f = amp[shell_index(SHAPE)] * m  # (D, H, W//2+1)
    y = torch.fft.irfftn(torch.fft.rfftn(n, dim=(-3, -2, -1), norm="ortho") * f, s=SHAPE, dim=(-3, -2, -1), norm="ortho")
    spec = estimate_noise_spectrum(y, m, quantile=0.5)
    torch.testing.assert_close(spec[2:12], amp[2:12] ** 2, rtol=0.1, atol=0)
    # The signal adds to the estimate (an upper bound), it never lowers it.
    signal = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64).expand(200, *SHAPE)
    assert (estimate_noise_spectrum(y + apply_missing_wedge(signal, m), m, quantile=0.5)[2:] > 0.9 * spec[2:]).all()


def test_noise_filter_with_a_flat_spectrum_is_the_white_masked_noise():
    m = missing_wedge_mask(SHAPE, (-60, 60))
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rots = torch.arange(24)
    flat = torch.full((int(shell_index(SHAPE).max()) + 1,), 0.6**2, dtype=torch.float64)
    white = random_redegrade(x, m, rots, 0.6, torch.Generator().manual_seed(3))
    coloured = random_redegrade(x, m, rots, 0.6, torch.Generator().manual_seed(3), noise_filter=noise_filter(flat, m))
    torch.testing.assert_close(coloured, white)


def test_method_redegrades_with_its_noise_spectrum_and_keeps_it_in_checkpoints(tmp_path):
    m = missing_wedge_mask(SHAPE, (-60, 60))
    amp = _radial_filter(SHAPE).float()
    method = get_method("cryogen2", mask=m, sigma=0.5, noise_spectrum=amp**2, base_channels=4)
    method.generator = torch.Generator().manual_seed(4)
    noise = method.redegrade(torch.zeros(200, *SHAPE))  # M(R 0) + noise = the noise alone
    torch.testing.assert_close(estimate_noise_spectrum(noise, m, quantile=0.5)[2:12], amp[2:12] ** 2, rtol=0.1, atol=0)
    method.save(tmp_path / "m.pt")
    back = Method.from_checkpoint(tmp_path / "m.pt")
    torch.testing.assert_close(back.noise_spectrum, amp**2)


def test_noise_spectrum_errors():
    m = missing_wedge_mask(SHAPE, (-60, 60))
    y = torch.randn(4, *SHAPE)
    with pytest.raises(ValueError, match="half grid"):
        estimate_noise_spectrum(y[0], m)
    with pytest.raises(ValueError, match="quantile"):
        estimate_noise_spectrum(y, m, quantile=1.5)
    with pytest.raises(ValueError, match="shells"):
        noise_filter(torch.ones(5), m)
    with pytest.raises(ValueError, match="non-negative"):
        noise_filter(-torch.ones(20), m)
    with pytest.raises(ValueError, match="shells"):
        get_method("cryogen2", mask=m, sigma=0.5, noise_spectrum=torch.ones(3))
