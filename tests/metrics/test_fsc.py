"""Fourier shell correlation (cryolearn.metrics.fsc) against a full-grid numpy reference."""

import math

import numpy as np
import pytest
import torch

from cryolearn.metrics import FSCResult, fourier_shell_correlation, fsc_crossings
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask


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
