"""Shared pieces of the command-line tests: one thread, a tiny simulated data set and tiny trained models."""

from pathlib import Path

import pytest
import torch

from cryolearn.cli import main

# Tiny training settings: 16^3 boxes, a 4-channel U-Net, batches of 4.
TINY = ["--tilt-range", "-60", "60", "--batch-size", "4", "--set", "base_channels=4", "--device", "cpu"]


@pytest.fixture
def tiny():
    """Command-line options of a tiny training run."""
    return list(TINY)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def run(capsys):
    """``run(*argv) -> (exit status, stdout, stderr)`` of the ``cryolearn`` command line, in process."""

    def _run(*argv):
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return _run


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> Path:
    """``cryolearn simulate``: 8 observations of 16^3 voxels (two structures) with their truths."""
    out = tmp_path_factory.mktemp("cli") / "sim"
    assert main(["simulate", str(out), "--structures", "6zu5", "4v8r", "--n", "8", "--box", "16", "--snr", "1",
                 "--seed", "3", "--device", "cpu"]) == 0
    return out


@pytest.fixture(scope="session")
def model(sim) -> Path:
    """``cryolearn train``: CryoGEN-II, 2 steps on the simulated observations."""
    torch.set_num_threads(1)
    out = sim.parent / "cryogen2" / "model.pt"
    assert main(["train", str(sim / "obs"), *TINY, "--steps", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def sampler(sim) -> Path:
    """``cryolearn train``: CryoWGEN-I (a sampler), 1 step with 4 candidates."""
    torch.set_num_threads(1)
    out = sim.parent / "cryowgen1" / "model.pt"
    assert main(["train", str(sim / "obs"), *TINY, "--method", "cryowgen1", "--set", "n_samples=4", "n_train_samples=4",
                 "--steps", "1", "--out", str(out)]) == 0
    return out
