"""The training loop shared by the four methods, apart from their mathematics.

:func:`fit` draws minibatches (from a tensor held on the device, or streamed
from a :class:`torch.utils.data.Dataset` through a
:class:`torch.utils.data.DataLoader`), wraps the trainable modules for
DistributedDataParallel, calls the method's ``training_step(y, y_ref)``,
keeps the history, shows a progress bar and writes checkpoints.
:meth:`cryolearn.methods.Method.fit` is this function.

A method only has to provide: ``training_step(y, y_ref) -> dict``,
``_modules() -> dict[str, nn.Module]``, ``_check_observations(y)``,
``save(path)``/``load(path)``, and the attributes ``name``, ``seed``,
``batch_size``, ``step``, ``history``, ``generator`` and ``device``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from .distributed import barrier, get_rank, get_world_size, wrap

if TYPE_CHECKING:
    from ..methods import Method

__all__ = ["StepBatches", "fit"]


class StepBatches(Sampler):
    """Index batches of ``2 B`` for training steps ``start, start + 1, ...``: an endless, resumable batch sampler.

    Parameters
    ----------
    sampler : torch.utils.data.DistributedSampler
        Shuffles (and, under DDP, shards) the data set; epoch ``e`` is the
        permutation seeded ``seed + e``.
    batch_size : int
        ``B``: each batch holds ``2 B`` indices, ``y`` then ``y_ref``.
    start : int
        The first step (``method.step`` when training resumes).

    Notes
    -----
    Step ``s`` takes batch ``s % k`` of epoch ``s // k``, with ``k =
    len(sampler) // (2 B)`` batches per epoch (an incomplete last batch is
    dropped). The batches depend on the step only, so a resumed run draws
    exactly what an uninterrupted one would, without reading the skipped
    items.
    """

    def __init__(self, sampler: DistributedSampler, batch_size: int, start: int = 0) -> None:
        self.sampler, self.batch_size, self.start = sampler, int(batch_size), int(start)
        self.per_epoch = len(sampler) // (2 * self.batch_size)
        if self.per_epoch < 1:
            raise ValueError(f"a shard of {len(sampler)} observations cannot fill one step of 2 x {self.batch_size}")

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while True:
            epoch, first = divmod(step, self.per_epoch)
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for b in range(first, self.per_epoch):
                yield order[2 * self.batch_size * b : 2 * self.batch_size * (b + 1)]
                step += 1


def _tensor_batches(method: "Method", y_all: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Today's draws: two independent ``randperm`` on the method's generator per step."""
    n = y_all.shape[0]
    bs = min(method.batch_size, n)
    while True:
        i = torch.randperm(n, generator=method.generator, device=method.generator.device)[:bs]
        j = torch.randperm(n, generator=method.generator, device=method.generator.device)[:bs]
        yield y_all[i], y_all[j]


