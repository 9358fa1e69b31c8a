"""One interface for the four methods: ``fit(observations)`` then ``reconstruct(y)``.

Every method owns a reconstructor ``G_theta : y -> x_hat`` (a U-Net with a
residual connection, so that ``G(y) = y`` at initialisation, the
no-restoration baseline), learns from observations alone through the
rotation proxy ``M(R x) + M n`` (the book's appendix on notation and conventions and the book's chapters on the four methods), and has a typed
configuration (a :class:`cryolearn.methods.MethodConfig` dataclass, its
class attribute ``Config``). What is not mathematics lives elsewhere: the
training loop and DDP in :mod:`cryolearn.training.trainer` (which
:meth:`Method.fit` calls), checkpoint files in
:mod:`cryolearn.training.checkpoint`, the rotation proxy in
:mod:`cryolearn.physics.forward`, MRC output in
:func:`cryolearn.data.write_reconstruction` (through
:meth:`Reconstruction.save`, in :mod:`~cryolearn.methods.reconstruction`),
the registry by name in :mod:`~cryolearn.methods.registry`.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..nn import UNet
from ..physics import apply_missing_wedge, hermitian_weights, rfft_shape, rotate_cube, rotated_mask
from ..physics.forward import noise_filter, random_redegrade, redegrade_all
from ..training import checkpoint as _ckpt
from ..training import trainer as _trainer
from ..training.distributed import unwrap
from .config import MethodConfig, config_field, make_config
from .reconstruction import Reconstruction
from .registry import available_methods, get_method, get_method_class, register_method

__all__ = ["Method", "Reconstruction", "config_field", "get_method", "get_method_class", "register_method", "available_methods"]


class Method:
    """Base class of the four methods (the book's chapters on the four methods).

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
    config : MethodConfig or dict, optional
        The hyperparameters (an instance of the class's ``Config``, or a dict
        of its fields); default ``Config()``.
    noise_spectrum : torch.Tensor, optional
        ``(S,)`` noise power per Fourier shell of the observations
        (:func:`cryolearn.physics.estimate_noise_spectrum`): the rotation
        proxy then adds coloured noise of this spectrum instead of white
        noise of standard deviation ``sigma`` (reconstructed tomograms have
        coloured noise). ``sigma`` still scales the data fidelity.
    **options
        Configuration fields overriding ``config``'s (see
        :class:`cryolearn.methods.MethodConfig`: ``base_channels``,
        ``batch_size`` (per process: under DistributedDataParallel the global
        batch is ``world_size * batch_size``), ``lr``, ``rotations``,
        ``seed``, ``masked_rotation`` (:meth:`masked_rotation_loss`); and
        each method's own).

    Attributes
    ----------
    config : MethodConfig
        The typed configuration, saved in every checkpoint. Hyperparameter
        attributes (``method.lam``, ``method.batch_size``, ...) read and write it.

    Raises
    ------
    ValueError
        If the mask is not 2D or 3D, ``sigma`` is not positive, the noise
        spectrum does not cover the mask's shells, an option is
        not a field of ``Config`` (the message names the valid keys), or a
        value has the wrong type or range.

    Notes
    -----
    Subclasses set ``Config`` and implement :meth:`training_step`. Training
    never uses ground truth: :meth:`fit` takes observations only.
    """

    name: ClassVar[str] = "method"
    samples_posterior: ClassVar[bool] = False
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    base_channels = config_field()
    batch_size = config_field()
    lr = config_field()
    seed = config_field()
    masked_rotation = config_field()

    def __init__(
        self,
        mask: torch.Tensor,
        sigma: float,
        network: nn.Module | None = None,
        config: MethodConfig | dict[str, Any] | None = None,
        noise_spectrum: torch.Tensor | None = None,
        **options: Any,
    ) -> None:
        self.config = make_config(self.Config, config, **options)
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must be a 2D or 3D half-grid mask, got shape {tuple(mask.shape)}")
        if not float(sigma) > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.mask = mask
        self.ndim = mask.ndim
        self.sigma = float(sigma)
        self.noise_spectrum = None if noise_spectrum is None else torch.as_tensor(noise_spectrum, dtype=torch.float32)
        self._noise_filter = None if self.noise_spectrum is None else noise_filter(self.noise_spectrum, mask)
        self.rotations = self._rotation_indices()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network = network if network is not None else UNet(ndim=self.ndim, base_channels=self.base_channels)
            self._build()
        self.optimizers = self._make_optimizers()
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.generator: torch.Generator | None = None

    def _rotation_indices(self) -> torch.Tensor:
        """``(G,)`` int64 cube-group indices from ``config.rotations`` (all of the group when None)."""
        n_group = 24 if self.ndim == 3 else 4
        rot = self.config.rotations
        rotations = torch.as_tensor(rot if rot is not None else range(n_group), dtype=torch.long)
        if rotations.numel() == 0 or rotations.min() < 0 or rotations.max() >= n_group:
            raise ValueError(f"rotations must be indices in [0, {n_group})")
        return rotations

    @property
    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`get_method` (with ``mask``) that rebuild this method: ``sigma`` and the configuration's fields."""
        return {"sigma": self.sigma, **self.config.to_dict()}

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
        if self._noise_filter is not None:
            self._noise_filter = self._noise_filter.to(device)
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
            ``(...)``: the negative log-likelihood per voxel (the book's appendix on notation and conventions), up to a constant.
        """
        r = y - apply_missing_wedge(x, self.mask)
        return r.pow(2).flatten(-self.ndim).mean(-1) / (2 * self.sigma**2)

    def redegrade(self, x: torch.Tensor, noise: bool = True) -> torch.Tensor:
        """The rotation proxy ``M(R x) + M n`` with a random ``R`` per volume, drawn with the training generator.

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

        Notes
        -----
        :func:`cryolearn.physics.random_redegrade` with this method's mask,
        rotations, sigma and generator; the noise has the spectrum
        :attr:`noise_spectrum` when the method was given one.
        """
        return random_redegrade(x, self.mask, self.rotations, self.sigma if noise else None, self.generator,
                                noise_filter=self._noise_filter)

    def masked_rotation_loss(self, y: torch.Tensor) -> torch.Tensor:
        """Self-supervised wedge filling: restore turned, re-masked observations and score them on the data the turn moved into the wedge.

        Parameters
        ----------
        y : torch.Tensor
            ``(B, N, N, N)`` observations (``(B, N, N)`` in 2D), normalised
            as in training.

        Returns
        -------
        torch.Tensor
            ``()``, differentiable in the network's parameters::

                mean_b  sum_{k in Omega_b} |F[G(M R_b y_b)](k) - F[R_b y_b](k)|^2 / (2 sigma^2 n_voxels)

            with ``R_b`` a rotation drawn per observation from those of
            :attr:`rotations` that move the wedge, and ``Omega_b`` the
            Fourier region missing under ``M`` but measured in ``R_b y_b``
            (orthonormal FFT, Hermitian weights): the same units as
            :meth:`data_fidelity`. Zero when no rotation of the method moves
            the wedge.

        Notes
        -----
        The loss of IsoNet (Liu et al. 2022, Nature Communications 13:6482)
        and DeepDeWedge (Wiedemann & Heckel 2024, Nature Communications
        15:2190): a turn of an observation puts part of its measured data
        where the wedge of ``M`` lies; the network sees the turned
        observation with that part masked out again and must predict it.
        The input holds the coefficients measured under both ``R`` and
        ``M``, the target only others, so with noise independent between
        Fourier coefficients (white or stationary coloured) the target's
        noise cannot be predicted and the loss is minimised by the
        conditional mean of the signal there, without a second half-set.
        It is the training counterpart of the held-out rotation test
        (:func:`cryolearn.metrics.rotation_validation_error`), and the
        data term that fills the wedge of real tomograms (the book's chapter
        "Restoring a whole tomogram").
        """
        regions, rots = self._wedge_moving_regions(y)
        if rots.numel() == 0:
            return y.new_zeros(())
        gen = self.generator
        pick = torch.randint(0, rots.numel(), (y.shape[0],), generator=gen,
                             device=gen.device if gen is not None else y.device).to(y.device)
        target = rotate_cube(y, rots[pick], ndim=self.ndim)
        out = self.network(apply_missing_wedge(target, self.mask))
        dims = tuple(range(-self.ndim, 0))
        err = torch.fft.rfftn(out - target, dim=dims, norm="ortho").abs().pow(2) * regions[pick]
        return err.flatten(1).sum(1).mean() / (2 * self.sigma**2 * y[0].numel())

    def _wedge_moving_regions(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G', *half)`` weighted regions ``Omega`` and ``(G',)`` indices of the rotations that move the wedge (cached)."""
        key = (y.device, y.dtype, tuple(self.rotations.tolist()))
        cache = getattr(self, "_regions_cache", None)
        if cache is None or cache[0] != key:
            shape = (self.mask.shape[0],) * self.ndim
            mask = self.mask.to(y.device)
            regions, rots = [], []
            for r in self.rotations.tolist():  # at most 24 masks, computed once
                region = rotated_mask(mask, r, shape) & ~mask.bool()
                if region.any():
                    regions.append(region)
                    rots.append(r)
            w = hermitian_weights(shape, None, y)
            table = torch.stack(regions).to(y.dtype) * w if regions else y.new_zeros((0, *self.mask.shape))
            cache = (key, table, torch.tensor(rots, dtype=torch.long, device=y.device))
            self._regions_cache = cache
        return cache[1], cache[2]

    def redegrade_all(self, x: torch.Tensor) -> torch.Tensor:
        """``M(R x)`` for every rotation in :attr:`rotations`, without noise.

        Parameters
        ----------
        x : torch.Tensor
            ``(..., D, H, W)`` candidate clean volumes.

        Returns
        -------
        torch.Tensor
            ``(G, ..., D, H, W)``, ``G`` the number of rotations; differentiable
            in ``x`` (:func:`cryolearn.physics.redegrade_all`).
        """
        return redegrade_all(x, self.mask, self.rotations)

    def _check_observations(self, y: torch.Tensor) -> torch.Tensor:
        half = rfft_shape(y.shape[-self.ndim :]) if y.ndim >= self.ndim else None
        if half != tuple(self.mask.shape):
            raise ValueError(f"observations of shape {tuple(y.shape)} do not match the mask's half grid {tuple(self.mask.shape)}")
        if not torch.isfinite(y).all():
            raise ValueError("observations contain NaN or Inf values")
        return y

    # ----- training ------------------------------------------------------------
    def fit(self, observations: torch.Tensor | Dataset, n_steps: int, **options: Any) -> "Method":
        """Train on observations only (no ground truth), up to ``n_steps`` steps in total.

        Parameters
        ----------
        observations : torch.Tensor or torch.utils.data.Dataset
            ``(N, D, H, W)`` observed subtomograms (``(N, D, W)`` images in
            2D), or a data set of ``(D, H, W)`` observations.
        n_steps : int
            Total number of steps: a method restored from a checkpoint at step
            ``s`` trains ``n_steps - s`` more.
        **options
            ``progress``, ``checkpoint``, ``checkpoint_every``, ``callback``,
            ``num_workers``: the options of :func:`cryolearn.training.fit`,
            which runs the loop.

        Returns
        -------
        Method
            ``self``, trained.

        Raises
        ------
        ValueError
            As :func:`cryolearn.training.fit`, e.g. if the observations do not
            match the mask or contain NaN/Inf.

        Notes
        -----
        The notes of :func:`cryolearn.training.fit` say how minibatches are
        drawn from a tensor and from a data set, and how training runs under
        ``torchrun`` (DistributedDataParallel, a DistributedSampler for data
        sets, checkpoints written by rank 0).
        """
        return _trainer.fit(self, observations, n_steps, **options)

    # ----- inference -----------------------------------------------------------
    @torch.no_grad()
    def predict(self, y: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """``G_theta(y)`` for a single volume ``(D, H, W)`` or a batch ``(..., D, H, W)``, in chunks.

        The network runs on the method's device in its own precision; the
        result comes back on ``y``'s device in ``y``'s dtype.
        """
        y = self._check_observations(y)
        net = unwrap(self.network).eval()
        dtype = next(net.parameters()).dtype
        flat = y.reshape(-1, *y.shape[-self.ndim :]).to(self.device, dtype)
        out = torch.cat([net(flat[k : k + batch_size]) for k in range(0, flat.shape[0], batch_size)])
        return out.reshape(y.shape).to(y.device, y.dtype)

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

    # ----- checkpoints -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild and resume, as plain data (loadable with ``weights_only=True``).

        Returns
        -------
        dict
            ``method`` (name), ``config`` (the configuration as a dict),
            ``sigma``, ``mask``, ``spectrum`` and ``noise_spectrum`` (or None), ``step``, ``history``,
            ``modules`` and ``optimizers`` (state dicts), ``generator`` (the
            training generator's state, a CPU uint8 tensor, or None) and
            ``generator_device``.
        """
        spectrum = getattr(self, "spectrum", None)
        return {
            "method": self.name,
            "config": self.config.to_dict(),
            "sigma": self.sigma,
            "mask": self.mask.detach().cpu(),
            "spectrum": None if spectrum is None else spectrum.detach().cpu(),
            "noise_spectrum": None if self.noise_spectrum is None else self.noise_spectrum.detach().cpu(),
            "step": self.step,
            "history": self.history,
            "modules": {k: unwrap(m).state_dict() for k, m in self._modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "generator": None if self.generator is None else self.generator.get_state().cpu(),
            "generator_device": None if self.generator is None else str(self.generator.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved: configuration, networks, optimisers, step, history, generator.

        Raises
        ------
        ValueError
            If the state was saved by another method, its configuration is
            not valid for this one, or its networks do not fit this method's
            (the message names the configuration keys that differ).

        Notes
        -----
        The saved configuration replaces :attr:`config` (e.g. a ``beta``
        set after construction comes back). A generator state saved on
        another kind of device (CPU and CUDA generators have different
        states) cannot be restored: the generator is then reseeded with
        ``seed + 1 + step``, as :meth:`to` does.
        """
        if state.get("method") != self.name:
            raise ValueError(f"checkpoint holds method {state.get('method')!r}, not {self.name!r}")
        before = (self.config, self.rotations)
        if state.get("config") is not None:
            saved = make_config(self.Config, state["config"])
            differ = [k for k in saved.field_names() if getattr(saved, k) != getattr(self.config, k)]
            self.config = saved
            self.rotations = self._rotation_indices().to(self.rotations.device)
        else:
            differ = []
        try:
            for k, m in self._modules().items():
                unwrap(m).load_state_dict(state["modules"][k])
        except (RuntimeError, KeyError) as err:
            self.config, self.rotations = before
            raise ValueError(f"the checkpoint's networks do not fit this {self.name} (configuration keys that differ: "
                             f"{differ or 'none'}); rebuild it with Method.from_checkpoint: {err}") from None
        for k, o in self.optimizers.items():
            if k in state.get("optimizers", {}):
                o.load_state_dict(state["optimizers"][k])
        self.step = int(state["step"])
        self.history = list(state["history"])
        if state.get("generator") is not None:
            self.generator = torch.Generator(device=self.device)
            saved_type = torch.device(state.get("generator_device") or "cpu").type
            try:
                if saved_type != self.device.type:
                    raise RuntimeError(f"a {saved_type} generator state")
                self.generator.set_state(state["generator"].cpu())
            except RuntimeError:  # another kind of device (or an older checkpoint that did not say which)
                self.generator.manual_seed(self.seed + 1 + self.step)

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically (:func:`cryolearn.training.save_checkpoint`)."""
        _ckpt.save_checkpoint(self.state_dict(), path)

    def load(self, path: str | os.PathLike, map_location: str | torch.device | None = None) -> "Method":
        """Load a checkpoint written by :meth:`save` (``weights_only=True``; RNG states read on the CPU).

        Parameters
        ----------
        path : str or os.PathLike
        map_location : str or torch.device, optional
            Where the saved tensors are read to before they are copied into
            this method's networks; default this method's device.

        Returns
        -------
        Method
            ``self``.
        """
        self.load_state_dict(_ckpt.load_checkpoint(path, map_location=map_location or self.device))
        return self

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device | None = None) -> "Method":
        """Rebuild a method from a checkpoint alone (its name, configuration, mask and sigma are saved in it).

        Parameters
        ----------
        path : str or os.PathLike
            Written by :meth:`save`.
        map_location : str or torch.device, optional
            Device of the rebuilt method; default the CPU.

        Returns
        -------
        Method
            Of the saved class (called on :class:`Method`) on ``map_location``,
            with the saved networks, optimisers, step, history and generator.

        Raises
        ------
        ValueError
            If the checkpoint lacks the configuration (written before typed
            configurations), or holds another method than ``cls``.
        """
        state = _ckpt.load_checkpoint(path, map_location=None)
        if state.get("config") is None or state.get("mask") is None:
            raise ValueError(f"{os.fspath(path)!r} does not hold a configuration and a mask; load it into a method built by get_method")
        kwargs = {"spectrum": state["spectrum"]} if state.get("spectrum") is not None else {}
        if state.get("noise_spectrum") is not None:
            kwargs["noise_spectrum"] = state["noise_spectrum"]
        method = get_method(state["method"], mask=state["mask"], sigma=state["sigma"], config=state["config"], **kwargs)
        if not isinstance(method, cls):
            raise ValueError(f"{os.fspath(path)!r} holds a {type(method).__name__}, not a {cls.__name__}")
        if map_location is not None:
            method.to(map_location)
        method.load_state_dict(state)
        return method
