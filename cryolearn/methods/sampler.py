"""What CryoWGEN-I and -II share: CryoGEN-II plus an amortised regression onto a Boltzmann posterior.

:class:`PosteriorMethod` adds to :class:`cryolearn.methods.CryoGEN2` the
posterior ``q_gamma(x | y)`` around ``x_bar = G(y)``
(:class:`cryolearn.methods.BoltzmannPosterior`), the amortisation term that
regresses ``G(y)`` onto its mean, and ``reconstruct`` returning the posterior
mean, samples and std. The samplers implement :meth:`PosteriorMethod.sample`,
which returns a :class:`PosteriorSample`. Source: book chapters "CryoWGEN-I"
and "CryoWGEN-II".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .base import Reconstruction, config_field
from .beta import estimate_beta_field
from .cryogen2 import CryoGEN2, CryoGEN2Config
from .posterior import BoltzmannPosterior, chunked_witness

__all__ = ["PosteriorConfig", "PosteriorMethod", "PosteriorSample"]


@dataclass
class PosteriorSample:
    """What :meth:`PosteriorMethod.sample` returns for ``B`` observations.

    Attributes
    ----------
    mean : torch.Tensor
        ``(B, D, H, W)`` posterior mean estimate.
    var : torch.Tensor
        ``(B, D, H, W)`` voxel-wise posterior variance estimate.
    samples : torch.Tensor
        ``(S, B, D, H, W)`` posterior samples.
    diagnostics : dict of str to torch.Tensor
        ``(B,)`` per-observation numbers (e.g. ``"ess"``, ``"potential"``).
    """

    mean: torch.Tensor
    var: torch.Tensor
    samples: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)

    def astuple(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``(mean, var, samples, diagnostics)``."""
        return self.mean, self.var, self.samples, self.diagnostics


@dataclass
class PosteriorConfig(CryoGEN2Config):
    """Configuration shared by the samplers (the fields of :class:`cryolearn.methods.CryoGEN2Config` too).

    Attributes
    ----------
    lam : float
        Weight of the transport term, as CryoGEN-II's (default 4, measured
        through the command line on held-out structures,
        ``benchmarks/uncertainty.md``: with the precision field, CryoWGEN-II's
        in-wedge error went from 0.45 to 0.35 and its correlation with the
        truth from 0.72 to 0.83, at a 90% coverage of 0.94).
    gamma : float
        Temperature of the posterior (widths scale with ``sqrt(gamma)``).
    beta : float
        Precision of the conditional prior around ``x_bar = G(y)``, in
        1 / (voxel value)^2 (:func:`cryolearn.methods.estimate_beta` sets it
        from the rotation proxy after training).
    nu : float
        Weight of the regression of ``G(y)`` onto the posterior mean
        (``||G(y) - sg(mean)||^2 / sigma^2`` per voxel).
    use_witness : bool
        Use the potential network as the witness ``w`` (sets
        ``potential=True``); otherwise ``w = 0``.
    witness_chunk : int, optional
        Re-degraded volumes (rotations x candidates) per pass of the witness
        network (:func:`cryolearn.methods.posterior.chunked_witness`); default
        about ``2**22`` voxels per pass.
    beta_field : {"scalar", "proxy"}
        ``"scalar"``: one precision ``beta`` for every voxel (the posterior
        std is then the same everywhere). ``"proxy"``: at reconstruction,
        a precision per voxel from an ensemble of rotation proxies
        (:func:`cryolearn.methods.estimate_beta_field`), so the std map
        follows where ``G`` is unsure; training keeps the scalar ``beta``.
    field_smooth : float
        Gaussian smoothing of the proxy field, in voxels.
    field_inflation : float
        Factor on the proxy field's variances (its precisions are divided by
        it). The proxy restores the method's own, easier reconstructions, so
        it underestimates the error (as the scalar proxy does); 2 was
        measured to calibrate the 90% intervals on held-out structures
        (book chapter "CryoWGEN-II").
    """

    lam: float = 4.0
    gamma: float = 1.0
    beta: float = 1.0
    nu: float = 1.0
    use_witness: bool = False
    witness_chunk: int | None = None
    beta_field: Literal["scalar", "proxy"] = "proxy"
    field_smooth: float = 1.0
    field_inflation: float = 2.0

    def validate(self) -> None:
        super().validate()
        if self.witness_chunk is not None and self.witness_chunk < 1:
            raise ValueError(f"witness_chunk must be a positive number of volumes, got {self.witness_chunk}")
        if self.beta_field not in ("scalar", "proxy"):
            raise ValueError(f"beta_field must be 'scalar' or 'proxy', got {self.beta_field!r}")
        if not self.field_smooth >= 0:
            raise ValueError(f"field_smooth must be a non-negative width in voxels, got {self.field_smooth}")
        if not self.field_inflation > 0:
            raise ValueError(f"field_inflation must be positive, got {self.field_inflation}")
        if self.use_witness:
            self.potential = True


