"""beta of the samplers through the command line: estimated after training, recorded, overridable; ESS in reconstruct.yaml."""

import pytest
import torch
import yaml

from cryolearn.data import read_mrc


def _yaml(path):
    return yaml.safe_load(path.read_text())


def test_trained_sampler_records_the_estimated_beta(sampler, run, sim, tmp_path):
    cfg = _yaml(sampler.with_suffix(".yaml"))
    assert cfg["beta_source"].startswith("estimated") and cfg["beta_training"] == 1.0
    assert cfg["beta"] > 0 and cfg["beta"] != 1.0
    assert torch.load(sampler, map_location="cpu", weights_only=False)["config"]["beta"] == pytest.approx(cfg["beta"])
    inputs = [sim / "obs" / "0001.mrc", sim / "obs" / "0004.mrc"]
    out = tmp_path / "rec"
    rc, _, err = run("reconstruct", sampler, *inputs, "--out", out, "--device", "cpu")
    assert rc == 0 and "warning" not in err
    rec = _yaml(out / "reconstruct.yaml")
    assert rec["beta"] == pytest.approx(cfg["beta"]) and rec["beta_source"] == "the model's"
    # Candidates from the Gaussian part of the posterior, no witness: every candidate counts.
    assert rec["n_candidates"] == 4 and rec["ess_fraction_min"] == pytest.approx(1.0)
    # --beta overrides: a 100 times larger precision narrows the posterior by about 10 in the wedge.
    rc, _, _ = run("reconstruct", sampler, *inputs, "--out", tmp_path / "narrow", "--beta", str(100 * cfg["beta"]))
    assert rc == 0 and _yaml(tmp_path / "narrow" / "reconstruct.yaml")["beta"] == pytest.approx(100 * cfg["beta"])
    wide, narrow = read_mrc(out / "0001_std.mrc")[0], read_mrc(tmp_path / "narrow" / "0001_std.mrc")[0]
    assert narrow.mean() < 0.5 * wide.mean()


def test_beta_given_to_train_and_errors(sim, model, tiny, run, tmp_path):
    out = tmp_path / "wg1" / "model.pt"
    rc, stdout, _ = run("train", sim / "obs", *tiny, "--method", "cryowgen1", "--set", "n_samples=32", "n_train_samples=4",
                        "proposal=reference", "--steps", "1", "--beta", "3", "--out", out)
    assert rc == 0 and "beta = 3" in stdout
    cfg = _yaml(out.with_suffix(".yaml"))
    assert cfg["beta"] == 3.0 and cfg["beta_source"] == "given (--beta)" and cfg["method_kwargs"]["beta"] == 3.0
    assert torch.load(out, map_location="cpu", weights_only=False)["config"]["beta"] == 3.0
    # The isotropic reference collapses on 16^3 boxes: reconstruct says so and records the ESS.
    rc, _, err = run("reconstruct", out, sim / "obs" / "0001.mrc", "--out", tmp_path / "rec")
    assert rc == 0 and "warning: the effective sample size" in err
    assert _yaml(tmp_path / "rec" / "reconstruct.yaml")["ess_fraction_min"] < 0.1
    assert run("train", sim / "obs", *tiny, "--steps", "1", "--beta", "2", "--out", tmp_path / "g2.pt")[0] == 2
    assert run("train", sim / "obs", *tiny, "--method", "cryowgen1", "--steps", "1", "--beta", "-1",
               "--out", tmp_path / "w.pt")[0] == 2
    assert run("train", sim / "obs", *tiny, "--method", "cryowgen1", "--steps", "1", "--set", "beta=2",
               "--out", tmp_path / "w.pt")[0] == 2
    assert run("reconstruct", model, sim / "obs" / "0001.mrc", "--out", tmp_path / "r2", "--beta", "2")[0] == 2
