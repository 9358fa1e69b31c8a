"""estimate_beta's default rotations move the measured region; in 2D that excludes the half turn."""

import warnings

import pytest
import torch

from cryolearn.methods import estimate_beta, get_method
from cryolearn.methods.beta import maps_measured_region_onto_itself
from cryolearn.physics import apply_missing_wedge, cube_rotations, missing_wedge_mask, quarter_turns_xz


def test_which_rotations_map_the_measured_region_onto_itself():
    mask2 = missing_wedge_mask((16, 16), (-60, 60))
    half_turn = [i for i, r in enumerate(cube_rotations(2)) if torch.equal(r, -torch.eye(2))]
    assert half_turn == [1]
    assert [maps_measured_region_onto_itself(mask2, i) for i in range(4)] == [True, True, False, False]
    mask3 = missing_wedge_mask((8, 8, 8), (-60, 60))
    assert maps_measured_region_onto_itself(mask3, 0)
    assert not any(maps_measured_region_onto_itself(mask3, i) for i in quarter_turns_xz())


def test_2d_estimate_matches_the_known_truth_and_excludes_the_half_turn():
    """G = identity on noise-free masked observations of white unit-variance images.

    The true in-wedge error of x_bar = y is the image's own wedge content, power 1: beta = 1. A quarter
    turn moves measured coefficients (power 1) into the wedge, so the proxy finds 1; the half turn keeps
    the wedge empty, sees no residual, and half a batch of it would give beta = 2 (a posterior sqrt(2) too narrow).
    """
    shape = (16, 16)
    mask = missing_wedge_mask(shape, (-60, 60))
    m = get_method("cryogen2", mask=mask, sigma=0.3, base_channels=4)
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(0))
    y = apply_missing_wedge(x, mask)
    assert (m.predict(y) - y).abs().max() < 1e-5
    truth = 1.0 / torch.fft.rfftn(x, dim=(-2, -1), norm="ortho").abs().pow(2).mean(0)[~mask].mean().item()
    est = estimate_beta(m, y, generator=torch.Generator().manual_seed(1))
    assert est.beta == pytest.approx(truth, rel=0.1)
    assert est.beta == pytest.approx(1.0, rel=0.1)
    same = estimate_beta(m, y, rotations=[2, 3], generator=torch.Generator().manual_seed(1))
    assert same.beta == est.beta  # the default is the two quarter turns
    with pytest.warns(UserWarning, match="onto itself"):
        old = estimate_beta(m, y, rotations=[1, 3], generator=torch.Generator().manual_seed(1))
    assert old.beta == pytest.approx(2 * truth, rel=0.15)  # the old default: too large by 2


def test_3d_default_unchanged_and_no_warning():
    shape = (8, 8, 8)
    m = get_method("cryogen2", mask=missing_wedge_mask(shape, (-60, 60)), sigma=0.3, base_channels=4)
    y = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = estimate_beta(m, y, generator=torch.Generator().manual_seed(1))
    b = estimate_beta(m, y, rotations=quarter_turns_xz(), generator=torch.Generator().manual_seed(1))
    assert a.beta == b.beta
