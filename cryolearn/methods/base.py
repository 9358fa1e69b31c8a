"""One interface for the four methods: ``fit(observations)`` then ``reconstruct(y)``.

Every method owns a reconstructor ``G_theta : y -> x_hat`` (a U-Net with a
residual connection, so that ``G(y) = y`` at initialisation, the
no-restoration baseline), learns from observations alone through the
rotation proxy ``M(R x) + M n`` (SPEC sections 1 and 2), and shares the
training machinery here: seeded minibatch draws, a tqdm progress bar with the
current losses, a history of losses, and checkpoints that resume exactly.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from ..distributed import barrier, get_rank, get_world_size, unwrap, wrap
from ..nn import UNet
from ..physics import apply_missing_wedge, rfft_shape, rotation_proxy

__all__ = ["Method", "Reconstruction", "get_method", "register_method", "available_methods"]

_REGISTRY: dict[str, type["Method"]] = {}


def register_method(name: str) -> Callable[[type["Method"]], type["Method"]]:
    """Class decorator that makes a method available to :func:`get_method` under ``name``."""

    def deco(cls: type["Method"]) -> type["Method"]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    """Names accepted by :func:`get_method`, e.g. ``["cryogen1", "cryogen2", ...]``."""
    return sorted(_REGISTRY)


def get_method(name: str, **kwargs: Any) -> "Method":
    """Build a method by name.

    Parameters
    ----------
    name : str
        One of :func:`available_methods` (``"cryogen1"``, ``"cryogen2"``, ...).
    **kwargs
        Passed to the method's constructor (``mask``, ``sigma``, ...).

    Returns
    -------
    Method

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    try:
        cls = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {available_methods()}") from None
    return cls(**kwargs)


@dataclass
class Reconstruction:
    """What ``reconstruct`` returns.

    Attributes
    ----------
    mean : torch.Tensor
        ``(..., D, H, W)``: the restored volume (the point estimate for
        CryoGEN-I/II, the posterior mean for the samplers).
    samples : torch.Tensor or None
        ``(S, ..., D, H, W)`` posterior samples (samplers only).
    std : torch.Tensor or None
        ``(..., D, H, W)`` voxel-wise posterior standard deviation (samplers only).
    diagnostics : dict
        Method-specific numbers (e.g. effective sample size, MAP objective).
    """

    mean: torch.Tensor
    samples: torch.Tensor | None = None
    std: torch.Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike, voxel_size: float, prefix: str = "", n_samples: int = 0,
             overwrite: bool = False) -> list[Path]:
        """Write the mean, the std map and some samples as MRC files (ChimeraX, IMOD).

        Parameters
        ----------
        folder : path
            Output folder (created if missing).
        voxel_size : float
            Angstrom per voxel, written to the headers.
        prefix : str
            File-name prefix.
        n_samples : int
            How many posterior samples to write per observation (0: none).
        overwrite : bool
            Replace existing files; otherwise an existing file raises
            ``FileExistsError`` before anything is written.

        Returns
        -------
        list of pathlib.Path
            ``{prefix}{i:04d}_mean.mrc``, ``_std.mrc``, ``_sample{s:03d}.mrc``
            per observation ``i`` (no index for a single volume).

        Raises
        ------
        FileExistsError
            If a target exists and ``overwrite`` is False.
        ValueError
            If ``n_samples`` exceeds the samples held, or the volumes are not 3D.

        Notes
        -----
        Each file is written atomically by :func:`cryolearn.data.write_mrc`.
        """
        from ..data import write_mrc

        if self.mean.ndim < 3:
            raise ValueError(f"MRC files hold 3D volumes; the mean has shape {tuple(self.mean.shape)}")
        held = 0 if self.samples is None else self.samples.shape[0]
        if n_samples > held:
            raise ValueError(f"asked for {n_samples} samples but the reconstruction holds {held}")
        single = self.mean.ndim == 3
        means = self.mean.reshape(-1, *self.mean.shape[-3:])
        stds = None if self.std is None else self.std.reshape(-1, *self.std.shape[-3:])
        samples = None if not n_samples else self.samples[:n_samples].reshape(n_samples, -1, *self.mean.shape[-3:])
        folder = Path(folder)
        jobs = []
        for i in range(means.shape[0]):
            stem = prefix if single else f"{prefix}{i:04d}_"
            jobs.append((folder / f"{stem}mean.mrc", means[i]))
            if stds is not None:
                jobs.append((folder / f"{stem}std.mrc", stds[i]))
            for k in range(n_samples):
                jobs.append((folder / f"{stem}sample{k:03d}.mrc", samples[k, i]))
        existing = [str(p) for p, _ in jobs if p.exists()]
        if existing and not overwrite:
            raise FileExistsError(f"refusing to overwrite {existing[:3]}{' ...' if len(existing) > 3 else ''} (pass overwrite=True)")
        folder.mkdir(parents=True, exist_ok=True)
        return [write_mrc(p, v.detach().cpu(), voxel_size, overwrite=overwrite) for p, v in jobs]


