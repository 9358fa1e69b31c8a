"""The four methods, the no-restoration baseline and the trivial square measured side by side.

One row per (method or ``"baseline"``, dimension, box, tilt range, SNR) on
held-out data: the relative error inside the missing wedge (the number
that says whether the wedge was restored), the FSC 0.143 crossings overall
and inside the wedge, PSNR, NCC, the calibration of the central 50% and 90%
intervals, the mean posterior spread inside and outside the wedge, and the
costs (training time, reconstruction time per subtomogram, peak memory,
measured with :func:`cryolearn.experiments.measure`). Every score comes from
:mod:`cryolearn.metrics`. Book chapter: "Side by side: the four methods
measured".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import torch

from ..methods import Method, PosteriorMethod, Reconstruction, available_methods, estimate_beta, get_method
from ..metrics import (
    FSCResult,
    calibration_from_samples,
    fourier_shell_correlation,
    normalized_cross_correlation,
    pointwise_square_baseline,
    posterior_spread_in_out,
    psnr,
    relative_wedge_error,
    std_error_bins,
)
from ..physics import check_tilt_range, quarter_turns_xz, rfft_shape
from .timing import Measurement, format_bytes, measure

__all__ = ["COLUMNS", "ComparisonTable", "compare", "make_methods", "train"]

#: Row fields, in table order, with their meaning and unit.
COLUMNS: dict[str, str] = {
    "method": "method name, or 'baseline' (the observation itself, no restoration)",
    "dim": "2 (images) or 3 (subtomograms)",
    "box": "edge of the image or box (voxels)",
    "tilt": "tilt range (degrees), a (min, max) pair",
    "snr": "signal-to-noise ratio var(x) / sigma^2 of the observations",
    "n_test": "held-out observations scored",
    "wedge_error": "relative error inside the missing wedge, pooled over the test set (0 perfect, 1 nothing restored)",
    "fsc_overall": "FSC 0.143 crossing of the mean FSC curve (1/Angstrom, or 1/voxel without a voxel size)",
    "res_overall": "1 / fsc_overall (Angstrom, or voxels)",
    "fsc_overall_crossed": "False: the curve stays above 0.143 up to Nyquist (fsc_overall is then Nyquist, a lower bound)",
    "fsc_wedge": "FSC 0.143 crossing of the mean FSC curve inside the missing wedge (as fsc_overall)",
    "res_wedge": "1 / fsc_wedge (Angstrom, or voxels)",
    "fsc_wedge_crossed": "as fsc_overall_crossed, inside the wedge",
    "fsc_unit": "unit of fsc_overall and fsc_wedge: '1/Angstrom' or '1/voxel'",
    "psnr": "peak signal-to-noise ratio against the truth, mean over the test set (dB)",
    "ncc": "normalised cross-correlation with the truth, mean over the test set",
    "cover50": "fraction of true voxels inside the central 50% interval (ideal 0.5; 0 for a point estimate)",
    "cover90": "fraction of true voxels inside the central 90% interval (ideal 0.9; 0 for a point estimate)",
    "std_wedge": "mean posterior std per Fourier coefficient inside the wedge (voxel-value unit; 0 for a point estimate)",
    "std_measured": "mean posterior std per Fourier coefficient in the measured region (voxel-value unit)",
    "ence": "expected normalised calibration error of the voxel-wise std over ten std bins (Levi et al. 2019; 0 perfect; nan for a point estimate)",
    "decile_ratio": "RMSE of the highest-std tenth of voxels over that of the lowest (1: the std map does not rank voxels by error; nan for a point estimate)",
    "n_samples": "posterior samples per observation (1: a point estimate)",
    "train_s": "training wall time (s); 0 for the baseline, nan when not measured here",
    "train_peak": "peak memory of training (bytes); 0 for the baseline, nan when not measured here",
    "recon_s": "reconstruction wall time per observation (s)",
    "recon_peak": "peak memory of reconstructing the test set (bytes)",
}

_KEY = ("method", "dim", "box", "tilt", "snr")


def _fmt_tilt(t: tuple[float, float]) -> str:
    return f"±{t[1]:g}°" if t[0] == -t[1] else f"{t[0]:g}°..{t[1]:g}°"


def _fmt_fsc(r: Mapping[str, Any], kind: str) -> str:
    length = "Å" if r["fsc_unit"] == "1/Angstrom" else ("px" if r["dim"] == 2 else "voxels")
    return f"{r[f'fsc_{kind}']:.3g}{'' if r[f'fsc_{kind}_crossed'] else '*'} ({r[f'res_{kind}']:.3g} {length})"


def _fmt_bytes(n: float) -> str:
    return "–" if math.isnan(n) else format_bytes(n)


def _fmt_seconds(s: float) -> str:
    return "–" if math.isnan(s) else f"{s:.3g}"


# Markdown columns: header -> how to print a row.
_MARKDOWN = {
    "method": lambda r: r["method"],
    "dim": lambda r: f"{r['dim']}D {r['box']}",
    "tilt": lambda r: _fmt_tilt(r["tilt"]),
    "SNR": lambda r: f"{r['snr']:g}",
    "wedge error": lambda r: f"{r['wedge_error']:.3f}",
    "FSC 0.143 overall": lambda r: _fmt_fsc(r, "overall"),
    "FSC 0.143 wedge": lambda r: _fmt_fsc(r, "wedge"),
    "PSNR (dB)": lambda r: f"{r['psnr']:.1f}",
    "NCC": lambda r: f"{r['ncc']:.3f}",
    "cover 50/90": lambda r: f"{r['cover50']:.2f} / {r['cover90']:.2f}",
    "std wedge / measured": lambda r: f"{r['std_wedge']:.3f} / {r['std_measured']:.3f}",
    "ENCE / decile ratio": lambda r: "–" if math.isnan(r["ence"]) else f"{r['ence']:.2f} / {r['decile_ratio']:.2f}",
    "train (s)": lambda r: _fmt_seconds(r["train_s"]),
    "recon (s/obs)": lambda r: f"{r['recon_s']:.2g}",
    "peak mem train / recon": lambda r: f"{_fmt_bytes(r['train_peak'])} / {_fmt_bytes(r['recon_peak'])}",
}


@dataclass
class ComparisonTable:
    """Rows of side-by-side measurements, with the FSC curves behind them.

    Attributes
    ----------
    rows : list of dict
        One dict per (method, dimension, box, tilt range, SNR) with the
        fields of :data:`COLUMNS` (their meaning and units are documented there).
    curves : dict
        ``(method, dim, box, tilt, snr) -> {"overall": FSCResult, "wedge": FSCResult}``:
        the per-observation FSC curves against the truth (``fsc (N, n_shells)``),
        for :func:`cryolearn.viz.plot_fsc`.
    examples : dict
        ``(method, dim, box, tilt, snr) -> torch.Tensor``: the restoration (mean)
        of the first test observation, ``(D, H, W)`` or ``(D, W)``, for
        :func:`cryolearn.viz.orthoslices`; the baseline's is the observation.

    Notes
    -----
    Tables of several settings are joined with ``+``. Source: book chapter
    "Side by side: the four methods measured".
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[tuple, dict[str, FSCResult]] = field(default_factory=dict)
    examples: dict[tuple, torch.Tensor] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The row fields, in order (see :data:`COLUMNS`)."""
        return list(COLUMNS)

    @staticmethod
    def key(row: Mapping[str, Any]) -> tuple:
        """``(method, dim, box, tilt, snr)`` of a row: the key of :attr:`curves` and :attr:`examples`."""
        return tuple(row[k] for k in _KEY)

    def __add__(self, other: "ComparisonTable") -> "ComparisonTable":
        return ComparisonTable(self.rows + other.rows, {**self.curves, **other.curves}, {**self.examples, **other.examples})

    def select(self, **match: Any) -> "ComparisonTable":
        """The rows whose fields equal every ``match`` value, with their curves and examples.

        Parameters
        ----------
        **match
            Column values, e.g. ``dim=3, snr=1.0, tilt=(-60.0, 60.0)``.

        Returns
        -------
        ComparisonTable

        Raises
        ------
        ValueError
            If a key is not a column of :data:`COLUMNS`.
        """
        unknown = set(match) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown column(s) {sorted(unknown)}; columns are {list(COLUMNS)}")
        rows = [r for r in self.rows if all(r[k] == v for k, v in match.items())]
        keys = {self.key(r) for r in rows}
        return ComparisonTable(rows, {k: v for k, v in self.curves.items() if k in keys},
                               {k: v for k, v in self.examples.items() if k in keys})

    def row(self, **match: Any) -> dict[str, Any]:
        """The single row matching ``match``.

        Parameters
        ----------
        **match
            Column values, as :meth:`select`.

        Returns
        -------
        dict
            The row (fields of :data:`COLUMNS`).

        Raises
        ------
        ValueError
            If a key is not a column, or no row or more than one row matches.
        """
        rows = self.select(**match).rows
        if len(rows) != 1:
            raise ValueError(f"{len(rows)} rows match {match}, expected exactly one")
        return rows[0]

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured markdown (e.g. for ``IPython.display.Markdown``).

        Returns
        -------
        str
            One line per row. FSC cells read ``frequency (resolution)``, in
            1/Angstrom and Angstrom when the voxel size is known, else in
            1/voxel and voxels ("px" in 2D); ``*`` marks a curve that never
            drops below 0.143 (the Nyquist frequency, a lower bound). ``–``
            marks a cost not measured here.
        """
        lines = ["| " + " | ".join(_MARKDOWN) + " |", "|" + "---|" * len(_MARKDOWN)]
        lines += ["| " + " | ".join(f(r) for f in _MARKDOWN.values()) + " |" for r in self.rows]
        return "\n".join(lines)