def _loader_batches(method: "Method", dataset: Dataset, rank: int, world: int, num_workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Minibatches streamed from a DataLoader: ``2 B`` items per step, split into ``y`` and ``y_ref``."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=method.seed, drop_last=True)
    bs = max(1, min(method.batch_size, len(sampler) // 2))
    loader = DataLoader(dataset, batch_sampler=StepBatches(sampler, bs, method.step), num_workers=num_workers,
                        pin_memory=method.device.type == "cuda")
    for batch in loader:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"the data set's items must be tensors (observations), got {type(batch).__name__}")
        batch = method._check_observations(batch.to(method.device, non_blocking=True))
        yield batch[:bs], batch[bs:]


def fit(
    method: "Method",
    observations: torch.Tensor | Dataset,
    n_steps: int,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    callback: Callable[["Method", dict[str, float]], None] | None = None,
    num_workers: int = 0,
) -> "Method":
    """Train a method on observations only (no ground truth), up to ``n_steps`` steps in total.

    Parameters
    ----------
    method : Method
    observations : torch.Tensor or torch.utils.data.Dataset
        ``(N, D, H, W)`` observed subtomograms (``(N, D, W)`` images in 2D),
        moved to the method's device once; or a data set whose items are
        ``(D, H, W)`` observations, streamed to the device batch by batch
        (:class:`cryolearn.data.MRCDataset`, :class:`cryolearn.data.SubtomogramDataset`).
    n_steps : int
        Total number of steps: a method restored from a checkpoint at step
        ``s`` trains ``n_steps - s`` more.
    progress : bool
        Show a tqdm bar with the current losses.
    checkpoint : path, optional
        If given, the state is saved there every ``checkpoint_every`` steps
        and at the end (atomically), and training resumes from it when the
        file exists.
    checkpoint_every : int
    callback : callable, optional
        Called as ``callback(method, losses)`` after each step.
    num_workers : int
        Worker processes of the DataLoader (data sets only; 0 reads in this process).

    Returns
    -------
    Method
        ``method``, trained.

    Raises
    ------
    ValueError
        If the observations do not match the mask or contain NaN/Inf (a data
        set's batches are checked as they arrive), or a data set (a rank's
        shard, under DDP) holds fewer than two observations.

    Notes
    -----
    Minibatches. From a tensor, each step draws ``y`` and the independent
    reference minibatch ``y_ref`` as the first ``batch_size`` entries of two
    ``torch.randperm`` on the method's generator (then the method's own
    draws follow on the same generator). From a data set, each step takes
    ``2 batch_size`` items of an epoch-wise permutation seeded by the
    method's seed (a :class:`torch.utils.data.DistributedSampler`, which
    also gives each rank its own shard under DDP): the first half is ``y``,
    the second ``y_ref``; the batches are a function of the step, so a
    resumed run continues exactly. ``batch_size`` is lowered to half the
    (shard's) size when that is smaller.

    DDP. Under ``torchrun`` (a process group of ``world_size > 1`` set up by
    :func:`cryolearn.training.init_distributed`), every process calls
    :func:`fit` with the same observations; each trainable module is trained
    through a DistributedDataParallel wrapper
    (:func:`cryolearn.training.wrap`), so the parameters start as rank 0's
    and every optimiser step uses the gradient averaged over processes. Rank
    ``r`` draws its own rotations and noise (and, from a tensor, its own
    minibatches) with a generator seeded ``seed + 1 + r`` (rank 0 draws
    exactly as a single process would): the global batch is ``world_size *
    batch_size``. The history holds each rank's own losses and ``callback``
    runs on every rank. Only rank 0 shows the bar and writes checkpoints, and
    all ranks wait for the write. A resumed run restores rank 0's generator;
    the other ranks reseed theirs with ``seed + 1 + r + world_size * step``
    whenever :func:`fit` starts (so a generator made earlier, e.g. by
    ``reconstruct``, is not shared). Outside :func:`fit` the modules are the
    unwrapped ones, and the checkpoint format is the same as on one process.
    """
    rank, world = get_rank(), get_world_size()
    streaming = not isinstance(observations, torch.Tensor)
    if streaming:
        if not isinstance(observations, Dataset):
            raise TypeError(f"observations must be a tensor or a torch.utils.data.Dataset, got {type(observations).__name__}")
        if len(observations) < 2 * world:
            raise ValueError(f"a data set of {len(observations)} observations cannot give {world} process(es) two each")
    else:
        y_all = method._check_observations(observations).to(method.device)
    if method.generator is None:
        method.generator = torch.Generator(device=method.device).manual_seed(method.seed + 1 + rank)
    if checkpoint is not None and Path(checkpoint).exists():
        method.load(checkpoint)
    if rank > 0:  # a checkpoint, or an earlier reconstruct, left rank 0's draws here: draw other minibatches
        method.generator.manual_seed(method.seed + 1 + rank + world * method.step)
    batches = _loader_batches(method, observations, rank, world, num_workers) if streaming else _tensor_batches(method, y_all)
    raw = method._modules()
    for name, m in raw.items():  # DDP wrappers while training (the modules themselves on one process)
        setattr(method, name, wrap(m))
    try:
        bar = tqdm(range(method.step, n_steps), disable=not progress or rank != 0, desc=method.name, leave=False)
        for _ in bar:
            y, y_ref = next(batches)
            for m in method._modules().values():
                m.train()
            losses = method.training_step(y, y_ref)
            method.step += 1
            method.history.append({"step": method.step, **losses})
            if progress and rank == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()})
            if callback is not None:
                callback(method, losses)
            if checkpoint is not None and (method.step % checkpoint_every == 0 or method.step == n_steps):
                if rank == 0:
                    method.save(checkpoint)
                barrier()
    finally:
        batches.close()
        for name, m in raw.items():
            setattr(method, name, m)
    for m in raw.values():
        m.eval()
    return method

