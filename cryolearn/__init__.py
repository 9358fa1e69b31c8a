"""cryolearn: unsupervised restoration of cryo-electron tomograms.

Subpackages: :mod:`cryolearn.physics` (missing wedge, rotations, forward
model), :mod:`cryolearn.data` (structures, MRC files, simulated data sets),
:mod:`cryolearn.metrics` (FSC and friends), :mod:`cryolearn.ot` (optimal
transport), :mod:`cryolearn.sampling` (Langevin, SGLD, importance
reweighting), :mod:`cryolearn.viz` (figures).
"""

from .profile import Profile, get_profile, pick_device

__version__ = "0.1.0"

__all__ = ["Profile", "get_profile", "pick_device", "__version__"]
