"""Tilt-series projection and weighted back-projection: conventions, central-slice theorem, coverage."""

import math

import pytest
import torch

from cryolearn.physics import missing_wedge_mask
from cryolearn.physics.tilt_series import (
    add_tilt_noise,
    backproject,
    project,
    ramp_filter,
    tilt_weights,
    weighted_backprojection,
)


def smooth_volume(shape=(32, 32, 32), seed=0, dtype=torch.float64):
    """A band-limited, centred, smooth random volume."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    kz, ky = (torch.fft.fftfreq(n, dtype=dtype) for n in shape[:2])
    kx = torch.fft.rfftfreq(shape[2], dtype=dtype)
    k2 = kz.view(-1, 1, 1) ** 2 + ky.view(1, -1, 1) ** 2 + kx.view(1, 1, -1) ** 2
    x = torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * torch.exp(-k2 / (2 * 0.08**2)), s=shape, dim=(-3, -2, -1))
    r2 = sum(((torch.arange(n, dtype=dtype) - n // 2) ** 2).view([-1 if i == j else 1 for j in range(3)])
             for i, n in enumerate(shape))
    return x * torch.exp(-r2 / (2 * (min(shape) / 4.5) ** 2))


def corr(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def test_zero_tilt_is_the_sum_along_z():
    x = smooth_volume((16, 12, 20))
    p = project(x, [0.0])
    assert p.shape == (1, 12, 20)
    torch.testing.assert_close(p[0], x.sum(0))


def test_point_lands_at_u_equal_x_cos_plus_z_sin():
    D = H = W = 32
    v = torch.zeros(D, H, W, dtype=torch.float64)
    z0, x0 = 6, -4
    v[D // 2 + z0, 7, W // 2 + x0] = 1.0
    for theta in (-50.0, -20.0, 25.0, 55.0):
        row = project(v, [theta])[0, 7]
        u = (row * (torch.arange(W, dtype=torch.float64) - W // 2)).sum() / row.sum()  # centroid
        expected = x0 * math.cos(math.radians(theta)) + z0 * math.sin(math.radians(theta))
        assert abs(u.item() - expected) < 0.1  # bilinear sampling: within a tenth of a voxel
        assert row.sum().item() == pytest.approx(1.0, rel=0.1)  # the mass of the point, up to sampling


def test_central_slice_theorem_at_zero_tilt():
    """The 2D FFT of the untilted image is the k_z = 0 plane of the 3D FFT."""
    x = smooth_volume((16, 16, 16), seed=3)
    img = project(x, [0.0])[0]
    f3 = torch.fft.rfftn(x, dim=(-3, -2, -1))[0]
    f2 = torch.fft.rfft2(img, dim=(-2, -1))
    torch.testing.assert_close(f2, f3)


def test_matches_torch_fourier_slice():
    """Our real-space ray sums agree with teamtomo's Fourier-slice projector (R = rotation about Y by -theta, xyz)."""
    tfs = pytest.importorskip("torch_fourier_slice")
    x = smooth_volume((32, 32, 32), seed=1).float()
    for theta in (-40.0, 20.0, 55.0):
        c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
        R = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        theirs = tfs.project_3d_to_2d(x, R[None])[0]
        ours = project(x, [theta])[0]
        assert corr(theirs, ours) > 0.99
        assert 0.9 < (theirs.norm() / ours.norm()).item() < 1.1


def test_batched_equals_looped():
    xs = torch.stack([smooth_volume((12, 10, 14), seed=s) for s in range(3)])
    ang = [-45.0, 0.0, 30.0]
    batched = project(xs, ang, chunk=2)
    looped = torch.stack([project(x, ang) for x in xs])
    torch.testing.assert_close(batched, looped)
    rec_b = weighted_backprojection(batched, ang, 12, chunk=2)
    rec_l = torch.stack([weighted_backprojection(p, ang, 12) for p in looped])
    torch.testing.assert_close(rec_b, rec_l)


def test_backprojection_is_the_adjoint_of_projection():
    """<P x, p> = <x, P^T p> up to the interpolation of the two directions (linear in both)."""
    g = torch.Generator().manual_seed(0)
    x = smooth_volume((16, 8, 16), seed=2)
    p = torch.randn(3, 8, 16, generator=g, dtype=torch.float64)
    ang = [-30.0, 10.0, 40.0]
    lhs = (project(x, ang) * p).sum()
    rhs = (x * backproject(p, ang, 16)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=0.05)


def test_wbp_over_the_full_range_reproduces_the_volume():
    x = smooth_volume((32, 32, 32), seed=4)
    ang = torch.arange(-89.5, 90.0, 1.0)
    rec = weighted_backprojection(project(x, ang), ang, 32)
    assert corr(rec, x) > 0.99
    assert 0.9 < ((rec * x).sum() / (x * x).sum()).item() < 1.05


