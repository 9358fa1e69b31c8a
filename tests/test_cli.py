"""The command line: exit codes and messages (no mathematics lives there)."""

import torch

from cryolearn.cli import main
from cryolearn.data import write_mrc


def test_info(capsys):
    assert main(["info"]) == 0
    assert "cryolearn" in capsys.readouterr().out


def test_fsc_of_a_volume_with_itself(tmp_path, capsys):
    v = torch.randn(16, 16, 16)
    write_mrc(tmp_path / "a.mrc", v, 10.0)
    assert main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "a.mrc"), "--tilt-range", "-60", "60"]) == 0
    out = capsys.readouterr().out
    assert "wedge" in out and "measured" in out
    assert "0.0500 1/Angstrom" in out  # FSC = 1 everywhere: no crossing before Nyquist (1 / (2 * 10 A))


def test_errors_exit_nonzero(tmp_path, capsys):
    assert main(["fsc", str(tmp_path / "missing.mrc"), str(tmp_path / "missing.mrc")]) == 2
    assert "missing.mrc" in capsys.readouterr().err
    write_mrc(tmp_path / "a.mrc", torch.randn(8, 8, 8), 10.0)
    assert main(["fsc", str(tmp_path / "a.mrc"), str(tmp_path / "a.mrc"), "--tilt-range", "-95", "60"]) == 2
    assert "tilt range" in capsys.readouterr().err
