"""CryoWGEN-I and -II against the closed-form Gaussian posterior with w = 0 (the book's chapters on the four methods)."""

import pytest
import torch

from cryolearn.methods import BoltzmannPosterior, CryoWGEN1, CryoWGEN2, gaussian_posterior, get_method
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask, simulate_observation

SIGMA, BETA = 0.5, 2.0


def _data(shape=(16, 16, 16), n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    mask = missing_wedge_mask(shape, (-60, 60))
    y, _ = simulate_observation(x, mask, sigma=SIGMA, generator=g)
    x_bar = y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64)  # an imperfect reconstructor output
    return x, y, x_bar, mask


def _fourier_stats(samples, mask):
    """Per-coefficient mean and variance E|F - E F|^2 of samples (S, B, ...) (orthonormal rfft)."""
    f = torch.fft.rfftn(samples, dim=(-3, -2, -1), norm="ortho")
    var = f.real.var(0) + f.imag.var(0)
    return f.mean(0), var


def test_closed_form_by_brute_force_in_fourier():
    """The Gaussian posterior equals the minimiser / curvature of U, checked coefficient-wise."""
    x, y, x_bar, mask = _data(shape=(8, 8, 8))
    gp = gaussian_posterior(y, x_bar, mask, SIGMA, gamma=1.0, beta=BETA)
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, 1.0, BETA)
    # The mean is the minimiser of U: its gradient vanishes there.
    m = gp.mean.clone().unsqueeze(0).requires_grad_(True)
    (grad,) = torch.autograd.grad(post.potential(m).sum(), m)
    assert grad.abs().max() < 1e-10
    # Measured coefficients of the mean move toward y, missing ones stay at x_bar.
    wedge_part = apply_missing_wedge(gp.mean - x_bar, mask)
    torch.testing.assert_close(gp.mean - x_bar, wedge_part)
    # Voxel variance is the average coefficient variance; the wedge raises it above the all-measured value.
    assert (gp.std**2).mean().item() > 1.0 / (1 / SIGMA**2 + BETA)
    assert (gp.std**2).mean().item() < 1.0 / BETA


def test_cryowgen2_matches_closed_form_per_fourier_coefficient():
    sigma, beta = 1.0, 2.0  # comparable precisions: the wedge relaxes fast enough for a short chain
    g = torch.Generator().manual_seed(0)
    shape = (16, 16, 16)
    mask = missing_wedge_mask(shape, (-60, 60))
    y, _ = simulate_observation(torch.randn(1, *shape, generator=g, dtype=torch.float64), mask, sigma=sigma, generator=g)
    x_bar = y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    m = CryoWGEN2(mask=mask, sigma=sigma, gamma=1.0, beta=beta, beta_field="scalar", n_chains=32, step_size=0.1,
                  n_steps=350, burn_in=150, thin=10, base_channels=2, seed=0)
    m.generator = torch.Generator().manual_seed(0)
    s = m.sample(y, x_bar, m.n_chains)
    mean, var, samples, diag = s.mean, s.var, s.samples, s.diagnostics
    gp = gaussian_posterior(y, x_bar, mask, sigma, 1.0, beta)
    # Mean in real space: error small against the posterior std.
    assert ((mean - gp.mean).pow(2).mean() / gp.std.pow(2).mean()).item() < 0.02
    # Variance of the Fourier coefficients, inside and outside the wedge: relative error below 10%.
    _, fvar = _fourier_stats(samples, mask)
    assert abs(fvar[:, ~mask].mean() / gp.var_fourier[~mask].mean() - 1) < 0.1
    assert abs(fvar[:, mask].mean() / gp.var_fourier[mask].mean() - 1) < 0.1
    assert (fvar[:, ~mask].mean() / fvar[:, mask].mean()).item() > 1.3  # the wedge is where the spread sits
    # Voxel-wise std map and the potential trace.
    assert abs((var.mean() / gp.std.pow(2).mean()).item() - 1) < 0.1
    assert m.last_trace.shape == (350, 32, 1) and diag["potential"].shape == (1,)


def test_cryowgen1_matches_closed_form_in_low_dimension_and_ess_collapses():
    ess = {}
    for n in (4, 16):
        x, y, x_bar, mask = _data(shape=(n, n), n=3, seed=1)
        m = CryoWGEN1(mask=mask, sigma=SIGMA, gamma=1.0, beta=BETA, beta_field="scalar", n_samples=20000, base_channels=2, seed=0,
                      proposal="reference")
        m.network.double()
        m.generator = torch.Generator().manual_seed(0)
        s = m.sample(y, x_bar, m.n_samples)
        mean, var, samples, diag = s.mean, s.var, s.samples, s.diagnostics
        ess[n] = diag["ess"].mean().item()
        if n == 4:
            gp = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA)
            assert ((mean - gp.mean).pow(2).mean() / gp.std.pow(2).mean()).item() < 0.05
            assert abs((var.mean() / gp.std.pow(2).mean()).item() - 1) < 0.1
    assert ess[16] < 0.05 * ess[4]  # the effective sample size of the isotropic reference collapses with the dimension
    m.proposal = "posterior"  # candidates from the Gaussian part of the posterior: with w = 0, ESS = K at any size
    assert (m.sample(y, x_bar, 64).diagnostics["ess"] == 64).all()


