"""Rotations: the cube group applied exactly, and continuous SO(3) (the book's appendix on notation and conventions)."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from cryolearn.physics import (
    cube_rotations,
    random_cube_indices,
    random_so3,
    rotate_cube,
    rotate_volume,
)


@pytest.mark.parametrize("ndim,order", [(3, 24), (2, 4)])
def test_group_distinct_closed_proper(ndim, order):
    mats = cube_rotations(ndim, dtype=torch.float64)
    assert mats.shape == (order, ndim, ndim)
    assert torch.equal(mats[0], torch.eye(ndim, dtype=torch.float64))
    keys = {tuple(m.flatten().tolist()) for m in mats}
    assert len(keys) == order
    for a in mats:
        torch.testing.assert_close(a @ a.T, torch.eye(ndim, dtype=torch.float64))
        assert torch.linalg.det(a).item() == pytest.approx(1.0)
        for b in mats:
            assert tuple((a @ b).flatten().tolist()) in keys


def _point_volume(n, p):
    x = torch.zeros(n, n, n, dtype=torch.float64)
    x[p] = 1.0
    return x


def test_rotate_cube_matches_matrix():
    n = 7
    c = (n - 1) / 2
    p = (1, 2, 5)  # a voxel off every axis
    mats = cube_rotations(dtype=torch.float64)
    x = _point_volume(n, p)
    for i, r in enumerate(mats):
        y = rotate_cube(x, i)
        q = (r @ (torch.tensor(p, dtype=torch.float64) - c) + c).round().long()
        assert y[tuple(q.tolist())] == 1.0 and y.sum() == 1.0


def test_rotate_cube_batched_equals_looped_and_2d():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 6, 6, generator=g)
    idx = random_cube_indices(5, generator=g)
    out = rotate_cube(x, idx)
    for b in range(5):
        torch.testing.assert_close(out[b], rotate_cube(x[b], int(idx[b])))
    img = torch.randn(4, 8, 8)
    out2 = rotate_cube(img, torch.arange(4), ndim=2)
    for b in range(4):
        torch.testing.assert_close(out2[b], rotate_cube(img[b], b, ndim=2))
    # 2D group element 1..3 are the non-trivial quarter turns: four of the same turn give the identity.
    y = img[0]
    for _ in range(4):
        y = rotate_cube(y, 1, ndim=2)
    torch.testing.assert_close(y, img[0])


def test_rotate_cube_errors():
    with pytest.raises(ValueError, match="cubic"):
        rotate_cube(torch.zeros(4, 4, 5), 1)
    with pytest.raises(ValueError, match="index"):
        rotate_cube(torch.zeros(4, 4, 4), 24)


def test_random_so3_is_scipys_construction_on_the_torch_normals():
    # Rotation.random draws normal(size=(n, 4)) and calls from_quat: the same on the generator's normals.
    q = torch.randn(10, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = Rotation.from_quat(q.numpy()).as_matrix()
    r = random_so3(10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    np.testing.assert_array_equal(r.numpy(), ref)
    assert random_so3(0).shape == (0, 3, 3) and random_so3(2).dtype == torch.float32
    # The float32 rotations of seed 0 as the package's own quaternion code gave them (simulated data sets depend on them).
    before = [
        [[-0.2835531234741211, 0.20882180333137512, -0.9359439611434937],
         [-0.4489877223968506, -0.8913253545761108, -0.06284169107675552],
         [-0.8473533391952515, 0.4024083912372589, 0.3464965224266052]],
        [[-0.06011178717017174, 0.5898041129112244, -0.8053059577941895],
         [0.9280532002449036, 0.3300981819629669, 0.17248886823654175],
         [0.36756467819213867, -0.7369982004165649, -0.5672124028205872]],
    ]
    assert torch.equal(random_so3(2, generator=torch.Generator().manual_seed(0)), torch.tensor(before))


def test_random_so3_is_rotation_and_uniform():
    g = torch.Generator().manual_seed(1)
    r = random_so3(4000, generator=g, dtype=torch.float64)
    torch.testing.assert_close(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(4000, 3, 3))
    assert torch.allclose(torch.linalg.det(r), torch.ones(4000, dtype=torch.float64))
    # Haar measure: E[R] = 0 and the rotated z axis is uniform on the sphere (E[cos^2] = 1/3).
    assert r.mean(0).abs().max() < 0.05
    assert abs((r[:, 0, 0] ** 2).mean().item() - 1 / 3) < 0.02
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_so3(3, generator=g1), random_so3(3, generator=g2))


def test_rotate_volume_agrees_with_cube_rotation_and_is_batched():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 9, 9, 9, generator=g, dtype=torch.float64)
    mats = cube_rotations(dtype=torch.float64)
    idx = [0, 5, 17]
    out = rotate_volume(x, mats[idx])
    for b, i in enumerate(idx):
        torch.testing.assert_close(out[b], rotate_cube(x[b], i), atol=1e-9, rtol=0)


def test_rotate_volume_moves_point_like_scipy():
    n = 21
    c = (n - 1) / 2
    x = torch.zeros(n, n, n, dtype=torch.float64)
    p = torch.tensor([c + 5.0, c, c - 3.0], dtype=torch.float64)
    x[tuple(p.long().tolist())] = 1.0
    rot = Rotation.from_euler("zyx", [30, 20, 10], degrees=True).as_matrix()
    y = rotate_volume(x, torch.from_numpy(rot))
    coords = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64)] * 3, indexing="ij"), -1)
    centroid = (coords * y[..., None]).sum((0, 1, 2)) / y.sum()
    expect = torch.from_numpy(rot) @ (p - c) + c
    torch.testing.assert_close(centroid, expect, atol=0.05, rtol=0)


def test_tilt_axis_rotations_keep_y_and_move_the_whole_wedge_into_the_measured_region():
    from cryolearn.physics import cube_rotations, missing_wedge_mask, rotate_cube, tilt_axis_rotations

    idx = tilt_axis_rotations()
    mats = cube_rotations()
    assert len(idx) == 8 and idx[0] == 0 and len(set(idx)) == 8
    e_y = torch.tensor([0.0, 1.0, 0.0])
    for i in idx:  # Y goes to +-Y
        assert torch.allclose((mats[i] @ e_y).abs(), e_y)
    # Half of them move every missing coefficient into the measured region.
    shape = (16, 16, 16)
    mask = missing_wedge_mask(shape, (-60, 60))
    probe = torch.fft.irfftn((~mask).double(), s=shape, dim=(-3, -2, -1))  # power only in the wedge
    moved = [i for i in idx if (torch.fft.rfftn(rotate_cube(probe, i), dim=(-3, -2, -1)).abs()[~mask] < 1e-9).all()]
    assert len(moved) == 4  # the quarter turns about Y and the half turns about the diagonals x = +-z
