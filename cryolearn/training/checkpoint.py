"""Checkpoint files: atomic writes, and reads that unpickle nothing but data.

A checkpoint is a nested ``dict`` of tensors, dicts, lists, tuples, numbers,
strings, booleans and ``None`` (configurations are stored as plain dicts), so
:func:`load_checkpoint` reads it with ``torch.load(..., weights_only=True)``:
a checkpoint file cannot run code. Random-number-generator states (the
``"generator"`` entries) always come back on the CPU, where
:meth:`torch.Generator.set_state` expects them, whatever ``map_location``
says for the weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..data.atomic import atomic_write

__all__ = ["RNG_KEYS", "atomic_save", "load_checkpoint", "save_checkpoint"]

#: Keys whose values are random-number-generator states: kept on the CPU when loading.
RNG_KEYS = ("generator",)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the target's folder, then rename it over ``path``.

    Parameters
    ----------
    obj : object
        What to save.
    path : str or os.PathLike
        Target file; its folder is created if missing.

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    A crash never leaves a half-written file at ``path``: the rename
    (:func:`os.replace`) is atomic on one file system.
    """
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _check_plain(obj: Any, where: str = "state") -> None:
    """Raise TypeError if ``obj`` holds anything ``weights_only=True`` would refuse to load."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor, torch.Size, torch.dtype, torch.device)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a string or an integer")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__name__}: a checkpoint holds only tensors, dicts, lists, numbers and strings")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint atomically, after checking that it loads with ``weights_only=True``.

    Parameters
    ----------
    state : dict
        Nested dicts, lists and tuples of tensors, numbers, strings, booleans
        and ``None`` (e.g. :meth:`cryolearn.methods.Method.state_dict`).
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        If ``state`` holds another type (a dataclass, a numpy array, a
        generator, ...), which a weights-only load would refuse.
    """
    _check_plain(state)
    return atomic_save(state, path)


def _to(obj: Any, map_location: Any, key: str | None = None) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj if key in RNG_KEYS else obj.to(map_location)
    if isinstance(obj, dict):
        return type(obj)((k, _to(v, map_location, k if key not in RNG_KEYS else key)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_to(v, map_location, key) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to(v, map_location, key) for v in obj)
    return obj


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` without unpickling code.

    Parameters
    ----------
    path : str or os.PathLike
    map_location : str or torch.device, optional
        Device for the tensors (weights, optimiser states, masks); ``None``
        leaves them on the CPU. Random-number-generator states (entries under
        :data:`RNG_KEYS`) stay on the CPU in every case.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    pickle.UnpicklingError
        If the file holds more than data (e.g. a checkpoint written with
        pickled classes by an older cryolearn); ``torch.load`` names the type.

    Notes
    -----
    The file is read onto the CPU, then every tensor but the RNG states is
    moved to ``map_location``: a generator state moved to a GPU is refused
    by :meth:`torch.Generator.set_state`.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {os.fspath(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if map_location is None or torch.device(map_location) == torch.device("cpu"):
        return state
    return _to(state, map_location)
