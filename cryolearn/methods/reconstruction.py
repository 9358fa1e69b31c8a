"""What ``reconstruct`` returns: :class:`Reconstruction` (mean, samples, std, diagnostics), and its MRC output."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.mrc import write_reconstruction

__all__ = ["Reconstruction"]


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
        folder, voxel_size, prefix, n_samples, overwrite
            As :func:`cryolearn.data.write_reconstruction`, which writes
            :attr:`mean`, :attr:`std` and :attr:`samples`: the output folder,
            Angstrom per voxel, a file-name prefix, how many posterior
            samples to write per observation, and whether to replace files.

        Returns
        -------
        list of pathlib.Path
            The files written, named as by
            :func:`cryolearn.data.write_reconstruction`.

        Raises
        ------
        FileExistsError, ValueError
            As :func:`cryolearn.data.write_reconstruction`.
        """
        return write_reconstruction(folder, self.mean, voxel_size, std=self.std, samples=self.samples, prefix=prefix,
                                    n_samples=n_samples, overwrite=overwrite)
