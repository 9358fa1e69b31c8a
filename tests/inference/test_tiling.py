"""Tiled whole-tomogram restoration (the book's appendix on notation and conventions and the book's chapter on the missing wedge (data))."""

import itertools
import math

import numpy as np
import pytest
import torch

from cryolearn.data import normalize
from cryolearn.inference.tiling import blend_window, restore_tiled, seam_ratio, tile_starts


def _tomogram(shape=(37, 50, 61), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return 3.0 + 2.0 * torch.randn(shape, generator=g, dtype=dtype)


def _identity(t):
    return {"mean": t}


# ----- tile_starts ------------------------------------------------------------
def test_tile_starts_cover_every_voxel_with_the_overlap():
    for box in (1, 2, 5, 8, 16):
        for overlap in range(box):
            for size in range(box, 90):
                s = tile_starts(size, box, overlap)
                assert s[0] == 0 and s[-1] == size - box, (size, box, overlap, s)
                d = np.diff(s)
                assert (d > 0).all() and (d <= box - overlap).all(), (size, box, overlap, s)  # shared >= overlap
                covered = np.zeros(size, bool)
                for a in s:
                    covered[a : a + box] = True
                assert covered.all()
                # as few tiles as the overlap allows: one fewer could not reach the end
                assert len(s) == 1 or (len(s) - 2) * (box - overlap) + box < size


def test_tile_starts_examples_and_errors():
    assert tile_starts(16, 16, 4) == [0]
    assert tile_starts(28, 16, 4) == [0, 12]
    assert tile_starts(37, 16, 4) == [0, 10, 21]
    with pytest.raises(ValueError, match="box <= size"):
        tile_starts(15, 16, 4)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(40, 16, 16)
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(40, 16, -1)


# ----- blend_window -----------------------------------------------------------
@pytest.mark.parametrize("box, overlap", [(16, 4), (9, 3), (8, 5), (6, 0), (1, 0)])
def test_window_is_positive_symmetric_separable(box, overlap):
    w = blend_window(box, overlap, dtype=torch.float64)
    w1 = blend_window(box, overlap, ndim=1, dtype=torch.float64)
    assert w.shape == (box,) * 3 and w.dtype == torch.float64
    assert bool((w > 0).all()) and bool((w <= 1).all())
    for dims in ([0], [1], [2], [0, 1, 2]):
        torch.testing.assert_close(w.flip(dims), w, rtol=0, atol=1e-15)
    torch.testing.assert_close(w, torch.einsum("i,j,k->ijk", w1, w1, w1))
    if 2 * overlap <= box:
        assert w1[overlap:box - overlap].eq(1).all() and bool((w1[:overlap] < 1).all())


def test_window_closed_form_and_partition_of_unity():
    box, o = 12, 4
    w1 = blend_window(box, o, ndim=1, dtype=torch.float64)
    ramp = [0.5 * (1 - math.cos(math.pi * (d + 0.5) / o)) for d in range(o)]
    np.testing.assert_allclose(w1.numpy(), ramp + [1.0] * (box - 2 * o) + ramp[::-1], rtol=0, atol=1e-15)
    # neighbours shifted by box - overlap: the weights in their overlap sum to 1
    torch.testing.assert_close(w1[box - o :] + w1[:o], torch.ones(o, dtype=torch.float64))
    torch.testing.assert_close(blend_window(5, 0), torch.ones(5, 5, 5))
    with pytest.raises(ValueError, match="overlap"):
        blend_window(8, 8)
    with pytest.raises(ValueError, match="ndim"):
        blend_window(8, 2, ndim=0)


# ----- restore_tiled ----------------------------------------------------------
def _reference(volume, fn, box, overlap):
    """One tile at a time in numpy: the definition in the docstring of restore_tiled."""
    x = volume.numpy()
    w = blend_window(box, overlap, dtype=volume.dtype).numpy()
    sums, weight = {}, np.zeros_like(x)
    for a, b, c in itertools.product(*[tile_starts(n, box, overlap) for n in x.shape]):
        sl = np.s_[a : a + box, b : b + box, c : c + box]
        t = x[sl]
        m, s = t.mean(), t.std()
        out = fn(torch.from_numpy((t - m) / s)[None])
        for k, o in out.items():
            o = o[0].numpy()
            sums.setdefault(k, np.zeros_like(x))[sl] += w * ((o * s) ** 2 if k.endswith("std") else o * s + m)
        weight[sl] += w
    return {k: np.sqrt(v / weight) if k.endswith("std") else v / weight for k, v in sums.items()}


def test_identity_gives_back_an_odd_sized_tomogram():
    x = _tomogram((37, 50, 61))
    out = restore_tiled(x, _identity, box=16, overlap=4, batch_size=5, progress=False)
    assert set(out) == {"mean"} and out["mean"].dtype == torch.float64
    torch.testing.assert_close(out["mean"], x, rtol=0, atol=1e-12)
    x32 = x.float()
    torch.testing.assert_close(restore_tiled(x32, _identity, 16, progress=False)["mean"], x32, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fn", [_identity, lambda t: {"mean": torch.zeros_like(t)}], ids=["identity", "zeros"])
def test_constant_tomogram_comes_back_constant(fn):
    x = torch.full((20, 24, 18), -4.25, dtype=torch.float64)
    seen = []

    def wrapped(t):
        seen.append(t)
        return fn(t)

    out = restore_tiled(x, wrapped, box=12, progress=False)["mean"]
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)
    assert all(bool((t == 0).all()) for t in seen)  # constant tiles are normalised to exactly zero


def test_partly_constant_tomogram_restores_the_rest():
    x = _tomogram((24, 24, 40))
    x[:, :, :16] = 0.0  # padding: whole tiles are constant there
    out = restore_tiled(x, _identity, box=12, overlap=3, progress=False)["mean"]
    torch.testing.assert_close(out, x, rtol=0, atol=1e-12)


def test_tiles_are_normalised_like_training_subtomograms_and_batched():
    x = _tomogram((20, 30, 25), seed=1)
    calls = []

    def fn(t):
        calls.append(t.shape[0])
        torch.testing.assert_close(t.mean(dim=(1, 2, 3)), torch.zeros(t.shape[0], dtype=t.dtype), rtol=0, atol=1e-12)
        torch.testing.assert_close(t.std(dim=(1, 2, 3), unbiased=False), torch.ones(t.shape[0], dtype=t.dtype))
        torch.testing.assert_close(normalize(t), t)
        return {"mean": t}

    restore_tiled(x, fn, box=10, overlap=2, batch_size=4, progress=False)
    n_tiles = len(tile_starts(20, 10, 2)) * len(tile_starts(30, 10, 2)) * len(tile_starts(25, 10, 2))
    assert sum(calls) == n_tiles and calls == [4] * (n_tiles // 4) + ([n_tiles % 4] if n_tiles % 4 else [])


def test_matches_a_tile_by_tile_reference_and_batch_size_does_not_matter():
    x = _tomogram((19, 26, 23), seed=2)
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(10, 10, 10, generator=g, dtype=torch.float64)

    def fn(t):  # a nonlinear map and a position-dependent std, different in every tile
        return {"mean": torch.tanh(t) + 0.1 * t**2, "std": 0.5 + noise * t.abs(), "x_std": t}

    ref = _reference(x, fn, 10, 3)
    for bs in (1, 7, 100):
        out = restore_tiled(x, fn, box=10, overlap=3, batch_size=bs, progress=False)
        assert set(out) == {"mean", "std", "x_std"}
        for k in out:
            np.testing.assert_allclose(out[k].numpy(), ref[k], rtol=1e-12, atol=1e-12)


def test_std_blends_as_variance_of_tile_scaled_constants():
    # two tiles along x overlapping by 4 voxels, with different standard deviations
    box, o, c = 8, 4, 0.7
    x = torch.randn(box, box, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x[..., 8:] *= 3
    starts = tile_starts(x.shape[-1], box, o)
    assert starts == [0, 4]
    s = [x[..., a : a + box].std(unbiased=False).item() for a in starts]
    out = restore_tiled(x, lambda t: {"std": torch.full_like(t, c)}, box, o, progress=False)["std"]
    w = blend_window(box, o, ndim=1, dtype=torch.float64)
    torch.testing.assert_close(out[..., :4], torch.full((box, box, 4), c * s[0], dtype=torch.float64))
    torch.testing.assert_close(out[..., 8:], torch.full((box, box, 4), c * s[1], dtype=torch.float64))
    wl, wr = w[4:], w[:4]  # weights of the left and right tile on voxels 4..7
    expected = c * torch.sqrt((wl * s[0] ** 2 + wr * s[1] ** 2) / (wl + wr))
    torch.testing.assert_close(out[0, 0, 4:8], expected)
    linear = c * (wl * s[0] + wr * s[1]) / (wl + wr)
    assert bool((expected - linear > 1e-3).all())  # variance blending differs from blending std linearly


def test_a_single_tile_is_scaled_by_its_std():
    x = _tomogram((10, 10, 10), seed=5)
    out = restore_tiled(x, lambda t: {"mean": torch.zeros_like(t), "std": torch.full_like(t, 2.0)}, 10, progress=False)
    torch.testing.assert_close(out["mean"], torch.full_like(x, x.mean().item()))
    torch.testing.assert_close(out["std"], torch.full_like(x, 2 * x.std(unbiased=False).item()))


def test_bad_inputs_are_refused():
    x = _tomogram((12, 12, 12))
    with pytest.raises(ValueError, match="3D"):
        restore_tiled(x[0], _identity, 8, progress=False)
    with pytest.raises(ValueError, match="floating"):
        restore_tiled(torch.ones(12, 12, 12, dtype=torch.int64), _identity, 8, progress=False)
    with pytest.raises(ValueError, match="at least the box"):
        restore_tiled(x[:, :7], _identity, 8, progress=False)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[3, 4, 5] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            restore_tiled(y, _identity, 8, progress=False)
    with pytest.raises(ValueError, match="overlap"):
        restore_tiled(x, _identity, 8, overlap=8, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        restore_tiled(x, _identity, 8, batch_size=0, progress=False)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda t: t, "non-empty dict"),
        (lambda t: {}, "non-empty dict"),
        (lambda t: {"mean": t[:, :-1]}, r"'mean' must be a tensor of shape \(\d+, 8, 8, 8\)"),
        (lambda t: {"mean": t, "std": None}, "'std' must be a tensor"),
        (lambda t: {"mean": t} if t.shape[0] == 3 else {"other": t}, "names"),
    ],
)
def test_bad_fn_outputs_are_refused(fn, match):
    with pytest.raises(ValueError, match=match):  # 8 tiles in batches of 3, 3, 2
        restore_tiled(_tomogram((12, 12, 12)), fn, 8, overlap=2, batch_size=3, progress=False)


def test_progress_bar_runs(capsys):
    x = _tomogram((12, 12, 12), dtype=torch.float32)
    out = restore_tiled(x, _identity, 8, batch_size=3, progress=True)
    assert out["mean"].dtype == torch.float32 and out["mean"].device == x.device


def test_normalize_zero_option_keeps_constant_tiles_at_zero():
    x = _tomogram((3, 6, 6, 6))
    x[1] = 7.5
    z = normalize(x, constant="zero")
    assert bool((z[1] == 0).all())
    torch.testing.assert_close(z[[0, 2]], normalize(x[[0, 2]]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="constant volume"):
        normalize(x)
    with pytest.raises(ValueError, match="'raise' or 'zero'"):
        normalize(x, constant="skip")


# ----- seam_ratio -------------------------------------------------------------
def _blobs(shape, draw, bandwidth=0.08):
    """Smooth random density (Gaussian low-pass of white noise), mean 2, std 1: no seams by construction."""
    g = torch.Generator().manual_seed(draw)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    k2 = sum(f**2 for f in torch.meshgrid(*[torch.fft.fftfreq(n, dtype=torch.float64) for n in shape], indexing="ij"))
    v = torch.fft.ifftn(torch.fft.fftn(v) * torch.exp(-k2 / (2 * bandwidth**2))).real
    return 2 + v / v.std()


def test_seam_ratio_closed_form_on_a_ramp_with_a_step():
    # v = 0.1 z along z, plus a step of 1 at z = 16 where the second of two 16-voxel tiles begins (no overlap):
    # every interior face changes by 0.1, the border face by 1.1; along y and x nothing changes between tiles.
    z = torch.arange(32, dtype=torch.float64)
    v = (0.1 * z + (z >= 16)).view(32, 1, 1).expand(32, 32, 48).clone()
    r = seam_ratio(v, 16, 0)
    assert r.shape == (3,) and r.dtype == torch.float64
    torch.testing.assert_close(r[0], torch.tensor(11.0, dtype=torch.float64))
    assert torch.isnan(r[1:]).all()  # constant along y and x: 0 / 0
    # a plain ramp has the same step at every face: exactly 1, with or without overlap
    ramp = z.view(32, 1, 1) + z.view(1, 32, 1) + 0.5 * torch.arange(48, dtype=torch.float64)
    for overlap in (0, 4, 6):
        torch.testing.assert_close(seam_ratio(ramp, 16, overlap), torch.ones(3, dtype=torch.float64))


def test_seam_ratio_pools_a_batch_and_is_nan_for_a_single_tile():
    v = _blobs((24, 24, 40), 3)
    r = seam_ratio(torch.stack([v, 2 * v]), 16)
    torch.testing.assert_close(r, seam_ratio(v, 16))  # scaling one volume of the batch changes both means alike
    r16 = seam_ratio(v[:16], 16)
    assert torch.isnan(r16[0]) and torch.isfinite(r16[1:]).all()
    with pytest.raises(ValueError, match="real floating-point"):
        seam_ratio(torch.zeros(16, 16, dtype=torch.float64), 8)
    with pytest.raises(ValueError, match="box <= size"):
        seam_ratio(v, 32)


@pytest.mark.parametrize("draw", range(3))
def test_seam_ratio_flags_steps_between_tiles_and_not_a_smooth_volume(draw):
    vol = _blobs((32, 48, 64), draw)
    g = torch.Generator().manual_seed(draw)

    def offset(tiles):  # a restoration that shifts each tile by its own constant (1 std of a tile)
        return {"mean": tiles + torch.randn(tiles.shape[0], 1, 1, 1, generator=g, dtype=tiles.dtype)}

    plain = seam_ratio(vol, 16)
    assert (plain - 1).abs().max() < 0.1, plain  # no seams: about 1 on every axis
    hard = seam_ratio(restore_tiled(vol, offset, 16, overlap=0, progress=False)["mean"], 16, 0)
    assert (hard > 2.5).all(), hard  # tiles side by side: the steps sit on the border faces
    blended = seam_ratio(restore_tiled(vol, offset, 16, progress=False)["mean"], 16)
    assert (blended > plain).all() and (blended < hard).all(), (plain, blended, hard)


def test_a_trained_method_restored_in_tiles_leaves_no_seams():
    from cryolearn.data import extract_subtomograms
    from cryolearn.methods import CryoGEN2
    from cryolearn.physics import apply_missing_wedge, missing_wedge_mask

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    truth = _blobs((24, 40, 40), 5)
    obs = apply_missing_wedge(truth, missing_wedge_mask(truth.shape, (-60, 60)))
    obs = (obs + 0.3 * torch.randn(obs.shape, generator=g, dtype=torch.float64)).float()
    y, _ = extract_subtomograms(obs, box=16, stride=8)
    method = CryoGEN2(mask=missing_wedge_mask((16,) * 3, (-60, 60)), sigma=0.3, base_channels=4, batch_size=8)
    method.fit(y, 6, progress=False)
    restored = restore_tiled(obs, lambda t: {"mean": method.reconstruct(t).mean}, 16, progress=False)["mean"]
    assert (restored - obs).abs().max() > 1e-3  # the network did change the tomogram
    r, ref = seam_ratio(restored, 16), seam_ratio(obs, 16)
    assert (r - ref).abs().max() < 0.05 and (r < 1.1).all(), (r, ref)
