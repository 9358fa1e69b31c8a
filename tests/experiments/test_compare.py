"""Side-by-side measurements (cryolearn.experiments.compare): the table the comparison chapter prints."""

import math

import pytest
import torch

from cryolearn.experiments.compare import COLUMNS, ComparisonTable, compare, make_methods, train
from cryolearn.data import random_blobs_2d
from cryolearn.methods import Reconstruction, get_method
from cryolearn.physics import missing_wedge_mask, simulate_observation

SIZE, TILT, SIGMA = 16, (-45.0, 45.0), 0.3


class Oracle:
    """A "method" that returns the truth, or a family of samples around it."""

    def __init__(self, x, samples=None):
        self.x, self.samples = x, samples

    def reconstruct(self, y):
        if self.samples is None:
            return Reconstruction(mean=self.x.clone())
        return Reconstruction(mean=self.samples.mean(0), samples=self.samples, std=self.samples.std(0))


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    mask = missing_wedge_mask((SIZE, SIZE), TILT)
    x = random_blobs_2d(28, size=SIZE, seed=0)
    y, _ = simulate_observation(x, mask, sigma=SIGMA, generator=torch.Generator().manual_seed(1))
    return mask, y[:20], y[20:], x[20:]


@pytest.fixture(scope="module")
def table(problem):
    mask, y_tr, y_te, x_te = problem
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is faster, and immune to a busy machine
    methods = make_methods(mask, SIGMA, batch_size=4, base_channels=4, seed=0,
                           cryowgen1=dict(n_samples=8, n_train_samples=4),
                           cryowgen2=dict(n_chains=3, n_steps=20, burn_in=10, thin=2, n_train_steps=2))
    try:
        costs = train(methods, y_tr, n_steps=2)
        yield compare({**methods, "oracle": Oracle(x_te)}, y_te, x_te, mask, TILT, 1 / SIGMA**2, training=costs), methods
    finally:
        torch.set_num_threads(threads)


def test_every_numeric_column_is_finite_for_the_methods_and_the_baseline(table):
    t, methods = table
    assert [r["method"] for r in t.rows] == ["baseline", "square", *methods, "oracle"]
    assert all(list(r) == list(COLUMNS) == t.columns for r in t.rows)
    for r in t.rows:
        if r["method"] == "oracle":
            continue
        for k, v in r.items():
            if k in ("ence", "decile_ratio") and r["n_samples"] == 1:
                assert math.isnan(v), (r["method"], k, v)  # a point estimate has no std map to score
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v), (r["method"], k, v)
    trained = [r for r in t.rows if r["method"] in methods]
    assert all(r["train_s"] > 0 and r["recon_s"] > 0 for r in trained)
    assert all(r["n_test"] == 8 and r["dim"] == 2 and r["box"] == SIZE and r["tilt"] == TILT for r in t.rows)


def test_baseline_leaves_the_wedge_empty(table):
    t, _ = table
    b = t.row(method="baseline")
    assert b["wedge_error"] == pytest.approx(1.0, abs=1e-5)
    assert b["train_s"] == b["recon_s"] == 0
    # Its in-wedge FSC is 0 from the first shell on: the crossing is the first shell with wedge samples.
    assert b["fsc_wedge_crossed"] and b["fsc_wedge"] <= 2 / SIZE


def test_oracle_scores_perfectly_and_never_crosses(table):
    t, _ = table
    o = t.row(method="oracle")
    assert o["wedge_error"] == 0.0 and o["ncc"] == pytest.approx(1.0)
    for kind in ("overall", "wedge"):
        assert not o[f"fsc_{kind}_crossed"]
        assert o[f"fsc_{kind}"] == pytest.approx(0.5) and o[f"res_{kind}"] == pytest.approx(2.0)  # Nyquist, 1/voxel
    assert o["psnr"] == math.inf
    # A Dirac at the truth covers every voxel: the coverage is computed, not set to 0.
    assert o["cover50"] == o["cover90"] == 1.0


def test_point_estimates_have_zero_coverage_and_zero_spread(table):
    t, _ = table
    for name in ("baseline", "cryogen1", "cryogen2"):
        r = t.row(method=name)
        assert r["n_samples"] == 1
        assert r["cover50"] == r["cover90"] == 0.0
        assert r["std_wedge"] == r["std_measured"] == 0.0


def test_sampler_spread_sits_in_the_wedge(table):
    t, methods = table
    r = t.row(method="cryowgen2")
    assert r["n_samples"] == 3 * 5
    # the book's chapters on the four methods: with w = 0 the spread is sqrt(gamma/beta) in the wedge, sqrt(gamma/(1/sigma^2 + beta)) outside.
    beta = methods["cryowgen2"].beta
    assert beta != 1.0 and math.isfinite(beta)  # set by the rotation proxy after training
    assert r["std_wedge"] > r["std_measured"] > 0
    ratio = math.sqrt((1 / SIGMA**2 + beta) / beta)
    assert r["std_wedge"] / r["std_measured"] == pytest.approx(ratio, rel=0.35)


