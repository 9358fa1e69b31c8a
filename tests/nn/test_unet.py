"""The reconstructor network UNet (the book's chapters on the four methods, first paragraph)."""

import pytest
import torch

from cryolearn.nn import UNet, count_parameters

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _randomise_output(net, seed=0):
    """Give the zero-initialised last layer random weights so that G is not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.out.parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device))
    return net


def _expected_count(ndim, c, depth):
    """Closed-form parameter count of UNet: convs, GroupNorm affine pairs, transposed convs."""
    k = 3**ndim
    w = [c * 2**lv for lv in range(depth + 1)]
    conv = lambda a, b, ks: ks * a * b + b  # noqa: E731
    block = lambda a, b: conv(a, b, k) + conv(b, b, k) + 4 * b  # noqa: E731
    enc = sum(block(1 if lv == 0 else w[lv - 1], w[lv]) for lv in range(depth + 1))
    dec = sum(conv(w[lv + 1], w[lv], 2**ndim) + block(2 * w[lv], w[lv]) for lv in range(depth))
    return enc + dec + conv(w[0], 1, 1)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (0, 2)])
def test_shape_and_identity_at_init(ndim, lead):
    torch.manual_seed(0)
    net = UNet(ndim=ndim, base_channels=4)
    y = torch.randn(*lead, *[8] * ndim)
    x = net(y)
    assert x.shape == y.shape
    assert torch.equal(x, y)  # G(y) = y exactly: the no-restoration baseline


@pytest.mark.parametrize("ndim", [2, 3])
def test_parameter_count_closed_form(ndim):
    for c, depth in [(12, 2), (4, 0), (6, 3)]:
        assert count_parameters(UNet(ndim=ndim, base_channels=c, depth=depth)) == _expected_count(ndim, c, depth)
    n = count_parameters(UNet())
    assert 1e5 < n < 1e6 and n == 191_461  # the count documented in the docstring
    assert count_parameters(UNet(ndim=2)) == 66_253


def test_training_moves_away_from_identity_and_reaches_every_parameter():
    torch.manual_seed(0)
    net = UNet(ndim=3, base_channels=4)
    y, target = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    out_params = {id(p) for p in net.out.parameters()}
    for step in range(2):
        opt.zero_grad()
        (net(y) - target).pow(2).mean().backward()
        for p in net.parameters():
            assert p.grad is not None
            # Step 1: the last layer is zero, so only it receives a gradient; step 2: all do.
            assert (p.grad.abs().max() > 0) == (step == 1 or id(p) in out_params)
        opt.step()
        if step == 0:
            with torch.no_grad():
                assert not torch.equal(net(y), y)


@pytest.mark.parametrize("ndim", [2, 3])
def test_batched_equals_looped(ndim):
    torch.manual_seed(1)
    net = _randomise_output(UNet(ndim=ndim, base_channels=4)).double()
    y = torch.randn(2, 2, *[8] * ndim, dtype=torch.float64)
    y[0, 1] *= 10  # a very different neighbour must not change the others (no batch statistics)
    with torch.no_grad():
        batched = net(y)
        looped = torch.stack([torch.stack([net(v) for v in row]) for row in y])
        net.eval()
        evaluated = net(y)
    assert not torch.allclose(batched, y)
    torch.testing.assert_close(batched, looped, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(batched, evaluated, rtol=0, atol=0)  # no train/eval difference


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_follow_input(device):
    torch.manual_seed(2)
    net32 = _randomise_output(UNet(ndim=2, base_channels=4)).to(device)
    net64 = _randomise_output(UNet(ndim=2, base_channels=4)).to(device)
    net64.load_state_dict(net32.state_dict())
    net64.double()
    y = torch.randn(3, 16, 16, device=device, dtype=torch.float64)
    with torch.no_grad():
        x64, x32 = net64(y), net32(y.float())
    assert x64.dtype == torch.float64 and x64.device == y.device
    torch.testing.assert_close(x64.float(), x32, rtol=1e-4, atol=1e-4)


def test_bad_inputs_raise():
    net = UNet(ndim=3, depth=2)
    assert net.required_multiple == 4
    with pytest.raises(ValueError, match="required_multiple=4"):
        net(torch.randn(2, 8, 8, 10))
    with pytest.raises(ValueError, match="D, H, W"):
        net(torch.randn(8, 8))
    UNet(ndim=2, depth=3)(torch.randn(8, 16))  # non-cubic boxes are fine
    for kwargs in [{"ndim": 1}, {"depth": -1}, {"base_channels": 0}, {"activation": "tanh"}]:
        with pytest.raises(ValueError):
            UNet(**kwargs)
