"""A real tomogram shipped with the book: purified microtubules.

``data/real/13pf_MT.mrc`` is a crop of a real cryo-electron tomogram (SIRT,
binned 4x) of 13-protofilament microtubules, 10.52 Angstrom per voxel, from
the test data of cylindra (BSD-3-Clause, Copyright (c) 2021 hanjinliu; the
notice is in ``data/real/LICENSE-cylindra``). There is no ground truth: the
book measures what a restoration does to it without one (power put into the
missing wedge, FSC with the input over the measured region, XZ sections of
the tubes). Source: book chapter "Restoring a whole tomogram".
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .mrc import read_mrc
from .structures import data_root

__all__ = ["load_microtubules", "MICROTUBULES_SHA256"]

MICROTUBULES_SHA256 = "476c54acf50950a33724b2b645d7a90f0fa4f17cc6e688bd42c5735b6bd9b30f"


def load_microtubules(root: str | os.PathLike | None = None) -> tuple[torch.Tensor, float]:
    """Read the real microtubule tomogram crop.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data folder (see :func:`cryolearn.data.data_root`).

    Returns
    -------
    volume : torch.Tensor
        ``(36, 206, 94)`` float32, ``(z, y, x)``, protein bright; raw values
        (signed bytes), not normalised.
    voxel_size : float
        10.52 Angstrom.

    Raises
    ------
    FileNotFoundError
        If the data folder or the file is missing.
    ValueError
        If the file's sha256 differs from :data:`MICROTUBULES_SHA256`.
    """
    path = Path(data_root(root)) / "real" / "13pf_MT.mrc"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} is missing; rebuild it with data/real/build_real.py")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MICROTUBULES_SHA256:
        raise ValueError(f"{str(path)!r} has sha256 {digest}, expected {MICROTUBULES_SHA256}")
    return read_mrc(path)
