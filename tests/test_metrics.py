"""Metrics (SPEC section 3): FSC, PSNR, correlation, RMSE, the in-wedge error, calibration."""

import math

import numpy as np
import pytest
import torch

from cryolearn.metrics import (
    FSCResult,
    calibration_from_samples,
    calibration_gaussian,
    fourier_shell_correlation,
    fsc_crossings,
    normalized_cross_correlation,
    posterior_spread_in_out,
    psnr,
    relative_wedge_error,
    rmse,
)
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask, simulate_observation


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _fsc_numpy(a, b, full_mask=None):
    """Reference FSC on the full np.fft.fftn grid, shells of the same rule, one volume at a time."""
    spatial = a.shape
    n = min(spatial)
    n_shells = n // 2 + 1
    width = (n // 2) / n / (n_shells - 1)
    k = np.meshgrid(*[np.fft.fftfreq(s) for s in spatial], indexing="ij")
    shell = np.rint(np.sqrt(sum(g**2 for g in k)) / width).astype(int)
    keep = shell < n_shells
    if full_mask is not None:
        keep &= full_mask
    A, B = np.fft.fftn(a), np.fft.fftn(b)
    fsc, count = np.full(n_shells, np.nan), np.zeros(n_shells, int)
    for i in range(n_shells):
        s = keep & (shell == i)
        count[i] = s.sum()
        if count[i]:
            fsc[i] = np.real(np.sum(A[s] * np.conj(B[s]))) / np.sqrt(np.sum(abs(A[s]) ** 2) * np.sum(abs(B[s]) ** 2))
    return fsc, count


@pytest.mark.parametrize("shape", [(12, 12, 12), (11, 12, 13), (10, 9), (16, 15)])
@pytest.mark.parametrize("wedge", [None, "measured", "missing"])
def test_fsc_matches_full_grid_numpy(shape, wedge):
    g = _gen(1)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    y = 0.7 * x + torch.randn(*shape, generator=g, dtype=torch.float64)
    mask, full = None, None
    if wedge is not None:
        mask = missing_wedge_mask(shape, (-50, 40))
        full = missing_wedge_mask(shape, (-50, 40), rfft=False).numpy()
        if wedge == "missing":
            mask, full = ~mask, ~full
    res = fourier_shell_correlation(x, y, mask=mask, ndim=len(shape))
    ref, count = _fsc_numpy(x.numpy(), y.numpy(), full)
    np.testing.assert_array_equal(res.n_samples.numpy(), count)
    np.testing.assert_allclose(res.fsc.numpy(), ref, rtol=1e-10, atol=1e-12)
    n = min(shape)
    np.testing.assert_allclose(res.frequency.numpy(), np.arange(n // 2 + 1) / n)


def test_fsc_self_is_one_and_noise_is_near_zero():
    g = _gen(2)
    a = torch.randn(3, 16, 16, 16, generator=g)
    b = torch.randn(3, 16, 16, 16, generator=g)
    torch.testing.assert_close(fourier_shell_correlation(a, a).fsc, torch.ones(3, 9))
    res = fourier_shell_correlation(a, b)
    assert (res.fsc.abs() < 4 / res.n_samples.sqrt()).all()
    assert (4 / res.n_samples[2:].sqrt()).max() < 0.55  # the bound above is not vacuous


def test_fsc_batched_equals_looped_and_broadcasts():
    g = _gen(3)
    a = torch.randn(2, 3, 8, 8, 8, generator=g)
    b = torch.randn(2, 3, 8, 8, 8, generator=g) + a
    mask = missing_wedge_mask((8, 8, 8))
    batched = fourier_shell_correlation(a, b, mask=mask).fsc
    looped = torch.stack(
        [torch.stack([fourier_shell_correlation(a[i, j], b[i, j], mask=mask).fsc for j in range(3)]) for i in range(2)]
    )
    torch.testing.assert_close(batched, looped)
    # samples (S, ...) against one truth broadcast
    one = fourier_shell_correlation(a[1, 2], b[0, 0]).fsc
    torch.testing.assert_close(fourier_shell_correlation(a, b[0, 0]).fsc[1, 2], one)


def test_fsc_restricted_to_regions_of_an_observation():
    shape = (16, 16, 16)
    mask = missing_wedge_mask(shape)
    x = torch.randn(2, *shape, generator=_gen(4), dtype=torch.float64)
    y = apply_missing_wedge(x, mask)
    measured = fourier_shell_correlation(y, x, mask=mask)
    torch.testing.assert_close(measured.fsc, torch.ones_like(measured.fsc))
    wedge = fourier_shell_correlation(y, x, mask=~mask)
    assert wedge.n_samples[0] == 0 and wedge.fsc[:, 0].isnan().all()  # the origin is always measured
    assert (wedge.n_samples[1:] > 0).all()
    assert wedge.fsc[:, 1:].abs().max() < 1e-6  # an empty wedge correlates with nothing
    # the two regions partition the shells
    assert torch.equal(measured.n_samples + wedge.n_samples, fourier_shell_correlation(y, x).n_samples)


def test_resolution_at_interpolates_a_synthetic_curve():
    f = torch.linspace(0, 0.5, 11, dtype=torch.float64)  # 1/voxel
    curves = torch.stack([1 - f / 0.5, 1 - f / 0.25, torch.ones_like(f), torch.full_like(f, 0.1)])
    curves[0, 3] = math.nan  # an empty shell is skipped
    res = FSCResult(frequency=f, fsc=curves, n_samples=torch.tensor([0, 5, 5, 0, 5, 5, 5, 5, 5, 5, 5]), voxel_size=2.0)
    cr = res.resolution_at(0.5)
    assert cr.unit == "1/Angstrom"
    # line 1 crosses 0.5 at f = 0.25/voxel, line 2 at 0.125 (between shells), line 3 never, line 4 at once
    expect_f = torch.tensor([0.25, 0.125, 0.5, 0.05], dtype=torch.float64) / 2.0  # first valid shell is f = 0.05
    torch.testing.assert_close(cr.frequency, expect_f)
    torch.testing.assert_close(cr.resolution, 1 / expect_f)
    assert cr.crossed.tolist() == [True, True, False, True]
    both = fsc_crossings(res)
    assert set(both) == {0.5, 0.143}
    torch.testing.assert_close(both[0.143].frequency[0], torch.tensor(0.5 * (1 - 0.143) / 2.0, dtype=torch.float64))
    # without a voxel size: 1/voxel; the origin shell (the mean only) is skipped, so a curve that is low
    # there but high after it still crosses later, and one low everywhere crosses at the first shell past it
    res2 = FSCResult(frequency=f, fsc=torch.stack([torch.full_like(f, 0.1), torch.cat([f[:1], torch.ones(10, dtype=f.dtype)])]),
                     n_samples=torch.ones(11, dtype=torch.long))
    c2 = res2.resolution_at(0.5)
    assert c2.unit == "1/voxel"
    torch.testing.assert_close(c2.frequency, torch.tensor([0.05, 0.5], dtype=torch.float64))
    assert c2.crossed.tolist() == [True, False]


def test_resolution_of_a_low_pass_copy():
    # FSC of x and its low-pass (|k| <= 0.25) copy is ~1 below and exactly 0 above the cutoff.
    shape = (16, 16, 16)
    x = torch.randn(shape, generator=_gen(5), dtype=torch.float64)
    kz, ky, kx = np.meshgrid(*[np.fft.fftfreq(16)] * 2, np.fft.rfftfreq(16), indexing="ij")
    low = torch.from_numpy(np.sqrt(kz**2 + ky**2 + kx**2) <= 0.25)
    res = fourier_shell_correlation(apply_missing_wedge(x, low), x, voxel_size=5.0)
    cr = res.resolution_at(0.5)
    assert 0.25 / 5 <= cr.frequency <= (0.25 + 1 / 16) / 5
    assert 20.0 - 4 <= cr.resolution <= 20.0


def test_psnr_and_ncc_closed_forms():
    x = torch.randn(2, 6, 6, 6, generator=_gen(6), dtype=torch.float64)
    rng = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    torch.testing.assert_close(psnr(x + 0.1, x), 10 * torch.log10(rng**2 / 0.01))
    expect = torch.full((2,), 10 * math.log10(400.0), dtype=torch.float64)
    torch.testing.assert_close(psnr(x + 0.1, x, data_range=2.0), expect)
    torch.testing.assert_close(normalized_cross_correlation(x, 3 * x + 2), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(normalized_cross_correlation(x, -x), -torch.ones(2, dtype=torch.float64))
    y = x + torch.randn(2, 6, 6, 6, generator=_gen(7), dtype=torch.float64)
    ref = [np.corrcoef(x[i].numpy().ravel(), y[i].numpy().ravel())[0, 1] for i in range(2)]
    np.testing.assert_allclose(normalized_cross_correlation(y, x).numpy(), ref)
    ref2d = np.corrcoef(x[0, 0].numpy().ravel(), y[0, 0].numpy().ravel())[0, 1]
    np.testing.assert_allclose(normalized_cross_correlation(y[0, 0], x[0, 0], ndim=2).numpy(), ref2d)


@pytest.mark.parametrize("shape", [(8, 10, 12), (9, 7, 11), (12, 9)])
def test_rmse_regions_by_parseval(shape):
    g = _gen(8)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    x_hat = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    mask = missing_wedge_mask(shape, (-45, 55))
    d = x_hat - x
    plain = rmse(x_hat, x, ndim=len(shape))
    torch.testing.assert_close(plain, d.flatten(1).pow(2).mean(1).sqrt())
    measured, missing = rmse(x_hat, x, mask=mask), rmse(x_hat, x, mask=~mask)
    torch.testing.assert_close(measured, apply_missing_wedge(d, mask).flatten(1).pow(2).mean(1).sqrt())
    torch.testing.assert_close(missing, apply_missing_wedge(d, ~mask).flatten(1).pow(2).mean(1).sqrt())
    torch.testing.assert_close(measured**2 + missing**2, plain**2)
    torch.testing.assert_close(rmse(x_hat, x, mask=torch.ones_like(mask)), plain)


def test_relative_wedge_error_baselines_and_pooling():
    shape = (16, 16, 16)
    mask = missing_wedge_mask(shape)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(-1, 1, 1, 1)
    x = torch.randn(4, *shape, generator=_gen(9), dtype=torch.float64) * scale
    y, _ = simulate_observation(x, mask, sigma=0.5, generator=_gen(10))
    torch.testing.assert_close(relative_wedge_error(y, x, mask), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(relative_wedge_error(x, x, mask), torch.zeros(4, dtype=torch.float64))
    x_hat = x + torch.randn(4, *shape, generator=_gen(11), dtype=torch.float64)
    per = relative_wedge_error(x_hat, x, mask)
    looped = torch.stack([relative_wedge_error(x_hat[i], x[i], mask) for i in range(4)])
    torch.testing.assert_close(per, looped)
    # closed form via Parseval: wedge power = real-space power of the wedge projection
    num = apply_missing_wedge(x_hat - x, ~mask).pow(2).flatten(1).sum(1)
    den = apply_missing_wedge(x, ~mask).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(per, num / den)
    pooled = relative_wedge_error(x_hat, x, mask, pooled=True)
    assert pooled.ndim == 0
    torch.testing.assert_close(pooled, num.sum() / den.sum())
    assert not torch.allclose(pooled, per.mean())  # the two reductions differ here


def test_calibration_of_exact_and_overconfident_gaussians():
    g = _gen(12)
    mean = torch.randn(2, 16, 16, 16, generator=g, dtype=torch.float64)
    std = 0.5 + torch.rand(2, 16, 16, 16, generator=g, dtype=torch.float64)
    x = mean + std * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    samples = mean + std * torch.randn(200, *mean.shape, generator=g, dtype=torch.float64)
    exact = calibration_gaussian(mean, std, x)
    assert exact.shape == (2, 2)
    torch.testing.assert_close(exact, torch.tensor([[0.5, 0.9]] * 2, dtype=torch.float64), atol=0.025, rtol=0)
    emp = calibration_from_samples(samples, x)
    torch.testing.assert_close(emp, exact, atol=0.02, rtol=0)
    # an overconfident family (std halved) covers P(|Z| <= z/2) = erf(z / (2 sqrt 2))
    z = np.array([0.6744897501960817, 1.6448536269514722])
    expect = torch.from_numpy(np.vectorize(math.erf)(z / (2 * math.sqrt(2)))).expand(2, 2)
    torch.testing.assert_close(calibration_gaussian(mean, std / 2, x), expect, atol=0.025, rtol=0)
    torch.testing.assert_close(calibration_from_samples(mean + (samples - mean) / 2, x), expect, atol=0.025, rtol=0)


def test_calibration_from_samples_quantiles_match_numpy():
    g = _gen(13)
    samples = torch.randn(7, 3, 4, 5, generator=g, dtype=torch.float64)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    lo, hi = np.quantile(samples.numpy(), [0.05, 0.95], axis=0)
    expect = ((x.numpy() >= lo) & (x.numpy() <= hi)).mean()
    np.testing.assert_allclose(calibration_from_samples(samples, x, levels=(0.9,)).numpy(), [expect])


def test_posterior_spread_in_and_out_of_the_wedge():
    shape = (12, 12, 12)
    mask = missing_wedge_mask(shape)
    n = torch.randn(64, 2, *shape, generator=_gen(14), dtype=torch.float64)
    mean = torch.randn(2, *shape, generator=_gen(15), dtype=torch.float64)
    samples = mean + 3.0 * apply_missing_wedge(n, ~mask) + 0.5 * apply_missing_wedge(n, mask)
    spread = posterior_spread_in_out(samples, mask)
    torch.testing.assert_close(spread.missing, torch.full((2,), 3.0, dtype=torch.float64), rtol=0.03, atol=0)
    torch.testing.assert_close(spread.measured, torch.full((2,), 0.5, dtype=torch.float64), rtol=0.03, atol=0)
    torch.testing.assert_close(spread.ratio, spread.missing / spread.measured)


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