def test_fourier_diagonal_reference_matches_its_closed_form():
    x, y, x_bar, mask = _data(shape=(4, 4), n=2, seed=4)
    kz, kx = torch.meshgrid(torch.fft.fftfreq(4, dtype=torch.float64), torch.fft.rfftfreq(4, dtype=torch.float64), indexing="ij")
    spectrum = 1.0 / (1.0 + 20 * (kz**2 + kx**2))  # smoother candidates: less power at high frequency
    white = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA)
    gp = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA, spectrum=spectrum)
    assert (gp.std - white.std).abs().max() > 0.05  # the reference shape matters
    torch.testing.assert_close(gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA, spectrum=torch.ones_like(spectrum)).mean, white.mean)
    m = CryoWGEN1(mask=mask, sigma=SIGMA, gamma=1.0, beta=BETA, beta_field="scalar", spectrum=spectrum, n_samples=2**16, base_channels=2, seed=0,
                  proposal="reference")
    m.generator = torch.Generator().manual_seed(0)
    s = m.sample(y, x_bar, m.n_samples)
    mean, var = s.mean, s.var
    assert ((mean - gp.mean).pow(2).mean() / gp.std.pow(2).mean()).item() < 0.02
    assert abs((var.mean() / gp.std.pow(2).mean()).item() - 1) < 0.1
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, 1.0, BETA, spectrum=spectrum)
    g = gp.mean.unsqueeze(0).requires_grad_(True)
    (grad,) = torch.autograd.grad(post.potential(g).sum(), g)
    assert grad.abs().max() < 1e-10  # the closed-form mean minimises U with the same reference
    with pytest.raises(ValueError, match="spectrum"):
        gaussian_posterior(y, x_bar, mask, SIGMA, spectrum=-spectrum)


def test_langevin_step_follows_the_stiffest_reference_coefficient():
    """A spectrum with tiny entries makes U stiff there: the step must shrink, or the chains blow up."""
    x, y, x_bar, mask = _data(shape=(8, 8), n=2, seed=5)
    spectrum = torch.ones(mask.shape, dtype=torch.float64)
    spectrum[2:4, 1:3] = 0.01
    m = CryoWGEN2(mask=mask, sigma=SIGMA, gamma=1.0, beta=BETA, beta_field="scalar", spectrum=spectrum, n_chains=64, step_size=0.2,
                  n_steps=400, burn_in=200, thin=4, base_channels=2, seed=0)
    assert m.eta == pytest.approx(0.2 / (1 / SIGMA**2 + BETA / 0.01))
    m.generator = torch.Generator().manual_seed(0)
    s = m.sample(y, x_bar, m.n_samples)
    mean, var = s.mean, s.var
    gp = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA, spectrum=spectrum)
    assert torch.isfinite(mean).all()
    assert ((mean - gp.mean).pow(2).mean() / gp.std.pow(2).mean()).item() < 0.05


def _quadratic_witness(a, c):
    """``w(x) = -(a/2) ||x - c||^2``: with it the posterior stays Gaussian, with ``beta + a`` and a moved centre."""
    return lambda x: -0.5 * a * (x - c).pow(2).flatten(-2).sum(-1)


@pytest.mark.parametrize("gamma", [1.0, 1e-4])
def test_cryowgen1_low_temperature_weights_matter(gamma):
    """A quadratic witness keeps q_gamma Gaussian (closed form); equal weights would return the w = 0 answer.

    x_bar does not fit the data, and the witness pulls towards c, placed sqrt(gamma) away from the w = 0
    mode, so the problem is the same in units of the posterior width at every temperature.
    """
    x, y, x_bar, mask = _data(shape=(4, 4), n=2, seed=2)
    a = 0.5
    base = gaussian_posterior(y, x_bar, mask, SIGMA, gamma, BETA)
    z = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=y.dtype)
    c = base.mean + gamma**0.5 * z
    exact = gaussian_posterior(y, (BETA * x_bar + a * c) / (BETA + a), mask, SIGMA, gamma, BETA + a)
    assert (x_bar - exact.mean).abs().max() > 0.1  # reweighting around x_bar alone cannot get there
    m = CryoWGEN1(mask=mask, sigma=SIGMA, gamma=gamma, beta=BETA, beta_field="scalar", n_samples=20000, base_channels=2, seed=0)
    m.use_witness, m.posterior_witness = True, _quadratic_witness(a, c)
    m.generator = torch.Generator().manual_seed(0)
    mean, var, samples, diag = m.sample(y, x_bar, m.n_samples).astuple()
    m.use_witness = False  # the same candidates (the witness draws nothing), weighted equally
    m.generator = torch.Generator().manual_seed(0)
    flat_mean, _, _, flat_diag = m.sample(y, x_bar, m.n_samples).astuple()
    assert torch.allclose(flat_diag["ess"], torch.full_like(flat_diag["ess"], m.n_samples))
    std = exact.std.pow(2).mean().sqrt()
    err = ((mean - exact.mean).pow(2).mean().sqrt() / std).item()
    err_flat = ((flat_mean - exact.mean).pow(2).mean().sqrt() / std).item()
    assert err < 0.03 and err_flat > 0.1, (err, err_flat)
    # The weights move the mean the way the witness says: towards c.
    assert ((mean - flat_mean) * (c - flat_mean)).sum() > 0
    assert abs((var.mean() / exact.std.pow(2).mean()).item() - 1) < 0.1
    assert (diag["ess"] > 0.3 * m.n_samples).all(), diag["ess"]
    assert samples.shape == (m.n_samples, *y.shape)


