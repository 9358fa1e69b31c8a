"""Data: MRC files, real-structure maps and simulated data sets (SPEC sections 1, 4 and 6).

- :mod:`~cryolearn.data.mrc`: :func:`read_mrc`, :func:`write_mrc` (atomic),
  :func:`normalize` (with the statistics of :func:`moments`), :func:`read_subtomograms`.
- :mod:`~cryolearn.data.structures`: :func:`density_from_model` (atomic model
  to map with gemmi), :func:`fourier_crop`, :func:`load_structure_maps` and
  :func:`verify_manifest` for the maps committed under ``data/``.
- :mod:`~cryolearn.data.datasets`: :func:`simulate_subtomograms`,
  :func:`split_by_structure`, :func:`random_blobs_2d`.
- :mod:`~cryolearn.data.tilt`: :func:`read_tlt`, :func:`tilt_range_from_tlt`
  (IMOD ``.tlt`` tilt angles, degrees).
"""

from .datasets import SubtomogramDataset, random_blobs_2d, simulate_subtomograms, split_by_structure
from .mrc import moments, normalize, read_mrc, read_subtomograms, write_mrc
from .structures import (
    StructureMaps,
    data_root,
    density_from_model,
    fourier_crop,
    load_structure_maps,
    verify_manifest,
)
from .tilt import read_tlt, tilt_range_from_tlt

__all__ = [
    "StructureMaps",
    "SubtomogramDataset",
    "data_root",
    "density_from_model",
    "fourier_crop",
    "load_structure_maps",
    "moments",
    "normalize",
    "random_blobs_2d",
    "read_mrc",
    "read_subtomograms",
    "read_tlt",
    "simulate_subtomograms",
    "split_by_structure",
    "tilt_range_from_tlt",
    "verify_manifest",
    "write_mrc",
]