class Method:
    """Base class of the four methods (SPEC section 2).

    Parameters
    ----------
    mask : torch.Tensor
        Measured-region mask on the rfft half grid, ``(D, H, W//2+1)`` for
        subtomograms or ``(D, W//2+1)`` for 2D images (see
        :func:`cryolearn.physics.missing_wedge_mask`). Its dimensionality
        sets the method's (2D or 3D).
    sigma : float
        Noise standard deviation per voxel (before masking), in the unit of
        the observations.
    network : torch.nn.Module, optional
        The reconstructor ``G``; default a :class:`cryolearn.nn.UNet` with
        ``base_channels`` channels, identity at initialisation.
    base_channels : int
        Width of the default U-Net.
    batch_size : int
        Observations per training step and process: under
        DistributedDataParallel the global batch is ``world_size *
        batch_size``.
    lr : float
        Adam learning rate of the reconstructor.
    rotations : sequence of int, optional
        Cube-group elements (:func:`cryolearn.physics.cube_rotations`) the
        rotation proxy draws from; default all of them.
    seed : int
        Seeds the network initialisation and every random draw in training.

    Notes
    -----
    Subclasses implement :meth:`training_step`. Training never uses ground
    truth: :meth:`fit` takes observations only.
    """

    name: ClassVar[str] = "method"
    samples_posterior: ClassVar[bool] = False

    def __init__(
        self,
        mask: torch.Tensor,
        sigma: float,
        network: nn.Module | None = None,
        base_channels: int = 12,
        batch_size: int = 16,
        lr: float = 1e-3,
        rotations: list[int] | None = None,
        seed: int = 0,
    ) -> None:
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must be a 2D or 3D half-grid mask, got shape {tuple(mask.shape)}")
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.mask = mask
        self.ndim = mask.ndim
        self.sigma = float(sigma)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        n_group = 24 if self.ndim == 3 else 4
        self.rotations = torch.as_tensor(rotations if rotations is not None else range(n_group), dtype=torch.long)
        if self.rotations.numel() == 0 or self.rotations.min() < 0 or self.rotations.max() >= n_group:
            raise ValueError(f"rotations must be indices in [0, {n_group})")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network = network if network is not None else UNet(ndim=self.ndim, base_channels=base_channels)
            self._build()
        self.lr = float(lr)
        self.optimizers = self._make_optimizers()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.generator: torch.Generator | None = None

    # ----- hooks for subclasses ------------------------------------------------
    def _build(self) -> None:
        """Create extra networks (critic, potential); called under the method's seed."""

    def _modules(self) -> dict[str, nn.Module]:
        """All trainable modules by attribute name (checkpointed, moved and wrapped for DDP together)."""
        return {"network": self.network}

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"network": torch.optim.Adam(self.network.parameters(), lr=self.lr)}

    def training_step(self, y: torch.Tensor, y_ref: torch.Tensor) -> dict[str, float]:
        """One update from a minibatch of observations.

        Parameters
        ----------
        y : torch.Tensor
            ``(B, D, H, W)`` observations to reconstruct.
        y_ref : torch.Tensor
            ``(B, D, H, W)`` an independent minibatch of real observations,
            the reference distribution of the rotation proxy.

        Returns
        -------
        dict of str to float
            The losses of this step (recorded in :attr:`history`).
        """
        raise NotImplementedError

    # ----- shared pieces -------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> "Method":
        """Move every network, the mask and the optimiser states to ``device``."""
        for m in self._modules().values():
            unwrap(m).to(device)
        self.mask = self.mask.to(device)
        if self.generator is not None and self.generator.device != self.device:
            # Generator states do not move between devices: reseed, deterministically by step.
            self.generator = torch.Generator(device=self.device).manual_seed(self.seed + 1 + self.step)
        for opt in self.optimizers.values():
            for state in opt.state.values():
                for k, v in state.items():
                    if torch.is_tensor(v) and k != "step":
                        state[k] = v.to(device)
        return self

    def data_fidelity(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``||y - M x||^2 / (2 sigma^2)`` per observation, divided by the voxel count.

        Parameters
        ----------
        y, x : torch.Tensor
            ``(..., D, H, W)``.

        Returns
        -------
        torch.Tensor
            ``(...)``: the negative log-likelihood per voxel (SPEC section 1), up to a constant.
        """
        r = y - apply_missing_wedge(x, self.mask)
        return r.pow(2).flatten(-self.ndim).mean(-1) / (2 * self.sigma**2)

    def random_rotations(self, n: int) -> torch.Tensor:
        """``(n,)`` cube-group indices drawn from :attr:`rotations` with the training generator."""
        pick = torch.randint(0, self.rotations.numel(), (n,), generator=self.generator, device=self.generator.device)
        return self.rotations.to(pick.device)[pick].to(self.device)

    def redegrade(self, x: torch.Tensor, noise: bool = True) -> torch.Tensor:
        """The rotation proxy ``M(R x) + M n`` with a random ``R`` per volume (SPEC section 1).

        Parameters
        ----------
        x : torch.Tensor
            ``(B, D, H, W)`` candidate clean volumes.
        noise : bool
            Add masked noise of standard deviation :attr:`sigma`.

        Returns
        -------
        torch.Tensor
            ``(B, D, H, W)``, differentiable in ``x``.
        """
        idx = self.random_rotations(x.shape[0])
        out = rotation_proxy(x, self.mask, idx)
        if noise:
            n = torch.randn(x.shape, generator=self.generator, device=self.generator.device, dtype=x.dtype).to(x.device)
            out = out + apply_missing_wedge(n * self.sigma, self.mask)
        return out

    def redegrade_all(self, x: torch.Tensor) -> torch.Tensor:
        """``M(R x)`` for every rotation in :attr:`rotations`, without noise.

        Parameters
        ----------
        x : torch.Tensor
            ``(..., D, H, W)`` candidate clean volumes.

        Returns
        -------
        torch.Tensor
            ``(G, ..., D, H, W)``, ``G`` the number of rotations; differentiable in ``x``.
        """
        rots = self.rotations.to(x.device)
        xr = x.unsqueeze(0).expand(rots.numel(), *x.shape)
        return rotation_proxy(xr, self.mask, rots.view(-1, *[1] * (x.ndim - self.ndim)))

    def _check_observations(self, y: torch.Tensor) -> torch.Tensor:
        half = rfft_shape(y.shape[-self.ndim :]) if y.ndim >= self.ndim else None
        if half != tuple(self.mask.shape):
            raise ValueError(f"observations of shape {tuple(y.shape)} do not match the mask's half grid {tuple(self.mask.shape)}")
        if not torch.isfinite(y).all():
            raise ValueError("observations contain NaN or Inf values")
        return y

    # ----- training ------------------------------------------------------------
    def fit(
        self,
        observations: torch.Tensor,
        n_steps: int,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 100,
        callback: Callable[["Method", dict[str, float]], None] | None = None,
    ) -> "Method":
        """Train on observations only (no ground truth), up to ``n_steps`` steps in total.

        Parameters
        ----------
        observations : torch.Tensor
            ``(N, D, H, W)`` observed subtomograms (``(N, D, W)`` images in
            2D), on the method's device.
        n_steps : int
            Total number of steps: a method restored from a checkpoint at step
            ``s`` trains ``n_steps - s`` more.
        progress : bool
            Show a tqdm bar with the current losses.
        checkpoint : path, optional
            If given, the state is saved there every ``checkpoint_every``
            steps and at the end (atomically), and :meth:`fit` resumes from
            it when the file exists.
        checkpoint_every : int
        callback : callable, optional
            Called as ``callback(method, losses)`` after each step.

        Returns
        -------
        Method
            ``self``, trained.

        Raises
        ------
        ValueError
            If the observations do not match the mask or contain NaN/Inf.

        Notes
        -----
        Under ``torchrun`` (a process group of ``world_size > 1`` set up by
        :func:`cryolearn.distributed.init_distributed`), every process calls
        :meth:`fit` with the same observations; each trainable module is
        trained through a DistributedDataParallel wrapper
        (:func:`cryolearn.distributed.wrap`), so the parameters start as
        rank 0's and every optimiser step uses the gradient averaged over
        processes. Rank ``r`` draws its own minibatches, rotations and noise
        with a generator seeded ``seed + 1 + r`` (rank 0 draws exactly as a
        single process would): the global batch is ``world_size *
        batch_size``. :attr:`history` holds each rank's own losses and
        ``callback`` runs on every rank. Only rank 0 shows the bar and
        writes checkpoints, and all ranks wait for the write. A resumed run
        restores rank 0's generator; the other ranks reseed theirs with
        ``seed + 1 + r + world_size * step`` whenever :meth:`fit` starts (so a
        generator made earlier, e.g. by ``reconstruct``, is not shared). Outside :meth:`fit` the
        modules are the unwrapped ones, and the checkpoint format is the
        same as on one process.
        """
        y_all = self._check_observations(observations).to(self.device)
        n = y_all.shape[0]
        rank, world = get_rank(), get_world_size()
        if self.generator is None:
            self.generator = torch.Generator(device=self.device).manual_seed(self.seed + 1 + rank)
        if checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
        if rank > 0:  # a checkpoint, or an earlier reconstruct, left rank 0's draws here: draw other minibatches
            self.generator.manual_seed(self.seed + 1 + rank + world * self.step)
        bs = min(self.batch_size, n)
        raw = self._modules()
        for name, m in raw.items():  # DDP wrappers while training (the modules themselves on one process)
            setattr(self, name, wrap(m))
        try:
            bar = tqdm(range(self.step, n_steps), disable=not progress or rank != 0, desc=self.name, leave=False)
            for _ in bar:
                i = torch.randperm(n, generator=self.generator, device=self.generator.device)[:bs]
                j = torch.randperm(n, generator=self.generator, device=self.generator.device)[:bs]
                for m in self._modules().values():
                    m.train()
                losses = self.training_step(y_all[i], y_all[j])
                self.step += 1
                self.history.append({"step": self.step, **losses})
                if progress and rank == 0:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
                if callback is not None:
                    callback(self, losses)
                if checkpoint is not None and (self.step % checkpoint_every == 0 or self.step == n_steps):
                    if rank == 0:
                        self.save(checkpoint)
                    barrier()
        finally:
            for name, m in raw.items():
                setattr(self, name, m)
        for m in raw.values():
            m.eval()
        return self

    # ----- inference -----------------------------------------------------------
    @torch.no_grad()
    def predict(self, y: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """``G_theta(y)`` for a single volume ``(D, H, W)`` or a batch ``(..., D, H, W)``, in chunks."""
        y = self._check_observations(y)
        net = unwrap(self.network).eval()
        flat = y.reshape(-1, *y.shape[-self.ndim :]).to(self.device)
        out = torch.cat([net(flat[k : k + batch_size]) for k in range(0, flat.shape[0], batch_size)])
        return out.reshape(y.shape).to(y.device)

    def reconstruct(self, y: torch.Tensor, batch_size: int = 32) -> Reconstruction:
        """Restore observations.

        Parameters
        ----------
        y : torch.Tensor
            A single observation ``(D, H, W)`` or a batch ``(..., D, H, W)``.
        batch_size : int
            Volumes per forward pass.

        Returns
        -------
        Reconstruction
            ``mean`` of ``y``'s shape; the samplers add ``samples`` and ``std``.
        """
        return Reconstruction(mean=self.predict(y, batch_size))

    # ----- checkpoints ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, optimisers, step, history, RNG state."""
        return {
            "method": self.name,
            "step": self.step,
            "history": self.history,
            "modules": {k: unwrap(m).state_dict() for k, m in self._modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved.

        Raises
        ------
        ValueError
            If the state was saved by another method.
        """
        if state.get("method") != self.name:
            raise ValueError(f"checkpoint holds method {state.get('method')!r}, not {self.name!r}")
        for k, m in self._modules().items():
            unwrap(m).load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            if k in state.get("optimizers", {}):
                o.load_state_dict(state["optimizers"][k])
        self.step = int(state["step"])
        self.history = list(state["history"])
        if state.get("generator") is not None:
            self.generator = torch.Generator(device=self.device)
            self.generator.set_state(state["generator"])

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load(self, path: str | os.PathLike) -> "Method":
        """Load a checkpoint written by :meth:`save` onto this method's device."""
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.load_state_dict(state)
        return self
