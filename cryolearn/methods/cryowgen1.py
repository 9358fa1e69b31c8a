"""CryoWGEN-I: the Boltzmann posterior sampled by Monte-Carlo reweighting (SPEC section 2).

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

import torch

from ..sampling import importance_reweight
from .base import Reconstruction, register_method
from .cryogen2 import CryoGEN2
from .posterior import BoltzmannPosterior, chunked_witness, gaussian_posterior

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
    witness_chunk : int, optional
        Re-degraded volumes (rotations x candidates) per pass of the witness
        network (:func:`cryolearn.methods.posterior.chunked_witness`);
        default about ``2**22`` voxels per pass.
    **kwargs
        As :class:`cryolearn.methods.CryoGEN2`.
    """

    def __init__(self, *args, gamma: float = 1.0, beta: float = 1.0, nu: float = 1.0, use_witness: bool = False,
                 spectrum: torch.Tensor | None = None, witness_chunk: int | None = None, **kwargs):
        if use_witness:
            kwargs["potential"] = True
        self.gamma, self.beta, self.nu, self.use_witness = float(gamma), float(beta), float(nu), bool(use_witness)
        self.spectrum = spectrum
        if witness_chunk is not None and int(witness_chunk) < 1:
            raise ValueError(f"witness_chunk must be a positive number of volumes, got {witness_chunk}")
        self.witness_chunk = None if witness_chunk is None else int(witness_chunk)
        super().__init__(*args, **kwargs)

    def posterior(self, y: torch.Tensor, x_bar: torch.Tensor) -> BoltzmannPosterior:
        """The Boltzmann posterior ``q_gamma(x | y)`` around ``x_bar`` for ``(B, ...)`` observations."""
        return BoltzmannPosterior(
            y, x_bar, self.mask, self.sigma, self.gamma, self.beta,
            witness=self.posterior_witness if self.use_witness else None, spectrum=self.spectrum,
        )

    def state_dict(self) -> dict:
        """As :meth:`cryolearn.methods.Method.state_dict`, plus ``beta`` (e.g. set by the rotation proxy after training)."""
        return {**super().state_dict(), "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        """As :meth:`cryolearn.methods.Method.load_state_dict`; a saved ``beta`` replaces the constructor's."""
        super().load_state_dict(state)
        if state.get("beta") is not None:
            self.beta = float(state["beta"])

    def posterior_witness(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`witness` of ``(..., D, H, W)`` candidates, ``witness_chunk`` re-degraded volumes at a time; returns ``(...)``."""
        if self.potential is None:
            raise RuntimeError("this method was built without a potential network (potential=False)")
        return chunked_witness(self.potential, x, self.mask, self.rotations, self.witness_chunk)

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
            ``mean`` and ``std`` of ``y``'s shape on ``y``'s device,
            ``samples`` of shape ``(S, *y.shape)`` on the CPU (each batch's
            samples leave the accelerator as soon as it is done), and
            ``diagnostics`` (per observation).
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
            means.append(m.to(y.device)), vars_.append(v.to(y.device)), samples.append(s.cpu())
            diags.append({key: val.cpu() for key, val in d.items()})
            del m, v, s, d
        diag = {key: torch.cat([d[key] for d in diags]).reshape(shape[: -self.ndim]) for key in diags[0]}
        samp = torch.cat(samples, dim=1)
        return Reconstruction(
            mean=torch.cat(means).reshape(shape),
            std=torch.cat(vars_).clamp_min(0).sqrt().reshape(shape),
            samples=samp.reshape(samp.shape[0], *shape),
            diagnostics=diag,
        )


@register_method("cryowgen1")
class CryoWGEN1(PosteriorMethod):
    """CryoWGEN-I: Monte-Carlo reweighting of candidates drawn from the Gaussian part of the posterior.

    Parameters
    ----------
    n_samples : int
        Candidates ``K`` per observation at reconstruction.
    n_train_samples : int
        Candidates per observation in the amortised training step.
    proposal : {"posterior", "reference"}
        Where the candidates come from. ``"posterior"`` (default): exact draws
        from the ``w = 0`` posterior (:meth:`BoltzmannPosterior.sample_gaussian`),
        log-weights ``w(x_k) / gamma`` (all equal without a witness, so the
        effective sample size is ``K``). ``"reference"``: draws from
        ``N(x_bar, (gamma / beta) C)``, log-weights
        ``-[||y - M x_k||^2 / (2 sigma^2) - w(x_k)] / gamma``, whose effective
        sample size collapses to about 1 beyond a few dozen measured
        coefficients (kept to demonstrate that collapse).
    **kwargs
        ``gamma``, ``beta``, ``nu``, ``use_witness`` as
        :class:`PosteriorMethod`; the rest as :class:`cryolearn.methods.CryoGEN2`.

    Notes
    -----
    Source: book chapter "CryoWGEN-I"; seed document 001. Sampling the
    Gaussian factor exactly and weighting only by what is left is
    Rao-Blackwellisation of importance sampling (Robert & Casella 2004,
    "Monte Carlo Statistical Methods", sections 3.3 and 4.2).
    ``diagnostics["ess"]`` is the effective sample size per observation.
    With the posterior proposal and no witness, the returned mean and
    variance are the closed form (:func:`cryolearn.methods.gaussian_posterior`)
    rather than their Monte-Carlo estimates; the samples are exact draws
    either way. ``samples`` are drawn from the candidates by systematic resampling with
    the weights (equal weights keep every candidate once).
    """

    samples_posterior = True

    def __init__(self, *args, n_samples: int = 64, n_train_samples: int = 16, proposal: str = "posterior", **kwargs):
        if proposal not in ("posterior", "reference"):
            raise ValueError(f"proposal must be 'posterior' or 'reference', got {proposal!r}")
        self.n_samples, self.n_train_samples, self.proposal = int(n_samples), int(n_train_samples), proposal
        super().__init__(*args, **kwargs)

    def sample(self, y, x_bar, n, train=False):
        post = self.posterior(y, x_bar)
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
                # Rao-Blackwellised: with w = 0 the candidates are exact draws and the moments are known exactly.
                gp = gaussian_posterior(y, x_bar, self.mask, self.sigma, self.gamma, self.beta, spectrum=self.spectrum)
                mean, var = gp.mean, gp.std.pow(2).expand_as(gp.mean)
            # Systematic resampling: one uniform per observation, n evenly spaced points through the weights' CDF.
            u = torch.rand((xk.shape[1], 1), generator=self.generator, device=xk.device, dtype=res.weights.dtype)
            pts = (torch.arange(n, device=xk.device, dtype=res.weights.dtype) + u) / n  # (B, S)
            cdf = res.weights.T.cumsum(-1)
            idx = torch.searchsorted(cdf, pts).clamp_max(xk.shape[0] - 1).T  # (S, B)
            gather = idx.reshape(*idx.shape, *[1] * self.ndim).expand(-1, -1, *xk.shape[2:])
            samples = torch.gather(xk, 0, gather)
        return mean, var, samples, {"ess": res.ess}
