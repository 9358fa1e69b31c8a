"""``cryolearn reconstruct``: the files equal what the package computes from the same checkpoint; bad input."""

import shutil

import pytest
import torch
import yaml

from cryolearn.data import read_mrc, read_subtomograms, write_mrc
from cryolearn.methods import field_posterior_mean, get_method
from cryolearn.physics import missing_wedge_mask
from cryolearn.inference import restore_tiled


def _method(model, box=16):
    """The trained method rebuilt from model.pt and model.yaml with the package alone."""
    cfg = yaml.safe_load(model.with_suffix(".yaml").read_text())
    mask = missing_wedge_mask((box,) * 3, tuple(cfg["tilt_range"]))
    return get_method(cfg["method"], mask=mask, sigma=cfg["sigma"], **cfg["method_kwargs"]).load(model)


def test_simulate_train_reconstruct_fsc(sim, model, run, tmp_path):
    out = tmp_path / "rec"
    rc, _, _ = run("reconstruct", model, sim / "obs", "--out", out, "--device", "cpu")
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [f"{i:04d}_mean.mrc" for i in range(8)] + ["reconstruct.yaml"]
    # The trained network on the normalised observations (not the identity it starts as).
    y, _ = read_subtomograms(sorted((sim / "obs").iterdir()))
    expected = _method(model).predict(y)
    assert (expected - y).abs().max() > 1e-6
    for i in (0, 7):
        x, voxel_size = read_mrc(out / f"{i:04d}_mean.mrc")
        torch.testing.assert_close(x, expected[i])
        assert voxel_size == pytest.approx(24.0)
    rec = yaml.safe_load((out / "reconstruct.yaml").read_text())
    assert rec["model_config"] == yaml.safe_load(model.with_suffix(".yaml").read_text())
    assert rec["mode"] == "subtomograms" and rec["box"] == 16 and len(rec["outputs"]) == 8
    assert rec["command_line"].startswith("cryolearn reconstruct ") and rec["cryolearn_version"]
    rc, stdout, _ = run("fsc", out / "0000_mean.mrc", sim / "truth" / "0000.mrc", "--tilt-range", "-60", "60")
    assert rc == 0 and "wedge" in stdout and "1/Angstrom" in stdout


def test_sampler_writes_mean_std_and_samples(sim, sampler, run, tmp_path):
    out = tmp_path / "rec"
    inputs = [sim / "obs" / "0001.mrc", sim / "obs" / "0004.mrc"]
    assert run("reconstruct", sampler, *inputs, "--out", out, "--samples", "2", "--device", "cpu")[0] == 0
    names = {f"{s}_{k}.mrc" for s in ("0001", "0004") for k in ("mean", "std", "sample000", "sample001")}
    assert {p.name for p in out.iterdir()} == names | {"reconstruct.yaml"}
    # Same checkpoint, same generator state: the package gives the same posterior draws.
    expected = _method(sampler).reconstruct(read_subtomograms(inputs)[0], batch_size=8)
    for i, stem in enumerate(("0001", "0004")):
        torch.testing.assert_close(read_mrc(out / f"{stem}_mean.mrc")[0], expected.mean[i])
        torch.testing.assert_close(read_mrc(out / f"{stem}_std.mrc")[0], expected.std[i])
        torch.testing.assert_close(read_mrc(out / f"{stem}_sample001.mrc")[0], expected.samples[1, i])
    assert (expected.std > 0).all()
    rc, _, err = run("reconstruct", sampler, *inputs, "--out", tmp_path / "more", "--samples", "5")
    assert rc == 2 and "5 samples" in err and not (tmp_path / "more").exists()


