"""Training on several processes with PyTorch's DistributedDataParallel.

Launch any script or the command-line tool with ``torchrun``::

    torchrun --nproc-per-node 4 -m cryolearn.cli train ...

:func:`init_distributed` joins the process group that ``torchrun`` describes
in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and picks this process's device; without
``torchrun`` it does nothing and reports one process. :meth:`Method.fit
<cryolearn.methods.Method.fit>` then trains every module through
:func:`wrap` (one DDP wrapper per module, gradients averaged over processes)
and lets only rank 0 write checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..profile import pick_device

__all__ = [
    "DistributedInfo",
    "barrier",
    "cleanup",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "unwrap",
    "wrap",
]


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in a distributed run.

    Attributes
    ----------
    rank : int
        Global index of this process, ``0 <= rank < world_size``.
    world_size : int
        Number of processes (1 without ``torchrun``).
    local_rank : int
        Index of this process on its machine (selects its GPU).
    device : torch.device
        This process's device: ``cuda:local_rank`` on GPUs, else the CPU.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Rank of this process in the initialised process group, 0 when there is none."""
    return dist.get_rank() if _active() else 0


def get_world_size() -> int:
    """Number of processes in the initialised process group, 1 when there is none."""
    return dist.get_world_size() if _active() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (always True on a single process): the one that prints and writes files."""
    return get_rank() == 0


def barrier() -> None:
    """Wait until every process gets here (no-op on a single process)."""
    if get_world_size() > 1:
        dist.barrier()


def init_distributed(device: str | torch.device | None = None, backend: str | None = None) -> DistributedInfo:
    """Join the process group described by ``torchrun``'s environment, if any.

    Parameters
    ----------
    device : str or torch.device, optional
        The device choice passed to :func:`cryolearn.pick_device` (``None``:
        CUDA when available, else the CPU). Under ``torchrun`` a CUDA choice
        becomes ``cuda:LOCAL_RANK``, one GPU per process.
    backend : str, optional
        ``"nccl"`` or ``"gloo"``; default ``nccl`` on CUDA and ``gloo`` on the CPU.

    Returns
    -------
    DistributedInfo
        Rank, world size, local rank and device of this process. Without
        ``torchrun`` (``WORLD_SIZE`` unset or 1): rank 0, world size 1,
        and the chosen device, with no process group.

    Raises
    ------
    ValueError
        If ``device`` asks for CUDA where none is available (from
        :func:`cryolearn.pick_device`), or ``backend="nccl"`` is asked for
        on the CPU.

    Notes
    -----
    Calling it again when the group exists returns the same information.
    Rendezvous uses ``init_method="env://"`` (``MASTER_ADDR``,
    ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``). Pair it with
    :func:`cleanup`. Source: PyTorch's ``torchrun`` and DDP documentation.
    """
    choice = pick_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not _active():
        return DistributedInfo(rank=0, world_size=1, local_rank=0, device=choice)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local_rank) if choice.type == "cuda" else choice
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if backend == "nccl" and dev.type != "cuda":
        raise ValueError(f"the nccl backend needs CUDA devices, but this process's device is {dev}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not _active():
        dist.init_process_group(backend=backend, init_method="env://")
    return DistributedInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group, if one was initialised (safe to call on a single process)."""
    if _active():
        dist.destroy_process_group()


def wrap(module: nn.Module) -> nn.Module:
    """The module wrapped for data-parallel training, or the module itself on a single process.

    Parameters
    ----------
    module : torch.nn.Module
        A module whose parameters live on this process's device.

    Returns
    -------
    torch.nn.Module
        A :class:`torch.nn.parallel.DistributedDataParallel` wrapper when a
        process group of more than one process is initialised and the module
        has trainable parameters; otherwise ``module`` unchanged.

    Notes
    -----
    Building the wrapper broadcasts rank 0's parameters to every process, so
    all start identical; afterwards each ``backward()`` through the wrapper
    averages the parameter gradients over processes before the optimiser
    steps. Forward passes whose backward never reaches the parameters
    (``torch.autograd.grad`` with respect to inputs only, as in the Langevin
    E-steps and samplers, or with the parameters frozen) leave the gradient
    synchronisation untouched. ``find_unused_parameters`` stays off: every
    parameter of the cryolearn networks receives a gradient in each backward
    that reaches the module at all; a custom network with parameters
    outside some losses would need it.
    """
    if get_world_size() <= 1 or not any(p.requires_grad for p in module.parameters()):
        return module
    dev = next(module.parameters()).device
    return DistributedDataParallel(module, device_ids=[dev] if dev.type == "cuda" else None)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a :func:`wrap` wrapper (the module itself if it is not wrapped)."""
    return module.module if isinstance(module, DistributedDataParallel) else module
