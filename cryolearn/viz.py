"""Figures for the book: orthoslices, Fourier-space views, FSC curves, widgets.

Every function builds a :class:`matplotlib.figure.Figure` directly (no
``pyplot``, no global state, never ``show``) and returns it; a notebook shows a
returned figure as its cell output, a script saves it with ``fig.savefig``.
Volumes are ``(D, H, W) = (z, y, x)`` as in the book's appendix on notation and conventions (beam along Z, tilt
axis Y), given as torch tensors or numpy arrays; images are drawn with
``origin="lower"`` so that z (or k_z) points up.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .metrics import FSCResult, StdErrorBins
from .physics import rfft_shape

__all__ = ["orthoslices", "fourier_slices", "plot_fsc", "plot_reliability", "interactive"]

_PLANES = ("XY", "XZ", "YZ")


def _volumes(volumes: Any, name: str) -> list[np.ndarray]:
    """One volume ``(D, H, W)``, a stack ``(N, D, H, W)`` or a sequence of volumes -> list of arrays."""
    if isinstance(volumes, (torch.Tensor, np.ndarray)):
        arr = volumes.detach().cpu().numpy() if isinstance(volumes, torch.Tensor) else np.asarray(volumes)
        items = [arr] if arr.ndim == 3 else list(arr) if arr.ndim == 4 else None
        if items is None:
            raise ValueError(f"{name} must be one volume (D, H, W) or a stack (N, D, H, W), got shape {arr.shape}")
    else:
        items = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in volumes]
    if not items:
        raise ValueError(f"{name} is empty")
    for v in items:
        if v.ndim != 3:
            raise ValueError(f"every item of {name} must be a volume (D, H, W), got shape {v.shape}")
        if np.iscomplexobj(v):
            raise ValueError(f"{name} must be real (or bool masks), got dtype {v.dtype}")
    return items


def _central_planes(v: np.ndarray) -> list[np.ndarray]:
    """Central XY (z = D//2), XZ (y = H//2) and YZ (x = W//2) planes, each (vertical, horizontal)."""
    d, h, w = v.shape
    return [v[d // 2], v[:, h // 2, :], v[:, :, w // 2]]


def _grid(
    rows: list[list[np.ndarray]],
    extents: list[list[tuple[float, float, float, float]]],
    panel_titles: list[list[str]],
    axis_labels: Sequence[tuple[str, str]],
    cmap: str,
    clims: list[tuple[float, float]],
) -> Figure:
    """A rows x 3 grid of images with titles, axis labels and one colour range per row."""
    n = len(rows)
    fig = Figure(figsize=(9.0, 3.0 * n), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for r in range(n):
        vmin, vmax = clims[r]
        for c in range(3):
            ax = axes[r, c]
            ax.imshow(rows[r][c], origin="lower", extent=extents[r][c], cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
            ax.set_title(panel_titles[r][c], fontsize=9)
            ax.set_xlabel(axis_labels[c][0])
            ax.set_ylabel(axis_labels[c][1])
    return fig


def _row_titles(titles: Sequence[str] | None, planes: list[list[str]]) -> list[list[str]]:
    """Panel titles: the plane names of each row, the row's title before the first."""
    if titles is None:
        return planes
    if len(titles) != len(planes):
        raise ValueError(f"got {len(titles)} titles for {len(planes)} rows")
    return [[f"{t} | {row[0]}", *row[1:]] for t, row in zip(titles, planes)]


def _clims(rows: list[list[np.ndarray]], shared: bool) -> list[tuple[float, float]]:
    lims = [(float(min(p.min() for p in row)), float(max(p.max() for p in row))) for row in rows]
    if shared:
        lims = [(min(l[0] for l in lims), max(l[1] for l in lims))] * len(rows)
    return lims


def orthoslices(
    volumes: Any, titles: Sequence[str] | None = None, voxel_size: float | None = None, cmap: str = "gray",
    shared_scale: bool = False,
) -> Figure:
    """Three central orthogonal slices of each volume, one row per volume.

    Parameters
    ----------
    volumes : torch.Tensor, numpy.ndarray or sequence
        One volume ``(D, H, W)``, a stack ``(N, D, H, W)``, or a sequence of
        volumes (they may differ in shape).
    titles : sequence of str, optional
        One per volume, shown above the row's first panel.
    voxel_size : float, optional
        Voxel size in Angstrom: axes in Angstrom; otherwise in voxels.
    cmap : str
        Matplotlib colour map.
    shared_scale : bool
        False (default): each row spans its own volume's ``[min, max]`` over
        the three slices; True: one range for all rows, so intensities
        compare across volumes.

    Returns
    -------
    matplotlib.figure.Figure
        ``N x 3`` axes: XY (``z = D // 2``), XZ (``y = H // 2``), YZ
        (``x = W // 2``); z points up.

    Raises
    ------
    ValueError
        If an item is not a real 3D volume or the number of titles differs.

    Notes
    -----
    The XZ and YZ slices show the elongation along Z that the missing wedge
    causes (the tilt axis is Y). Source: the book's appendix on notation and conventions (axes); book
    chapter on the missing wedge.
    """
    vols = _volumes(volumes, "volumes")
    s = 1.0 if voxel_size is None else float(voxel_size)
    unit = "voxels" if voxel_size is None else "Å"
    rows, extents, planes = [], [], []
    for v in vols:
        d, h, w = v.shape
        rows.append([p.astype(np.float64) for p in _central_planes(v)])
        extents.append([(0, w * s, 0, h * s), (0, w * s, 0, d * s), (0, h * s, 0, d * s)])
        planes.append([f"XY (z = {d // 2})", f"XZ (y = {h // 2})", f"YZ (x = {w // 2})"])
    labels = [(f"x ({unit})", f"y ({unit})"), (f"x ({unit})", f"z ({unit})"), (f"y ({unit})", f"z ({unit})")]
    return _grid(rows, extents, _row_titles(titles, planes), labels, cmap, _clims(rows, shared_scale))


def _full_from_half(half: np.ndarray, w: int) -> np.ndarray:
    """Full unshifted grid ``(D, H, W)`` of a half-grid array ``(D, H, W//2+1)`` of a symmetric quantity."""
    d, h, _ = half.shape
    kz, ky, kx = np.arange(d)[:, None, None], np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    own = kx <= w // 2  # columns stored on the half grid; the others are mirrors of -k
    return half[np.where(own, kz, -kz % d), np.where(own, ky, -ky % h), np.where(own, kx, (w - kx) % w)]


def _freq_edges(n: int, voxel_size: float) -> tuple[float, float]:
    """Outer pixel edges of ``fftshift(fftfreq(n)) / voxel_size`` for ``imshow``'s extent."""
    return ((-(n // 2) - 0.5) / n / voxel_size, ((n - 1) // 2 + 0.5) / n / voxel_size)


def fourier_slices(
    volumes_or_masks: Any,
    titles: Sequence[str] | None = None,
    voxel_size: float | None = None,
    shape: Sequence[int] | None = None,
    rfft: bool = True,
    cmap: str = "magma",
    shared_scale: bool = False,
) -> Figure:
    """Central planes of the centred Fourier transform: where the missing wedge lives.

    Parameters
    ----------
    volumes_or_masks : torch.Tensor, numpy.ndarray or sequence
        Real volumes ``(D, H, W)`` (drawn as ``log(1 + |F(x)|)``, orthonormal
        FFT, ``fftshift``-ed) and/or bool Fourier masks (drawn as 0/1); one,
        a stack ``(N, ...)``, or a sequence mixing both.
    titles : sequence of str, optional
        One per row.
    voxel_size : float, optional
        Voxel size in Angstrom: frequencies in 1/Angstrom; else cycles/voxel.
    shape : sequence of int, optional
        Real-space shape ``(D, H, W)`` of half-grid masks, needed only for an
        odd ``W`` (default ``W = 2 (W_half - 1)``).
    rfft : bool
        True (default): bool masks are on the rfftn half grid
        ``(D, H, W // 2 + 1)`` (as :func:`cryolearn.physics.missing_wedge_mask`
        makes them) and are mirrored (``m(-k) = m(k)``) onto the full grid;
        False: they are already full unshifted grids ``(D, H, W)``.
    cmap : str
        Matplotlib colour map.
    shared_scale : bool
        One colour range for all rows (default: one per row).

    Returns
    -------
    matplotlib.figure.Figure
        ``N x 3`` axes: the planes ``k_z = 0`` (k_x across, k_y up),
        ``k_y = 0`` (k_x across, k_z up: the wedge is the empty double cone
        around the k_z axis) and ``k_x = 0`` (k_y across, k_z up: only the
        k_y axis is measured there).

    Raises
    ------
    ValueError
        If an item is not 3D, a mask does not fit ``shape``, or the number
        of titles differs.

    Notes
    -----
    Frequencies run from ``-floor(n/2)/n`` to ``(ceil(n/2) - 1)/n`` per axis
    (``fftshift(fftfreq(n))``), the zero frequency at index ``n // 2``.
    Source: the book's appendix on notation and conventions (geometry of the wedge).
    """
    items = _volumes(volumes_or_masks, "volumes_or_masks")
    s = 1.0 if voxel_size is None else float(voxel_size)
    unit = "1/voxel" if voxel_size is None else "1/Å"
    rows, extents = [], []
    for v in items:
        if v.dtype == bool:
            if rfft:
                full_shape = tuple(shape) if shape is not None else (*v.shape[:2], 2 * (v.shape[2] - 1))
                if len(full_shape) != 3 or v.shape != rfft_shape(full_shape):
                    raise ValueError(f"mask shape {v.shape} is not the half grid of shape {full_shape}")
                v = _full_from_half(v, full_shape[2])
            img = np.fft.fftshift(v.astype(np.float64))
        else:
            vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))
            f = torch.fft.fftn(vt, dim=(-3, -2, -1), norm="ortho")
            img = np.log1p(np.abs(np.fft.fftshift(f.numpy())))
        rows.append(_central_planes(img))
        (z0, z1), (y0, y1), (x0, x1) = (_freq_edges(n, s) for n in img.shape)
        extents.append([(x0, x1, y0, y1), (x0, x1, z0, z1), (y0, y1, z0, z1)])
    planes = ["k_z = 0", "k_y = 0", "k_x = 0"]
    kx, ky, kz = (f"k_{a} ({unit})" for a in "xyz")
    labels = [(kx, ky), (kx, kz), (ky, kz)]
    return _grid(rows, extents, _row_titles(titles, [planes] * len(items)), labels, cmap, _clims(rows, shared_scale))


def plot_fsc(
    results: FSCResult | Sequence[FSCResult],
    labels: Sequence[str] | None = None,
    thresholds: Sequence[float] = (0.5, 0.143),
    ax: Axes | None = None,
) -> Figure:
    """FSC curves on one plot, with threshold lines.

    Parameters
    ----------
    results : FSCResult or sequence of FSCResult
        From :func:`cryolearn.metrics.fourier_shell_correlation`. A batched
        result (``fsc (..., n_shells)``) is drawn as its mean over the batch
        with a band of one standard deviation.
    labels : sequence of str, optional
        One legend entry per result.
    thresholds : sequence of float
        Horizontal dashed lines (default 0.5 and 0.143).
    ax : matplotlib.axes.Axes, optional
        Draw into these axes (of an existing figure) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the plot (one axes when created here); the x axis
        is the spatial frequency in 1/Angstrom when the results know the
        voxel size, else in 1/voxel. Empty shells (``nan``) leave gaps.

    Raises
    ------
    ValueError
        If the labels do not match the results, or the results mix units.

    Notes
    -----
    Source: the book's appendix on notation and conventions (metrics).
    """
    results = [results] if isinstance(results, FSCResult) else list(results)
    if labels is not None and len(labels) != len(results):
        raise ValueError(f"got {len(labels)} labels for {len(results)} results")
    units = {r.unit for r in results}
    if len(units) != 1:
        raise ValueError(f"results mix frequency units {sorted(units)}; give all or none a voxel size")
    if ax is None:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.subplots()
    for i, r in enumerate(results):
        f = r.spatial_frequency.detach().cpu().numpy()
        c = r.fsc.detach().cpu().reshape(-1, r.fsc.shape[-1]).numpy()  # (batch, n_shells)
        mean = c.mean(0)
        line = ax.plot(f, mean, label=None if labels is None else labels[i])[0]
        if c.shape[0] > 1:
            sd = c.std(0)
            ax.fill_between(f, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    for t in thresholds:
        ax.axhline(t, color="gray", linestyle="--", linewidth=0.8)
        ax.annotate(f"{t:g}", (1.0, t), xycoords=("axes fraction", "data"), xytext=(2, 0), textcoords="offset points",
                    va="center", fontsize=8, color="gray")
    ax.set_xlabel("spatial frequency (" + ("1/Å" if results[0].voxel_size else "1/voxel") + ")")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    if labels is not None:
        ax.legend()
    return ax.figure


def _in_ipython() -> bool:
    """True inside an IPython shell or Jupyter kernel (also under nbconvert)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def interactive(fn: Callable[..., Figure], **sliders: Sequence[Any]) -> Figure:
    """Show a figure statically, then behind sliders when widgets are available.

    Parameters
    ----------
    fn : callable
        ``fn(**values) -> Figure``; called with one value per slider.
    **sliders : sequence
        For each keyword of ``fn``, the values the slider steps through
        (numbers or anything else, e.g. ``gamma=[0.1, 0.3, 1.0]``); the first
        value draws the static figure.

    Returns
    -------
    matplotlib.figure.Figure
        The static figure (drawn with the first values). It has already been
        displayed, so end the notebook line with ``;`` to avoid a second copy.

    Raises
    ------
    ValueError
        If a slider has no values or ``fn`` does not return a Figure.

    Notes
    -----
    In IPython or Jupyter the static figure is displayed as a PNG first, so
    the executed notebook (and the book rendered from it) shows it without a
    kernel; then, if ``ipywidgets`` is importable, the same figure is shown
    behind ``ipywidgets.interact`` with one ``SelectionSlider`` per keyword.
    Outside IPython nothing is displayed. Nothing here needs a frontend, so
    a non-interactive nbconvert run does not fail. Source: STYLE.md habit 6.
    """
    options = {name: list(values) for name, values in sliders.items()}
    empty = [name for name, values in options.items() if not values]
    if empty:
        raise ValueError(f"sliders without values: {empty}")
    fig = fn(**{name: values[0] for name, values in options.items()})
    if not isinstance(fig, Figure):
        raise ValueError(f"fn must return a matplotlib Figure, got {type(fig).__name__}")
    if not _in_ipython():
        return fig
    from IPython.display import Image, display

    display(Image(data=_png(fig)))
    try:
        import ipywidgets
    except ImportError:
        return fig

    def show(**values: Any) -> None:
        display(Image(data=_png(fn(**values))))

    controls = {name: ipywidgets.SelectionSlider(options=values, value=values[0], description=name)
                for name, values in options.items()}
    ipywidgets.interact(show, **controls)
    return fig


def plot_reliability(bins: StdErrorBins, ax: Axes | None = None, label: str | None = None) -> Figure:
    """Reliability plot of a std map: RMSE against root mean variance per std bin (Levi et al. 2019).

    Parameters
    ----------
    bins : StdErrorBins
        From :func:`cryolearn.metrics.std_error_bins`.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    label : str, optional
        Legend entry; the ENCE and the decile ratio are added to it.

    Returns
    -------
    matplotlib.figure.Figure
        Points on the diagonal are calibrated; a map that ranks voxels by
        error spreads its points along it, a flat one bunches them.

    Notes
    -----
    Source: book chapter "CryoWGEN-II" and the appendix on notation and conventions (metrics).
    """
    if ax is None:
        fig = Figure(figsize=(4.2, 4.0), layout="constrained")
        ax = fig.subplots()
    rmv, rmse = bins.rmv.detach().cpu().numpy(), bins.rmse.detach().cpu().numpy()
    text = f"ENCE {bins.ence:.2f}, decile ratio {bins.decile_ratio:.2f}"
    ax.plot(rmv, rmse, marker="o", label=f"{label}: {text}" if label else text)
    hi = float(max(rmv.max(), rmse.max())) * 1.05
    ax.plot([0, hi], [0, hi], color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlabel("root mean variance (predicted)")
    ax.set_ylabel("RMSE (actual)")
    ax.legend(fontsize=8)
    return ax.figure
