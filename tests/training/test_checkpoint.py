"""Checkpoints: plain data loaded with weights_only=True, RNG states on the CPU, the typed configuration saved and restored."""

import dataclasses

import pytest
import torch

from cryolearn.methods import CryoWGEN1, Method, get_method
from cryolearn.physics import missing_wedge_mask, simulate_observation
from cryolearn.training import load_checkpoint, save_checkpoint


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.randn(8, 1, 16, 16, generator=g), 3, 1, 1)[:, 0]
    mask = missing_wedge_mask((16, 16), (-45, 45))
    y, _ = simulate_observation(x / x.std(), mask, sigma=0.3, generator=g)
    return y, mask


def _method(name="cryowgen1", **kw):
    y, mask = _data()
    extra = {"use_witness": True, "n_train_samples": 4, "n_samples": 4} if name == "cryowgen1" else {}
    kw = {**extra, "base_channels": 4, "batch_size": 4, "seed": 3, **kw}
    return get_method(name, mask=mask, sigma=0.3, **kw), y


def test_a_checkpoint_is_plain_data_with_the_configuration(tmp_path):
    m, y = _method()
    m.fit(y, 2, progress=False, checkpoint=tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)  # no pickled classes
    assert state["config"] == dataclasses.asdict(m.config) and isinstance(state["config"], dict)
    assert state["config"]["n_samples"] == 4 and state["config"]["potential"] is True  # use_witness implies it
    assert state["sigma"] == 0.3 and torch.equal(state["mask"], m.mask)
    gen = state["generator"]
    assert gen.dtype == torch.uint8 and gen.device.type == "cpu" and state["generator_device"] == "cpu"


def test_save_checkpoint_refuses_what_a_weights_only_load_would_refuse(tmp_path):
    m, _ = _method("cryogen2")
    with pytest.raises(TypeError, match="config"):
        save_checkpoint({"config": m.config}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_rng_states_load_on_the_cpu_whatever_the_map_location(tmp_path):
    m, y = _method()
    m.fit(y, 1, progress=False, checkpoint=tmp_path / "m.pt")
    state = load_checkpoint(tmp_path / "m.pt", map_location="meta")  # another device than the CPU
    assert state["generator"].device.type == "cpu"
    assert all(t.device.type == "meta" for t in state["modules"]["network"].values())
    torch.Generator().set_state(state["generator"])  # what set_state accepts


def test_resume_with_map_location_gives_the_uninterrupted_run(tmp_path):
    straight, y = _method()
    straight.fit(y, 3, progress=False)
    first, _ = _method()
    first.fit(y, 2, progress=False, checkpoint=tmp_path / "m.pt")
    resumed, _ = _method()
    resumed.load(tmp_path / "m.pt", map_location="cpu")
    resumed.fit(y, 3, progress=False)
    assert resumed.history == straight.history
    for k, v in straight.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[k], v)


def test_the_saved_configuration_is_restored(tmp_path):
    m, y = _method()
    m.fit(y, 1, progress=False)
    m.beta = 2.5  # e.g. estimate_beta after training: it is configuration, and the checkpoint keeps it
    m.save(tmp_path / "m.pt")
    fresh, _ = _method()
    assert fresh.beta == 1.0
    fresh.load(tmp_path / "m.pt")
    assert fresh.beta == 2.5 and fresh.config == m.config
    rebuilt = Method.from_checkpoint(tmp_path / "m.pt")
    assert isinstance(rebuilt, CryoWGEN1) and rebuilt.config == m.config and rebuilt.step == 1
    assert torch.equal(rebuilt.mask, m.mask) and rebuilt.sigma == m.sigma
    for k, v in m.network.state_dict().items():
        assert torch.equal(rebuilt.network.state_dict()[k], v)
    torch.testing.assert_close(rebuilt.reconstruct(y[:2]).mean, m.reconstruct(y[:2]).mean)


def test_a_checkpoint_of_other_networks_says_which_keys_differ(tmp_path):
    m, y = _method("cryogen2")
    m.save(tmp_path / "m.pt")
    wide, _ = _method("cryogen2", base_channels=8)
    with pytest.raises(ValueError, match="base_channels"):
        wide.load(tmp_path / "m.pt")
    assert wide.config.base_channels == 8 and wide.step == 0  # left as it was
    other, _ = _method("cryogen1")
    with pytest.raises(ValueError, match="cryogen2"):
        other.load(tmp_path / "m.pt")