def test_calibrated_family_covers_at_the_nominal_levels(problem):
    """Samples of N(m, s^2) with m = x + s z: the truth is a draw of the family, so coverage is nominal."""
    mask, _, y_te, x_te = problem
    g = torch.Generator().manual_seed(3)
    s, n_s = 0.7, 199
    centre = x_te + s * torch.randn(x_te.shape, generator=g)
    samples = centre + s * torch.randn((n_s, *x_te.shape), generator=g)
    r = compare({"family": Oracle(x_te, samples)}, y_te, x_te, mask, TILT, 1.0, baseline=False,
                square_baseline=False).rows[0]
    shrink = (n_s - 1) / (n_s + 1)  # empirical quantile intervals of S samples are slightly narrow
    assert r["cover50"] == pytest.approx(0.5 * shrink, abs=0.03)
    assert r["cover90"] == pytest.approx(0.9 * shrink, abs=0.03)
    # White noise of voxel std s has Fourier std s in both regions.
    assert r["std_wedge"] == pytest.approx(s, rel=0.03) and r["std_measured"] == pytest.approx(s, rel=0.03)


def test_voxel_size_gives_angstrom(problem):
    mask, _, y_te, x_te = problem
    t = compare({}, y_te, x_te, mask, TILT, 1.0, voxel_size=10.0)
    r = t.rows[0]
    assert r["fsc_unit"] == "1/Angstrom" and r["res_wedge"] == pytest.approx(1 / r["fsc_wedge"])
    no_vs = compare({}, y_te, x_te, mask, TILT, 1.0).rows[0]
    assert r["fsc_overall"] == pytest.approx(no_vs["fsc_overall"] / 10.0)


def test_table_operations_and_markdown(table):
    t, _ = table
    key = ComparisonTable.key(t.row(method="cryogen2"))
    assert set(t.curves[key]) == {"overall", "wedge"} and t.curves[key]["wedge"].fsc.shape[0] == 8
    assert t.examples[key].shape == (SIZE, SIZE)
    both = t + t.select(method="baseline")
    assert len(both.rows) == len(t.rows) + 1
    with pytest.raises(ValueError, match="rows match"):
        both.row(method="baseline")
    with pytest.raises(ValueError, match="unknown column"):
        t.select(colour="red")
    md = t.to_markdown().splitlines()
    assert len(md) == 2 + len(t.rows) and md[0].startswith("| method")
    assert "±45°" in md[2] and "*" in md[-1]  # the oracle's curves never cross 0.143


def test_make_methods_uses_the_cryogen1_default_energy_weight_in_2d_and_3d():
    m2 = make_methods(missing_wedge_mask((32, 32)), 1.0, names=["cryogen1"], base_channels=4)["cryogen1"]
    m3 = make_methods(missing_wedge_mask((32, 32, 32)), 1.0, names=["cryogen1"], base_channels=4)["cryogen1"]
    default = get_method("cryogen1", mask=missing_wedge_mask((8, 8)), sigma=1.0, base_channels=4).lam
    assert m2.lam == m3.lam == default  # lam is per voxel: no scaling with the box
    assert m3.rotations.numel() == 4  # quarter turns about X and Z in 3D
    # Common arguments override the defaults, per-method ones override both.
    ms = make_methods(missing_wedge_mask((8, 8)), 1.0, names=["cryogen1", "cryogen2"], base_channels=4, lam=3.0,
                      cryogen2=dict(lam=5.0))
    assert ms["cryogen1"].lam == 3.0 and ms["cryogen2"].lam == 5.0
    with pytest.raises(ValueError, match="unknown method"):
        make_methods(missing_wedge_mask((8, 8)), 1.0, cryowgen=dict(n_chains=2))


def test_bad_shapes_raise(problem):
    mask, _, y_te, x_te = problem
    with pytest.raises(ValueError, match="one batch"):
        compare({}, y_te, x_te[:-1], mask, TILT, 1.0)
    with pytest.raises(ValueError, match="half grid"):
        compare({}, y_te[..., :-1], x_te[..., :-1], mask, TILT, 1.0)


def test_square_baseline_row_is_the_scaled_square(problem):
    """The trivial baseline sits beside the no-restoration one, scored like a method."""
    from cryolearn.metrics import pointwise_square_baseline, relative_wedge_error

    mask, _, y_te, x_te = problem
    r = compare({}, y_te, x_te, mask, TILT, 1.0).row(method="square")
    expected = relative_wedge_error(pointwise_square_baseline(y_te, x_te, ndim=mask.ndim), x_te, mask, pooled=True)
    assert r["wedge_error"] == pytest.approx(expected.item(), rel=1e-5)
    assert r["train_s"] == 0.0 and r["cover90"] == 0.0