def make_methods(
    mask: torch.Tensor,
    sigma: float,
    names: Sequence[str] = ("cryogen1", "cryogen2", "cryowgen1", "cryowgen2"),
    **common: Any,
) -> dict[str, Method]:
    """Build the methods with the hyper-parameters their chapters found to work.

    Parameters
    ----------
    mask : torch.Tensor
        Half-grid measured-region mask, ``(D, W//2+1)`` or ``(D, H, W//2+1)``;
        the methods are built on its device.
    sigma : float
        Noise standard deviation of the observations.
    names : sequence of str
        Method names (:func:`cryolearn.methods.available_methods`).
    **common
        Arguments for every method (``batch_size``, ``base_channels``,
        ``seed``, ...), which override the defaults below; a dict under a
        method's name (``cryowgen2=dict(n_chains=4)``) goes to that method
        only and overrides both.

    Returns
    -------
    dict of str to Method
        Untrained methods by name, on ``mask.device``.

    Raises
    ------
    ValueError
        If a name, or the name of a per-method dict, is not a method.

    Notes
    -----
    Defaults (book chapters 6-9): CryoGEN-I its own defaults (``lam`` is a
    per-voxel weight, the same for images and volumes of any size);
    CryoGEN-II ``lam = 1`` with exact OT, and the same ``lam`` for the
    samplers (the three transport-based methods on an equal footing; the
    package's own default is 4 for all three); CryoWGEN-I/II ``gamma = 1`` (the Bayesian posterior), ``w = 0`` and
    ``beta = 1`` during training (the in-wedge power of a unit-variance
    volume, i.e. no knowledge), replaced after training by the rotation-proxy
    estimate in :func:`train`; CryoWGEN-II chains of 120 steps with a burn-in
    of 60, every 5th state kept. In 3D the rotation proxy uses the quarter
    turns about X and Z (the reference set-up of the book's CryoGEN-II chapter) unless ``rotations`` is given.
    """
    defaults = {
        "cryogen1": dict(),
        "cryogen2": dict(lam=1.0),
        "cryowgen1": dict(lam=1.0, gamma=1.0, beta=1.0, n_samples=64),
        "cryowgen2": dict(lam=1.0, gamma=1.0, beta=1.0, n_chains=8, n_steps=120, burn_in=60, thin=5),
    }
    per_method = {k: common.pop(k) for k in list(common) if isinstance(common[k], dict)}
    unknown = sorted(set(per_method) - set(available_methods()))
    if unknown:
        raise ValueError(f"per-method arguments for unknown method(s) {unknown}; available: {available_methods()}")
    if mask.ndim == 3:
        common.setdefault("rotations", quarter_turns_xz())
    return {
        name: get_method(name, mask=mask, sigma=sigma, **{**defaults.get(name, {}), **common, **per_method.get(name, {})}).to(mask.device)
        for name in names
    }


