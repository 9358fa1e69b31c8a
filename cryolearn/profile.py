"""Run profiles and device choice (the book's introduction (run profiles)).

Every chapter and the command-line tool read one setting, the environment
variable ``CRYOLEARN_PROFILE`` (``quick``, ``standard`` or ``full``), through
:func:`get_profile`. The device is chosen here once and passed down; nothing
else in the package picks a device.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PROFILES", "Profile", "get_profile", "glue_run_time", "pick_device"]

PROFILES = ("quick", "standard", "full")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return the compute device: ``cuda`` when available, else ``cpu``.

    Parameters
    ----------
    device : str or torch.device, optional
        An explicit choice (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None``
        picks ``cuda`` if :func:`torch.cuda.is_available`, else ``cpu``.
        The environment variable ``CRYOLEARN_DEVICE`` overrides ``None``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If ``cuda`` is asked for and no CUDA device is available.

    Notes
    -----
    Source: the book's introduction (run profiles) ("the device is chosen once").
    """
    if device is None:
        device = os.environ.get("CRYOLEARN_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False")
    return device


@dataclass(frozen=True)
class Profile:
    """The active run profile.

    Attributes
    ----------
    name : str
        ``"quick"`` (CI on 2 CPU cores, every code path, tiny sizes),
        ``"standard"`` (meaningful pictures on a laptop CPU in minutes) or
        ``"full"`` (the sizes the book's claims are made at, one GPU).
    device : torch.device
        Where tensors of this run live.

    Notes
    -----
    Source: the book's introduction (run profiles).
    """

    name: str
    device: torch.device

    def choose(self, quick: Any, standard: Any, full: Any) -> Any:
        """Return the value for the active profile.

        Parameters
        ----------
        quick, standard, full : Any
            The value to use under each profile.

        Returns
        -------
        Any
            ``quick``, ``standard`` or ``full``, by :attr:`name`.

        Examples
        --------
        >>> p = Profile("quick", torch.device("cpu"))
        >>> p.choose(quick=16, standard=32, full=64)
        16
        """
        return {"quick": quick, "standard": standard, "full": full}[self.name]

    @property
    def train(self) -> bool:
        """Whether ``CRYOLEARN_TRAIN=1`` asks to retrain instead of loading weights (README.md (committed weights))."""
        return os.environ.get("CRYOLEARN_TRAIN", "0").strip().lower() in ("1", "true", "yes")

    def __str__(self) -> str:
        return f"profile={self.name}, device={self.device}"


def get_profile(name: str | None = None, device: str | torch.device | None = None) -> Profile:
    """Read the run profile from ``CRYOLEARN_PROFILE`` and pick the device.

    Parameters
    ----------
    name : str, optional
        ``"quick"``, ``"standard"`` or ``"full"``. ``None`` reads
        ``CRYOLEARN_PROFILE``; when that is unset, the default is ``full``
        where CUDA is available and ``standard`` on a CPU.
    device : str or torch.device, optional
        Passed to :func:`pick_device`.

    Returns
    -------
    Profile

    Raises
    ------
    ValueError
        If the profile name is not one of :data:`PROFILES`.

    Notes
    -----
    Source: the book's introduction (run profiles). Every chapter calls this once, at its top.
    """
    dev = pick_device(device)
    if name is None:
        name = os.environ.get("CRYOLEARN_PROFILE", "").strip().lower() or ("full" if dev.type == "cuda" else "standard")
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"CRYOLEARN_PROFILE must be one of {PROFILES}, got {name!r}")
    return Profile(name=name, device=dev)


def glue_run_time(profile: Profile | None = None) -> dict[str, str]:
    """Glue how long the running notebook took, for its "Running this chapter" box.

    Called in the last cell of every chapter. It glues (myst-nb ``glue``,
    not displayed) ``run_wall``, the wall time since the kernel's process
    started (``"42 s"``, or ``"3.5 min"`` from two minutes on), ``run_cpu``,
    the CPU time of that process in seconds, and ``run_profile`` and
    ``run_device``, the profile's name and device.

    Parameters
    ----------
    profile : Profile, optional
        Default :func:`get_profile`.

    Returns
    -------
    dict of str to str
        The four glued strings by name.

    Notes
    -----
    Source: the book's introduction (run profiles). Needs ``myst_nb`` and
    ``psutil`` (both come with the book's requirements); the commands that
    a chapter runs in processes of their own count in the wall time only.
    """
    import psutil
    from myst_nb import glue

    profile = profile or get_profile()
    wall = time.time() - psutil.Process(os.getpid()).create_time()
    values = {
        "run_wall": f"{wall:.0f} s" if wall < 120 else f"{wall / 60:.1f} min",
        "run_cpu": f"{time.process_time():.0f} s",
        "run_profile": profile.name,
        "run_device": str(profile.device),
    }
    for name, value in values.items():
        glue(name, value, display=False)
    return values
