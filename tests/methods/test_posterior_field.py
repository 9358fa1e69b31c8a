"""A per-voxel precision field: the dense Gaussian posterior (the matrix built) against conjugate gradients,
perturb-and-MAP draws and preconditioned Langevin chains."""

import pytest
import torch

from cryolearn.methods import BoltzmannPosterior, gaussian_posterior
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask
from cryolearn.sampling import conjugate_gradient, langevin

SHAPE = (8, 8)
SIGMA, GAMMA = 0.7, 1.3


def _problem(b=2, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    mask = missing_wedge_mask(SHAPE, (-45, 45))
    x_bar = torch.randn(b, *SHAPE, generator=g, dtype=dtype)
    y = apply_missing_wedge(x_bar + torch.randn(b, *SHAPE, generator=g, dtype=dtype), mask)
    beta = torch.exp(torch.randn(b, *SHAPE, generator=g, dtype=dtype))  # precisions from about 0.1 to 10
    return mask, y, x_bar, beta


def _dense(mask, y, x_bar, beta):
    """Mean (B, n) and covariance (B, n, n) of q_gamma with w = 0, from the matrix A = M / sigma^2 + diag(beta)."""
    n = y[0].numel()
    eye = torch.eye(n, dtype=y.dtype).reshape(n, *SHAPE)
    m_mat = apply_missing_wedge(eye, mask).reshape(n, n)  # rows: M e_i; M is symmetric
    means, covs = [], []
    for yb, xb, bb in zip(y, x_bar, beta):  # a loop over two observations, in the oracle only
        a = m_mat / SIGMA**2 + torch.diag(bb.flatten())
        rhs = m_mat @ yb.flatten() / SIGMA**2 + bb.flatten() * xb.flatten()
        means.append(torch.linalg.solve(a, rhs))
        covs.append(GAMMA * torch.linalg.inv(a))
    return torch.stack(means), torch.stack(covs)


def test_conjugate_gradient_solves_a_dense_system_and_batched_equals_looped():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 6, 6, generator=g, dtype=torch.float64)
    a = q @ q.transpose(-1, -2) + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(3, 6, generator=g, dtype=torch.float64)
    res = conjugate_gradient(lambda v: (a @ v.unsqueeze(-1)).squeeze(-1), b, 1, tol=1e-12)
    assert res.converged
    torch.testing.assert_close(res.x, torch.linalg.solve(a, b))
    one = conjugate_gradient(lambda v: a[1] @ v, b[1], 1, tol=1e-12)
    torch.testing.assert_close(one.x, res.x[1])


def test_conjugate_gradient_warns_when_it_stops_early():
    a = torch.diag(torch.logspace(0, 6, 50, dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match="max_iter"):
        res = conjugate_gradient(lambda v: v @ a, torch.ones(1, 50, dtype=torch.float64), 1, max_iter=3)
    assert not res.converged and res.iterations == 3


def test_field_mean_matches_the_dense_posterior():
    mask, y, x_bar, beta = _problem()
    mean, _ = _dense(mask, y, x_bar, beta)
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta)
    post.cg_tol = 1e-10
    torch.testing.assert_close(post.gaussian_mean().flatten(1), mean, atol=1e-7, rtol=1e-7)


def test_constant_field_equals_the_fourier_closed_form():
    mask, y, x_bar, _ = _problem()
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, torch.full_like(y, 2.5))
    post.cg_tol = 1e-10
    closed = gaussian_posterior(y, x_bar, mask, SIGMA, GAMMA, 2.5)
    torch.testing.assert_close(post.gaussian_mean(), closed.mean, atol=1e-7, rtol=1e-7)


def test_perturb_and_map_draws_have_the_dense_covariance():
    mask, y, x_bar, beta = _problem()
    mean, cov = _dense(mask, y, x_bar, beta)
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta)
    post.cg_tol = 1e-9
    x = post.sample_gaussian(4000, generator=torch.Generator().manual_seed(2)).flatten(2)  # (K, B, n)
    # Whitened by the dense covariance, exact draws are standard normal: E[z z^T] = I and E[z] = 0
    # (Monte-Carlo error of each entry about 1 / sqrt(K) = 0.016).
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, (x - mean).permute(1, 2, 0), upper=False)  # (B, n, K)
    second = z @ z.transpose(1, 2) / x.shape[0]
    assert (second - torch.eye(z.shape[1], dtype=z.dtype)).abs().max() < 0.12
    assert z.mean(-1).abs().max() < 0.08
    # the field matters: the variances differ from voxel to voxel, and in the order of 1 / beta
    var = cov.diagonal(dim1=1, dim2=2)
    assert torch.corrcoef(torch.stack([var.flatten(), 1 / beta.flatten()]))[0, 1] > 0.5


def test_preconditioned_langevin_samples_the_dense_posterior():
    mask, y, x_bar, beta = _problem()
    beta = beta.pow(0.6)  # precisions from about 0.3 to 4: the slowest direction relaxes within the burn-in
    mean, cov = _dense(mask, y, x_bar, beta)
    post = BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta)
    x0 = post.sample_reference(200, generator=torch.Generator().manual_seed(3))
    res = langevin(post.potential, x0, step_size=0.1 * GAMMA, n_steps=500, temperature=GAMMA, burn_in=250, thin=5,
                   generator=torch.Generator().manual_seed(4), keep_samples=False,
                   preconditioner=post.langevin_preconditioner())
    m = res.mean.mean(0).flatten(1)
    v = (res.var + (res.mean - res.mean.mean(0)).pow(2)).mean(0).flatten(1)  # pooled over chains
    var = cov.diagonal(dim1=1, dim2=2)
    assert ((m - mean).abs() / var.sqrt()).max() < 0.15
    assert ((v / var) - 1).abs().mean() < 0.08  # unadjusted chain: bias up to step_size / 2 = 5%


