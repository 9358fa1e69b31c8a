"""Run profiles and device choice (cryolearn.profile): what every chapter calls first."""

import pytest
import torch

import cryolearn
from cryolearn.profile import PROFILES, Profile, get_profile, pick_device


@pytest.fixture
def no_env(monkeypatch):
    for var in ("CRYOLEARN_PROFILE", "CRYOLEARN_DEVICE", "CRYOLEARN_TRAIN"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize("value, name", [("quick", "quick"), (" Standard ", "standard"), ("FULL\n", "full")])
def test_env_var_is_parsed(no_env, value, name):
    no_env.setenv("CRYOLEARN_PROFILE", value)
    p = get_profile(device="cpu")
    assert p == Profile(name, torch.device("cpu")) and str(p) == f"profile={name}, device=cpu"
    assert p.choose(quick=1, standard=2, full=3) == PROFILES.index(name) + 1


def test_argument_wins_over_env_and_default_follows_the_device(no_env):
    no_env.setenv("CRYOLEARN_PROFILE", "full")
    assert get_profile("quick", device="cpu").name == "quick"
    no_env.delenv("CRYOLEARN_PROFILE")
    no_env.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile().name == "standard"
    no_env.setenv("CRYOLEARN_PROFILE", "   ")  # blank counts as unset
    assert get_profile().name == "standard"
    no_env.setattr(torch.cuda, "is_available", lambda: True)
    p = get_profile()
    assert p.name == "full" and p.device == torch.device("cuda")


@pytest.mark.parametrize("bad", ["fast", "quick2", ""])
def test_invalid_profile_names_the_valid_ones(no_env, bad):
    no_env.setenv("CRYOLEARN_PROFILE", "quick")
    with pytest.raises(ValueError, match=r"one of \('quick', 'standard', 'full'\)"):
        get_profile(bad if bad else "  ", device="cpu")
    no_env.setenv("CRYOLEARN_PROFILE", bad or "x")
    with pytest.raises(ValueError, match="CRYOLEARN_PROFILE"):
        get_profile(device="cpu")


def test_device_choice(no_env):
    no_env.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="cuda"):
        pick_device("cuda")
    no_env.setenv("CRYOLEARN_DEVICE", "cuda:1")
    with pytest.raises(ValueError, match="cuda"):
        pick_device()  # the environment's choice is checked like an explicit one
    assert pick_device("cpu") == torch.device("cpu")  # an explicit choice beats the environment
    no_env.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda:1")
    no_env.delenv("CRYOLEARN_DEVICE")
    assert pick_device() == torch.device("cuda")


@pytest.mark.parametrize("value, expected", [("1", True), (" yes", True), ("TRUE", True), ("0", False), ("no", False)])
def test_train_flag(no_env, value, expected):
    p = get_profile("quick", device="cpu")
    assert p.train is False  # unset
    no_env.setenv("CRYOLEARN_TRAIN", value)
    assert p.train is expected


def test_exported_at_the_top():
    assert cryolearn.get_profile is get_profile and cryolearn.pick_device is pick_device


def test_glue_run_time_glues_the_kernel_wall_and_cpu_time(no_env, monkeypatch):
    import psutil
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: __import__("time").time() - 30)
    values = cryolearn.glue_run_time(Profile("quick", torch.device("cpu")))
    assert {k: v for k, (v, _) in glued.items()} == values and not any(d for _, d in glued.values())
    assert values["run_wall"] in ("30 s", "31 s") and values["run_profile"] == "quick" and values["run_device"] == "cpu"
    assert values["run_cpu"].endswith(" s") and int(values["run_cpu"][:-2]) >= 0
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: __import__("time").time() - 300)
    assert cryolearn.glue_run_time(Profile("standard", torch.device("cpu")))["run_wall"] == "5.0 min"
