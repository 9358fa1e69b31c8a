"""CryoWGEN-I: the Boltzmann posterior sampled by Monte-Carlo reweighting (the book's chapters on the four methods).

By default (``proposal="posterior"``, Rao-Blackwellised) the ``K`` candidates
per observation are exact draws from the Gaussian part of the posterior (the
``w = 0`` posterior, per Fourier coefficient), so the Gaussian factors cancel
and only the witness is left in the log-weights, ``l_k = w(x_k) / gamma``:
with ``w = 0`` the effective sample size is exactly ``K``. With
``proposal="reference"`` the candidates come from the isotropic reference
``x_k ~ N(x_bar(y), (gamma / beta) I)`` and carry the data misfit,
``l_k = -[||y - M x_k||^2 / (2 sigma^2) - w(x_k)] / gamma``; its effective
sample size ``1 / sum_k w_k^2`` collapses as the dimension grows (book
chapter "CryoWGEN-I"). Amortised training regresses ``G(y)`` onto the
weighted mean (stop-gradient), together with the CryoGEN-II objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..sampling import importance_reweight
from .base import config_field, register_method
from .posterior import gaussian_posterior
from .sampler import PosteriorConfig, PosteriorMethod, PosteriorSample

__all__ = ["CryoWGEN1", "CryoWGEN1Config"]


@dataclass
class CryoWGEN1Config(PosteriorConfig):
    """The hyperparameters of :class:`CryoWGEN1`, besides those of :class:`cryolearn.methods.PosteriorConfig`.

    Attributes
    ----------
    n_samples : int
        Candidates ``K`` per observation at reconstruction.
    n_train_samples : int
        Candidates per observation in the amortised training step.
    proposal : {"posterior", "reference"}
        Where the candidates come from. ``"posterior"`` (default): exact draws
        from the ``w = 0`` posterior (:meth:`BoltzmannPosterior.sample_gaussian`:
        per Fourier coefficient with one ``beta``, perturb-and-MAP with a
        precision field), log-weights ``w(x_k) / gamma`` (all equal without a
        witness, so the effective sample size is ``K``). ``"reference"``:
        draws from ``N(x_bar, gamma C / beta)``, log-weights
        ``-[||y - M x_k||^2 / (2 sigma^2) - w(x_k)] / gamma``, whose effective
        sample size collapses to about 1 beyond a few dozen measured
        coefficients (kept to demonstrate that collapse).
    """

    n_samples: int = 64
    n_train_samples: int = 16
    proposal: Literal["posterior", "reference"] = "posterior"


@register_method("cryowgen1")
class CryoWGEN1(PosteriorMethod):
    """CryoWGEN-I: Monte-Carlo reweighting of candidates drawn from the Gaussian part of the posterior.

    Built like :class:`cryolearn.methods.PosteriorMethod`, with the options
    of :class:`CryoWGEN1Config`.

    Notes
    -----
    Source: book chapter "CryoWGEN-I". Sampling the Gaussian factor exactly
    and weighting only by what is left is Rao-Blackwellisation of importance
    sampling (Robert & Casella 2004, "Monte Carlo Statistical Methods",
    sections 3.3 and 4.2). ``diagnostics["ess"]`` is the effective sample
    size per observation. With the posterior proposal and no witness, the
    returned mean is the exact ``w = 0`` mean (closed form, or conjugate
    gradients with a precision field), and the variance is the closed form
    with one ``beta`` or the candidates' mean square deviation from the exact
    mean with a field; the samples are exact draws either way.
    ``samples`` are drawn from the candidates by systematic resampling with
    the weights (equal weights keep every candidate once).
    """

    samples_posterior = True

    Config = CryoWGEN1Config
    n_samples = config_field()
    n_train_samples = config_field()
    proposal = config_field()

    def sample(self, y, x_bar, n, train=False):
        post = self.posterior(y, x_bar, train=train)
        with torch.no_grad():
            if self.proposal == "posterior":
                xk = post.sample_gaussian(n, generator=self.generator)  # (K, B, ...)
                logw = torch.zeros(xk.shape[:2], device=xk.device, dtype=xk.dtype)  # (K, B)
                if post.witness is not None:
                    logw = logw + post.witness(xk) / self.gamma
            else:
                xk = post.sample_reference(n, generator=self.generator)  # (K, B, ...)
                logw = -post.log_likelihood_term(xk) / self.gamma  # (K, B)
            res = importance_reweight(logw, xk, dim=0)
            mean, var = res.mean, res.var
            if self.proposal == "posterior" and post.witness is None:
                # Rao-Blackwellised: with w = 0 the candidates are exact draws and the mean is known exactly
                # (and the variance too when the posterior is Fourier-diagonal).
                if post.is_field:
                    mean = post.gaussian_mean()
                    var = (xk - mean).pow(2).mean(0)
                else:
                    gp = gaussian_posterior(y, x_bar, self.mask, self.sigma, self.gamma, self.beta, spectrum=self.spectrum)
                    mean, var = gp.mean, gp.std.pow(2).expand_as(gp.mean)
            # Systematic resampling: one uniform per observation, n evenly spaced points through the weights' CDF.
            u = torch.rand((xk.shape[1], 1), generator=self.generator, device=xk.device, dtype=res.weights.dtype)
            pts = (torch.arange(n, device=xk.device, dtype=res.weights.dtype) + u) / n  # (B, S)
            cdf = res.weights.T.cumsum(-1)
            idx = torch.searchsorted(cdf, pts).clamp_max(xk.shape[0] - 1).T  # (S, B)
            gather = idx.reshape(*idx.shape, *[1] * self.ndim).expand(-1, -1, *xk.shape[2:])
            samples = torch.gather(xk, 0, gather)
        return PosteriorSample(mean, var, samples, {"ess": res.ess})
