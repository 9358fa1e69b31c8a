"""CryoWGEN-I with candidates from the Gaussian part of the posterior, and the chunked witness."""

import pytest
import torch

from cryolearn.methods import BoltzmannPosterior, CryoWGEN1, gaussian_posterior, get_method
from cryolearn.methods.posterior import chunked_witness
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask, simulate_observation

SIGMA, BETA = 0.5, 2.0


def _setup(shape, n=1, seed=0, tilt=(-45, 45)):
    g = torch.Generator().manual_seed(seed)
    mask = missing_wedge_mask(shape, tilt)
    y, _ = simulate_observation(torch.randn(n, *shape, generator=g, dtype=torch.float64), mask, sigma=SIGMA, generator=g)
    x_bar = y + 0.3 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    return y, x_bar, mask


@pytest.mark.parametrize("shape", [(4, 4), (5, 5), (4, 4, 4), (3, 4, 5)])
@pytest.mark.parametrize("coloured", [False, True])
def test_gaussian_draws_have_the_exact_real_space_covariance(shape, coloured):
    """Against the dense posterior: precision H = M / sigma^2 + beta C^-1, covariance gamma H^-1, mean H^-1 (...)."""
    y, x_bar, mask = _setup(shape)
    spectrum = None
    if coloured:  # a Hermitian-symmetric, positive spectrum: a function of |k|
        grids = torch.meshgrid(*[torch.fft.fftfreq(s, dtype=torch.float64) for s in shape[:-1]],
                               torch.fft.rfftfreq(shape[-1], dtype=torch.float64), indexing="ij")
        spectrum = 1.0 / (1.0 + 10 * sum(k**2 for k in grids))
    gamma, n = 0.7, 60000
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, gamma, BETA, spectrum=spectrum)
    s = post.sample_gaussian(n, generator=torch.Generator().manual_seed(1))
    assert s.shape == (n, *y.shape) and s.dtype == y.dtype
    s = s[:, 0].flatten(1)
    d = s.shape[1]
    basis = torch.eye(d, dtype=torch.float64).reshape(d, *shape)
    m_op = apply_missing_wedge(basis, mask).reshape(d, d)
    prior = BETA * torch.eye(d, dtype=torch.float64)
    if coloured:  # beta C^-1 applied to each basis vector
        filt = BoltzmannPosterior(y, x_bar, mask, SIGMA, gamma, BETA)._filter
        prior = BETA * filt(basis, 1.0 / spectrum).reshape(d, d)
    h = m_op / SIGMA**2 + prior
    cov = gamma * torch.linalg.inv(h)
    mean = torch.linalg.solve(h, m_op @ y.flatten() / SIGMA**2 + prior @ x_bar.flatten())
    # Monte-Carlo error of a covariance entry: about sqrt((C_ii C_jj + C_ij^2) / n).
    tol = 5 * torch.sqrt((cov.diag()[:, None] * cov.diag()[None] + cov**2) / n)
    assert ((torch.cov(s.T) - cov).abs() < tol).all()
    assert ((s.mean(0) - mean).abs() < 5 * (cov.diag() / n).sqrt()).all()
    torch.testing.assert_close(post.gaussian_mean().flatten(), mean)
    gp = gaussian_posterior(y, x_bar, mask, SIGMA, gamma, BETA, spectrum=spectrum)
    torch.testing.assert_close(gp.mean.flatten(), mean)
    torch.testing.assert_close(gp.std.flatten() ** 2, cov.diag().mean().expand(d))


