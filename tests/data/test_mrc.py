"""MRC reading, checking, normalising and atomic writing (the book's chapter on the missing wedge (data))."""

import os

import mrcfile
import numpy as np
import pytest
import torch

import cryolearn.data.mrc as mrc_module
from cryolearn.data import normalize, read_mrc, read_subtomograms, write_mrc


def _volume(shape=(4, 5, 6), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_round_trip_keeps_data_voxel_size_and_axis_order(tmp_path):
    x = _volume()  # (z, y, x) = (4, 5, 6): every axis distinguishable
    path = write_mrc(tmp_path / "v.mrc", x, 3.25)
    with mrcfile.open(path, permissive=False) as m:
        np.testing.assert_array_equal(m.data, x.numpy())
        assert (int(m.header.nx), int(m.header.ny), int(m.header.nz)) == (6, 5, 4)
        assert int(m.header.mode) == 2 and int(m.header.ispg) == 1
        assert m.voxel_size.x == m.voxel_size.y == m.voxel_size.z == pytest.approx(3.25)
        assert tuple(m.header.origin.item()) == (0.0, 0.0, 0.0)
        assert float(m.header.dmean) == pytest.approx(float(x.mean()), abs=1e-6)
        assert float(m.header.dmax) == pytest.approx(float(x.max()))
    y, vs = read_mrc(path)
    assert y.dtype == torch.float32 and vs == pytest.approx(3.25)
    torch.testing.assert_close(y, x, rtol=0, atol=0)


def test_same_volume_gives_the_same_bytes(tmp_path):
    a = write_mrc(tmp_path / "a.mrc", _volume(), 2.0)
    b = write_mrc(tmp_path / "b.mrc", _volume(), 2.0)
    assert a.read_bytes() == b.read_bytes()


def test_float64_input_is_stored_as_float32(tmp_path):
    x = _volume().double()
    y, _ = read_mrc(write_mrc(tmp_path / "v.mrc", x, 1.0))
    torch.testing.assert_close(y, x.float(), rtol=0, atol=0)


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = write_mrc(tmp_path / "v.mrc", _volume(seed=0), 1.0)
    with pytest.raises(FileExistsError, match="v.mrc"):
        write_mrc(path, _volume(seed=1), 1.0)
    torch.testing.assert_close(read_mrc(path)[0], _volume(seed=0))
    write_mrc(path, _volume(seed=1), 2.0, overwrite=True)
    y, vs = read_mrc(path)
    torch.testing.assert_close(y, _volume(seed=1))
    assert vs == 2.0


@pytest.mark.parametrize("where", ["stats", "rename"])
def test_failure_mid_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, where):
    path = write_mrc(tmp_path / "v.mrc", _volume(seed=0), 1.0)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the partial file exists now
        raise RuntimeError("simulated crash")

    if where == "stats":
        monkeypatch.setattr(mrcfile.mrcobject.MrcObject, "update_header_stats", boom)
    else:
        monkeypatch.setattr(mrc_module.os, "replace", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_mrc(path, _volume(seed=1), 1.0, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]
    assert path.read_bytes() == before
    with pytest.raises(RuntimeError):
        write_mrc(tmp_path / "new.mrc", _volume(seed=1), 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mrc"]


@pytest.mark.parametrize(
    "volume, voxel_size, match",
    [
        (torch.full((3, 3, 3), float("nan")), 1.0, "NaN"),
        (torch.tensor([[[0.0, float("inf")]]]), 1.0, "NaN or Inf"),
        (torch.zeros(4, 4), 1.0, "3D"),
        (torch.zeros(2, 3, 4, 5), 1.0, "3D"),
        (torch.zeros(3, 3, 3), 0.0, "voxel_size"),
        (torch.zeros(3, 3, 3), float("nan"), "voxel_size"),
    ],
)
def test_write_refuses_bad_input_and_writes_nothing(tmp_path, volume, voxel_size, match):
    with pytest.raises(ValueError, match=match):
        write_mrc(tmp_path / "bad.mrc", volume, voxel_size)
    assert list(tmp_path.iterdir()) == []


def test_read_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mrc"):
        read_mrc(tmp_path / "nothere.mrc")


def test_read_not_an_mrc_file(tmp_path):
    path = tmp_path / "notes.mrc"
    path.write_text("this is not a map\n" * 100)
    with pytest.raises(ValueError, match="notes.mrc.*not a readable MRC"):
        read_mrc(path)


def test_read_truncated_file(tmp_path):
    path = write_mrc(tmp_path / "cut.mrc", _volume((8, 8, 8)), 1.0)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.mrc"):
        read_mrc(path)


def _write_raw(path, data, voxel_size=1.0):
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.voxel_size = voxel_size
    return path


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # mrcfile warns about NaN/Inf while writing them
@pytest.mark.parametrize(
    "data, match",
    [
        (np.full((3, 4, 5), np.nan, dtype=np.float32), "NaN or Inf"),
        (np.array([[[1.0, np.inf]]], dtype=np.float32), "NaN or Inf"),
        (np.zeros((4, 5), dtype=np.float32), "2D data"),
        (np.zeros((2, 3, 4, 5), dtype=np.float32), "4D data"),
        (np.zeros((3, 4, 5), dtype=np.complex64), "complex"),
    ],
)
def test_read_refuses_bad_content_naming_the_file(tmp_path, data, match):
    path = _write_raw(tmp_path / "content.mrc", data)
    with pytest.raises(ValueError, match=f"content.mrc.*{match}"):
        read_mrc(path)


def test_integer_modes_are_read_as_float32(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    y, _ = read_mrc(_write_raw(tmp_path / "int.mrc", data))
    assert y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), data.astype(np.float32))


def test_nonstandard_axis_mapping_is_transposed_to_zyx(tmp_path):
    zyx = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    path = tmp_path / "xyz.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.ascontiguousarray(zyx.transpose(2, 1, 0)))  # stored (sections, rows, cols) = (x, y, z)
        m.header.mapc, m.header.mapr, m.header.maps = 3, 2, 1
        m.voxel_size = 1.0
    y, _ = read_mrc(path)
    np.testing.assert_array_equal(y.numpy(), zyx)


def test_voxel_size_warnings(tmp_path):
    path = _write_raw(tmp_path / "aniso.mrc", np.ones((2, 2, 2), dtype=np.float32), voxel_size=(2.0, 3.0, 4.0))
    with pytest.warns(UserWarning, match="anisotropic"):
        _, vs = read_mrc(path)
    assert vs == 2.0  # x
    path = _write_raw(tmp_path / "unset.mrc", np.ones((2, 2, 2), dtype=np.float32), voxel_size=0.0)
    with pytest.warns(UserWarning, match="voxel size"):
        assert read_mrc(path)[1] == 0.0


def test_normalize_matches_numpy_per_volume():
    x = 3.0 + 2.0 * torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = normalize(x)
    ref = (x.numpy() - x.numpy().mean(axis=(-3, -2, -1), keepdims=True)) / x.numpy().std(axis=(-3, -2, -1), keepdims=True)
    np.testing.assert_allclose(z.numpy(), ref, rtol=1e-12, atol=1e-12)
    img = normalize(x[0, 0, 0], ndim=2)
    assert abs(float(img.mean())) < 1e-12 and float(img.std(unbiased=False)) == pytest.approx(1.0)


def test_normalize_refuses_constant_volume():
    x = torch.randn(3, 4, 4, 4)
    x[1] = 7.0
    with pytest.raises(ValueError, match="constant"):
        normalize(x)
    with pytest.raises(ValueError, match="floating-point"):
        normalize(torch.ones(4, 4, 4, dtype=torch.int64))


def test_read_subtomograms_normalises_and_checks_consistency(tmp_path):
    paths = [write_mrc(tmp_path / f"s{i}.mrc", 5 + 2 * _volume(seed=i), 4.0) for i in range(3)]
    vols, vs = read_subtomograms(paths)
    assert vols.shape == (3, 4, 5, 6) and vs == 4.0
    torch.testing.assert_close(vols[1], normalize(5 + 2 * _volume(seed=1)))
    other = write_mrc(tmp_path / "other.mrc", _volume((4, 5, 7)), 4.0)
    with pytest.raises(ValueError, match="other.mrc.*shape"):
        read_subtomograms(paths + [other])
    coarse = write_mrc(tmp_path / "coarse.mrc", _volume(), 8.0)
    with pytest.raises(ValueError, match="coarse.mrc.*voxel size"):
        read_subtomograms(paths + [coarse])
    flat = write_mrc(tmp_path / "flat.mrc", torch.ones(4, 5, 6), 4.0)
    with pytest.raises(ValueError, match="flat.mrc.*constant"):
        read_subtomograms(paths + [flat])
    with pytest.raises(ValueError, match="no subtomogram"):
        read_subtomograms([])
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert os.path.isfile(paths[0])


def test_moments_mean_population_std_and_constant_flag():
    from cryolearn.data.mrc import moments

    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    v[1, 2] = 7.0
    mean, std, const = moments(v, 3)
    assert mean.shape == std.shape == const.shape == (2, 3)
    torch.testing.assert_close(mean, v.flatten(-3).mean(-1))
    torch.testing.assert_close(std, torch.from_numpy(v.flatten(-3).numpy().std(-1)))
    assert const[1, 2] and const.sum() == 1
    assert moments(torch.zeros(4, 4, 4))[2]
    with pytest.raises(ValueError, match="floating-point"):
        moments(torch.zeros(4, 4, 4, dtype=torch.int64))
