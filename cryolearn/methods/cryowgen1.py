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

import torch

from ..sampling import importance_reweight
from .base import Reconstruction, register_method
from .cryogen2 import CryoGEN2
from .posterior import BoltzmannPosterior

__all__ = ["CryoWGEN1", "PosteriorMethod"]


class PosteriorMethod(CryoGEN2):
    """Shared base of CryoWGEN-I and -II: CryoGEN-II plus an amortised posterior regression.

    Parameters
    ----------
    gamma : float
        Temperature of the posterior (widths scale with ``sqrt(gamma)``).
    beta : float
        Precision of the conditional prior around ``x_bar = G(y)``, in
        1 / (voxel value)^2; SPEC section 8 estimates it from the rotation proxy.
    nu : float
        Weight of the regression of ``G(y)`` onto the posterior mean
        (``||G(y) - sg(mean)||^2 / sigma^2`` per voxel).
    use_witness : bool
        Use the potential network as the witness ``w`` (needs
        ``potential=True``); otherwise ``w = 0``.
    spectrum : torch.Tensor, optional
        ``(D, H, W//2+1)`` shape of a Fourier-diagonal reference covariance
        (a stationary Gaussian field, e.g. one value per Fourier shell from
        SPEC section 8); ``None`` is the white reference.
    **kwargs
        As :class:`cryolearn.methods.CryoGEN2`.
    """

    def __init__(self, *args, gamma: float = 1.0, beta: float = 1.0, nu: float = 1.0, use_witness: bool = False,
                 spectrum: torch.Tensor | None = None, **kwargs):
        if use_witness:
            kwargs["potential"] = True
        self.gamma, self.beta, self.nu, self.use_witness = float(gamma), float(beta), float(nu), bool(use_witness)
        self.spectrum = spectrum
        super().__init__(*args, **kwargs)

    def posterior(self, y: torch.Tensor, x_bar: torch.Tensor) -> BoltzmannPosterior:
        """The Boltzmann posterior ``q_gamma(x | y)`` around ``x_bar`` for ``(B, ...)`` observations."""
        return BoltzmannPosterior(
            y, x_bar, self.mask, self.sigma, self.gamma, self.beta,
            witness=self.witness if self.use_witness else None, spectrum=self.spectrum,
        )

    def sample(self, y: torch.Tensor, x_bar: torch.Tensor, n: int, train: bool = False):
        """Posterior statistics for ``(B, ...)`` observations: ``(mean, var, samples (S, B, ...), diagnostics)``.

        ``train=True`` asks for the cheaper estimate used by the amortised training step.
        """
        raise NotImplementedError

    def amortization(self, y: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.nu == 0:
            return {}
        mean, _, _, _ = self.sample(y, x_hat.detach(), self.n_train_samples, train=True)
        return {"amortization": self.nu * (x_hat - mean.detach()).pow(2).mean() / self.sigma**2}

    def reconstruct(self, y: torch.Tensor, batch_size: int = 32, n: int | None = None) -> Reconstruction:
        """Posterior mean, samples and voxel-wise std of observations.

        Parameters
        ----------
        y : torch.Tensor
            ``(D, H, W)`` or ``(..., D, H, W)``.
        batch_size : int
            Observations per pass.
        n : int, optional
            Candidates (CryoWGEN-I) or chains (CryoWGEN-II) per observation;
            default the method's setting.

        Returns
        -------
        Reconstruction
            ``mean`` and ``std`` of ``y``'s shape, ``samples`` of shape
            ``(S, *y.shape)``, and ``diagnostics`` (per observation).
        """
        x_bar = self.predict(y, batch_size)
        shape = y.shape
        flat_y = y.reshape(-1, *shape[-self.ndim :]).to(self.device)
        flat_x = x_bar.reshape(flat_y.shape).to(self.device)
        if self.generator is None:
            self.generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        means, vars_, samples, diags = [], [], [], []
        for k in range(0, flat_y.shape[0], batch_size):
            m, v, s, d = self.sample(flat_y[k : k + batch_size], flat_x[k : k + batch_size], n or self.n_samples)
            means.append(m), vars_.append(v), samples.append(s), diags.append(d)
        diag = {key: torch.cat([d[key] for d in diags]).reshape(shape[: -self.ndim]) for key in diags[0]}
        samp = torch.cat(samples, dim=1)
        return Reconstruction(
            mean=torch.cat(means).reshape(shape).to(y.device),
            std=torch.cat(vars_).clamp_min(0).sqrt().reshape(shape).to(y.device),
            samples=samp.reshape(samp.shape[0], *shape).to(y.device),
            diagnostics=diag,
        )


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

    def __init__(self, *args, n_samples: int = 64, n_train_samples: int = 16, **kwargs):
        self.n_samples, self.n_train_samples = int(n_samples), int(n_train_samples)
        super().__init__(*args, **kwargs)

    def sample(self, y, x_bar, n, train=False):
        post = self.posterior(y, x_bar)
        with torch.no_grad():
            xk = post.sample_reference(n, generator=self.generator)  # (K, B, ...)
            logw = -post.log_likelihood_term(xk) / self.gamma  # (K, B)
            res = importance_reweight(logw, xk, dim=0)
            idx = torch.multinomial(res.weights.T, n, replacement=True, generator=self.generator).T  # (S, B)
            gather = idx.view(*idx.shape, *[1] * self.ndim).expand(-1, -1, *xk.shape[2:])
            samples = torch.gather(xk, 0, gather)
        return res.mean, res.var, samples, {"ess": res.ess}
