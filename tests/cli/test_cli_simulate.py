"""``cryolearn simulate``: the files and the record match cryolearn.data.simulate_subtomograms."""

import pytest
import torch
import yaml

from cryolearn.data import load_structure_maps, read_mrc, simulate_subtomograms


def test_simulate_writes_what_the_package_simulates(sim):
    ds = simulate_subtomograms(load_structure_maps(["6zu5", "4v8r"]), n=8, box=16, snr=1.0, seed=3)
    for i in (0, 5):
        y, vs = read_mrc(sim / "obs" / f"{i:04d}.mrc")
        x, vs_truth = read_mrc(sim / "truth" / f"{i:04d}.mrc")
        torch.testing.assert_close(y, ds.observations[i])
        torch.testing.assert_close(x, ds.ground_truth[i])
        assert vs == vs_truth == pytest.approx(ds.voxel_size) == pytest.approx(6.0 * 64 / 16)
    assert sorted(p.name for p in (sim / "obs").iterdir()) == [f"{i:04d}.mrc" for i in range(8)]
    rec = yaml.safe_load((sim / "simulate.yaml").read_text())
    assert rec["structures"] == ["6zu5", "4v8r"] and rec["n"] == 8 and rec["box"] == 16 and rec["seed"] == 3
    assert rec["tilt_range"] == [-60.0, 60.0] and rec["snr"] == 1.0 and rec["masked_noise"] is True
    assert rec["sigma"] == pytest.approx(1.0)  # unit-variance truths at SNR 1
    std = ds.observations.flatten(1).std(1, unbiased=False)
    assert rec["sigma_normalized"] == pytest.approx((ds.sigma / std).mean().item(), rel=1e-5)
    assert rec["labels"]["0005"] == ds.names[int(ds.labels[5])]
    assert rec["command_line"].startswith("cryolearn simulate ") and "--n 8" in rec["command_line"]
    assert "6zu5" in rec["source"] and rec["cryolearn_version"]


def test_existing_output_needs_force(tmp_path, run):
    args = ("simulate", tmp_path / "s", "--structures", "7pbl", "--n", "2", "--box", "8", "--device", "cpu")
    assert run(*args)[0] == 0
    before = (tmp_path / "s" / "obs" / "0000.mrc").read_bytes()
    rc, _, err = run(*args, "--seed", "1")
    assert rc == 2 and "exists" in err and "--force" in err
    assert (tmp_path / "s" / "obs" / "0000.mrc").read_bytes() == before
    assert run(*args, "--seed", "1", "--force")[0] == 0
    assert (tmp_path / "s" / "obs" / "0000.mrc").read_bytes() != before
    assert yaml.safe_load((tmp_path / "s" / "simulate.yaml").read_text())["seed"] == 1


@pytest.mark.parametrize("bad, message", [
    (["--tilt-range", "-95", "60"], "(-90, 90)"),
    (["--tilt-range", "40", "-40"], "theta_min < theta_max"),
    (["--structures", "1abc"], "unknown structure"),
    (["--box", "80"], "box <= 64"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, run, bad, message):
    rc, _, err = run("simulate", tmp_path / "s", "--n", "2", "--box", "8", "--device", "cpu", *bad)
    assert rc == 2 and err.startswith("cryolearn simulate: error:") and message in err
    assert not (tmp_path / "s").exists()
