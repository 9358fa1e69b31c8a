"""CryoWGEN-I: the Boltzmann posterior sampled by Monte-Carlo reweighting (SPEC section 2).

Draw ``K`` candidates per observation from the reference
``x_k ~ N(x_bar(y), (gamma / beta) I)``, weight them by
``softmax_k(-[||y - M x_k||^2 / (2 sigma^2) - w(x_k)] / gamma)``: this targets
``q_gamma(x | y)`` exactly. The effective sample size ``1 / sum_k w_k^2``
collapses as the dimension grows, which is the method's limit. Amortised
training regresses ``G(y)`` onto the weighted mean (stop-gradient), together
with the CryoGEN-II objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sampling import importance_reweight
from .base import config_field, register_method
from .sampler import PosteriorConfig, PosteriorMethod, PosteriorSample

__all__ = ["CryoWGEN1", "CryoWGEN1Config"]


@dataclass
class CryoWGEN1Config(PosteriorConfig):
    """Configuration of :class:`CryoWGEN1` (the fields of :class:`cryolearn.methods.PosteriorConfig` too).

    Attributes
    ----------
    n_samples : int
        Candidates ``K`` per observation at reconstruction.
    n_train_samples : int
        Candidates per observation in the amortised training step.
    """

    n_samples: int = 64
    n_train_samples: int = 16


@register_method("cryowgen1")
class CryoWGEN1(PosteriorMethod):
    """CryoWGEN-I: Monte-Carlo reweighting of reference candidates.

    Parameters
    ----------
    n_samples : int
        Candidates ``K`` per observation at reconstruction.
    n_train_samples : int
        Candidates per observation in the amortised training step.
    **kwargs
        ``gamma``, ``beta``, ``nu``, ``use_witness`` as
        :class:`PosteriorMethod`; the rest as :class:`cryolearn.methods.CryoGEN2`.

    Notes
    -----
    Source: SPEC section 2 ("CryoWGEN-I"); seed document 001; book chapter
    "CryoWGEN-I". ``diagnostics["ess"]`` is the effective sample size per
    observation. ``samples`` are drawn from the candidates by multinomial
    resampling with the weights.
    """

    samples_posterior = True

    Config = CryoWGEN1Config
    n_samples = config_field()
    n_train_samples = config_field()

    def sample(self, y, x_bar, n, train=False):
        post = self.posterior(y, x_bar)
        with torch.no_grad():
            xk = post.sample_reference(n, generator=self.generator)  # (K, B, ...)
            logw = -post.log_likelihood_term(xk) / self.gamma  # (K, B)
            res = importance_reweight(logw, xk, dim=0)
            idx = torch.multinomial(res.weights.T, n, replacement=True, generator=self.generator).T  # (S, B)
            gather = idx.view(*idx.shape, *[1] * self.ndim).expand(-1, -1, *xk.shape[2:])
            samples = torch.gather(xk, 0, gather)
        return PosteriorSample(res.mean, res.var, samples, {"ess": res.ess})
