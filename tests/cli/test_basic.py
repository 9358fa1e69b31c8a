"""The command line: dispatcher, help, exit codes and messages, ``info`` and ``fsc`` (no mathematics lives there)."""

import pytest
import torch

from cryolearn.cli import SUBCOMMANDS, main
from cryolearn.data import write_mrc
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Example" in out and f"cryolearn {command}" in out


def test_info(run):
    rc, out, _ = run("info")
    assert rc == 0 and "cryolearn" in out


def test_fsc_of_a_volume_with_itself(tmp_path, run):
    v = torch.randn(16, 16, 16)
    write_mrc(tmp_path / "a.mrc", v, 10.0)
    rc, out, _ = run("fsc", tmp_path / "a.mrc", tmp_path / "a.mrc", "--tilt-range", "-60", "60")
    assert rc == 0
    assert "wedge" in out and "measured" in out
    assert "0.0500 1/Angstrom" in out  # FSC = 1 everywhere: no crossing before Nyquist (1 / (2 * 10 A))


def test_fsc_reads_the_tilt_range_from_a_tlt_file(tmp_path, run):
    a = torch.randn(16, 16, 16, generator=torch.Generator().manual_seed(0))
    write_mrc(tmp_path / "a.mrc", a, 10.0)
    write_mrc(tmp_path / "b.mrc", apply_missing_wedge(a, missing_wedge_mask(a.shape, (-12, 12))), 10.0)
    (tmp_path / "series.tlt").write_text("\n".join(f" {t:.2f}" for t in range(-12, 13, 3)) + "\n\n")
    pair = (tmp_path / "a.mrc", tmp_path / "b.mrc")
    rc, out, _ = run("fsc", *pair, "--tlt", tmp_path / "series.tlt")
    assert rc == 0 and (rc, out, "") == run("fsc", *pair, "--tilt-range", "-12", "12")
    # b equals a on the measured region of that tilt range only: FSC 1 up to Nyquist there, and not with another range.
    measured = next(line for line in out.splitlines() if line.startswith("measured"))
    assert measured.count("0.0500 1/Angstrom") == 2
    assert out != run("fsc", *pair, "--tilt-range", "-60", "60")[1]


def test_errors_exit_nonzero(tmp_path, run):
    rc, _, err = run("fsc", tmp_path / "missing.mrc", tmp_path / "missing.mrc")
    assert rc == 2 and "cryolearn fsc: error:" in err and "missing.mrc" in err
    write_mrc(tmp_path / "a.mrc", torch.randn(8, 8, 8), 10.0)
    rc, _, err = run("fsc", tmp_path / "a.mrc", tmp_path / "a.mrc", "--tilt-range", "-95", "60")
    assert rc == 2 and "tilt range" in err
    rc, _, err = run("fsc", tmp_path / "a.mrc", tmp_path / "a.mrc", "--tlt", tmp_path / "none.tlt")
    assert rc == 2 and "none.tlt" in err


def test_fsc_with_a_std_map_reports_calibration(tmp_path, run):
    from cryolearn.data import write_mrc

    g = torch.Generator().manual_seed(0)
    truth = torch.randn(16, 16, 16, generator=g)
    std = 0.2 + torch.rand(16, 16, 16, generator=g)
    mean = truth + std * torch.randn(16, 16, 16, generator=g)
    for name, v in (("mean", mean), ("std", std), ("truth", truth)):
        write_mrc(tmp_path / f"{name}.mrc", v, 5.0)
    rc, out, err = run("fsc", tmp_path / "mean.mrc", tmp_path / "truth.mrc", "--std", tmp_path / "std.mrc")
    assert rc == 0, err
    cov = [float(w) for w in out.split("coverage")[1].split("\n")[0].replace("%", "").replace(",", "").split()[1::2]]
    assert abs(cov[0] - 0.5) < 0.05 and abs(cov[1] - 0.9) < 0.05
    ratio = float(out.split("lowest std decile ")[1].split(",")[0])
    assert ratio > 2  # the true std map ranks voxels by error
    rc, _, err = run("fsc", tmp_path / "mean.mrc", tmp_path / "truth.mrc", "--std", tmp_path / "nope.mrc")
    assert rc == 2