def test_cryowgen1_with_no_witness_samples_the_closed_form_in_3d():
    """w = 0: ESS is exactly K and mean / variance per voxel match gaussian_posterior within Monte-Carlo error."""
    y, x_bar, mask = _setup((8, 8, 8), n=2, tilt=(-60, 60))
    k = 4000
    m = CryoWGEN1(mask=mask, sigma=SIGMA, gamma=1.0, beta=BETA, beta_field="scalar", n_samples=k, base_channels=2, seed=0)
    assert m.proposal == "posterior"
    m.generator = torch.Generator().manual_seed(0)
    mean, var, samples, diag = m.sample(y, x_bar, k).astuple()
    torch.testing.assert_close(diag["ess"], torch.full((2,), float(k), dtype=torch.float64))
    gp = gaussian_posterior(y, x_bar, mask, SIGMA, 1.0, BETA)
    # The samples: per-voxel mean and variance within Monte-Carlo error of the closed form.
    z = (samples.mean(0) - gp.mean) / (gp.std / k**0.5)
    assert z.abs().max() < 5 and abs(z.mean()) < 0.2 and abs(z.std() - 1) < 0.1
    rel = samples.var(0) / gp.std**2 - 1  # relative error of a variance estimate: about sqrt(2 / K)
    assert rel.abs().max() < 5 * (2 / k) ** 0.5 and abs(rel.mean()) < 0.01
    # The returned moments are the closed form itself (Rao-Blackwellised: no Monte-Carlo noise).
    torch.testing.assert_close(mean, gp.mean)
    torch.testing.assert_close(var, gp.std.pow(2).expand_as(var))
    # Equal weights: systematic resampling keeps every candidate exactly once.
    assert torch.unique(samples[:, 0].flatten(1), dim=0).shape[0] == k


def test_reference_proposal_still_available_and_bad_name():
    y, x_bar, mask = _setup((8, 8), n=2)
    m = CryoWGEN1(mask=mask, sigma=SIGMA, beta=BETA, n_samples=256, base_channels=2, seed=0, proposal="reference")
    m.generator = torch.Generator().manual_seed(0)
    assert m.sample(y, x_bar, 256).diagnostics["ess"].max() < 0.5 * 256  # the collapse the book demonstrates
    with pytest.raises(ValueError, match="proposal"):
        CryoWGEN1(mask=mask, sigma=SIGMA, proposal="prior")


@pytest.mark.parametrize("ndim", [2, 3])
def test_chunked_witness_equals_unchunked(ndim):
    shape = (8,) * ndim
    mask = missing_wedge_mask(shape, (-60, 60))
    m = get_method("cryogen2", mask=mask, sigma=SIGMA, base_channels=2, potential=True, seed=0)
    x = torch.randn(3, 2, *shape, generator=torch.Generator().manual_seed(0))
    ref = m.witness(x)  # every rotation x candidate at once
    assert ref.shape == (3, 2)
    for chunk in (1, 5, 1000, None):
        torch.testing.assert_close(chunked_witness(m.potential, x, mask, m.rotations, chunk), ref, rtol=1e-5, atol=1e-4)
    # Gradients too (the Langevin chains of CryoWGEN-II): recomputed chunk by chunk in the backward pass.
    xa = x.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(m.witness(xa).sum(), xa)
    xb = x.clone().requires_grad_(True)
    (gb,) = torch.autograd.grad(chunked_witness(m.potential, xb, mask, m.rotations, 7).sum(), xb)
    torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="chunk"):
        chunked_witness(m.potential, x, mask, m.rotations, 0)


@pytest.mark.parametrize("name", ["cryowgen1", "cryowgen2"])
def test_sampler_reconstruct_with_chunked_witness(name):
    """The samplers' reconstruct gives the same answer for any witness chunk; samples come back on the CPU."""
    y, _, mask = _setup((8, 8, 8), n=3, tilt=(-60, 60))
    y = y.float()
    kw = dict(n_samples=8) if name == "cryowgen1" else dict(n_chains=2, n_steps=6, burn_in=3, thin=3)
    out = []
    for chunk in (3 if name == "cryowgen1" else 17, None):
        m = get_method(name, mask=mask, sigma=SIGMA, beta=BETA, base_channels=2, seed=0, use_witness=True,
                       witness_chunk=chunk, **kw)
        r = m.reconstruct(y, batch_size=2)
        assert r.samples.device.type == "cpu" and r.mean.shape == y.shape
        out.append(r)
    torch.testing.assert_close(out[0].mean, out[1].mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[0].samples, out[1].samples, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="witness_chunk"):
        get_method(name, mask=mask, sigma=SIGMA, witness_chunk=0)
