"""Data: MRC files, real-structure maps and simulated data sets (the book's appendix on notation and conventions and the book's chapter on the missing wedge (data) and the reference set-up of the book's CryoGEN-II chapter).

- :mod:`~cryolearn.data.mrc`: :func:`read_mrc`, :func:`write_mrc` (atomic),
  :func:`normalize` (with the statistics of :func:`moments`), :func:`read_subtomograms`,
  :func:`write_reconstruction` (restored volumes, std maps and samples as MRC files).
- :mod:`~cryolearn.data.structures`: :func:`density_from_model` (atomic model
  to map with gemmi), :func:`fourier_crop`, :func:`load_structure_maps` and
  :func:`verify_manifest` for the maps committed under ``data/``.
- :mod:`~cryolearn.data.datasets`: :func:`simulate_subtomograms`,
  :func:`split_by_structure`, :func:`random_blobs_2d`, and the
  :class:`torch.utils.data.Dataset` classes :class:`SubtomogramDataset` and
  :class:`MRCDataset` (MRC files read lazily, one per item).
- :mod:`~cryolearn.data.real`: :func:`load_microtubules`, a real tomogram
  crop of microtubules (BSD-3, cylindra).
- :mod:`~cryolearn.data.tomograms`: :func:`simulate_tomogram` (a crowded
  slab, its tilt series and its WBP tomogram), :func:`extract_subtomograms`.
- :mod:`~cryolearn.data.tilt`: :func:`read_tlt`, :func:`tilt_range_from_tlt`
  (IMOD ``.tlt`` tilt angles, degrees).
"""

from .datasets import MRCDataset, SubtomogramDataset, random_blobs_2d, simulate_subtomograms, split_by_structure
from .mrc import moments, normalize, read_mrc, read_subtomograms, write_mrc, write_reconstruction
from .real import load_microtubules
from .structures import (
    StructureMaps,
    data_root,
    density_from_model,
    fourier_crop,
    load_structure_maps,
    verify_manifest,
)
from .tilt import read_tlt, tilt_range_from_tlt, write_tlt
from .tomograms import SimulatedTomogram, default_tilt_angles, extract_subtomograms, simulate_tomogram

__all__ = [
    "MRCDataset",
    "SimulatedTomogram",
    "StructureMaps",
    "SubtomogramDataset",
    "data_root",
    "default_tilt_angles",
    "density_from_model",
    "extract_subtomograms",
    "fourier_crop",
    "load_microtubules",
    "load_structure_maps",
    "moments",
    "normalize",
    "random_blobs_2d",
    "read_mrc",
    "read_subtomograms",
    "read_tlt",
    "simulate_subtomograms",
    "simulate_tomogram",
    "split_by_structure",
    "tilt_range_from_tlt",
    "verify_manifest",
    "write_mrc",
    "write_reconstruction",
    "write_tlt",
]