def train(methods: Mapping[str, Method], observations: torch.Tensor, n_steps: int, progress: bool = False) -> dict[str, Measurement]:
    """Train each method on observations only, timing it and recording its peak memory.

    Parameters
    ----------
    methods : mapping of str to Method
        Untrained (or partly trained) methods, e.g. from :func:`make_methods`.
    observations : torch.Tensor
        ``(N, D, H, W)`` (or ``(N, D, W)``) training observations, on the
        methods' device. No ground truth.
    n_steps : int
        Training steps of every method (the same budget for all).
    progress : bool
        Show tqdm bars.

    Returns
    -------
    dict of str to Measurement
        Per method, :func:`cryolearn.experiments.measure` of the training (the
        ``result`` is the trained method).

    Notes
    -----
    For the samplers (:class:`cryolearn.methods.PosteriorMethod`) the timed
    call ends by setting ``beta`` from the rotation proxy on the training
    observations (:func:`cryolearn.methods.estimate_beta`, the book's CryoWGEN-II chapter (beta from the rotation proxy)),
    as a user without ground truth would.
    """

    def fit(m: Method) -> Method:
        m.fit(observations, n_steps, progress=progress)
        if isinstance(m, PosteriorMethod):
            m.beta = estimate_beta(m, observations).beta
        return m

    return {name: measure(fit, m, device=observations.device) for name, m in methods.items()}


