"""Committed reference weights (cryolearn.methods.pretrained): the save/load round trip and its errors."""

import json
import math

import pytest
import torch

from cryolearn.methods import ReferenceSetup, load_pretrained, train_reference
from cryolearn.methods.pretrained import reference_data, save_pretrained

# A miniature of the reference set-up: 8^3 boxes, a handful of subtomograms, two training steps.
SETUP = ReferenceSetup(box=8, n_train=8, n_test=24, seed=3, method_kwargs={"batch_size": 4})


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    return train_reference("cryogen2", n_steps=2, setup=SETUP, progress=False)


def test_reference_data_splits_by_structure():
    train, test = reference_data(SETUP)
    assert train.observations.shape[1:] == (8, 8, 8) and test.observations.shape[1:] == (8, 8, 8)
    held_out = {train.names.index(s) for s in SETUP.test_structures if s in train.names}
    assert held_out and set(test.labels.tolist()) <= held_out
    assert not set(train.labels.tolist()) & held_out


def test_save_load_round_trip_keeps_weights_setup_history_and_provenance(trained, tmp_path):
    method, scores = trained
    assert set(scores) == {"wedge_error", "wedge_error_baseline", "ncc", "ncc_baseline"}
    assert all(math.isfinite(v) for v in scores.values())
    provenance = {"command": "pytest", "scores": scores}
    path = save_pretrained(method, SETUP, provenance, root=tmp_path)
    assert path == tmp_path / "cryogen2_3d.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cryogen2_3d.json", "cryogen2_3d.pt"]  # no temporary left
    assert json.loads((tmp_path / "cryogen2_3d.json").read_text()) == provenance

    loaded, setup, prov = load_pretrained("cryogen2", root=tmp_path)
    assert setup == SETUP and prov == provenance
    assert loaded.step == method.step == 2 and loaded.history == method.history
    y = reference_data(SETUP)[1].observations[:3]
    restored = loaded.predict(y)
    torch.testing.assert_close(restored, method.predict(y), rtol=0, atol=0)  # the same weights
    assert not torch.equal(restored, y)  # trained: no longer the identity it starts as


def test_missing_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no committed 3D weights for 'cryowgen1'.*train_models\.py"):
        load_pretrained("cryowgen1", root=tmp_path)
