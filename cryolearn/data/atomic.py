"""Atomic writes: a file appears whole at its path or not at all.

Every file cryolearn writes (MRC volumes, ``.tlt`` angles, YAML records,
checkpoints, committed weights) goes through :func:`atomic_write`: the writer
fills a temporary file in the target's folder, which is then renamed over the
target with :func:`os.replace` (atomic on one file system). An interrupted or
failing write leaves the old file, or none, never a corrupt one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None], overwrite: bool = True) -> Path:
    """Write ``path`` through a temporary file beside it, then rename.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its folder is created if missing.
    writer : callable
        ``writer(tmp)`` writes the whole content to the (existing, empty)
        temporary file named ``tmp``.
    overwrite : bool
        Replace an existing ``path`` (default); False refuses it before
        anything is written.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    Exception
        Whatever ``writer`` raises; the temporary file is removed and
        ``path`` is left as it was.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
