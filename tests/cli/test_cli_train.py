"""``cryolearn train``: the record, bad input, ``--force``, and resuming after a kill."""

import os
import signal
import subprocess
import sys
import time
import warnings

import mrcfile
import numpy as np
import pytest
import torch
import yaml

from cryolearn.data import read_subtomograms, write_mrc
from cryolearn.physics import estimate_sigma, missing_wedge_mask


def test_model_yaml_records_the_resolved_configuration(sim, model, run):
    rec = yaml.safe_load(model.with_suffix(".yaml").read_text())
    assert rec["method"] == "cryogen2" and rec["status"] == "complete" and rec["steps"] == rec["steps_done"] == 2
    assert rec["method_kwargs"] == {"base_channels": 4, "batch_size": 4, "seed": 0}
    assert rec["tilt_range"] == [-60.0, 60.0] and rec["box"] == 16 and rec["n_observations"] == 8
    assert rec["voxel_size"] == pytest.approx(24.0) and rec["device"] == "cpu" and rec["world_size"] == 1
    # No --sigma: estimated from the normalised observations, and said so.
    y, _ = read_subtomograms(sorted((sim / "obs").iterdir()))
    assert rec["sigma"] == pytest.approx(estimate_sigma(y, missing_wedge_mask((16,) * 3)).mean().item(), rel=1e-6)
    assert "estimated" in rec["sigma_source"]
    sim_rec = yaml.safe_load((sim / "simulate.yaml").read_text())
    assert rec["sigma"] == pytest.approx(sim_rec["sigma_normalized"], rel=0.1)  # the estimate is an upper bound
    assert rec["command_line"].startswith("cryolearn train ") and "--steps 2" in rec["command_line"]
    assert rec["cryolearn_version"] and rec["wall_time_s"] > 0
    state = torch.load(model, weights_only=False)
    assert state["method"] == "cryogen2" and state["step"] == 2


def test_tlt_file_and_given_sigma(sim, tmp_path, run):
    (tmp_path / "a.tlt").write_text("-51.0\n-3.0\n0.0\n48.5\n")
    out = tmp_path / "m.pt"
    args = [sim / "obs", "--batch-size", "4", "--set", "base_channels=4", "--device", "cpu", "--out", out]
    rc, stdout, _ = run("train", *args, "--tlt", tmp_path / "a.tlt", "--sigma", "0.7", "--steps", "1")
    assert rc == 0 and "sigma 0.7 given" in stdout
    rec = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert rec["tilt_range"] == [-51.0, 48.5] and rec["sigma"] == 0.7 and rec["tilt_source"].endswith("a.tlt")
    # A finished model is never overwritten without --force; a different configuration does not resume.
    before = out.read_bytes()
    rc, _, err = run("train", *args, "--tlt", tmp_path / "a.tlt", "--sigma", "0.7", "--steps", "1")
    assert rc == 2 and "already holds 1 training steps" in err and "--force" in err and out.read_bytes() == before
    rc, _, err = run("train", *args, "--tlt", tmp_path / "a.tlt", "--sigma", "0.8", "--steps", "2")
    assert rc == 2 and "different configuration" in err and "sigma" in err and out.read_bytes() == before
    # --force starts over with the new configuration.
    rc, stdout, _ = run("train", *args, "--tilt-range", "-60", "60", "--sigma", "0.8", "--steps", "1", "--force")
    assert rc == 0 and "resuming" not in stdout
    rec = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert rec["sigma"] == 0.8 and rec["tilt_range"] == [-60.0, 60.0] and rec["resumed_from_step"] == 0


def _write_set(folder, box, n=4, nan=False):
    folder.mkdir()
    for i in range(n):
        v = torch.randn(box, box, box, generator=torch.Generator().manual_seed(i))
        write_mrc(folder / f"{i}.mrc", v, 10.0)
    if nan:
        with warnings.catch_warnings(), mrcfile.new(folder / "nan.mrc") as m:
            warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns about the NaN it is told to write
            m.set_data(np.full((box,) * 3, np.nan, dtype=np.float32))
    return folder


