"""Crowded tomograms: simulated from a tilt series, and subtomograms cut from tomograms.

:func:`simulate_tomogram` places the shipped structures at random positions
(without overlap) and orientations in a slab, projects the slab at the tilt
angles of a tilt series, adds shot noise per image for a dose split over the
tilts, and reconstructs the tomogram by weighted back-projection
(:mod:`cryolearn.physics.tilt_series`). Unlike the masked subtomograms of
:func:`cryolearn.data.simulate_subtomograms`, the missing wedge here comes
from the tilt series itself, with the gaps between tilts at high frequency.

:func:`extract_subtomograms` cuts training boxes from one or more tomograms
(on a grid or at random positions, skipping near-empty ones), normalised as
:func:`cryolearn.inference.restore_tiled`-style tiling normalises its tiles:
each box to zero mean and unit standard deviation. Source: book chapter
"Restoring a whole tomogram".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..physics import add_tilt_noise, project, random_so3, rotate_volume, weighted_backprojection
from .mrc import normalize
from .structures import StructureMaps, fourier_crop

__all__ = ["SimulatedTomogram", "simulate_tomogram", "extract_subtomograms", "default_tilt_angles"]


def default_tilt_angles(tilt_range: Sequence[float] = (-60.0, 60.0), step: float = 3.0) -> torch.Tensor:
    """``(T,)`` tilt angles in degrees from ``tilt_range[0]`` to ``tilt_range[1]`` in steps of ``step``."""
    lo, hi = float(tilt_range[0]), float(tilt_range[1])
    if not (-90 < lo < hi < 90) or not step > 0:
        raise ValueError(f"need -90 < theta_min < theta_max < 90 and step > 0, got {tilt_range}, step {step}")
    return torch.arange(lo, hi + 1e-9, step, dtype=torch.float64)


@dataclass
class SimulatedTomogram:
    """What :func:`simulate_tomogram` returns.

    Attributes
    ----------
    tilt_series : torch.Tensor
        ``(T, H, W)`` noisy images, in the units of the truth times voxel length.
    tilt_angles : torch.Tensor
        ``(T,)`` degrees.
    tomogram : torch.Tensor
        ``(D, H, W)`` weighted back-projection of the noisy tilt series.
    truth : torch.Tensor
        ``(D, H, W)`` the clean slab (for scoring only).
    voxel_size : float
        Angstrom per voxel.
    positions : torch.Tensor
        ``(P, 3)`` integer box corners ``(z, y, x)`` of the placed structures.
    labels : list of str
        Structure name of each placed box.
    metadata : dict
        Every parameter, for the YAML record.
    """

    tilt_series: torch.Tensor
    tilt_angles: torch.Tensor
    tomogram: torch.Tensor
    truth: torch.Tensor
    voxel_size: float
    positions: torch.Tensor
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def _place(shape: Sequence[int], box: int, n: int, g: torch.Generator, max_tries: int = 4000) -> torch.Tensor:
    """Random box corners inside ``shape``, centres at least ``0.8 box`` apart.

    The shipped structures fill a sphere of at most ``0.4 box`` about their
    box centre, so the densities never overlap (the empty corners of the
    boxes may).
    """
    limits = torch.tensor([s - box for s in shape], dtype=torch.long)
    if (limits < 0).any():
        raise ValueError(f"a box of {box} voxels does not fit in a slab of {tuple(shape)}")
    tries = torch.stack([torch.randint(0, int(m) + 1, (max_tries,), generator=g) for m in limits], dim=1)
    placed: list[torch.Tensor] = []
    for c in tries:  # sequential by nature: each box must avoid the ones already placed
        if all((c - p).pow(2).sum() >= (0.8 * box) ** 2 for p in placed):
            placed.append(c)
            if len(placed) == n:
                break
    return torch.stack(placed) if placed else torch.zeros(0, 3, dtype=torch.long)


def simulate_tomogram(
    maps: StructureMaps,
    shape: Sequence[int] = (64, 192, 192),
    box: int = 32,
    n_particles: int = 40,
    tilt_angles: Sequence[float] | torch.Tensor | None = None,
    dose: float = 120.0,
    snr: float = 1.0,
    seed: int = 0,
    chunk: int = 4,
) -> SimulatedTomogram:
    """Simulate a crowded tomogram from a noisy tilt series.

    Parameters
    ----------
    maps : StructureMaps
        From :func:`cryolearn.data.load_structure_maps`, ``(K, N0, N0, N0)``.
    shape : (int, int, int)
        Slab ``(D, H, W)`` in voxels (thin along Z, the beam).
    box : int
        Each structure is rotated on its fine grid and Fourier-cropped to
        ``box`` voxels, so the voxel size is ``maps.voxel_size * N0 / box``
        Angstrom, as in :func:`cryolearn.data.simulate_subtomograms`.
    n_particles : int
        How many structures to place (fewer if the slab is full: boxes never
        overlap), cycling through the maps.
    tilt_angles : sequence of float, optional
        Degrees; default -60..60 in steps of 3 (41 images).
    dose : float
        Total electron dose in electrons per Angstrom^2, split equally over
        the tilts (dose fractionation): each image gets shot noise of
        ``dose / T`` (:func:`cryolearn.physics.add_tilt_noise`).
    snr : float
        Per-voxel signal-to-noise ratio of the reconstructed tomogram,
        ``var(WBP(signal)) / var(WBP(noise))``, comparable to the SNR of
        :func:`cryolearn.data.simulate_subtomograms`; it sets the specimen's
        contrast (the fraction of electrons scattered per unit of projected
        density, recorded as ``metadata["contrast"]``).
    seed : int
        Seeds a CPU generator: positions, orientations and noise.
    chunk : int
        Tilts projected at once (memory only).

    Returns
    -------
    SimulatedTomogram

    Raises
    ------
    ValueError
        If the slab is not 3D, a box does not fit, ``box`` exceeds the
        maps' size, or ``dose``, ``snr`` or ``n_particles`` is not positive.
    """
    shape = tuple(int(s) for s in shape)
    n0 = maps.volumes.shape[-1]
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (D, H, W), got {shape}")
    if not 1 <= box <= n0:
        raise ValueError(f"box must be in [1, {n0}], got {box}")
    if not (dose > 0 and snr > 0 and n_particles > 0):
        raise ValueError(f"dose, snr and n_particles must be positive, got {dose}, {snr}, {n_particles}")
    angles = default_tilt_angles() if tilt_angles is None else torch.as_tensor(tilt_angles, dtype=torch.float64)
    dev, dtype = maps.volumes.device, maps.volumes.dtype
    g = torch.Generator().manual_seed(int(seed))
    corners = _place(shape, box, n_particles, g)
    labels = torch.arange(corners.shape[0]) % maps.volumes.shape[0]
    rot = random_so3(corners.shape[0], generator=g).to(device=dev, dtype=dtype)
    truth = torch.zeros(shape, device=dev, dtype=dtype)
    for i in range(0, corners.shape[0], 8):  # rotate on the fine grid, then crop (memory-bounded chunks)
        parts = fourier_crop(rotate_volume(maps.volumes[labels[i : i + 8].to(dev)], rot[i : i + 8]), box)
        for (z, y, x), part in zip(corners[i : i + 8].tolist(), parts):
            truth[z : z + box, y : y + box, x : x + box] += part
    truth = truth / truth.std().clamp_min(1e-12)
    images = project(truth, angles, chunk=chunk)  # (T, H, W)
    voxel_size = maps.voxel_size * n0 / box
    per_tilt = dose / angles.numel()
    # Shot noise of the dose per tilt at unit contrast; the contrast (1 / a) is then set so that the
    # reconstruction has the requested per-voxel SNR. WBP is linear: reconstruct signal and noise apart.
    noise = add_tilt_noise(torch.zeros_like(images), per_tilt, voxel_size, generator=g.manual_seed(int(seed) + 1))
    clean_rec = weighted_backprojection(images, angles, shape[0], chunk=chunk)
    noise_rec = weighted_backprojection(noise, angles, shape[0], chunk=chunk)
    a = math.sqrt(clean_rec.var().item() / (snr * noise_rec.var().item()))
    noisy = images + a * noise
    tomogram = clean_rec + a * noise_rec
    meta = {
        "shape": list(shape), "box": box, "n_particles": int(corners.shape[0]), "n_requested": int(n_particles),
        "tilt_angles": [round(a, 4) for a in angles.tolist()], "dose_e_per_A2": float(dose),
        "dose_per_tilt_e_per_A2": per_tilt, "snr": float(snr), "contrast": 1.0 / a, "seed": int(seed),
        "voxel_size": voxel_size, "reconstruction": "weighted back-projection (Ram-Lak ramp)",
    }
    return SimulatedTomogram(noisy, angles, tomogram, truth, voxel_size, corners,
                             [maps.names[int(k)] for k in labels], meta)


def extract_subtomograms(
    tomograms: torch.Tensor | Sequence[torch.Tensor],
    box: int = 32,
    n: int | None = None,
    stride: int | None = None,
    min_std: float = 0.5,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut normalised subtomograms out of tomograms, skipping near-empty ones.

    Parameters
    ----------
    tomograms : torch.Tensor or sequence of torch.Tensor
        One ``(D, H, W)`` tomogram or several (sizes may differ); each at
        least ``box`` voxels along every axis.
    box : int
        Edge of the cubic subtomograms, voxels.
    n : int, optional
        Draw ``n`` boxes at random positions (uniform over all tomograms'
        valid corners). Default: a regular grid.
    stride : int, optional
        Grid step in voxels (default ``box // 2``), when ``n`` is None.
    min_std : float
        A box is kept when its standard deviation is at least ``min_std``
        times the median over the candidate boxes (empty ice has less).
    seed : int
        For the random positions.

    Returns
    -------
    subtomograms : torch.Tensor
        ``(N, box, box, box)``, each with zero mean and unit standard
        deviation (:func:`cryolearn.data.normalize`), device and dtype of
        the tomograms.
    origins : torch.Tensor
        ``(N, 4)`` long: tomogram index and box corner ``(z, y, x)``.

    Raises
    ------
    ValueError
        If a tomogram is not 3D, is smaller than ``box``, is not finite, or
        no box is kept.
    """
    vols = [tomograms] if torch.is_tensor(tomograms) else list(tomograms)
    corners = []
    for t, v in enumerate(vols):
        if v.ndim != 3 or min(v.shape) < box:
            raise ValueError(f"tomogram {t} has shape {tuple(v.shape)}; need 3D with every side >= box={box}")
        if not torch.isfinite(v).all():
            raise ValueError(f"tomogram {t} contains NaN or Inf values")
        if n is None:
            step = stride or max(box // 2, 1)
            axes = [torch.arange(0, s - box + 1, step).tolist() for s in v.shape]
            for a, s in zip(axes, v.shape):  # reach the far edge too
                if a[-1] != s - box:
                    a.append(s - box)
            grid = torch.cartesian_prod(*(torch.tensor(a) for a in axes)).view(-1, 3)
            corners.append(torch.cat([torch.full((grid.shape[0], 1), t), grid], dim=1))
    if n is not None:
        g = torch.Generator().manual_seed(int(seed))
        sizes = torch.tensor([math.prod(s - box + 1 for s in v.shape) for v in vols], dtype=torch.float64)
        which = torch.multinomial(sizes / sizes.sum(), n, replacement=True, generator=g)
        pos = [torch.randint(0, 1 << 30, (n,), generator=g) for _ in range(3)]
        corners = [torch.stack([which] + [pos[a] % (torch.tensor([vols[int(w)].shape[a] for w in which]) - box + 1)
                                          for a in range(3)], dim=1)]
    origins = torch.cat(corners)
    boxes = torch.stack([vols[t][z : z + box, y : y + box, x : x + box] for t, z, y, x in origins.tolist()])
    std = boxes.flatten(1).std(dim=1)
    keep = std >= min_std * std.median()
    if not keep.any():
        raise ValueError("every candidate box is empty (constant)")
    return normalize(boxes[keep]), origins[keep]
