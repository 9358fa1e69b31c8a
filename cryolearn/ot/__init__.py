"""Optimal transport: 1D monotone matching, log-domain Sinkhorn, the semi-dual and the CryoGEN-II minibatch loss (SPEC section 2)."""

from .one_d import monotone_plan_1d, wasserstein_1d, wasserstein_distance_1d
from .minibatch import MinibatchOTResult, minibatch_ot_loss, minibatch_ot_plan, sqeuclidean_cost
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
