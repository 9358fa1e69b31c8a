"""Crowded tomograms from a tilt series, and subtomograms cut from tomograms."""

import pytest
import torch

from cryolearn.data import extract_subtomograms, load_structure_maps, simulate_tomogram
from cryolearn.metrics import relative_wedge_error
from cryolearn.physics import missing_wedge_mask


@pytest.fixture(scope="module")
def small():
    torch.set_num_threads(1)
    maps = load_structure_maps(["6zu5", "7pbl"])
    return simulate_tomogram(maps, shape=(24, 64, 64), box=16, n_particles=6, snr=1.0, seed=2)


def test_particles_do_not_overlap_and_truth_is_normalised(small):
    c = small.positions.double() + 8
    d = torch.cdist(c, c) + torch.eye(len(c)) * 1e9
    assert d.min() >= 0.8 * 16
    assert len(small.labels) == small.positions.shape[0] == small.metadata["n_particles"] >= 3
    assert small.truth.std().item() == pytest.approx(1.0, rel=1e-4)
    assert small.tilt_series.shape == (41, 64, 64) and small.tomogram.shape == (24, 64, 64)
    assert small.voxel_size == pytest.approx(6.0 * 64 / 16)


def test_per_voxel_snr_is_the_one_asked_for(small):
    """The tomogram is WBP(signal) + WBP(noise) with var(signal part) / var(noise part) = snr."""
    from cryolearn.physics import project, weighted_backprojection

    clean = weighted_backprojection(project(small.truth, small.tilt_angles), small.tilt_angles, 24)
    noise = small.tomogram - clean
    assert (clean.var() / noise.var()).item() == pytest.approx(1.0, rel=1e-3)


def test_the_tomogram_keeps_the_measured_region_and_misses_the_wedge():
    maps = load_structure_maps(["6zu5", "7pbl"])
    sim = simulate_tomogram(maps, shape=(24, 48, 48), box=16, n_particles=4, snr=1e6, seed=0)
    mask = missing_wedge_mask(sim.truth.shape, (-60, 60))
    lowpass = lambda v: torch.fft.irfftn(torch.fft.rfftn(v, dim=(-3, -2, -1)) * mask, s=v.shape, dim=(-3, -2, -1))
    corr = torch.corrcoef(torch.stack([lowpass(sim.truth).flatten(), sim.tomogram.flatten()]))[0, 1]
    assert corr > 0.9  # noise-free: the measured part of the truth comes back
    assert relative_wedge_error(sim.tomogram, sim.truth, mask).item() > 0.6  # the wedge stays mostly empty (0.77)


def test_same_seed_same_tomogram():
    maps = load_structure_maps(["7pbl"])
    a = simulate_tomogram(maps, shape=(16, 40, 40), box=16, n_particles=2, seed=5)
    b = simulate_tomogram(maps, shape=(16, 40, 40), box=16, n_particles=2, seed=5)
    torch.testing.assert_close(a.tomogram, b.tomogram)
    torch.testing.assert_close(a.positions, b.positions)


def test_bad_slab_is_refused():
    maps = load_structure_maps(["7pbl"])
    with pytest.raises(ValueError, match="does not fit"):
        simulate_tomogram(maps, shape=(8, 40, 40), box=16)
    with pytest.raises(ValueError, match="positive"):
        simulate_tomogram(maps, shape=(16, 40, 40), box=16, snr=0)


def test_extract_on_a_grid_skips_empty_boxes_and_normalises():
    g = torch.Generator().manual_seed(0)
    tomo = torch.zeros(16, 40, 40)
    tomo[:, :20] = torch.randn(16, 20, 40, generator=g)  # one half is empty ice
    boxes, origins = extract_subtomograms(tomo, box=8, stride=8)
    assert boxes.shape[1:] == (8, 8, 8) and origins.shape == (boxes.shape[0], 4)
    assert (origins[:, 2] < 20).all() and (origins[:, 2] == 16).any()  # empty boxes skipped, half-filled kept
    torch.testing.assert_close(boxes.flatten(1).mean(1), torch.zeros(len(boxes)), atol=1e-5, rtol=0)
    torch.testing.assert_close(boxes.flatten(1).std(1, unbiased=False), torch.ones(len(boxes)), atol=1e-4, rtol=0)
    t, z, y, x = origins[3].tolist()
    raw = tomo[z : z + 8, y : y + 8, x : x + 8]
    torch.testing.assert_close(boxes[3], (raw - raw.mean()) / raw.std(unbiased=False))


def test_extract_at_random_positions_from_several_tomograms():
    g = torch.Generator().manual_seed(1)
    tomos = [torch.randn(10, 20, 30, generator=g), torch.randn(12, 12, 12, generator=g)]
    boxes, origins = extract_subtomograms(tomos, box=10, n=50, seed=3)
    assert boxes.shape == (50, 10, 10, 10)
    assert set(origins[:, 0].tolist()) == {0, 1}
    for t, z, y, x in origins.tolist():
        assert z + 10 <= tomos[t].shape[0] and y + 10 <= tomos[t].shape[1] and x + 10 <= tomos[t].shape[2]
    with pytest.raises(ValueError, match="box=16"):
        extract_subtomograms(tomos, box=16)
