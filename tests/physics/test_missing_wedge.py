"""The missing-wedge mask and operator M (the book's appendix on notation and conventions)."""

import math

import numpy as np
import pytest
import torch

from cryolearn.physics import apply_missing_wedge, fourier_grid, hermitian_weights, missing_band_mask, missing_wedge_mask
from cryolearn.physics.rotations import rotate_cube


def _mirror(full):
    dims = tuple(range(full.ndim))
    return torch.roll(torch.flip(full, dims), (1,) * full.ndim, dims)


@pytest.mark.parametrize("shape", [(16, 16, 16), (15, 12, 17), (20, 9)])
@pytest.mark.parametrize("tilt", [(-60, 60), (-45, 30), (-10, 70)])
def test_mask_symmetric_and_real(shape, tilt):
    full = missing_wedge_mask(shape, tilt, rfft=False)
    assert torch.equal(full, _mirror(full))
    half = missing_wedge_mask(shape, tilt, rfft=True)
    assert torch.equal(half, full[..., : shape[-1] // 2 + 1])
    x = torch.randn(3, *shape, dtype=torch.float64)
    dims = tuple(range(-len(shape), 0))
    y_full = torch.fft.ifftn(torch.fft.fftn(x, dim=dims, norm="ortho") * full, dim=dims, norm="ortho")
    assert y_full.imag.abs().max() < 1e-12
    torch.testing.assert_close(y_full.real, apply_missing_wedge(x, half))


def test_origin_and_ky_axis_measured_and_kz_axis_missing():
    m = missing_wedge_mask((16, 16, 16), (-60, 60), rfft=False)
    assert m[0, :, 0].all()  # k_y axis and the origin
    assert not m[1:, 0, 0].any()  # k_z axis (beam direction) is inside the wedge
    assert m[0, 0, 1:].all()  # k_x axis is measured (tilt 0)


def test_symmetric_rule_matches_closed_form():
    shape = (24, 8, 24)
    m = missing_wedge_mask(shape, (-50, 50), rfft=False)
    kz, ky, kx = fourier_grid(shape, rfft=False)
    expect = (kz.abs() <= math.tan(math.radians(50)) * kx.abs() + 1e-12) | ((kx == 0) & (kz == 0))
    expect = (expect & (ky == ky)) & _mirror(expect.expand(shape))
    assert torch.equal(m, expect.expand(shape))


def test_asymmetric_range_sign_convention():
    # A sample at +40 deg from k_x (k_z > 0, k_x > 0) is measured by [-10, 70] but not by [-70, 10].
    shape = (32, 4, 32)
    k = 5
    iz, ix = round(k * math.sin(math.radians(40))), round(k * math.cos(math.radians(40)))
    assert missing_wedge_mask(shape, (-10, 70), rfft=False)[iz, 0, ix]
    assert not missing_wedge_mask(shape, (-70, 10), rfft=False)[iz, 0, ix]


# Ranges whose edges avoid the grid diagonals: at exactly +-45 degrees the many samples with |k_z| = |k_x|
# all sit on the (inclusive) boundary and add about 3%.
@pytest.mark.parametrize("tilt", [(-60, 60), (-30, 60), (-70, 70), (-40, 50)])
def test_measured_fraction_in_sphere(tilt):
    shape = (64, 64, 64)
    m = missing_wedge_mask(shape, tilt, rfft=False)
    kz, ky, kx = fourier_grid(shape, rfft=False)
    inside = (kz**2 + ky**2 + kx**2) <= 0.25
    frac = m[inside.expand(shape)].double().mean().item()
    expect = (tilt[1] - tilt[0]) / 180
    assert abs(frac - expect) < 0.02 * expect + 1e-9


def test_operator_idempotent_and_self_adjoint():
    g = torch.Generator().manual_seed(0)
    shape = (12, 10, 14)
    m = missing_wedge_mask(shape, (-55, 40))
    x = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    y = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    mx = apply_missing_wedge(x, m)
    torch.testing.assert_close(apply_missing_wedge(mx, m), mx)
    torch.testing.assert_close((mx * y).sum(), (x * apply_missing_wedge(y, m)).sum())
    # A projection that removes something: M is not the identity.
    assert (mx - x).norm() > 0.1 * x.norm()


def test_batched_equals_looped_and_dtype_follows_input():
    shape = (8, 8, 8)
    m = missing_wedge_mask(shape)
    x = torch.randn(3, 2, *shape)
    out = apply_missing_wedge(x, m)
    assert out.dtype == torch.float32 and out.shape == x.shape
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(out[i, j], apply_missing_wedge(x[i, j], m))


def test_rotation_about_y_moves_wedge_onto_kx():
    n = 32
    m = missing_wedge_mask((n, n, n), (-60, 60))
    x = torch.randn(n, n, n, dtype=torch.float64)
    mx = apply_missing_wedge(x, m)
    # Find the cube rotation that is +90 degrees about Y: (z, y, x) -> (x, y, -z)-type matrix.
    from cryolearn.physics import cube_rotations

    mats = cube_rotations(dtype=torch.float64)
    idx = [i for i in range(24) if mats[i][1, 1] == 1 and mats[i][0, 0] == 0][0]
    r = rotate_cube(mx, idx)
    power = torch.fft.fftn(r, dim=(-3, -2, -1), norm="ortho").abs() ** 2
    kz, ky, kx = fourier_grid((n, n, n), rfft=False)
    near_kx = (kx.abs() > 0.1) & (kz.abs() < 0.3 * kx.abs())  # samples near the k_x axis
    near_kz = (kz.abs() > 0.1) & (kx.abs() < 0.3 * kz.abs())
    assert power[near_kx.expand(n, n, n)].max() < 1e-20  # the empty wedge now sits around k_x
    assert power[near_kz.expand(n, n, n)].mean() > 0.1  # and k_z is filled


def test_1d_band():
    m = missing_band_mask(64, (0.1, 0.2))
    k = torch.fft.rfftfreq(64)
    assert torch.equal(~m, (k >= 0.1) & (k <= 0.2))
    m1 = missing_wedge_mask((64,), (-45, 45))
    assert m1[0] and (~m1).sum() > 0 and m1[-1]
    with pytest.raises(ValueError, match="band"):
        missing_band_mask(64, (0.3, 0.2))


@pytest.mark.parametrize("bad", [(-95, 60), (-60, 90), (30, 30), (40, -40), (float("nan"), 10), "x"])
def test_bad_tilt_range(bad):
    with pytest.raises(ValueError, match="tilt"):
        missing_wedge_mask((8, 8, 8), bad)


def test_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        missing_wedge_mask((4, 4, 4, 4))
    with pytest.raises(ValueError, match="half grid"):
        apply_missing_wedge(torch.zeros(8, 8, 10), missing_wedge_mask((8, 8, 8)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree():
    m = missing_wedge_mask((16, 16, 16), (-50, 60))
    mc = missing_wedge_mask((16, 16, 16), (-50, 60), device="cuda")
    assert torch.equal(m, mc.cpu())
    x = torch.randn(2, 16, 16, 16)
    torch.testing.assert_close(apply_missing_wedge(x, m), apply_missing_wedge(x.cuda(), mc).cpu(), atol=1e-5, rtol=1e-5)


def test_matches_numpy_reference():
    shape = (10, 6, 12)
    m = missing_wedge_mask(shape, (-40, 55), rfft=False).numpy()
    x = np.random.default_rng(1).standard_normal(shape)
    ref = np.fft.ifftn(np.fft.fftn(x) * m).real
    out = apply_missing_wedge(torch.from_numpy(x), missing_wedge_mask(shape, (-40, 55)))
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("n", [16, 15])
def test_rotated_mask_is_the_support_of_a_turned_masked_volume(n):
    """rotated_mask agrees with the Fourier support of R(M x) for a random x, for every cube rotation."""
    from cryolearn.physics import cube_rotations, rotate_cube, rotated_mask

    mask = missing_wedge_mask((n,) * 3, (-60, 60))
    x = apply_missing_wedge(torch.randn((n,) * 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), mask)
    w = hermitian_weights((n,) * 3)
    mats = cube_rotations()
    for r in range(24):
        got = rotated_mask(mask, r, (n,) * 3)
        amp = torch.fft.rfftn(rotate_cube(x, r), dim=(-3, -2, -1)).abs()
        assert torch.equal(got, amp > 1e-8 * amp.max()), r
        assert (w * got).sum() == (w * mask).sum()  # a turn moves coefficients, it neither adds nor drops any
        keeps_wedge = abs(mats[r][1, 1]) == 1 and abs(mats[r][2, 2]) == 1  # Y and X stay on their axes
        assert torch.equal(got, mask) == keeps_wedge, r
    with pytest.raises(ValueError, match="half grid"):
        rotated_mask(mask, 1, (n, n, n + 2))
