"""Tests for cryolearn.sampling.langevin and cryolearn.sampling.energies."""

import math
from functools import partial

import pytest
import torch

from cryolearn.sampling import (
    boltzmann_density,
    double_well,
    gaussian_energy,
    langevin,
    polynomial_decay,
    pool_chains,
    sgld,
)

DTYPE = torch.float64
MEAN = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=DTYPE)  # (B, d): one target per observation
VAR = torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE)


def _gaussian_run(temperature=1.0, seed=0):
    """Chains on N(MEAN[b], T VAR); the step grows with T so that every run mixes alike."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.zeros(2000, 2, 3, dtype=DTYPE)  # (K, B, d)
    U = partial(gaussian_energy, mean=MEAN, var=VAR)
    return langevin(U, x0, 0.02 * temperature, 800, temperature=temperature, burn_in=400, thin=10, generator=g)


@pytest.fixture(scope="module")
def gaussian():
    return _gaussian_run()


def _binned_tv(x, density, grid, edges):
    """Total variation between the histogram of x and the density on grid, binned by edges (plus two outer bins)."""
    dx = grid[1] - grid[0]
    p = torch.zeros(len(edges) + 1, dtype=DTYPE).index_add_(0, torch.bucketize(grid, edges), density * dx)
    h = torch.zeros(len(edges) + 1, dtype=DTYPE).index_add_(
        0, torch.bucketize(x.flatten(), edges), torch.ones(x.numel(), dtype=DTYPE)
    )
    return 0.5 * (h / h.sum() - p / p.sum()).abs().sum().item()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_double_well_histogram_matches_boltzmann(temperature):
    U = partial(double_well, a=1.0, tilt=0.3)
    grid = torch.linspace(-3, 3, 6001, dtype=DTYPE)
    edges = torch.linspace(-2.5, 2.5, 51, dtype=DTYPE)
    g = torch.Generator().manual_seed(0)
    x0 = 4 * torch.rand(2000, 1, generator=g, dtype=DTYPE) - 2  # (K, B) scalar states
    res = langevin(U, x0, 0.005, 1600, temperature=temperature, burn_in=800, thin=40, generator=g)
    assert res.samples.shape == (20, 2000, 1)
    assert _binned_tv(res.samples, boltzmann_density(U, grid, temperature), grid, edges) < 0.05
    # The check has power: the other temperature's density is clearly rejected.
    other = {1.0: 0.5, 0.5: 1.0}[temperature]
    assert _binned_tv(res.samples, boltzmann_density(U, grid, other), grid, edges) > 0.08


def test_boltzmann_density_normalised_gaussian():
    grid = torch.linspace(-12, 12, 4001, dtype=DTYPE)
    p = boltzmann_density(partial(gaussian_energy, mean=1.0, var=2.0), grid, temperature=1.5)
    ref = torch.exp(-((grid - 1) ** 2) / (2 * 3.0)) / math.sqrt(2 * math.pi * 3.0)
    torch.testing.assert_close(p, ref, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="increasing"):
        boltzmann_density(double_well, grid.flip(0))
    with pytest.raises(ValueError, match="temperature"):
        boltzmann_density(double_well, grid, temperature=0.0)


def test_gaussian_mean_and_variance_match_closed_form(gaussian):
    mean, var = pool_chains(gaussian.mean, gaussian.var)  # (B, d)
    assert ((mean - MEAN).abs() / VAR.sqrt()).max() < 0.1  # within a tenth of a standard deviation
    assert ((var - VAR) / VAR).abs().max() < 0.1


@pytest.mark.parametrize("temperature", [0.25, 4.0])
def test_variance_scales_with_temperature(gaussian, temperature):
    base = pool_chains(gaussian.mean, gaussian.var)[1]
    hot = _gaussian_run(temperature=temperature, seed=2)
    mean, var = pool_chains(hot.mean, hot.var)
    assert ((var / base - temperature) / temperature).abs().max() < 0.1
    assert ((mean - MEAN) / (temperature * VAR).sqrt()).abs().max() < 0.1


def test_batched_matches_looped_statistics(gaussian):
    batched = gaussian
    m_b, v_b = pool_chains(batched.mean, batched.var)
    for b in range(2):
        g = torch.Generator().manual_seed(10 + b)
        U = partial(gaussian_energy, mean=MEAN[b : b + 1], var=VAR)
        one = langevin(U, torch.zeros(2000, 1, 3, dtype=DTYPE), 0.02, 800, burn_in=400, thin=10, generator=g)
        m_1, v_1 = pool_chains(one.mean, one.var)
        assert ((m_1[0] - m_b[b]) / VAR.sqrt()).abs().max() < 0.1
        assert ((v_1[0] - v_b[b]) / VAR).abs().max() < 0.1
        # The energies of the starting states agree exactly.
        torch.testing.assert_close(one.potential_trace[0, :, 0], batched.potential_trace[0, :, b])


def test_one_step_is_the_update_formula():
    x0 = torch.randn(5, 2, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    eta, T = 0.03, 2.0
    res = langevin(partial(gaussian_energy, mean=MEAN, var=VAR), x0, eta, 1, temperature=T,
                   generator=torch.Generator().manual_seed(7))
    xi = torch.randn(x0.shape, dtype=DTYPE, generator=torch.Generator().manual_seed(7))
    grad = (x0 - MEAN) / VAR
    torch.testing.assert_close(res.final, x0 - eta * grad / T + math.sqrt(2 * eta) * xi)
    torch.testing.assert_close(res.potential_trace[0], ((x0 - MEAN) ** 2 / (2 * VAR)).sum(-1))


@pytest.mark.parametrize("n_steps,burn_in,thin", [(10, 0, 1), (10, 3, 3), (11, 2, 4), (7, 6, 5)])
def test_burn_in_and_thinning_keep_the_right_states(n_steps, burn_in, thin):
    U = partial(gaussian_energy, mean=MEAN, var=VAR)
    x0 = torch.zeros(4, 2, 3, dtype=DTYPE)
    res = langevin(U, x0, 0.1, n_steps, burn_in=burn_in, thin=thin, generator=torch.Generator().manual_seed(0))
    kept = [t for t in range(burn_in + 1, n_steps + 1) if (n_steps - t) % thin == 0]  # states after step t
    assert res.n_samples == len(kept) == math.ceil((n_steps - burn_in) / thin)
    assert res.samples.shape == (len(kept), 4, 2, 3)
    torch.testing.assert_close(res.samples[-1], res.final)
    # potential_trace[t] is U of the state after t steps: the kept samples are those states.
    for s, t in enumerate(kept[:-1] if kept[-1] == n_steps else kept):
        torch.testing.assert_close(U(res.samples[s]), res.potential_trace[t])
    # Welford statistics equal the direct ones, and keep_samples=False gives the same numbers.
    torch.testing.assert_close(res.mean, res.samples.mean(0))
    torch.testing.assert_close(res.var, res.samples.var(0, unbiased=False))
    lean = langevin(U, x0, 0.1, n_steps, burn_in=burn_in, thin=thin, generator=torch.Generator().manual_seed(0),
                    keep_samples=False)
    assert lean.samples is None
    torch.testing.assert_close(lean.mean, res.mean)
    torch.testing.assert_close(lean.var, res.var)


def test_pool_chains_equals_flattened_samples(gaussian):
    res = gaussian
    m, v = pool_chains(res.mean, res.var)
    flat = res.samples.flatten(0, 1)  # (S * K, B, d)
    torch.testing.assert_close(m, flat.mean(0))
    torch.testing.assert_close(v, flat.var(0, unbiased=False))
    with pytest.raises(ValueError, match="same shape"):
        pool_chains(res.mean, res.var[:1])


def test_no_autograd_graph_is_kept_and_no_grad_context_works():
    w = torch.nn.Parameter(torch.tensor(2.0, dtype=DTYPE))

    def U(x):  # (K, B, d) -> (K, B), with a learnable parameter
        return (w * x**2).sum(-1)

    x0 = torch.ones(3, 2, 4, dtype=DTYPE, requires_grad=True)
    with torch.no_grad():
        res = langevin(U, x0, 0.01, 20, burn_in=5, generator=torch.Generator().manual_seed(0))
    for t in (res.samples, res.final, res.mean, res.var, res.potential_trace):
        assert not t.requires_grad and t.grad_fn is None
    assert w.grad is None and x0.grad is None
    torch.testing.assert_close(res.potential_trace[0], torch.full((3, 2), 8.0, dtype=DTYPE))


def test_step_schedule_and_sgld_share_the_loop():
    U = partial(gaussian_energy, mean=MEAN, var=VAR)
    x0 = torch.zeros(8, 2, 3, dtype=DTYPE)
    res = sgld(U, x0, 0.1, 50, generator=torch.Generator().manual_seed(0))
    t = torch.arange(50, dtype=DTYPE)
    torch.testing.assert_close(res.step_sizes, 0.1 * (5 / (5 + t)) ** 0.55)
    const = sgld(U, x0, 0.1, 50, generator=torch.Generator().manual_seed(0), step_schedule=lambda t: 1.0)
    ref = langevin(U, x0, 0.1, 50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(const.final, ref.final)
    torch.testing.assert_close(ref.step_sizes, torch.full((50,), 0.1, dtype=DTYPE))
    assert polynomial_decay(10.0, 1.0)(30) == pytest.approx(0.25)


def test_sgld_with_minibatch_gradients_samples_the_posterior():
    # Posterior of a Gaussian mean: data z_i ~ N(mu, 1), i < N, prior N(0, 10);
    # the potential is estimated from a fresh minibatch of n data each step.
    N, n = 100, 10
    gd = torch.Generator().manual_seed(0)
    z = torch.randn(2, N, dtype=DTYPE, generator=gd) + torch.tensor([[1.0], [-0.5]], dtype=DTYPE)  # (B, N)
    post_var = 1 / (N + 0.1)
    post_mean = z.sum(1) * post_var  # (B,)

    K = 2000

    def U(mu):  # (K, B) -> (K, B); an independent minibatch per chain
        zb = z[:, torch.randint(N, (K, n), generator=gd)].transpose(0, 1)  # (K, B, n)
        return (N / n) * ((zb - mu.unsqueeze(-1)) ** 2 / 2).sum(-1) + mu**2 / 20

    res = sgld(U, torch.zeros(K, 2, dtype=DTYPE), 2e-4, 1000, burn_in=500, thin=25,
               generator=torch.Generator().manual_seed(1))
    mean, var = pool_chains(res.mean, res.var)
    assert ((mean - post_mean).abs() / math.sqrt(post_var)).max() < 0.1
    assert ((var - post_var) / post_var).abs().max() < 0.15  # gradient noise inflates it a little


def test_bad_input_raises():
    U = partial(gaussian_energy, mean=0.0, var=1.0)
    x0 = torch.zeros(2, 3, dtype=DTYPE)
    with pytest.raises(ValueError, match="x0"):
        langevin(U, torch.zeros(3), 0.1, 5)
    with pytest.raises(ValueError, match="n_steps"):
        langevin(U, x0, 0.1, 0)
    with pytest.raises(ValueError, match="burn_in"):
        langevin(U, x0, 0.1, 5, burn_in=5)
    with pytest.raises(ValueError, match="thin"):
        langevin(U, x0, 0.1, 5, thin=0)
    with pytest.raises(ValueError, match="step_size"):
        langevin(U, x0, -0.1, 5)
    with pytest.raises(ValueError, match="temperature"):
        langevin(U, x0, 0.1, 5, temperature=0.0)
    with pytest.raises(ValueError, match="step_schedule"):
        langevin(U, x0, 0.1, 5, step_schedule=lambda t: 1.0 - t)
    with pytest.raises(ValueError, match="shape"):
        langevin(lambda x: x.sum(), x0, 0.1, 5)
