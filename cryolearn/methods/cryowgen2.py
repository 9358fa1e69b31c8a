"""CryoWGEN-II: the Boltzmann posterior sampled by Langevin dynamics (the book's chapters on the four methods).

``K`` chains per observation, one batched tensor, evolve by
``x <- x - eta * grad U(x) / gamma + sqrt(2 eta) xi`` from ``x_bar(y)`` plus
reference noise; after burn-in the chain states are posterior samples.
Amortised training regresses ``G(y)`` onto the chain mean (the Entropy-SGD
view), together with the CryoGEN-II objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sampling import langevin, pool_chains
from .base import config_field, register_method
from .sampler import PosteriorConfig, PosteriorMethod, PosteriorSample

__all__ = ["CryoWGEN2", "CryoWGEN2Config"]


@dataclass
class CryoWGEN2Config(PosteriorConfig):
    """The hyperparameters of :class:`CryoWGEN2`, besides those of :class:`cryolearn.methods.PosteriorConfig`.

    Attributes
    ----------
    n_chains : int
        Chains ``K`` per observation.
    step_size : float
        Step ``eta`` in units of ``gamma / (1/sigma^2 + beta / min(spectrum))``
        (``beta`` alone when white), the smallest posterior variance of a
        Fourier coefficient; with a precision field (``beta_field="proxy"``)
        each voxel's step is ``step_size * gamma / (1/sigma^2 + beta_v)``
        (a diagonal preconditioner). It must stay well below 2 in these units
        for stability, and the bias of the unadjusted chain on that variance
        is about ``step_size / 2``.
    n_steps, burn_in, thin : int
        Chain length, discarded steps, and the stride between kept states at
        reconstruction.
    n_train_steps : int
        Chain length in the amortised training step (short chains from ``G(y)``).
    """

    n_chains: int = 8
    step_size: float = 0.1
    n_steps: int = 300
    burn_in: int = 200
    thin: int = 10
    n_train_steps: int = 10

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.burn_in < self.n_steps:
            raise ValueError(f"burn_in must lie in [0, n_steps), got {self.burn_in} with n_steps={self.n_steps}")


@register_method("cryowgen2")
class CryoWGEN2(PosteriorMethod):
    """CryoWGEN-II: batched Langevin chains on ``q_gamma(x | y)``.

    Built like :class:`cryolearn.methods.PosteriorMethod`, with the options
    of :class:`CryoWGEN2Config`.

    Notes
    -----
    Source: book chapter "CryoWGEN-II". Missing-wedge coefficients relax at
    the rate ``step_size * beta / (1/sigma^2 + beta)`` per step: a small
    ``beta`` relative to ``1/sigma^2`` needs a longer burn-in. With a
    precision field the chains start at the ``w = 0`` mean (conjugate
    gradients) plus the reference's spread, so the slow directions start
    near their stationary law; without a witness the returned mean is then
    that exact mean and the variance the chains' mean square deviation
    from it (Rao-Blackwellised, as :class:`cryolearn.methods.CryoWGEN1`).
    ``diagnostics["potential"]`` holds the final
    ``U`` per observation, averaged over chains; the full trace is in
    :attr:`last_trace`.
    """

    samples_posterior = True

    Config = CryoWGEN2Config
    n_chains = config_field()
    step_size = config_field()
    n_steps = config_field()
    burn_in = config_field()
    thin = config_field()
    n_train_steps = config_field()
    n_samples = config_field("n_chains")
    n_train_samples = config_field("n_chains")

    def __init__(self, *args, **kwargs):
        self.last_trace: torch.Tensor | None = None
        super().__init__(*args, **kwargs)

    @property
    def eta(self) -> float:
        """The step size in the potential's units: ``step_size * gamma / (1/sigma^2 + beta / min(spectrum))``.

        The stiffest direction of ``U`` sets the stable step; with a
        Fourier-diagonal reference it is the coefficient of smallest ``spectrum``.
        """
        stiff = self.beta if self.spectrum is None else self.beta / float(self.spectrum.min())
        return self.step_size * self.gamma / (1.0 / self.sigma**2 + stiff)

    def sample(self, y, x_bar, n, train=False):
        post = self.posterior(y, x_bar, train=train)
        x0 = post.sample_reference(n, generator=self.generator)  # (K, B, ...)
        if post.is_field:
            # Start at the w = 0 mean (one batched conjugate-gradient solve) with the reference's spread: the
            # slow, least constrained directions then start close to their stationary law.
            x0 = x0 - x_bar + post.gaussian_mean()
        n_steps = self.n_train_steps if train else self.n_steps
        burn_in = 0 if train else self.burn_in
        # A precision field: each voxel steps at its own scale, 1 / (1/sigma^2 + beta_v) (times gamma).
        precond = post.langevin_preconditioner() if post.is_field else None
        res = langevin(
            post.potential,
            x0,
            step_size=self.eta if precond is None else self.step_size * self.gamma,
            preconditioner=precond,
            n_steps=n_steps,
            temperature=self.gamma,
            burn_in=burn_in,
            thin=1 if train else self.thin,
            generator=self.generator,
            keep_samples=not train,
        )
        self.last_trace = res.potential_trace
        mean, var = pool_chains(res.mean, res.var, dim=0)  # (B, ...)
        if post.is_field and post.witness is None and not train:
            # Rao-Blackwellised, as CryoWGEN-I: with w = 0 the posterior is Gaussian and its mean is known exactly
            # (conjugate gradients), so the chains' slowly mixing average is replaced by it and their spread is
            # measured about it.
            exact = post.gaussian_mean()
            var = (res.var + (res.mean - exact).pow(2)).mean(0)
            mean = exact
        samples = res.samples.flatten(0, 1) if res.samples is not None else res.final
        return PosteriorSample(mean, var, samples, {"potential": res.potential_trace[-1].mean(0)})
