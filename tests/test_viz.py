"""Figures (cryolearn.viz): shapes of the grids and the data behind the images."""

import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cryolearn import viz  # noqa: E402
from cryolearn.metrics import fourier_shell_correlation  # noqa: E402
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask  # noqa: E402


def _vol(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_orthoslices_planes_labels_and_scaling():
    v = _vol(2, 6, 8, 10)
    fig = viz.orthoslices(v, titles=["a", "b"], voxel_size=2.0)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    ax = fig.axes
    np.testing.assert_array_equal(ax[0].images[0].get_array(), v[0, 3].numpy())  # XY at z = D // 2
    np.testing.assert_array_equal(ax[1].images[0].get_array(), v[0, :, 4, :].numpy())  # XZ at y = H // 2
    np.testing.assert_array_equal(ax[5].images[0].get_array(), v[1, :, :, 5].numpy())  # YZ at x = W // 2
    assert (ax[1].get_xlabel(), ax[1].get_ylabel()) == ("x (Å)", "z (Å)")
    assert ax[2].get_xlabel() == "y (Å)" and ax[0].get_title().startswith("a |")
    assert ax[1].images[0].get_extent() == [0, 20.0, 0, 12.0]
    # per-row colour ranges differ, a shared one does not
    assert ax[0].images[0].get_clim() != ax[3].images[0].get_clim()
    shared = viz.orthoslices([v[0], 3 * v[1]], shared_scale=True).axes
    assert shared[0].images[0].get_clim() == shared[4].images[0].get_clim()
    lo, hi = shared[0].images[0].get_clim()
    assert hi >= 3 * max(v[1, 3].max(), v[1, :, 4].max(), v[1, :, :, 5].max())


@pytest.mark.parametrize("shape", [(12, 10, 16), (11, 9, 13)])
def test_fourier_slices_of_a_wedge_mask(shape):
    half = missing_wedge_mask(shape, (-45, 45))
    full = np.fft.fftshift(missing_wedge_mask(shape, (-45, 45), rfft=False).numpy().astype(float))
    fig = viz.fourier_slices(half, shape=shape)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    xz = fig.axes[1].images[0].get_array()
    d, h, w = shape
    np.testing.assert_array_equal(xz, full[:, h // 2, :])
    # the wedge: zeros along k_z (except the origin), ones along k_x
    assert xz[d // 2, w // 2] == 1 and (xz[d // 2 + 2:, w // 2] == 0).all() and (xz[d // 2, :] == 1).all()
    yz = fig.axes[2].images[0].get_array()
    assert yz.sum() == h  # only the k_y axis is measured in the k_x = 0 plane
    np.testing.assert_array_equal(viz.fourier_slices(missing_wedge_mask(shape, (-45, 45), rfft=False), rfft=False)
                                  .axes[1].images[0].get_array(), xz)


def test_fourier_slices_of_volumes():
    shape = (8, 8, 8)
    x = _vol(*shape)
    y = apply_missing_wedge(x, missing_wedge_mask(shape))
    fig = viz.fourier_slices(torch.stack([x, y]), titles=["x", "y"], voxel_size=4.0)
    assert len(fig.axes) == 6
    amp = np.log1p(np.abs(np.fft.fftshift(np.fft.fftn(x.numpy(), norm="ortho"))))
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), amp[:, 4, :])
    wedge = fig.axes[4].images[0].get_array()  # XZ plane of the observation: empty along k_z
    assert np.abs(wedge[6:, 4]).max() < 1e-6 and wedge[4, 6] > 0
    assert fig.axes[1].get_ylabel() == "k_z (1/Å)"
    np.testing.assert_allclose(fig.axes[1].images[0].get_extent(), [-0.5625 / 4, 0.4375 / 4, -0.5625 / 4, 0.4375 / 4])


def test_plot_fsc_lines_and_units():
    x = _vol(3, 8, 8, 8)
    y = x + _vol(3, 8, 8, 8, seed=1)
    mask = missing_wedge_mask((8, 8, 8))
    results = [
        fourier_shell_correlation(y, x, voxel_size=5.0),
        fourier_shell_correlation(y[0], x[0], mask=~mask, voxel_size=5.0),
    ]
    fig = viz.plot_fsc(results, labels=["all", "wedge"])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 2 + 2  # two curves, two thresholds
    assert ax.get_xlabel() == "spatial frequency (1/Å)"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), results[0].fsc.mean(0).numpy())
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(5) / 8 / 5.0)
    with pytest.raises(ValueError, match="units"):
        viz.plot_fsc([results[0], fourier_shell_correlation(y, x)])


def _recording_draw(calls):
    def draw(scale, name="a"):  # a blank figure: these tests are about the control flow, not the drawing
        calls.append((scale, name))
        return Figure(figsize=(1, 1))

    return draw


def test_interactive_draws_once_outside_ipython_and_checks_its_inputs():
    calls = []
    draw = _recording_draw(calls)
    fig = viz.interactive(draw, scale=[2.0, 3.0], name=["a", "b"])
    assert isinstance(fig, Figure) and calls == [(2.0, "a")]  # plain Python: static figure only
    with pytest.raises(ValueError, match="without values"):
        viz.interactive(draw, scale=[], name=["a"])
    with pytest.raises(ValueError, match="Figure"):
        viz.interactive(lambda scale: None, scale=[1.0])


def test_interactive_without_ipywidgets_shows_the_static_figure_only(monkeypatch):
    pytest.importorskip("IPython")
    calls = []
    monkeypatch.setattr(viz, "_in_ipython", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # ipywidgets missing: static figure only
    viz.interactive(_recording_draw(calls), scale=[2.0], name=["a"])
    assert calls == [(2.0, "a")]


def test_interactive_with_ipywidgets_survives_without_a_frontend(monkeypatch):
    pytest.importorskip("IPython")
    pytest.importorskip("ipywidgets")
    calls = []
    monkeypatch.setattr(viz, "_in_ipython", lambda: True)
    viz.interactive(_recording_draw(calls), scale=[2.0, 3.0], name=["a", "b"])  # display + ipywidgets.interact
    assert calls[0] == (2.0, "a") and len(calls) == 2  # static figure, then the widget's first draw


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="volume"):
        viz.orthoslices(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="titles"):
        viz.orthoslices(np.zeros((2, 4, 4, 4)), titles=["one"])
    with pytest.raises(ValueError, match="half grid"):
        viz.fourier_slices(missing_wedge_mask((8, 8, 8)), shape=(8, 8, 10))


def test_reliability_plot_draws_the_bins_and_the_diagonal():
    from cryolearn.metrics import std_error_bins
    from cryolearn.viz import plot_reliability

    g = torch.Generator().manual_seed(1)
    std = torch.rand(1000, generator=g) + 0.1
    truth = torch.zeros(1000)
    bins = std_error_bins(std * torch.randn(1000, generator=g), std, truth)
    fig = plot_reliability(bins, label="test")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.lines[0].get_xdata()) == 10
    assert "ENCE" in ax.get_legend().get_texts()[0].get_text()