def _score(rec: Reconstruction, x: torch.Tensor, mask: torch.Tensor, voxel_size: float | None) -> tuple[dict[str, Any], dict[str, FSCResult]]:
    """The accuracy and calibration fields of one row, and the FSC curves."""
    nd = mask.ndim
    mean = rec.mean
    # A point estimate is a Dirac family: two identical samples.
    samples = rec.samples if rec.samples is not None else mean.unsqueeze(0).expand(2, *mean.shape)
    curves = {"overall": fourier_shell_correlation(mean, x, voxel_size=voxel_size, ndim=nd),
              "wedge": fourier_shell_correlation(mean, x, mask=~mask, voxel_size=voxel_size)}
    out: dict[str, Any] = {"wedge_error": relative_wedge_error(mean, x, mask, pooled=True).item()}
    for name, r in curves.items():
        c = replace(r, fsc=r.fsc.mean(0)).resolution_at(0.143)  # crossing of the mean curve
        out[f"fsc_{name}"], out[f"res_{name}"], out[f"fsc_{name}_crossed"] = c.frequency.item(), c.resolution.item(), bool(c.crossed)
        out["fsc_unit"] = c.unit
    cover = calibration_from_samples(samples, x, (0.5, 0.9), ndim=nd).mean(0)
    spread = posterior_spread_in_out(samples, mask)
    out.update(
        psnr=psnr(mean, x, ndim=nd).mean().item(),
        ncc=normalized_cross_correlation(mean, x, ndim=nd).mean().item(),
        cover50=cover[0].item(),
        cover90=cover[1].item(),
        std_wedge=spread.missing.mean().item(),
        std_measured=spread.measured.mean().item(),
        n_samples=1 if rec.samples is None else rec.samples.shape[0],
        ence=math.nan,
        decile_ratio=math.nan,
    )
    if rec.std is not None and bool((rec.std > 0).any()):
        bins = std_error_bins(mean, rec.std, x)
        out.update(ence=bins.ence, decile_ratio=bins.decile_ratio)
    return out, curves