def test_tomogram_is_restored_tile_by_tile(model, sampler, run, tmp_path):
    tomogram = torch.randn(20, 36, 28, generator=torch.Generator().manual_seed(0))
    write_mrc(tmp_path / "tomo.mrc", tomogram, 7.5)
    out = tmp_path / "rec"
    assert run("reconstruct", model, tmp_path / "tomo.mrc", "--tomogram", "--overlap", "4", "--out", out)[0] == 0
    restored, voxel_size = read_mrc(out / "tomo_mean.mrc")
    method = _method(model)
    expected = restore_tiled(tomogram, lambda t: {"mean": method.predict(t)}, 16, overlap=4, progress=False)["mean"]
    torch.testing.assert_close(restored, expected)
    assert voxel_size == pytest.approx(7.5)
    rec = yaml.safe_load((out / "reconstruct.yaml").read_text())
    assert rec["mode"] == "tomogram" and rec["box"] == 16 and rec["overlap"] == 4 and rec["outputs"] == ["tomo_mean.mrc"]
    # Tiles of another box that fits the network; a sampler adds the std map.
    assert run("reconstruct", sampler, tmp_path / "tomo.mrc", "--tomogram", "--box", "20", "--out", tmp_path / "s")[0] == 0
    assert {p.name for p in (tmp_path / "s").iterdir()} == {"tomo_mean.mrc", "tomo_std.mrc", "reconstruct.yaml"}
    assert read_mrc(tmp_path / "s" / "tomo_std.mrc")[0].shape == tomogram.shape


def test_posterior_mean_of_a_deterministic_model(sim, model, sampler, run, tmp_path):
    inputs = [sim / "obs" / "0001.mrc", sim / "obs" / "0004.mrc"]
    out = tmp_path / "pm"
    assert run("reconstruct", model, *inputs, "--posterior-mean", "--out", out, "--device", "cpu")[0] == 0
    method = _method(model)
    y = read_subtomograms(inputs)[0]
    expected = field_posterior_mean(method, y, method.reconstruct(y).mean,
                                    generator=torch.Generator().manual_seed(method.seed + 1))
    for i, stem in enumerate(("0001", "0004")):
        torch.testing.assert_close(read_mrc(out / f"{stem}_mean.mrc")[0], expected[i])
    assert (expected - method.predict(y)).abs().max() > 1e-4  # not the network's output
    assert yaml.safe_load((out / "reconstruct.yaml").read_text())["restoration"] == "posterior-mean"
    rc, _, err = run("reconstruct", sampler, *inputs, "--posterior-mean", "--out", tmp_path / "s")
    assert rc == 2 and "returns its posterior mean already" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("case, message", [
    ("missing model", "does not exist"),
    ("model without yaml", "model.yaml"),
    ("box mismatch", "boxes of 16^3"),
    ("tile box", "multiple of 4"),
    ("small tomogram", "at least the box"),
    ("samples of a point estimate", "needs a sampler"),
    ("box without tomogram", "--tomogram"),
    ("missing input", "does not exist"),
])
def test_bad_input_exits_2_and_writes_nothing(sim, model, run, tmp_path, case, message):
    (tmp_path / "alone").mkdir()
    shutil.copy(model, tmp_path / "alone" / "model.pt")
    write_mrc(tmp_path / "big.mrc", torch.randn(32, 32, 32), 24.0)
    write_mrc(tmp_path / "small.mrc", torch.randn(12, 40, 40), 24.0)
    obs = sim / "obs" / "0000.mrc"
    args = {
        "missing model": [tmp_path / "none.pt", obs],
        "model without yaml": [tmp_path / "alone" / "model.pt", obs],
        "box mismatch": [model, tmp_path / "big.mrc"],
        "tile box": [model, tmp_path / "big.mrc", "--tomogram", "--box", "18"],
        "small tomogram": [model, tmp_path / "small.mrc", "--tomogram"],
        "samples of a point estimate": [model, obs, "--samples", "2"],
        "box without tomogram": [model, obs, "--box", "16"],
        "missing input": [model, tmp_path / "nope.mrc"],
    }[case]
    rc, _, err = run("reconstruct", *args, "--out", tmp_path / "out")
    assert rc == 2 and err.startswith("cryolearn reconstruct: error:") and message in err, err
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_force(sim, model, run, tmp_path):
    out = tmp_path / "rec"
    args = ("reconstruct", model, sim / "obs" / "0002.mrc", "--out", out)
    assert run(*args)[0] == 0
    (out / "0002_mean.mrc").write_bytes(b"old")
    rc, _, err = run(*args)
    assert rc == 2 and "exists" in err and "--force" in err
    assert (out / "0002_mean.mrc").read_bytes() == b"old"
    assert run(*args, "--force")[0] == 0
    assert read_mrc(out / "0002_mean.mrc")[0].shape == (16, 16, 16)
