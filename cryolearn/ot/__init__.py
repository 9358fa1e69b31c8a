"""Optimal transport, in PyTorch, tested against POT.

- :mod:`~cryolearn.ot.one_d`: exact transport on the line by sorting.
- :mod:`~cryolearn.ot.sinkhorn`: entropic transport by log-domain Sinkhorn, batched, with envelope gradients.
- :mod:`~cryolearn.ot.semidual`: exact transport by the semi-dual (c-transform, annealed Newton steps).
- :mod:`~cryolearn.ot.minibatch`: the CryoGEN-II minibatch loss (squared-distance cost, optimal plan, loss with the plan held fixed).
- :mod:`~cryolearn.ot.utils`: problem checks, the soft c-transform and the Gibbs plan, shared by the solvers.

One convention for temperatures, as in POT: ``reg`` is always the absolute
entropic temperature ``eps``, in the units of the costs; a temperature
relative to the scale of each problem's costs is ``reg_rel`` (the scale is
named where it is accepted: the cost range for :func:`semidual_ot`, the
standard deviation of the costs for :func:`minibatch_ot_plan` and
:func:`minibatch_ot_loss`).
"""

from .minibatch import MinibatchOTResult, minibatch_ot_loss, minibatch_ot_plan, sqeuclidean_cost
from .one_d import monotone_plan_1d, wasserstein_1d, wasserstein_distance_1d
from .semidual import SemidualResult, c_transform, semidual_ot
from .sinkhorn import SinkhornResult, sinkhorn

__all__ = [
    "MinibatchOTResult",
    "SemidualResult",
    "SinkhornResult",
    "c_transform",
    "minibatch_ot_loss",
    "minibatch_ot_plan",
    "monotone_plan_1d",
    "semidual_ot",
    "sinkhorn",
    "sqeuclidean_cost",
    "wasserstein_1d",
    "wasserstein_distance_1d",
]
