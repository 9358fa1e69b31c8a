"""Scalar networks on observation space: Critic and PotentialNet (book chapters "CryoGEN-I" and "CryoGEN-II")."""

import pytest
import torch

from cryolearn.nn import Critic, PotentialNet, count_parameters


@pytest.mark.parametrize("cls", [Critic, PotentialNet])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (0, 2)])
def test_output_shape(cls, ndim, lead):
    net = cls(ndim=ndim, base_channels=4)
    assert net(torch.randn(*lead, *[8] * ndim)).shape == lead
    assert net(torch.randn(*lead, *[7] * ndim)).shape == lead  # any box size


@pytest.mark.parametrize("cls", [Critic, PotentialNet])
def test_batched_equals_looped(cls):
    torch.manual_seed(0)
    net = cls(ndim=3, base_channels=4).double()
    y = torch.randn(2, 2, 8, 8, 8, dtype=torch.float64)
    y[1, 1] *= 10
    with torch.no_grad():
        looped = torch.stack([torch.stack([net(v) for v in row]) for row in y])
        torch.testing.assert_close(net(y), looped, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [Critic, PotentialNet])
def test_input_gradient_matches_finite_differences(cls):
    torch.manual_seed(1)
    net = cls(ndim=3, base_channels=4).double()
    y = torch.randn(2, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(net(y).sum(), y)
    assert grad.shape == y.shape and grad.abs().max() > 0
    v, h = torch.randn_like(y), 1e-6
    with torch.no_grad():
        fd = (net(y + h * v) - net(y - h * v)) / (2 * h)  # (2,): each volume's own directional derivative
    torch.testing.assert_close((grad * v).flatten(1).sum(1), fd, rtol=1e-6, atol=1e-8)


def test_potential_is_smooth_critic_is_piecewise_linear():
    """LeakyReLU makes D_psi piecewise linear (zero Hessian); SiLU gives the samplers a smooth gradient."""
    torch.manual_seed(2)
    y = torch.randn(8, 8, 8, dtype=torch.float64, requires_grad=True)
    v = torch.randn_like(y)
    hvp = {}
    for cls in (Critic, PotentialNet):
        net = cls(base_channels=4).double()
        (g,) = torch.autograd.grad(net(y), y, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), y, allow_unused=True)
        hvp[cls] = torch.zeros_like(y) if hv is None else hv
    assert hvp[Critic].abs().max() == 0
    assert hvp[PotentialNet].abs().max() > 1e-6
    assert count_parameters(Critic()) == count_parameters(PotentialNet()) == 72_977


def test_spectral_norm_bounds_each_layer():
    torch.manual_seed(3)
    net = Critic(ndim=2, base_channels=4, spectral_norm=True)
    plain = Critic(ndim=2, base_channels=4)
    y = torch.randn(4, 16, 16)
    for _ in range(30):  # power iterations run in training mode
        net(y)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 5
    for m in layers:
        s = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert s.item() == pytest.approx(1.0, abs=1e-3)
    raw = [m.weight.detach().flatten(1) for m in plain.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert any(abs(torch.linalg.matrix_norm(w, ord=2).item() - 1) > 0.05 for w in raw)
    assert count_parameters(net) == count_parameters(plain)


def test_bad_arguments_raise():
    for kwargs in [{"ndim": 4}, {"base_channels": 0}, {"depth": -1}, {"activation": "tanh"}]:
        with pytest.raises(ValueError):
            Critic(**kwargs)
    with pytest.raises(ValueError, match="D, W"):
        Critic(ndim=2)(torch.randn(8))


def test_default_activations():
    from torch import nn

    assert isinstance(Critic(ndim=2, base_channels=2).features[1], nn.LeakyReLU)
    assert isinstance(PotentialNet(ndim=2, base_channels=2).features[1], nn.SiLU)
    assert isinstance(PotentialNet(ndim=2, base_channels=2, activation="leaky_relu").features[1], nn.LeakyReLU)