def compare(
    methods: Mapping[str, Any],
    y: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor,
    tilt_range: Sequence[float],
    snr: float,
    voxel_size: float | None = None,
    training: Mapping[str, Measurement] | None = None,
    baseline: bool = True,
    square_baseline: bool = True,
) -> ComparisonTable:
    """Reconstruct held-out observations with each method and score them against the truth.

    Parameters
    ----------
    methods : mapping of str to Method
        Trained methods by row name (anything with ``reconstruct(y) ->
        Reconstruction`` will do).
    y : torch.Tensor
        ``(N, D, H, W)`` (or ``(N, D, W)``) held-out observations, ``N >= 1``.
    x : torch.Tensor
        ``(N, D, H, W)`` their ground truth (scoring only).
    mask : torch.Tensor
        Half-grid measured-region mask of the observations.
    tilt_range : (float, float)
        Degrees; recorded in the rows.
    snr : float
        Recorded in the rows.
    voxel_size : float, optional
        Angstrom per voxel: FSC crossings in 1/Angstrom and Angstrom;
        without it, in 1/voxel and voxels.
    training : mapping of str to Measurement, optional
        What :func:`train` returned; methods missing from it get ``nan``
        training costs.
    baseline : bool
        Add the row ``"baseline"``: the observation itself (no restoration,
        zero cost; its wedge error is 1 with masked noise).
    square_baseline : bool
        Add the row ``"square"`` after it: the trivial baseline a method must
        beat, :func:`cryolearn.metrics.pointwise_square_baseline` (the squared
        observation with one scale fitted on the truth).

    Returns
    -------
    ComparisonTable
        One row per method (baseline first), the FSC curves and the first
        observation's restorations.

    Raises
    ------
    ValueError
        If ``y`` and ``x`` differ in shape, do not match the mask, or hold
        no observation.

    Notes
    -----
    Every score comes from :mod:`cryolearn.metrics` and is computed on the
    device of ``y``: the in-wedge error pooled over the test set (as in
    the reference set-up of the CryoGEN-II chapter); the 0.143 crossings of the mean FSC curve over the test set,
    overall and restricted to the missing wedge; PSNR and NCC averaged over
    the test set; the calibration (:func:`cryolearn.metrics.calibration_from_samples`)
    and the posterior spread in and out of the wedge
    (:func:`cryolearn.metrics.posterior_spread_in_out`) from the samples.
    A method without samples (CryoGEN-I/II, the baseline) is scored as a
    Dirac family at its estimate: its intervals have zero width, so its
    coverage is the fraction of voxels it gets exactly right (0 in practice)
    and its spread is 0, which keeps every column finite. Reconstruction
    time is the wall time of ``reconstruct`` on the whole test set divided
    by ``N``; peak memory as :func:`cryolearn.experiments.measure`. Source: book
    chapter "Side by side" and the appendix on notation and conventions (metrics).
    """
    nd = mask.ndim
    if y.shape != x.shape or y.ndim != nd + 1 or y.shape[0] < 1:
        raise ValueError(f"y {tuple(y.shape)} and x {tuple(x.shape)} must be one batch (N, ...) of {nd}D volumes")
    if rfft_shape(y.shape[1:]) != tuple(mask.shape):
        raise ValueError(f"observations of shape {tuple(y.shape)} do not match the mask's half grid {tuple(mask.shape)}")
    mask = mask.to(y.device)
    n = y.shape[0]
    base = {"dim": nd, "box": y.shape[-1], "tilt": check_tilt_range(tilt_range), "snr": float(snr), "n_test": n}
    training = training or {}
    runs: dict[str, tuple[Reconstruction, dict[str, float]]] = {}
    if baseline:
        runs["baseline"] = (Reconstruction(mean=y), dict(train_s=0.0, train_peak=0.0, recon_s=0.0, recon_peak=0.0))
    if square_baseline:
        runs["square"] = (Reconstruction(mean=pointwise_square_baseline(y, x, ndim=nd)),
                          dict(train_s=0.0, train_peak=0.0, recon_s=0.0, recon_peak=0.0))
    for name, method in methods.items():
        m = measure(method.reconstruct, y, device=y.device)
        t = training.get(name)
        costs = dict(train_s=math.nan if t is None else t.seconds, train_peak=math.nan if t is None else float(t.peak_bytes),
                     recon_s=m.seconds / n, recon_peak=float(m.peak_bytes))
        runs[name] = (m.result, costs)
    table = ComparisonTable()
    for name, (rec, costs) in runs.items():
        scores, curves = _score(rec, x, mask, voxel_size)
        row = {"method": name, **base, **scores, **costs}
        table.rows.append({k: row[k] for k in COLUMNS})
        table.curves[table.key(row)] = curves
        table.examples[table.key(row)] = rec.mean[0].detach()
    return table