def test_cryowgen2_low_temperature_contracts_onto_point_estimate():
    # Langevin walks: from an x_bar that does not fit the data it still finds argmin U.
    x, y, x_bar, mask = _data(shape=(8, 8, 8), n=2, seed=2)
    assert (x_bar - gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA).mean).abs().max() > 0.1
    point = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA).mean  # argmin U
    spreads = []
    for gamma in (1.0, 1e-4):
        m = get_method("cryowgen2", mask=mask, sigma=SIGMA, gamma=gamma, beta=BETA, beta_field="scalar", base_channels=2, seed=0,
                       n_chains=16, n_steps=200, burn_in=150, thin=10)
        m.generator = torch.Generator().manual_seed(0)
        s = m.sample(y, x_bar, m.n_samples)
        mean, var = s.mean, s.var
        spreads.append(var.mean().sqrt().item())
    assert (mean - point).abs().max() < 0.02
    assert spreads[1] < 0.02 * spreads[0]


def test_std_larger_in_wedge_and_reconstruct_interface():
    x, y, x_bar, mask = _data(shape=(8, 8, 8), n=3)
    m = CryoWGEN2(mask=mask, sigma=SIGMA, gamma=1.0, beta=BETA, beta_field="scalar", n_chains=16, n_steps=150, burn_in=100, thin=5,
                  base_channels=2, seed=0)
    m.network.double()
    r = m.reconstruct(y)
    assert r.mean.shape == y.shape and r.std.shape == y.shape and r.samples.shape[1:] == y.shape
    _, fvar = _fourier_stats(r.samples, mask)
    assert fvar[:, ~mask].mean() > 2 * fvar[:, mask].mean()
    r1 = m.reconstruct(y[0])
    assert r1.mean.shape == y[0].shape and r1.diagnostics["potential"].shape == ()


def test_reconstruction_written_as_mrc(tmp_path):
    import mrcfile

    x, y, x_bar, mask = _data(shape=(8, 8, 8), n=2)
    m = CryoWGEN1(mask=mask, sigma=SIGMA, beta=BETA, n_samples=16, base_channels=2, seed=0)
    r = m.reconstruct(y.float())
    paths = r.save(tmp_path / "out", voxel_size=12.0, n_samples=2)
    assert sorted(p.name for p in paths)[:4] == ["0000_mean.mrc", "0000_sample000.mrc", "0000_sample001.mrc", "0000_std.mrc"]
    assert len(paths) == 8
    with mrcfile.open(tmp_path / "out" / "0001_std.mrc") as f:
        assert abs(float(f.voxel_size.x) - 12.0) < 1e-4
        assert torch.allclose(torch.from_numpy(f.data.copy()), r.std[1], atol=1e-6)
    with pytest.raises(FileExistsError):
        r.save(tmp_path / "out", voxel_size=12.0)
    with pytest.raises(ValueError, match="samples"):
        r.save(tmp_path / "other", voxel_size=12.0, n_samples=99)


@pytest.mark.parametrize("name", ["cryowgen1", "cryowgen2"])
def test_amortised_training_runs_and_resumes(name, tmp_path):
    x, y, x_bar, mask = _data(shape=(8, 8, 8), n=6)
    y = y.float()
    kw = dict(mask=mask, sigma=SIGMA, beta=BETA, base_channels=2, batch_size=4, seed=1)
    a = get_method(name, **kw).fit(y, 3, progress=False)
    assert "amortization" in a.history[-1]
    ck = tmp_path / "c.pt"
    get_method(name, **kw).fit(y, 2, progress=False, checkpoint=ck)
    b = get_method(name, **kw).fit(y, 3, progress=False, checkpoint=ck)
    torch.testing.assert_close(a.predict(y), b.predict(y), rtol=0, atol=0)


def test_bad_parameters():
    _, _, _, mask = _data(shape=(8, 8, 8), n=1)
    with pytest.raises(ValueError, match="gamma"):
        gaussian_posterior(torch.zeros(8, 8, 8), torch.zeros(8, 8, 8), mask, 1.0, gamma=0.0)
    with pytest.raises(ValueError, match="beta"):
        BoltzmannPosterior(torch.zeros(1, 8, 8, 8), torch.zeros(1, 8, 8, 8), mask, 1.0, beta=-1.0)
    with pytest.raises(ValueError, match="burn_in"):
        CryoWGEN2(mask=mask, sigma=1.0, n_steps=10, burn_in=10)
