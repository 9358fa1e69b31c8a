"""Simulated data sets: subtomograms of real structures and a 2D toy (the book's chapter on the missing wedge (data) and the reference set-up of the book's CryoGEN-II chapter).

:func:`simulate_subtomograms` turns the committed structure maps into
observed subtomograms ``y = M (R x) + M n``: each map is rotated at random
(on its fine grid), Fourier-cropped to the target box, normalised to zero
mean and unit variance, then wedge-masked and noised by
:func:`cryolearn.physics.simulate_observation`. The clean volumes are kept
for scoring only. :func:`random_blobs_2d` makes the 2D toy of the method
chapters. Both :class:`SubtomogramDataset` (in memory) and :class:`MRCDataset`
(a folder of MRC files read one file per item) are
:class:`torch.utils.data.Dataset` objects whose items are observations, so
:meth:`cryolearn.methods.Method.fit` can stream them through a
:class:`torch.utils.data.DataLoader`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ..physics import (
    check_tilt_range,
    cube_rotations,
    missing_wedge_mask,
    random_cube_indices,
    random_so3,
    rotate_cube,
    rotate_volume,
    simulate_observation,
)
from .mrc import normalize, read_mrc
from .structures import StructureMaps, fourier_crop

__all__ = ["MRCDataset", "SubtomogramDataset", "simulate_subtomograms", "split_by_structure", "random_blobs_2d"]


@dataclass
class SubtomogramDataset(Dataset):
    """Simulated subtomograms with their ground truth and provenance.

    A :class:`torch.utils.data.Dataset` whose item ``i`` is the observation
    ``observations[i]`` (never the ground truth), so that
    :meth:`cryolearn.methods.Method.fit` can stream it.

    Attributes
    ----------
    observations : torch.Tensor
        ``(N, D, H, W)`` observed subtomograms ``y = M x + M n`` (or
        ``M x + n``), what the methods see.
    ground_truth : torch.Tensor
        ``(N, D, H, W)`` clean rotated volumes ``x``, each with zero mean and
        unit variance; for scoring only, never for training.
    labels : torch.Tensor
        ``(N,)`` int64 index into :attr:`names`: which structure.
    rotations : torch.Tensor
        ``(N, 3, 3)`` rotation matrices ``R`` on ``(z, y, x)`` coordinates,
        ``x = R x_0`` with ``x_0`` the map in its deposited orientation.
    mask : torch.Tensor
        ``(D, H, W // 2 + 1)`` bool missing-wedge mask (True measured).
    sigma : torch.Tensor
        ``(N,)`` noise standard deviation per voxel before masking.
    names : list of str
        Structure names (PDB ids) the labels refer to.
    voxel_size : float
        Angstrom per voxel of the subtomograms.
    tilt_range : (float, float)
        Degrees.
    snr : float
        ``var(x) / sigma^2`` (linear).
    seed : int
    rotation : str
        ``"so3"`` or ``"cube"``.
    masked_noise : bool
    source : str
        Where the maps come from (manifest provenance).
    """

    observations: torch.Tensor
    ground_truth: torch.Tensor
    labels: torch.Tensor
    rotations: torch.Tensor
    mask: torch.Tensor
    sigma: torch.Tensor
    names: list[str]
    voxel_size: float
    tilt_range: tuple[float, float]
    snr: float
    seed: int
    rotation: str
    masked_noise: bool
    source: str

    def __len__(self) -> int:
        return self.observations.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        """The observation ``index``, ``(D, H, W)`` (what training sees; never the ground truth)."""
        return self.observations[index]

    @property
    def box(self) -> int:
        """Box edge in voxels."""
        return self.observations.shape[-1]

    @property
    def metadata(self) -> dict[str, Any]:
        """What the book's chapter on the missing wedge (data) asks every data set to state, as a JSON-ready dict."""
        return {
            "source": self.source,
            "structures": list(self.names),
            "n": len(self),
            "voxel_size": self.voxel_size,
            "box": self.box,
            "tilt_range": list(self.tilt_range),
            "snr": self.snr,
            "seed": self.seed,
            "rotation": self.rotation,
            "masked_noise": self.masked_noise,
        }

    def subset(self, index: torch.Tensor) -> "SubtomogramDataset":
        """The samples selected by a bool mask or an index tensor ``(M,)``; other fields are shared."""
        per_sample = ("observations", "ground_truth", "labels", "rotations", "sigma")
        return replace(self, **{k: getattr(self, k)[index.to(self.labels.device)] for k in per_sample})


class MRCDataset(Dataset):
    """Subtomograms in MRC files, read lazily: one file per item, normalised as :func:`cryolearn.data.read_subtomograms` does.

    Parameters
    ----------
    files : sequence of str or os.PathLike
        MRC files, each one 3D volume of the same shape and voxel size.
    normalise : bool
        Normalise each volume to zero mean and unit standard deviation
        (:func:`cryolearn.data.normalize`), as every loader of the package does.

    Attributes
    ----------
    files : list of pathlib.Path
    shape : tuple of int
        ``(D, H, W)`` of every volume (read from the first file).
    voxel_size : float
        Angstrom per voxel (of the first file).

    Raises
    ------
    ValueError
        If ``files`` is empty or the first file fails the checks of
        :func:`cryolearn.data.read_mrc`. Each other file is checked when it
        is read: a different shape or voxel size, a constant volume or an
        unreadable file raises ValueError naming the file.
    FileNotFoundError
        If a file does not exist.

    Notes
    -----
    Only the file list and the first volume's header are held in memory, so a
    data set larger than the memory of a GPU (or of the host) trains through
    a :class:`torch.utils.data.DataLoader` (:meth:`cryolearn.methods.Method.fit`
    builds one). Item ``i`` is a float32 ``(D, H, W)`` tensor on the CPU.
    """

    def __init__(self, files: Sequence[str | os.PathLike], normalise: bool = True) -> None:
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ValueError("no subtomogram files given")
        missing = [str(f) for f in self.files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"MRC file(s) {missing[:3]} do not exist")
        first, self.voxel_size = read_mrc(self.files[0])
        self.shape = tuple(first.shape)
        self.normalise = bool(normalise)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Read, check and normalise file ``index``: ``(D, H, W)`` float32 on the CPU."""
        path = self.files[index]
        vol, vs = read_mrc(path)
        if tuple(vol.shape) != self.shape:
            raise ValueError(f"MRC file {str(path)!r} has shape {tuple(vol.shape)}, but {str(self.files[0])!r} has {self.shape}")
        if not math.isclose(vs, self.voxel_size, rel_tol=1e-3):
            raise ValueError(f"MRC file {str(path)!r} has voxel size {vs} A, but {str(self.files[0])!r} has {self.voxel_size} A")
        if not self.normalise:
            return vol
        if bool(vol.amax() == vol.amin()):
            raise ValueError(f"MRC file {str(path)!r} is constant and cannot be normalised")
        return normalize(vol)


def simulate_subtomograms(
    maps: StructureMaps,
    n: int,
    box: int = 32,
    tilt_range: Sequence[float] = (-60.0, 60.0),
    snr: float = 1.0,
    seed: int = 0,
    rotation: str = "so3",
    masked_noise: bool = True,
    batch_size: int = 32,
) -> SubtomogramDataset:
    """Simulate observed subtomograms of real structures.

    Parameters
    ----------
    maps : StructureMaps
        From :func:`cryolearn.data.load_structure_maps`; ``(K, N0, N0, N0)``
        maps on one device, which the data set follows.
    n : int
        Number of subtomograms; the structures are used equally often
        (``n // K`` or one more each), in random order.
    box : int
        Output box edge in voxels, at most ``N0``; the maps are
        Fourier-cropped, so the voxel size becomes
        ``maps.voxel_size * N0 / box`` Angstrom.
    tilt_range : (float, float)
        Degrees, see :func:`cryolearn.physics.missing_wedge_mask`.
    snr : float
        Signal-to-noise ratio ``var(x) / sigma^2``; the clean volumes have
        unit variance, so ``sigma = 1 / sqrt(snr)``.
    seed : int
        Seeds a :class:`torch.Generator` on the maps' device; the result is
        a function of the seed (and device), not of ``batch_size``.
    rotation : {"so3", "cube"}
        Uniform continuous rotations applied by trilinear interpolation
        (:func:`cryolearn.physics.rotate_volume`), or the 24 exact rotations
        of the cube (:func:`cryolearn.physics.rotate_cube`).
    masked_noise : bool
        ``y = M x + M n`` (default) or ``y = M x + n``.
    batch_size : int
        Volumes rotated and cropped at once on the fine grid (memory only).

    Returns
    -------
    SubtomogramDataset

    Raises
    ------
    ValueError
        If ``n < 1``, ``box`` is out of range, ``snr <= 0``, the tilt range
        is invalid, or ``rotation`` is unknown.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data). Rotating on the fine grid and cropping
    afterwards keeps interpolation blur out of the band that survives the
    crop. Both rotations turn about the box centre ``(N - 1) / 2``, where
    :func:`cryolearn.data.density_from_model` puts each structure's centre
    of mass and where :func:`cryolearn.data.fourier_crop` keeps it.
    """
    k, n0 = maps.volumes.shape[0], maps.volumes.shape[-1]
    if n < 1 or not 1 <= box <= n0:
        raise ValueError(f"need n >= 1 and 1 <= box <= {n0}, got n={n}, box={box}")
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr}")
    if rotation not in ("so3", "cube"):
        raise ValueError(f"rotation must be 'so3' or 'cube', got {rotation!r}")
    tilt_range = check_tilt_range(tilt_range)
    dev = maps.volumes.device
    g = torch.Generator(device=dev).manual_seed(int(seed))
    labels = torch.randperm(n, generator=g, device=dev) % k
    if rotation == "so3":
        rot = random_so3(n, generator=g, device=dev)
    else:
        index = random_cube_indices(n, generator=g, device=dev)
        rot = cube_rotations(3, device=dev)[index]
    chunks = []
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        vol = maps.volumes[labels[sl]]  # (b, N0, N0, N0)
        vol = rotate_volume(vol, rot[sl]) if rotation == "so3" else rotate_cube(vol, index[sl])
        chunks.append(fourier_crop(vol, box))
    clean = normalize(torch.cat(chunks))  # (n, box, box, box)
    mask = missing_wedge_mask((box,) * 3, tilt_range, device=dev)
    obs, sigma = simulate_observation(clean, mask, snr=snr, masked_noise=masked_noise, generator=g)
    source = "; ".join(f"{name}: {info.get('source', 'unknown')}" for name, info in zip(maps.names, maps.info))
    return SubtomogramDataset(
        observations=obs, ground_truth=clean, labels=labels, rotations=rot, mask=mask, sigma=sigma,
        names=list(maps.names), voxel_size=maps.voxel_size * n0 / box,
        tilt_range=tilt_range, snr=float(snr), seed=int(seed), rotation=rotation, masked_noise=masked_noise,
        source=source,
    )


def split_by_structure(data: SubtomogramDataset, test: Sequence[str]) -> tuple[SubtomogramDataset, SubtomogramDataset]:
    """Split a data set by structure: held-out complexes form the test set.

    Parameters
    ----------
    data : SubtomogramDataset
    test : sequence of str
        Names (PDB ids, case-insensitive) whose subtomograms go to the test
        set. Hold out related structures together (``3p3w`` and ``6flr``
        are the same protein, the GluA3 N-terminal domain).

    Returns
    -------
    train, test : SubtomogramDataset
        Disjoint in structures; together all of ``data``.

    Raises
    ------
    ValueError
        If a name is unknown, or the split leaves either side empty.

    Notes
    -----
    Source: the reference set-up of the book's CryoGEN-II chapter (results are reported on complexes absent from
    training).
    """
    test = [t.lower() for t in test]
    unknown = sorted(set(test) - set(data.names))
    if unknown:
        raise ValueError(f"unknown structure(s) {unknown}; the data set has {data.names}")
    ids = torch.tensor([data.names.index(t) for t in test], device=data.labels.device)
    held = torch.isin(data.labels, ids)
    if bool(held.all()) or not bool(held.any()):
        raise ValueError(f"holding out {test} leaves an empty train or test set")
    return data.subset(~held), data.subset(held)


def random_blobs_2d(
    n: int,
    size: int = 32,
    n_blobs: tuple[int, int] = (2, 6),
    width: tuple[float, float] = (1.0, 4.0),
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Images of random anisotropic Gaussian blobs, the 2D toy.

    Parameters
    ----------
    n : int
        Number of images.
    size : int
        Image edge in pixels; images are ``(size, size)`` = ``(z, x)``.
    n_blobs : (int, int)
        Each image has between ``n_blobs[0]`` and ``n_blobs[1]`` blobs
        (inclusive, uniform).
    width : (float, float)
        Standard deviations along the two principal axes of each blob,
        uniform in this range (pixels).
    seed : int
        Seeds a :class:`torch.Generator` on ``device``.
    device : torch.device or str, optional
    dtype : torch.dtype

    Returns
    -------
    torch.Tensor
        ``(n, size, size)``, each image with zero mean and unit variance.

    Raises
    ------
    ValueError
        If the counts or widths are not positive and ordered.

    Notes
    -----
    Source: the reference set-up of the book's CryoGEN-II chapter (the measured 2D reference point: 32x32 images
    of random anisotropic blobs, unit variance). A blob is
    ``a exp(-u^2 / (2 s_1^2) - v^2 / (2 s_2^2))`` in coordinates ``(u, v)``
    rotated by a uniform angle, with amplitude ``a`` uniform in ``[0.5, 1]``
    and centre uniform in the middle 60% of the image.
    """
    lo, hi = (int(c) for c in n_blobs)
    if n < 1 or size < 2 or not 1 <= lo <= hi or not 0 < width[0] <= width[1]:
        raise ValueError(
            "need n >= 1, size >= 2, 1 <= n_blobs[0] <= n_blobs[1] and 0 < width[0] <= width[1]; "
            f"got n={n}, size={size}, n_blobs={n_blobs}, width={width}"
        )
    g = torch.Generator(device=device).manual_seed(int(seed))

    def uniform(shape, a, b):
        return a + (b - a) * torch.rand(shape, generator=g, device=device, dtype=dtype)

    count = torch.randint(lo, hi + 1, (n, 1), generator=g, device=device)
    centre = uniform((n, hi, 2), 0.2 * (size - 1), 0.8 * (size - 1))
    s = uniform((n, hi, 2), width[0], width[1])
    theta = uniform((n, hi), 0.0, math.pi)
    amp = uniform((n, hi), 0.5, 1.0) * (torch.arange(hi, device=device) < count)  # (n, hi)
    coord = torch.arange(size, device=device, dtype=dtype)
    dz = coord.view(1, 1, -1, 1) - centre[..., 0, None, None]  # (n, hi, size, 1)
    dx = coord.view(1, 1, 1, -1) - centre[..., 1, None, None]  # (n, hi, 1, size)
    c, sn = torch.cos(theta)[..., None, None], torch.sin(theta)[..., None, None]
    u, v = c * dz + sn * dx, -sn * dz + c * dx  # (n, hi, size, size)
    blobs = torch.exp(-0.5 * (u / s[..., 0, None, None]) ** 2 - 0.5 * (v / s[..., 1, None, None]) ** 2)
    return normalize((amp[..., None, None] * blobs).sum(1), ndim=2)