def test_field_input_errors():
    mask, y, x_bar, beta = _problem()
    with pytest.raises(ValueError, match="shape"):
        BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta[:1])
    with pytest.raises(ValueError, match="positive"):
        BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, -beta)
    with pytest.raises(ValueError, match="spectrum"):
        BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta, spectrum=torch.ones(mask.shape, dtype=y.dtype))
    with pytest.raises(ValueError, match="not diagonal"):
        BoltzmannPosterior(y, x_bar, mask, SIGMA, GAMMA, beta).gaussian_precision()


def _identity_method(shape, sigma=0.5):
    """An untrained CryoGEN-II: its U-Net is the identity at initialisation, so G(y) = y."""
    from cryolearn.methods import get_method

    return get_method("cryogen2", mask=missing_wedge_mask(shape, (-60, 60)), sigma=sigma, base_channels=4)


def test_beta_field_is_the_mean_square_of_the_rotated_back_proxy_residuals():
    from cryolearn.methods import estimate_beta_field
    from cryolearn.physics import inverse_cube_index, quarter_turns_xz, rotate_cube, rotation_proxy

    shape = (12, 12, 12)
    m = _identity_method(shape)
    y = torch.randn(3, *shape, generator=torch.Generator().manual_seed(5)).cumsum(-1)
    field = estimate_beta_field(m, y, smooth=0.0, floor=1e-6, generator=torch.Generator().manual_seed(6))
    # the same computation written out rotation by rotation, with the same noise draws
    rots = torch.tensor(quarter_turns_xz()).repeat_interleave(3)
    yp = rotation_proxy(y.repeat(4, 1, 1, 1), m.mask, rots, sigma=m.sigma, generator=torch.Generator().manual_seed(6))
    resid = [rotate_cube(yp[i], inverse_cube_index(int(rots[i]))) - y[i % 3] for i in range(12)]
    var = torch.stack(resid).reshape(4, 3, *shape).pow(2).mean(0)
    torch.testing.assert_close(field, 1 / var, rtol=1e-4, atol=1e-4)
    assert all(rotate_cube(rotate_cube(y, i), inverse_cube_index(i)).equal(y) for i in range(24))


def test_beta_field_is_low_where_the_structure_is():
    """G = identity and almost no noise: the proxy residual is the wedge content of the rotated volume, so the
    precision drops where the volume has structure and stays high in the empty half of the box."""
    from cryolearn.methods import estimate_beta_field

    shape = (16, 16, 16)
    m = _identity_method(shape, sigma=1e-3)
    z = torch.arange(16.0)
    blob = torch.exp(-((z[:, None, None] - 4) ** 2 + (z[None, :, None] - 8) ** 2 + (z[None, None, :] - 8) ** 2) / 4)
    field = estimate_beta_field(m, blob[None], smooth=1.0)
    assert field[0, 4, 8, 8] < 0.05 * field[0, 12:].mean()  # the blob's centre against the far half
    assert field[0, 4, 8, 8] < field[0, 8, 8, 8] < field[0, 12, 8, 8]  # and it rises away from it
    with pytest.raises(ValueError, match="floor"):
        estimate_beta_field(m, blob[None], floor=0.0)


def test_field_posterior_mean_is_the_samplers_mean_for_any_method():
    """A CryoGEN-II's field mean equals, to the solver's tolerance, the mean CryoWGEN-II returns with the same
    network, w = 0 and the same proxy noise; with G = identity on data without wedge content it is the input."""
    from cryolearn.methods import field_posterior_mean, get_method

    shape = (16, 16)
    mask = missing_wedge_mask(shape, (-60, 60))
    g2 = get_method("cryogen2", mask=mask, sigma=0.5, base_channels=4, seed=3)
    with torch.no_grad():  # move the U-Net away from the identity it starts as
        for p in g2.network.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    w2 = get_method("cryowgen2", mask=mask, sigma=0.5, base_channels=4, seed=3, n_chains=2, n_steps=2, burn_in=1, thin=1)
    w2.network.load_state_dict(g2.network.state_dict())
    y = apply_missing_wedge(torch.randn(5, *shape, generator=torch.Generator().manual_seed(4)).cumsum(-1), mask)
    x_bar = g2.predict(y)
    assert (x_bar - y).abs().max() > 0.05
    mean = field_posterior_mean(g2, y, generator=torch.Generator().manual_seed(4))  # the sampler's seed + 1
    expected = w2.reconstruct(y, batch_size=5).mean
    torch.testing.assert_close(mean, expected, atol=1e-4, rtol=1e-4)
    # Not G(y): the measured data pull the mean, and the field carries the pull into the wedge.
    wedge = lambda v: v - apply_missing_wedge(v, mask)
    assert (wedge(mean) - wedge(x_bar)).abs().max() > 1e-3
    ident = _identity_method(shape)
    torch.testing.assert_close(field_posterior_mean(ident, y), y, atol=1e-3 * y.abs().max().item(), rtol=0)  # CG tolerance
    with pytest.raises(ValueError, match="x_bar"):
        field_posterior_mean(g2, y, x_bar=y[:2])
    with pytest.raises(ValueError, match="inflation"):
        field_posterior_mean(g2, y, inflation=0)
