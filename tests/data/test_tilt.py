"""IMOD .tlt tilt files (the book's appendix on notation and conventions)."""

import pytest
import torch

from cryolearn.data import read_tlt, tilt_range_from_tlt


def _write(tmp_path, text, name="series.tlt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_round_trip_keeps_every_angle_exactly(tmp_path):
    angles = torch.linspace(-57.3, 61.2, 41, dtype=torch.float64)
    angles = angles[torch.randperm(41, generator=torch.Generator().manual_seed(0))]  # any order, e.g. dose-symmetric
    text = "\n".join(f"  {a!r}  " for a in angles.tolist())
    path = _write(tmp_path, "\n" + text.replace("\n", "\n\n", 3) + "\n\n")  # blank lines are ignored
    got = read_tlt(path)
    assert got.dtype == torch.float64 and got.shape == (41,)
    torch.testing.assert_close(got, angles, rtol=0, atol=0)
    assert tilt_range_from_tlt(path) == (angles.min().item(), angles.max().item())


def test_imod_style_file_and_windows_line_ends(tmp_path):
    path = _write(tmp_path, "".join(f"{a:8.2f}\r\n" for a in (-60, -58.5, 0, 58.5, 60)))
    torch.testing.assert_close(read_tlt(path), torch.tensor([-60, -58.5, 0, 58.5, 60], dtype=torch.float64))
    assert tilt_range_from_tlt(path) == (-60.0, 60.0)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tlt"):
        read_tlt(tmp_path / "nope.tlt")
    with pytest.raises(FileNotFoundError, match="nope.tlt"):
        tilt_range_from_tlt(tmp_path / "nope.tlt")


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "holds no tilt angles"),
        ("\n  \n\n", "holds no tilt angles"),
        ("-60\n0\nsixty\n", "line 3: 'sixty' is not a number"),
        ("-60\n\n0 60\n", "line 3: '0 60' is not a number"),
        ("-60\nnan\n", "line 2: angle nan"),
        ("-60\ninf\n", "line 2: angle inf"),
        ("-60\n90\n", r"line 2: angle 90 .*\(-90, 90\)"),
        ("-90.5\n60\n", r"line 1: angle -90.5 "),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, text, match):
    path = _write(tmp_path, text, "bad.tlt")
    with pytest.raises(ValueError, match="bad.tlt") as err:
        read_tlt(path)
    assert err.match(match)


def test_tilt_range_needs_two_distinct_angles(tmp_path):
    path = _write(tmp_path, "12.5\n12.5\n", "flat.tlt")
    torch.testing.assert_close(read_tlt(path), torch.tensor([12.5, 12.5], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"flat.tlt.*theta_min < theta_max"):
        tilt_range_from_tlt(path)
