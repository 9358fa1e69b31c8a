"""Tilt angles from IMOD ``.tlt`` files (the book's appendix on notation and conventions).

An IMOD ``.tlt`` file (written by ``tiltalign``, ``xftoxg`` and friends and
read by ``tilt``) is plain text with one tilt angle in degrees per line, in
the order of the images of the tilt series. The measured tilt range
``[theta_min, theta_max]`` of a tomogram is what the missing-wedge mask of
:func:`cryolearn.physics.missing_wedge_mask` needs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..physics import check_tilt_range

__all__ = ["read_tlt", "tilt_range_from_tlt", "write_tlt"]


def read_tlt(path: str | os.PathLike) -> torch.Tensor:
    """Read the tilt angles of an IMOD ``.tlt`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Text file with one angle in degrees per line; blank lines and
        surrounding white space are ignored.

    Returns
    -------
    torch.Tensor
        ``(n,)`` float64 tilt angles in degrees, in file order, on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file holds no angle, a line is not one number, or an angle is
        NaN, infinite or outside (-90, 90) degrees. Messages name the file and
        the (1-based) line.

    Notes
    -----
    Source: the IMOD ``.tlt`` format (one angle per line, degrees) and the
    tilt geometry of the book's appendix on notation and conventions (beam along Z, tilt axis along Y).
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"tilt file {name!r} does not exist")
    with open(name, encoding="utf-8") as f:
        lines = f.read().splitlines()
    angles = []
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            theta = float(text)
        except ValueError:
            raise ValueError(f"tilt file {name!r}, line {i}: {text!r} is not a number") from None
        if not (math.isfinite(theta) and -90.0 < theta < 90.0):
            raise ValueError(f"tilt file {name!r}, line {i}: angle {text} is not a finite number of degrees in (-90, 90)")
        angles.append(theta)
    if not angles:
        raise ValueError(f"tilt file {name!r} holds no tilt angles")
    return torch.tensor(angles, dtype=torch.float64)


def tilt_range_from_tlt(path: str | os.PathLike) -> tuple[float, float]:
    """The measured tilt range ``(theta_min, theta_max)`` of an IMOD ``.tlt`` file.

    Parameters
    ----------
    path : str or os.PathLike
        IMOD ``.tlt`` file (see :func:`read_tlt`).

    Returns
    -------
    (float, float)
        Smallest and largest tilt angle in degrees, ready for
        ``missing_wedge_mask(shape, tilt_range=...)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        As :func:`read_tlt`, and if the angles do not span a range
        (``theta_min >= theta_max``, e.g. a single angle), by
        :func:`cryolearn.physics.check_tilt_range`.

    Notes
    -----
    Source: the book's appendix on notation and conventions (a tilt range ``[theta_min, theta_max]`` in
    degrees defines the missing wedge); IMOD ``.tlt`` format.
    """
    angles = read_tlt(path)
    try:
        return check_tilt_range((angles.min().item(), angles.max().item()))
    except ValueError as err:
        raise ValueError(f"tilt file {os.fspath(path)!r}: {err}") from None


def write_tlt(path: str | os.PathLike, angles: torch.Tensor | list[float], overwrite: bool = False) -> str:
    """Write tilt angles as an IMOD ``.tlt`` file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    angles : torch.Tensor or list of float
        ``(T,)`` degrees, each inside (-90, 90), in the order of the images.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    str
        ``os.fspath(path)``, written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False; nothing is written.
    ValueError
        If there is no angle or one is not finite or outside (-90, 90).
    """
    from .atomic import atomic_write

    values = torch.as_tensor(angles, dtype=torch.float64).flatten().tolist()
    if not values or not all(math.isfinite(a) and -90.0 < a < 90.0 for a in values):
        raise ValueError(f"tilt angles must be finite degrees in (-90, 90), got {values}")
    name = os.fspath(path)
    atomic_write(name, lambda tmp: Path(tmp).write_text("".join(f"{a:.4f}\n" for a in values), encoding="utf-8"),
                 overwrite=overwrite)
    return name
