"""Scores without ground truth: wedge power per shell and the held-out rotation test."""

import pytest
import torch

from cryolearn.physics import apply_missing_wedge, missing_wedge_mask, rotate_cube
from cryolearn.metrics import rotation_validation_baselines, rotation_validation_error, wedge_power_ratio


@pytest.fixture
def noise():
    return torch.randn(4, 24, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_white_noise_is_isotropic_and_a_masked_volume_has_an_empty_wedge(noise):
    mask = missing_wedge_mask((24, 24, 24), (-60, 60))
    iso = wedge_power_ratio(noise, mask)
    assert iso.ratio.shape == (4, 13) and iso.pooled.shape == (4,)
    assert torch.allclose(iso.pooled, torch.ones(4, dtype=torch.float64), atol=0.1)
    masked = wedge_power_ratio(apply_missing_wedge(noise, mask), mask)
    assert (masked.pooled < 1e-20).all()
    # scaling the wedge by a factor a scales the ratio by a^2
    half = apply_missing_wedge(noise, mask) + 0.5 * (noise - apply_missing_wedge(noise, mask))
    torch.testing.assert_close(wedge_power_ratio(half, mask).pooled, 0.25 * iso.pooled)


def test_rotation_test_scores_the_identity_1_and_an_oracle_0(noise):
    mask = missing_wedge_mask((24, 24, 24), (-60, 60))
    y = apply_missing_wedge(noise, mask)
    assert rotation_validation_error(lambda v: v, y, mask).item() == pytest.approx(1.0)
    rots = [3, 5]
    calls = iter(rots * 1)

    def oracle(v):  # knows what the rotation hid: the rotated measured data
        return rotate_cube(y, next(calls))

    assert rotation_validation_error(oracle, y, mask, rotations=rots).item() == pytest.approx(0.0, abs=1e-10)
    per = rotation_validation_error(lambda v: 2 * v + 0.3 * torch.randn_like(v), y, mask, pooled=False)
    assert per.shape == (4,) and (per > 1).all()


def test_rotation_region_is_measured_data_moved_into_the_wedge(noise):
    """The score only looks where the rotated input was measured: what a restoration puts elsewhere is free."""
    mask = missing_wedge_mask((24, 24, 24), (-60, 60))
    y = apply_missing_wedge(noise, mask)
    base = rotation_validation_error(lambda v: v, y, mask, rotations=[3])
    # adding power only in the measured region of M R y changes nothing in the region scored
    assert rotation_validation_error(lambda v: v + apply_missing_wedge(torch.randn_like(v), mask), y, mask,
                                     rotations=[3]).item() == pytest.approx(base.item())


def test_bad_input_is_refused(noise):
    mask = missing_wedge_mask((24, 24, 24), (-60, 60))
    with pytest.raises(ValueError, match="cubic"):
        rotation_validation_error(lambda v: v, noise[:, :, :, :20], mask)
    with pytest.raises(ValueError, match="half grid"):
        wedge_power_ratio(noise, mask[..., :5])


def test_square_baseline_score_is_the_minimum_over_its_scale():
    """The closed form (the pooled error is quadratic in the scale) equals a scan over scales."""
    g = torch.Generator().manual_seed(1)
    mask = missing_wedge_mask((16, 16, 16), (-60, 60))
    blobs = torch.nn.functional.avg_pool3d(torch.randn(3, 1, 16, 16, 16, generator=g, dtype=torch.float64), 5, 1, 2,
                                           count_include_pad=False)[:, 0]
    y = apply_missing_wedge(blobs.exp(), mask)  # positive densities: their square correlates with the hidden data
    base = rotation_validation_baselines(y, mask)
    assert base["no restoration"] == pytest.approx(1.0)

    def scaled(a):
        def f(t):
            sq = t.pow(2)
            return a * (sq - sq.mean(dim=(-3, -2, -1), keepdim=True))
        return f

    scan = [rotation_validation_error(scaled(a), y, mask).item() for a in torch.linspace(-2, 2, 81).tolist()]
    assert base["squared input"] == pytest.approx(min(scan), abs=2e-3)
    assert base["squared input"] < 1.0


@pytest.mark.parametrize("tilt", [(-60, 60), (-40, 62), (-66, 56)])
def test_tilt_range_profile_reads_the_wedge_of_a_masked_volume(tilt):
    """White noise masked by a known tilt range (thin slab, boxes of unequal sides): the edges come back to the degree."""
    from cryolearn.metrics import tilt_range_profile

    shape = (36, 70, 64)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    prof = tilt_range_profile(apply_missing_wedge(x, missing_wedge_mask(shape, tilt)))
    assert prof.tilt_range == pytest.approx(tilt, abs=1.0)
    inside = (prof.angle > tilt[0] + 3) & (prof.angle < tilt[1] - 3) & ~prof.power.isnan()
    outside = ((prof.angle < tilt[0] - 6) | (prof.angle > tilt[1] + 6)) & ~prof.power.isnan()  # the window blurs the edge
    assert prof.power[inside].median() == pytest.approx(1.0, abs=0.1) and prof.power[outside].max() < 0.1
    assert tilt_range_profile(x).tilt_range == (-90.0, 90.0)  # no wedge at all
    with pytest.raises(ValueError, match="NaN"):
        tilt_range_profile(x.masked_fill(x > 3, float("nan")))
    with pytest.raises(ValueError, match="one tomogram"):
        tilt_range_profile(x[None])