@pytest.mark.parametrize("case, message", [
    ("missing file", "does not exist"),
    ("not mrc", "not a readable MRC file"),
    ("empty folder", "holds no MRC files"),
    ("nan", "NaN"),
    ("box too small", "multiple of 4"),
    ("box not a multiple", "multiple of 4 (e.g. 16 or 20)"),
    ("not cubic", "cubic"),
    ("tilt outside", "(-90, 90)"),
    ("tilt reversed", "theta_min < theta_max"),
    ("unknown method", "unknown method"),
    ("unknown option", "invalid option"),
    ("reserved option", "--sigma"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, run, tiny, case, message):
    good = [_write_set(tmp_path / "good", 16)]
    inputs, extra = {
        "missing file": ([tmp_path / "nope.mrc"], []),
        "not mrc": ([tmp_path / "notes.mrc"], []),
        "empty folder": ([tmp_path / "empty"], []),
        "nan": ([_write_set(tmp_path / "nan", 8, nan=True)], []),
        "box too small": ([_write_set(tmp_path / "tiny", 2)], []),
        "box not a multiple": ([_write_set(tmp_path / "odd", 18)], []),
        "not cubic": ([tmp_path / "flat.mrc"], []),
        "tilt outside": (good, ["--tilt-range", "-60", "95"]),
        "tilt reversed": (good, ["--tilt-range", "30", "-30"]),
        "unknown method": (good, ["--method", "cryogen9"]),
        "unknown option": (good, ["--set", "no_such_option=1"]),
        "reserved option": (good, ["--set", "sigma=1"]),
    }[case]
    (tmp_path / "notes.mrc").write_text("not a map\n" * 100)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no maps here")
    write_mrc(tmp_path / "flat.mrc", torch.randn(16, 16, 8), 10.0)
    out = tmp_path / "out" / "model.pt"
    rc, _, err = run("train", *inputs, *tiny, *extra, "--steps", "1", "--out", out)
    assert rc == 2 and err.startswith("cryolearn train: error:") and message in err, err
    assert not (tmp_path / "out").exists()


def test_resume_after_sigkill_gives_the_uninterrupted_result(sim, tmp_path, run, tiny):
    args = ["train", str(sim / "obs"), *tiny, "--sigma", "0.9", "--steps", "6", "--checkpoint-every", "2"]
    killed, straight = tmp_path / "killed" / "model.pt", tmp_path / "straight" / "model.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "cryolearn.cli", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not killed.exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    step = torch.load(killed, weights_only=False)["step"]
    assert step in (2, 4)
    assert yaml.safe_load(killed.with_suffix(".yaml").read_text())["status"] == "training"

    rc, stdout, _ = run(*args, "--out", killed)  # the same command again, in this process
    assert rc == 0 and f"resuming {killed} from step {step} of 6" in stdout
    rc, stdout, _ = run(*args, "--out", straight)
    assert rc == 0 and "resuming" not in stdout

    a, b = torch.load(killed, weights_only=False), torch.load(straight, weights_only=False)
    assert a["step"] == b["step"] == 6
    assert a["history"] == b["history"]
    for name, weights in b["modules"]["network"].items():
        assert torch.equal(a["modules"]["network"][name], weights), name
    rec = yaml.safe_load(killed.with_suffix(".yaml").read_text())
    assert rec["status"] == "complete" and rec["resumed_from_step"] == step


@pytest.mark.parametrize("option, message", [
    ("lamda=1", "valid keys: base_channels, lr, rotations, masked_rotation, lam, ot_method, reg, potential"),
    ("batch_size=3", "--batch-size"),
    ("seed=1", "--seed"),
    ("base_channels=4.5", "base_channels: expected an integer"),
    ("ot_method=exact", "ot_method must be one of 'emd', 'sinkhorn'"),
])
def test_set_is_checked_against_the_typed_configuration(sim, tmp_path, run, option, message):
    out = tmp_path / "out" / "model.pt"
    rc, _, err = run("train", sim / "obs", "--tilt-range", "-60", "60", "--set", option, "--steps", "1", "--out", out)
    assert rc == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_stream_trains_from_the_files_and_records_the_configuration(sim, tmp_path, run, tiny):
    out = tmp_path / "s" / "model.pt"
    rc, stdout, _ = run("train", sim / "obs", *tiny, "--set", "lam=1", "--stream", "--steps", "2", "--out", out)
    assert rc == 0, stdout
    rec = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert rec["streamed"] is True and rec["status"] == "complete" and rec["n_observations"] == 8
    assert rec["method_kwargs"]["lam"] == 1.0 and rec["config"]["base_channels"] == 4 and rec["config"]["lam"] == 1.0
    y, _ = read_subtomograms(sorted((sim / "obs").iterdir()))
    assert rec["sigma"] == pytest.approx(estimate_sigma(y, missing_wedge_mask((16,) * 3)).mean().item(), rel=1e-5)
    state = torch.load(out, weights_only=True)
    assert state["step"] == 2 and state["config"]["lam"] == 1.0


def test_train_on_whole_tomograms(tmp_path, run, tiny):
    """--tomogram cuts the training boxes out of tomograms itself, and the model restores a tomogram in tiles."""
    tomo = tmp_path / "tomo"
    assert run("simulate", tomo, "--tomogram", "--structures", "7pbl", "6zu5", "--shape", "20", "48", "48",
               "--box", "16", "--particles", "3", "--device", "cpu")[0] == 0
    out = tmp_path / "model.pt"
    rc, stdout, err = run("train", tomo / "tomogram.mrc", "--tomogram", "--box", "16", "--stride", "8",
                          *tiny, "--steps", "2", "--out", out)
    assert rc == 0, err
    cfg = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert cfg["box"] == 16 and cfg["n_observations"] > 10
    assert cfg["subtomograms_from_tomograms"]["stride"] == 8
    # Training on tomograms adds the masked rotation term (the methods' own default is 0).
    from cryolearn.cli.train import TOMOGRAM_MASKED_ROTATION

    assert cfg["config"]["masked_rotation"] == TOMOGRAM_MASKED_ROTATION > 0
    assert all(h["masked_rotation"] > 0 for h in torch.load(out, weights_only=True)["history"])
    # By default a tenth of the tomogram (at least one box) is held out and scored after training.
    val = cfg["validation"]
    assert cfg["validation_fraction"] == 0.1 and val["n_subtomograms"] >= 1
    assert val["baselines"]["no restoration"] == pytest.approx(1.0) and val["baselines"]["squared input"] <= 1.0
    assert 0 < val["rotation_validation_error"] < 10 and "validation on" in stdout
    rc, _, err = run("reconstruct", out, tomo / "tomogram.mrc", "--tomogram", "--out", tmp_path / "rec", "--device", "cpu")
    assert rc == 0, err
    rc, _, err = run("train", tomo / "tomogram.mrc", "--tomogram", "--box", "16", *tiny, "--steps", "1",
                     "--set", "masked_rotation=0", "--validation-fraction", "0", "--out", tmp_path / "m0.pt")
    assert rc == 0, err
    assert yaml.safe_load((tmp_path / "m0.yaml").read_text())["config"]["masked_rotation"] == 0.0
    rc, _, err = run("train", tomo / "tomogram.mrc", "--tomogram", "--box", "64", *tiny, "--steps", "1",
                     "--out", tmp_path / "m2.pt")
    assert rc == 2 and "box=64" in err


def test_train_reads_the_tilt_range_off_each_tomogram_and_says_when_it_differs(tmp_path, run, tiny):
    """A tomogram masked from -45 to +45 degrees, trained with --tilt-range -60 60: the record holds the range its
    spectrum shows, and the output names the --tilt-range that fits it."""
    from cryolearn.physics import apply_missing_wedge

    shape = (24, 48, 48)
    vol = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    write_mrc(tmp_path / "t.mrc", apply_missing_wedge(vol, missing_wedge_mask(shape, (-45, 45))), 10.0)
    out = tmp_path / "m.pt"
    rc, stdout, err = run("train", tmp_path / "t.mrc", "--tomogram", "--box", "16", *tiny, "--steps", "1",
                          "--validation-fraction", "0", "--out", out)
    assert rc == 0, err
    lo, hi = yaml.safe_load(out.with_suffix(".yaml").read_text())["tilt_range_from_data"][0]
    assert lo == pytest.approx(-45, abs=2) and hi == pytest.approx(45, abs=2)
    assert f"pass --tilt-range {lo:g} {hi:g}" in stdout
    rc, stdout, err = run("train", tmp_path / "t.mrc", "--tomogram", "--box", "16", *tiny, "--steps", "1",
                          "--validation-fraction", "0", "--tilt-range", "-45", "45", "--out", tmp_path / "m2.pt")
    assert rc == 0, err
    assert "pass --tilt-range" not in stdout


def test_validation_fraction_holds_out_subtomograms_and_scores_them(sim, tmp_path, run, tiny):
    """The held-out score in model.yaml is the rotation test of the saved model on the held-out boxes."""
    from cryolearn.cli.train import _hold_out
    from cryolearn.methods import Method
    from cryolearn.metrics import rotation_validation_error

    out = tmp_path / "m.pt"
    rc, stdout, err = run("train", sim / "obs", *tiny, "--steps", "2", "--validation-fraction", "0.25", "--out", out)
    assert rc == 0, err
    rec = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert rec["n_observations"] == 6 and rec["validation"]["n_subtomograms"] == 2
    y, _ = read_subtomograms(sorted((sim / "obs").iterdir()))
    train, held = _hold_out(y, 0.25, 0)
    assert train.shape[0] == 6 and not any(torch.equal(h, t) for h in held for t in train)
    method = Method.from_checkpoint(out)
    mask = missing_wedge_mask((16,) * 3, (-60, 60))
    expect = rotation_validation_error(method.predict, held, mask).item()
    assert rec["validation"]["rotation_validation_error"] == pytest.approx(expect, rel=1e-4)
    assert rec["validation"]["baselines"]["no restoration"] == pytest.approx(1.0)
    rc, _, err = run("train", sim / "obs", *tiny, "--steps", "1", "--validation-fraction", "1.0", "--out", tmp_path / "x.pt")
    assert rc == 2 and "validation-fraction" in err


def test_coloured_noise_and_tilt_axis_rotations_are_recorded_and_used(sim, tmp_path, run, tiny):
    from cryolearn.methods import Method
    from cryolearn.physics import estimate_noise_spectrum, tilt_axis_rotations

    out = tmp_path / "m.pt"
    rc, _, err = run("train", sim / "obs", *tiny, "--steps", "1", "--noise", "coloured", "--rotations", "tilt-axis",
                     "--out", out)
    assert rc == 0, err
    rec = yaml.safe_load(out.with_suffix(".yaml").read_text())
    y, _ = read_subtomograms(sorted((sim / "obs").iterdir()))
    expect = estimate_noise_spectrum(y, missing_wedge_mask((16,) * 3, (-60, 60)))
    assert rec["noise"] == "coloured" and rec["noise_spectrum"] == pytest.approx(expect.tolist(), rel=1e-4)
    assert rec["config"]["rotations"] == tilt_axis_rotations()
    method = Method.from_checkpoint(out)
    torch.testing.assert_close(method.noise_spectrum, expect.float(), rtol=1e-4, atol=1e-6)
    # The held-out test turns by the model's rotations that move the wedge: a turn that keeps Y and X on their axes
    # (up to sign) keeps it in place.
    from cryolearn.physics import cube_rotations

    rc, _, err = run("train", sim / "obs", *tiny, "--steps", "1", "--rotations", "tilt-axis", "--validation-fraction",
                     "0.25", "--out", tmp_path / "v.pt")
    assert rc == 0, err
    mats = cube_rotations()
    moving = [r for r in tilt_axis_rotations() if not (abs(mats[r][1, 1]) == 1 and abs(mats[r][2, 2]) == 1)]
    assert yaml.safe_load((tmp_path / "v.yaml").read_text())["validation"]["rotations"] == moving and len(moving) == 4
    rc, _, err = run("train", sim / "obs", *tiny, "--steps", "1", "--rotations", "tilt-axis", "--set", "rotations=[0]",
                     "--out", tmp_path / "x.pt")
    assert rc == 2 and "not both" in err
