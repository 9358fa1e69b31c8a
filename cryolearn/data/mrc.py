"""Reading, checking, normalising and writing MRC files (the book's appendix on notation and conventions and the book's chapter on the missing wedge (data)).

Volumes are ``(D, H, W) = (z, y, x)`` tensors, the order mrcfile stores a
standard MRC2014 file in (columns X fastest, then rows Y, then sections Z).
Voxel sizes are in Angstrom. Writing is atomic: the data go to a temporary
file in the target's directory, which is renamed over the target only once it
is complete, so a crash never leaves a half-written map behind.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import mrcfile
import numpy as np
import torch

from .atomic import atomic_write

__all__ = ["read_mrc", "write_mrc", "write_reconstruction", "normalize", "moments", "read_subtomograms"]


def _describe(path: str | os.PathLike) -> str:
    return f"MRC file {os.fspath(path)!r}"


def read_mrc(path: str | os.PathLike) -> tuple[torch.Tensor, float]:
    """Read and check one 3D map from an MRC file.

    Parameters
    ----------
    path : str or os.PathLike
        An MRC2014 / CCP4 map (gzip- or bzip2-compressed files are read too).

    Returns
    -------
    volume : torch.Tensor
        ``(D, H, W)`` float32 on the CPU, in ``(z, y, x)`` order. A file whose
        header maps its axes in a non-standard order (``mapc, mapr, maps``
        other than ``1, 2, 3``) is transposed to ``(z, y, x)``.
    voxel_size : float
        Voxel size in Angstrom, read along x. ``0.0`` when the header does not
        set it (mrcfile's convention), with a warning.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid MRC file (mrcfile in strict mode), holds
        complex values, is not 3D (single images and volume stacks are
        refused), is empty, or contains NaN or Inf. Every message names the
        file.

    Warns
    -----
    UserWarning
        If the voxel size is anisotropic (x is used) or unset.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) ("the same loader reads real tomograms or
    subtomograms from MRC files and checks them"). 2D images are refused so
    that a 3D method never silently receives a slice; image stacks with
    ``ispg = 0`` and ``nz > 1`` are read as volumes, since many tomography
    programs write tomograms that way.
    """
    name = _describe(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name} does not exist")
    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.asarray(mrc.data)
            vs = mrc.voxel_size
            vx, vy, vz = float(vs.x), float(vs.y), float(vs.z)
            order = [int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps)]
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{name} is not a readable MRC file: {err}") from err
    if data is None or data.size == 0:
        raise ValueError(f"{name} holds no data")
    if np.iscomplexobj(data):
        raise ValueError(f"{name} holds complex values (MRC mode 3/4); a real-valued map is needed")
    if data.ndim != 3:
        raise ValueError(f"{name} holds {data.ndim}D data of shape {data.shape}; a 3D volume (z, y, x) is needed")
    data = data.astype(np.float32)
    if not np.isfinite(data).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if sorted(order) != [1, 2, 3]:
        raise ValueError(f"{name} has an invalid axis mapping (mapc, mapr, maps) = {tuple(order)}")
    if order != [1, 2, 3]:
        # Data axes are (sections, rows, columns) = labels (maps, mapr, mapc); 1=x, 2=y, 3=z.
        labels = order[::-1]
        data = np.transpose(data, [labels.index(3), labels.index(2), labels.index(1)])
    if vx == vy == vz == 0.0:
        warnings.warn(f"{name} does not set a voxel size; returning 0.0", stacklevel=2)
    elif not (math.isclose(vx, vy, rel_tol=1e-3) and math.isclose(vx, vz, rel_tol=1e-3)):
        warnings.warn(f"{name} has an anisotropic voxel size (x, y, z) = ({vx}, {vy}, {vz}) A; using x", stacklevel=2)
    return torch.from_numpy(np.ascontiguousarray(data)), vx


def moments(volume: torch.Tensor, ndim: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-volume mean, population standard deviation and "is constant" flag.

    The one definition of the statistics :func:`normalize` uses (and the tiled
    restoration of whole tomograms, which normalises tile by tile).

    Parameters
    ----------
    volume : torch.Tensor
        ``(..., D, H, W)``, floating point; the last ``ndim`` axes are one volume.
    ndim : int
        Number of spatial axes.

    Returns
    -------
    (torch.Tensor, torch.Tensor, torch.Tensor)
        ``mean``, ``std`` (population, in the voxel unit) and the bool
        ``constant`` flag, each ``(...)``. A volume is constant when its
        standard deviation is at most ``1e-6`` times its largest absolute
        value (or it is all zeros).

    Raises
    ------
    ValueError
        If ``volume`` is not floating point or has fewer than ``ndim`` axes.

    Notes
    -----
    Source: book chapter 1 (``book/01_missing_wedge.ipynb`` normalises the maps).
    """
    if volume.ndim < ndim or not volume.is_floating_point():
        raise ValueError(
            f"normalize needs a floating-point tensor with {ndim} spatial axes, got {volume.dtype} of shape {tuple(volume.shape)}"
        )
    flat = volume.flatten(-ndim)
    mean = flat.mean(dim=-1)
    std = flat.std(dim=-1, unbiased=False)
    scale = flat.abs().amax(dim=-1)
    return mean, std, (std <= 1e-6 * scale) | (scale == 0)


def normalize(volume: torch.Tensor, ndim: int = 3, constant: str = "raise") -> torch.Tensor:
    """Normalise each volume to zero mean and unit standard deviation.

    Parameters
    ----------
    volume : torch.Tensor
        ``(..., D, H, W)`` (the last ``ndim`` axes are one volume).
    ndim : int
        Number of spatial axes (3 for volumes, 2 for images).
    constant : {"raise", "zero"}
        What to do with a constant volume (zero standard deviation up to
        rounding): raise a ValueError (default), or return it as exactly zero
        (its mean removed, nothing to scale), as tiles of a whole tomogram
        need (:func:`cryolearn.inference.restore_tiled`).

    Returns
    -------
    torch.Tensor
        ``(x - mean) / std`` per volume, same shape, dtype and device; the
        standard deviation is the population one (``unbiased=False``).

    Raises
    ------
    ValueError
        If ``volume`` has fewer than ``ndim`` axes, is not floating point,
        ``constant`` is not one of the two choices, or (``constant="raise"``)
        any volume is constant.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) (every subtomogram is normalised this way before
    it is used).
    """
    if constant not in ("raise", "zero"):
        raise ValueError(f"constant must be 'raise' or 'zero', got {constant!r}")
    mean, std, const = moments(volume, ndim)
    if constant == "raise" and bool(const.any()):
        raise ValueError("cannot normalise a constant volume (zero standard deviation)")
    shape = (*mean.shape, *[1] * ndim)
    z = (volume - mean.view(shape)) / torch.where(const, torch.ones_like(std), std).view(shape)
    return torch.where(const.view(shape), torch.zeros_like(z), z)


def read_subtomograms(paths: Sequence[str | os.PathLike]) -> tuple[torch.Tensor, float]:
    """Read, check and normalise a set of subtomograms of one box size.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        MRC files, each one 3D volume (see :func:`read_mrc`).

    Returns
    -------
    volumes : torch.Tensor
        ``(N, D, H, W)`` float32, each normalised by :func:`normalize`.
    voxel_size : float
        The common voxel size in Angstrom (of the first file).

    Raises
    ------
    ValueError
        If ``paths`` is empty, the files differ in shape or voxel size, or any
        file fails the checks of :func:`read_mrc` or is constant.
    FileNotFoundError
        If a file does not exist.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) (real subtomograms enter the methods exactly like
    simulated ones).
    """
    if len(paths) == 0:
        raise ValueError("no subtomogram files given")
    vols, sizes = zip(*(read_mrc(p) for p in paths))
    for p, v, s in zip(paths, vols, sizes):
        if bool(v.amax() == v.amin()):
            raise ValueError(f"{_describe(p)} is constant and cannot be normalised")
        if v.shape != vols[0].shape:
            raise ValueError(f"{_describe(p)} has shape {tuple(v.shape)}, but {_describe(paths[0])} has {tuple(vols[0].shape)}")
        if not math.isclose(s, sizes[0], rel_tol=1e-3):
            raise ValueError(f"{_describe(p)} has voxel size {s} A, but {_describe(paths[0])} has {sizes[0]} A")
    return normalize(torch.stack(vols)), sizes[0]


def write_mrc(
    path: str | os.PathLike,
    volume: torch.Tensor | np.ndarray,
    voxel_size: float,
    overwrite: bool = False,
) -> Path:
    """Write a 3D map as a standard MRC2014 file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its directory must exist.
    volume : torch.Tensor or numpy.ndarray
        ``(D, H, W)`` real values in ``(z, y, x)`` order, on any device;
        stored as float32 (MRC mode 2) without reordering axes.
    voxel_size : float
        Voxel size in Angstrom (positive), written for all three axes.
    overwrite : bool
        Replace an existing file. Default False.

    Returns
    -------
    pathlib.Path
        ``path``, written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False
        (:func:`~cryolearn.data.atomic.atomic_write` checks it).
    ValueError
        If ``volume`` is not 3D, is empty, is complex, or holds NaN or Inf,
        or ``voxel_size`` is not a positive finite number; nothing is written.

    Notes
    -----
    The file is written with mrcfile to a temporary file in the same
    directory and then renamed over ``path`` with :func:`os.replace` (atomic
    on POSIX and Windows); on any error the temporary file is removed. The
    header has origin 0, the space group of a volume (``ispg = 1``) and
    statistics from ``update_header_stats``, so ChimeraX and IMOD open it with
    the right voxel size. The header carries no timestamp, so the same
    volume always gives the same bytes (and sha256). The existence check and the rename are two steps:
    a file created by another process in between is replaced.
    """
    path = Path(path)
    data = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    if np.iscomplexobj(data) or data.ndim != 3 or data.size == 0:
        raise ValueError(
            f"write_mrc needs a non-empty real 3D volume (z, y, x) for {str(path)!r}, got {data.dtype} of shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ValueError(f"refusing to write NaN or Inf values to {str(path)!r}")
    try:
        vs = float(voxel_size)
    except (TypeError, ValueError):
        vs = float("nan")
    if not (math.isfinite(vs) and vs > 0):
        raise ValueError(f"voxel_size must be a positive number of Angstrom, got {voxel_size!r}")
    def write(tmp: str) -> None:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
            mrc.voxel_size = vs
            mrc.header.origin = (0.0, 0.0, 0.0)
            mrc.header.label[0] = b"written by cryolearn"  # replaces mrcfile's timestamp: same data, same bytes
            mrc.update_header_stats()

    return atomic_write(path, write, overwrite=overwrite)


def write_reconstruction(
    folder: str | os.PathLike,
    mean: torch.Tensor,
    voxel_size: float,
    std: torch.Tensor | None = None,
    samples: torch.Tensor | None = None,
    prefix: str = "",
    n_samples: int = 0,
    overwrite: bool = False,
) -> list[Path]:
    """Write restored volumes, their std maps and some posterior samples as MRC files (ChimeraX, IMOD).

    Parameters
    ----------
    folder : str or os.PathLike
        Output folder (created if missing).
    mean : torch.Tensor
        ``(..., D, H, W)`` restored volumes, on any device.
    voxel_size : float
        Angstrom per voxel, written to the headers.
    std : torch.Tensor, optional
        ``(..., D, H, W)`` voxel-wise posterior standard deviations.
    samples : torch.Tensor, optional
        ``(S, ..., D, H, W)`` posterior samples.
    prefix : str
        File-name prefix.
    n_samples : int
        How many of the samples to write per volume (0: none).
    overwrite : bool
        Replace existing files; otherwise an existing file raises
        ``FileExistsError`` before anything is written.

    Returns
    -------
    list of pathlib.Path
        ``{prefix}{i:04d}_mean.mrc``, ``_std.mrc``, ``_sample{s:03d}.mrc`` per
        volume ``i`` (no index for a single volume ``(D, H, W)``).

    Raises
    ------
    FileExistsError
        If a target exists and ``overwrite`` is False.
    ValueError
        If ``n_samples`` exceeds the samples held, or the volumes are not 3D.

    Notes
    -----
    Each file is written atomically by :func:`write_mrc`, with the voxel size
    in its header (the MRC2014 format, Cheng et al. 2015, J. Struct. Biol. 192).
    """
    if mean.ndim < 3:
        raise ValueError(f"MRC files hold 3D volumes; the mean has shape {tuple(mean.shape)}")
    held = 0 if samples is None else samples.shape[0]
    if n_samples > held:
        raise ValueError(f"asked for {n_samples} samples but the reconstruction holds {held}")
    single = mean.ndim == 3
    means = mean.reshape(-1, *mean.shape[-3:])
    stds = None if std is None else std.reshape(-1, *std.shape[-3:])
    picked = None if not n_samples else samples[:n_samples].reshape(n_samples, -1, *mean.shape[-3:])
    folder = Path(folder)
    jobs = []
    for i in range(means.shape[0]):
        stem = prefix if single else f"{prefix}{i:04d}_"
        jobs.append((folder / f"{stem}mean.mrc", means[i]))
        if stds is not None:
            jobs.append((folder / f"{stem}std.mrc", stds[i]))
        for k in range(n_samples):
            jobs.append((folder / f"{stem}sample{k:03d}.mrc", picked[k, i]))
    existing = [str(p) for p, _ in jobs if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {existing[:3]}{' ...' if len(existing) > 3 else ''} (pass overwrite=True)")
    folder.mkdir(parents=True, exist_ok=True)
    return [write_mrc(p, v.detach().cpu(), voxel_size, overwrite=overwrite) for p, v in jobs]
