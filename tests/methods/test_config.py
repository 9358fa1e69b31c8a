"""Typed configurations: validated keys, converted values, one source of truth for the hyperparameters."""

import pytest
import torch

from cryolearn.methods import CryoGEN2Config, CryoWGEN2, CryoWGEN2Config, available_methods, get_method, get_method_class
from cryolearn.methods.config import make_config
from cryolearn.physics import missing_wedge_mask

MASK = missing_wedge_mask((16, 16), (-45, 45))


def test_every_method_has_a_config_and_defaults_build():
    for name in available_methods():
        cls = get_method_class(name)
        m = get_method(name, mask=MASK, sigma=0.3, base_channels=2)
        assert isinstance(m.config, cls.Config) and m.config.base_channels == 2


def test_unknown_keys_are_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"'lamda'.*valid keys: .*lam, ot_method, reg, potential"):
        get_method("cryogen2", mask=MASK, sigma=0.3, lamda=1.0)
    with pytest.raises(ValueError, match="n_chains"):
        make_config(CryoWGEN2Config, n_samples=3)  # CryoWGEN-II's samples are its chains


def test_values_are_converted_from_the_field_types():
    cfg = make_config(CryoGEN2Config, lam=1, potential="true", base_channels=12.0, rotations=(0, 1))
    assert cfg.lam == 1.0 and type(cfg.lam) is float and cfg.potential is True
    assert cfg.base_channels == 12 and type(cfg.base_channels) is int and cfg.rotations == [0, 1]
    for bad, match in [(dict(base_channels=12.5), "base_channels"), (dict(lam="much"), "lam"),
                       (dict(ot_method="exact"), "ot_method"), (dict(potential=2), "potential")]:
        with pytest.raises(ValueError, match=match):
            make_config(CryoGEN2Config, **bad)


def test_attributes_read_and_write_the_configuration():
    m = CryoWGEN2(mask=MASK, sigma=0.3, n_chains=3, base_channels=2)
    assert m.n_samples == m.n_train_samples == m.n_chains == m.config.n_chains == 3
    m.beta = torch.tensor(2.0)  # converted to the field's type
    assert m.config.beta == 2.0 and type(m.config.beta) is float
    with pytest.raises(ValueError, match="burn_in"):
        m.burn_in = 10_000
    assert m.build_kwargs["sigma"] == 0.3 and m.build_kwargs["n_chains"] == 3
