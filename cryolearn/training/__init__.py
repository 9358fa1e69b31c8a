"""Training machinery, apart from the methods' mathematics.

- :mod:`~cryolearn.training.trainer`: :func:`fit`, the loop behind
  :meth:`cryolearn.methods.Method.fit` (minibatches from a tensor or a
  streamed :class:`torch.utils.data.Dataset`, progress bar, history,
  callback, checkpoint cadence, DDP wrapping), and :class:`StepBatches`.
- :mod:`~cryolearn.training.checkpoint`: :func:`save_checkpoint` (atomic,
  data only) and :func:`load_checkpoint` (``torch.load(...,
  weights_only=True)``, RNG states kept on the CPU).
- :mod:`~cryolearn.training.distributed`: :func:`init_distributed`,
  :func:`wrap`, :func:`unwrap` and the rank helpers for ``torchrun``.
"""

from .checkpoint import atomic_save, load_checkpoint, save_checkpoint
from .distributed import (
    DistributedInfo,
    barrier,
    cleanup,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    unwrap,
    wrap,
)
from .trainer import StepBatches, fit

__all__ = [
    "DistributedInfo",
    "StepBatches",
    "atomic_save",
    "barrier",
    "cleanup",
    "fit",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "save_checkpoint",
    "unwrap",
    "wrap",
]
