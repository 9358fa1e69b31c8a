"""cryolearn: unsupervised restoration of cryo-electron tomograms.

Subpackages, in pipeline order: :mod:`cryolearn.physics` (Fourier-grid
helpers, missing wedge, rotations, forward model), :mod:`cryolearn.data`
(structures, MRC files, simulated data sets), :mod:`cryolearn.ot` (optimal
transport), :mod:`cryolearn.sampling` (Langevin, SGLD, importance
reweighting), :mod:`cryolearn.nn` (networks), :mod:`cryolearn.methods` (the
four methods), :mod:`cryolearn.inference` (whole tomograms in tiles),
:mod:`cryolearn.metrics` (FSC, errors, calibration),
:mod:`cryolearn.experiments` (side-by-side comparison, timing),
:mod:`cryolearn.viz` (figures), :mod:`cryolearn.cli` (the ``cryolearn``
command). :mod:`cryolearn.profile` stays at the top: the run profile and
device that every chapter and command reads first (:func:`get_profile`).
"""

from .profile import Profile, get_profile, glue_run_time, pick_device

__version__ = "0.1.0"

__all__ = ["Profile", "get_profile", "glue_run_time", "pick_device", "__version__"]