class PosteriorMethod(CryoGEN2):
    """Shared base of CryoWGEN-I and -II: CryoGEN-II plus an amortised posterior regression.

    Parameters
    ----------
    mask, sigma, network, config
        As :class:`cryolearn.methods.Method`.
    spectrum : torch.Tensor, optional
        ``(D, H, W//2+1)`` shape of a Fourier-diagonal reference covariance
        (a stationary Gaussian field, e.g. one value per Fourier shell from
        :func:`cryolearn.methods.estimate_beta` with ``per_shell=True``);
        ``None`` is the white reference. With a spectrum the posterior keeps
        one ``beta`` (no precision field).
    **options
        Fields of the class's ``Config`` (:class:`PosteriorConfig` here, and
        those of :class:`cryolearn.methods.CryoGEN2Config`).
    """

    Config = PosteriorConfig
    gamma = config_field()
    beta = config_field()
    nu = config_field()
    use_witness = config_field()
    witness_chunk = config_field()
    beta_field = config_field()
    field_smooth = config_field()
    field_inflation = config_field()
    #: Candidates (CryoWGEN-I) or chains (CryoWGEN-II) per observation at reconstruction (a configuration field).
    n_samples: int
    #: Candidates or chains per observation in the amortised training step (a configuration field).
    n_train_samples: int

    def __init__(self, mask: torch.Tensor, sigma: float, network: torch.nn.Module | None = None,
                 config: PosteriorConfig | dict[str, Any] | None = None, spectrum: torch.Tensor | None = None, **options: Any):
        self.spectrum = spectrum
        super().__init__(mask, sigma, network, config=config, **options)

    def posterior(self, y: torch.Tensor, x_bar: torch.Tensor, train: bool = False) -> BoltzmannPosterior:
        """The Boltzmann posterior ``q_gamma(x | y)`` around ``x_bar`` for ``(B, ...)`` observations.

        With ``beta_field="proxy"`` and ``train=False`` its precision is the
        per-voxel field of :func:`cryolearn.methods.estimate_beta_field`
        divided by ``field_inflation``; otherwise (and with a Fourier-diagonal
        ``spectrum``) the scalar ``beta``.
        """
        beta: float | torch.Tensor = self.beta
        if self.beta_field == "proxy" and not train and self.spectrum is None:
            beta = estimate_beta_field(self, y, x_bar, smooth=self.field_smooth, generator=self.generator) / self.field_inflation
        return BoltzmannPosterior(
            y, x_bar, self.mask, self.sigma, self.gamma, beta,
            witness=self.posterior_witness if self.use_witness else None, spectrum=self.spectrum,
        )

    def posterior_witness(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`witness` of ``(..., D, H, W)`` candidates, ``witness_chunk`` re-degraded volumes at a time; returns ``(...)``."""
        if self.potential is None:
            raise RuntimeError("this method was built without a potential network (potential=False)")
        return chunked_witness(self.potential, x, self.mask, self.rotations, self.witness_chunk)

    def sample(self, y: torch.Tensor, x_bar: torch.Tensor, n: int, train: bool = False) -> "PosteriorSample":
        """Posterior statistics for ``(B, ...)`` observations.

        Parameters
        ----------
        y, x_bar : torch.Tensor
            ``(B, D, H, W)`` observations and reconstructor outputs ``G(y)``.
        n : int
            Candidates or chains per observation.
        train : bool
            Ask for the cheaper estimate used by the amortised training step.

        Returns
        -------
        PosteriorSample
            ``mean`` and ``var`` ``(B, D, H, W)``, ``samples`` ``(S, B, D, H, W)``
            and per-observation ``diagnostics``.
        """
        raise NotImplementedError

    def amortization(self, y: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.nu == 0:
            return {}
        mean = self.sample(y, x_hat.detach(), self.n_train_samples, train=True).mean
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
            m, v, s, d = self.sample(flat_y[k : k + batch_size], flat_x[k : k + batch_size], n or self.n_samples).astuple()
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