def test_limited_range_coverage_matches_the_missing_wedge_mask():
    """An asymmetric tilt range leaves empty the wedge the mask calls missing, not its mirror image."""
    g = torch.Generator().manual_seed(5)
    y = torch.randn(32, 32, 32, generator=g, dtype=torch.float64)
    ang = torch.arange(-30.0, 60.1, 2.0)
    power = torch.fft.rfftn(weighted_backprojection(project(y, ang), ang, 32), dim=(-3, -2, -1)).abs() ** 2
    kz = torch.fft.fftfreq(32, dtype=torch.float64).view(-1, 1, 1)
    kx = torch.fft.rfftfreq(32, dtype=torch.float64).view(1, 1, -1)
    low = (kz**2 + kx**2 < 0.2**2).expand_as(power)  # below the tilt-increment gaps (Crowther)
    measured = missing_wedge_mask((32, 32, 32), (-30, 60))
    mirrored = missing_wedge_mask((32, 32, 32), (-60, 30))
    inside = power[measured & low].mean()
    assert power[~measured & low].mean() < 0.1 * inside
    assert power[~mirrored & low].mean() > 0.2 * inside  # the other convention would be wrong


def test_tilt_weights_are_half_gaps_in_the_given_order():
    ang = torch.tensor([10.0, -20.0, 0.0, 40.0])
    w = tilt_weights(ang)
    # sorted -20, 0, 10, 40 (gaps 20, 10, 30): 20, 15, 20, 30; the end tilts count their inner half-gap twice
    expected = torch.deg2rad(torch.tensor([20.0, 20.0, 15.0, 30.0], dtype=torch.float64))
    torch.testing.assert_close(w, expected)


def test_ramp_filter_is_the_ramp_in_fourier_space():
    W = 64
    row = torch.zeros(W, dtype=torch.float64)
    row[W // 2] = 1.0
    h = ramp_filter(row)
    assert h[W // 2].item() == pytest.approx(0.25)
    assert h[W // 2 + 1].item() == pytest.approx(-1 / math.pi**2)
    assert h[W // 2 + 2].item() == pytest.approx(0.0, abs=1e-12)


def test_tilt_noise_has_the_shot_noise_std():
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(2, 64, 64, dtype=torch.float64)
    noisy = add_tilt_noise(img, [2.0, 8.0], voxel_size=5.0, generator=g)
    assert noisy[0].std().item() == pytest.approx(1 / math.sqrt(2.0 * 25), rel=0.05)
    assert noisy[1].std().item() == pytest.approx(1 / math.sqrt(8.0 * 25), rel=0.05)


@pytest.mark.parametrize("bad", [[95.0], [float("nan")], []])
def test_bad_angles_are_refused(bad):
    with pytest.raises(ValueError, match="tilt angles|empty"):
        project(torch.zeros(4, 4, 4), bad)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="volume"):
        project(torch.zeros(4, 4), [0.0])
    with pytest.raises(ValueError, match="NaN"):
        project(torch.full((4, 4, 4), float("nan")), [0.0])
    with pytest.raises(ValueError, match="2 tilt angles for 3 images"):
        backproject(torch.zeros(3, 4, 4), [0.0, 10.0], 4)
    with pytest.raises(ValueError, match="dose"):
        add_tilt_noise(torch.zeros(2, 4, 4), -1.0, voxel_size=1.0)


def test_ctf_first_zero_and_phase_flip():
    """torch-ctf's CTF has its first zero where the phase-contrast formula puts it; phase flipping makes it |CTF|."""
    from cryolearn.physics import apply_ctf, ctf_2d, phase_flip

    ctf = ctf_2d((128, 128), voxel_size=2.0, defocus=2.0)
    assert ctf.shape == (128, 65)
    line = ctf[0]  # along k_x
    assert line[0].item() == pytest.approx(0.07, abs=1e-3)  # amplitude contrast at the origin
    # first zero: pi*lambda*df*k^2 - pi/2 lambda^3 Cs k^4 + asin(0.07) = pi; 300 kV: lambda = 0.019687 A
    lam, df, cs = 0.019687, 2.0e4, 2.7e7
    k = torch.fft.rfftfreq(128, d=2.0, dtype=torch.float64)
    phase = math.pi * lam * df * k**2 - 0.5 * math.pi * lam**3 * cs * k**4 + math.asin(0.07)
    first = int(torch.nonzero(phase >= math.pi)[0])
    assert (line[:first - 1] > 0).all() and line[first + 1] < 0
    g = torch.Generator().manual_seed(0)
    img = torch.randn(2, 128, 128, generator=g)
    flipped = phase_flip(apply_ctf(img, ctf), ctf)
    expected = apply_ctf(img, ctf.abs())
    torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=1e-4)
