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


def test_simulate_tomogram_writes_series_tlt_tomogram_and_truth(tmp_path, run):
    from cryolearn.data import read_tlt

    out = tmp_path / "t"
    rc, stdout, err = run("simulate", out, "--tomogram", "--structures", "7pbl", "6zu5", "--shape", "16", "40", "40",
                          "--box", "16", "--particles", "3", "--tilt-range", "-45", "45", "--tilt-step", "15",
                          "--device", "cpu")
    assert rc == 0, err
    series, vs = read_mrc(out / "tilt_series.mrc")
    tomo, vs_tomo = read_mrc(out / "tomogram.mrc")
    truth, _ = read_mrc(out / "truth.mrc")
    assert series.shape == (7, 40, 40) and tomo.shape == truth.shape == (16, 40, 40)
    assert vs == vs_tomo == pytest.approx(6.0 * 64 / 16)
    torch.testing.assert_close(read_tlt(out / "tilt_series.tlt"), torch.arange(-45.0, 45.1, 15.0, dtype=torch.float64))
    rec = yaml.safe_load((out / "simulate.yaml").read_text())
    assert rec["shape"] == [16, 40, 40] and len(rec["particles"]) == rec["n_particles"] >= 1
    assert "weighted back-projection" in rec["reconstruction"] and rec["command_line"].startswith("cryolearn simulate")
    assert run("simulate", out, "--tomogram", "--structures", "7pbl", "--shape", "16", "40", "40", "--box", "16",
               "--device", "cpu")[0] == 2  # exists: needs --force
