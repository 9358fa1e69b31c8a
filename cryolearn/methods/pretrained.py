"""The reference 3D set-up and the committed weights (the reference set-up of the book's CryoGEN-II chapter and README.md (committed weights)).

3D training is heavy on a CPU, so the 3D sections of the chapters load weights
trained by :func:`train_reference` (run by ``data/train_models.py``) and
committed under ``data/models/`` with a provenance record. A chapter retrains
in the active profile when ``CRYOLEARN_TRAIN=1``; CI always runs the training
path in ``quick``.

The set-up follows the reference set-up of the book's CryoGEN-II chapter: 32^3 boxes cropped from the 64^3 maps of
``data/`` (12 Angstrom per voxel), random orientations, tilt range +-60
degrees, SNR 1 with masked noise, quarter turns about X and Z in the rotation
proxy; structures 3P3W and 6FLR (two forms of one protein) are held out.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import SubtomogramDataset, load_structure_maps, simulate_subtomograms, split_by_structure
from ..data.atomic import atomic_write
from ..data.structures import data_root
from ..metrics import normalized_cross_correlation, relative_wedge_error
from ..physics import missing_wedge_mask, quarter_turns_xz
from .base import Method, get_method

__all__ = ["ReferenceSetup", "load_pretrained", "reference_data", "score", "save_pretrained", "train_reference"]


@dataclass
class ReferenceSetup:
    """The data and training sizes of the reference 3D run.

    Attributes
    ----------
    box : int
        Box side (voxels) after Fourier cropping the 64^3 maps.
    tilt_range : tuple of float
        Degrees.
    snr : float
        ``var(x) / sigma^2``.
    n_train, n_test : int
        Simulated subtomograms before the split by structure (the test set
        keeps only the held-out structures).
    test_structures : tuple of str
        Held-out complexes.
    seed : int
    """

    box: int = 32
    tilt_range: tuple[float, float] = (-60.0, 60.0)
    snr: float = 1.0
    n_train: int = 384
    n_test: int = 96
    test_structures: tuple[str, ...] = ("3p3w", "6flr")
    seed: int = 0
    method_kwargs: dict[str, Any] = field(default_factory=dict)


def reference_data(setup: ReferenceSetup, device: torch.device | str | None = None) -> tuple[SubtomogramDataset, SubtomogramDataset]:
    """Simulate the training set (seen structures) and the test set (held-out structures).

    Parameters
    ----------
    setup : ReferenceSetup
    device : torch.device or str, optional
        Where the maps and the data sets live.

    Returns
    -------
    (SubtomogramDataset, SubtomogramDataset)
        Training observations of the seen complexes and test observations of
        the held-out ones (ground truth kept for scoring only).
    """
    maps = load_structure_maps(device=device)
    kw = dict(box=setup.box, tilt_range=setup.tilt_range, snr=setup.snr)
    train, _ = split_by_structure(simulate_subtomograms(maps, n=setup.n_train, seed=setup.seed, **kw), test=setup.test_structures)
    _, test = split_by_structure(simulate_subtomograms(maps, n=setup.n_test, seed=setup.seed + 1000, **kw), test=setup.test_structures)
    return train, test


def score(method: Method, ds: SubtomogramDataset) -> dict[str, float]:
    """Relative error inside the missing wedge and correlation with the truth, against no restoration.

    Parameters
    ----------
    method : Method
        A trained method.
    ds : SubtomogramDataset
        Observations with ground truth.

    Returns
    -------
    dict
        ``wedge_error`` and ``ncc`` of the restoration, ``wedge_error_baseline``
        and ``ncc_baseline`` of the observation itself (the book's appendix on notation and conventions (metrics) and the reference set-up of the book's CryoGEN-II chapter).
    """
    y, x = ds.observations.to(method.device), ds.ground_truth.to(method.device)
    x_hat = method.predict(y)
    mask = ds.mask.to(method.device)
    return {
        "wedge_error": relative_wedge_error(x_hat, x, mask, pooled=True).item(),
        "wedge_error_baseline": relative_wedge_error(y, x, mask, pooled=True).item(),
        "ncc": normalized_cross_correlation(x_hat, x).mean().item(),
        "ncc_baseline": normalized_cross_correlation(y, x).mean().item(),
    }


def _build(name: str, setup: ReferenceSetup, train: SubtomogramDataset, **kwargs: Any) -> Method:
    kw = dict(sigma=float(train.sigma.mean()), rotations=quarter_turns_xz(), seed=setup.seed)
    kw.update(setup.method_kwargs)
    kw.update(kwargs)
    return get_method(name, mask=train.mask, **kw)


def train_reference(
    name: str,
    n_steps: int,
    setup: ReferenceSetup | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    **kwargs: Any,
) -> tuple[Method, dict[str, float]]:
    """Train a method on the reference 3D set-up and score it on held-out structures.

    Parameters
    ----------
    name : str
        Method name for :func:`cryolearn.methods.get_method`.
    n_steps : int
        Training steps.
    setup : ReferenceSetup, optional
        Sizes; default :class:`ReferenceSetup()`.
    device : torch.device or str, optional
    progress : bool
        tqdm bar.
    checkpoint : path, optional
        Resumable checkpoint (see :meth:`Method.fit`).
    **kwargs
        Method arguments (``batch_size``, ``lam``, ``base_channels``, ...).

    Returns
    -------
    (Method, dict)
        The trained method (on ``device``) and :func:`score` on the held-out set.
    """
    setup = setup or ReferenceSetup()
    train, test = reference_data(setup, device=device)
    method = _build(name, setup, train, **kwargs)
    if device is not None:
        method.to(device)
    method.fit(train.observations.to(method.device), n_steps, progress=progress, checkpoint=checkpoint, checkpoint_every=10)
    return method, score(method, test)


def _models_dir(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else data_root() / "models"


def save_pretrained(method: Method, setup: ReferenceSetup, provenance: dict[str, Any], root: str | os.PathLike | None = None) -> Path:
    """Write ``<name>_3d.pt`` (network weights and configuration) and ``<name>_3d.json`` (provenance), atomically.

    Parameters
    ----------
    method : Method
        Trained method, built by :func:`train_reference`; its
        :attr:`~cryolearn.methods.Method.build_kwargs` (``sigma`` and the
        configuration) are saved to rebuild it.
    setup : ReferenceSetup
    provenance : dict
        Command, commit, device, wall time, final metrics.
    root : path, optional
        Folder; default ``data/models``.

    Returns
    -------
    pathlib.Path
        The weights file.
    """
    folder = _models_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "method": method.name,
        "setup": asdict(setup),
        "config": method.build_kwargs,
        "modules": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in method._modules().items()},
        "step": method.step,
        "history": method.history,
    }
    target = folder / f"{method.name}_3d.pt"
    atomic_write(target, lambda p: torch.save(state, p))
    atomic_write(folder / f"{method.name}_3d.json", lambda p: Path(p).write_text(json.dumps(provenance, indent=1) + "\n"))
    return target


def load_pretrained(name: str, device: torch.device | str | None = None, root: str | os.PathLike | None = None) -> tuple[Method, ReferenceSetup, dict[str, Any]]:
    """Load committed 3D weights of a method.

    Parameters
    ----------
    name : str
        ``"cryogen2"``, ...
    device : torch.device or str, optional
    root : path, optional
        Folder; default ``data/models``.

    Returns
    -------
    (Method, ReferenceSetup, dict)
        The method with its trained networks (training history included),
        the set-up it was trained on, and its provenance record.

    Raises
    ------
    FileNotFoundError
        If no weights were committed for ``name``.
    """
    folder = _models_dir(root)
    path = folder / f"{name}_3d.pt"
    if not path.exists():
        raise FileNotFoundError(f"no committed 3D weights for {name!r} at {path}; train them with data/train_models.py")
    state = torch.load(path, map_location="cpu", weights_only=True)
    setup = ReferenceSetup(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["setup"].items()})
    mask = missing_wedge_mask((setup.box,) * 3, setup.tilt_range)
    method = get_method(state["method"], mask=mask, **state["config"])
    for k, m in method._modules().items():
        m.load_state_dict(state["modules"][k])
        m.eval()
    method.step, method.history = state["step"], state["history"]
    if device is not None:
        method.to(device)
    provenance = json.loads((folder / f"{name}_3d.json").read_text())
    return method, setup, provenance
