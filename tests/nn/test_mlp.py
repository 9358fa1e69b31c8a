"""The point-toy network MLP (cryolearn.nn.mlp)."""

import pytest
import torch

from cryolearn.nn import MLP


def test_mlp_shapes_residual_identity_and_gradients():
    torch.manual_seed(3)
    z = torch.randn(4, 5, 2)
    assert MLP(2, 1)(z).shape == (4, 5, 1)
    res = MLP(2, residual=True, layers=3)
    assert torch.equal(res(z), z)
    opt = torch.optim.SGD(res.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (res(z) - z.flip(-1)).pow(2).mean().backward()
        opt.step()
    assert all(p.grad.abs().max() > 0 for p in res.parameters())
    assert not torch.equal(res(z), z)
    torch.testing.assert_close(res(z), torch.stack([res(v) for v in z]))
    with pytest.raises(ValueError, match="d_out == d_in"):
        MLP(2, 3, residual=True)
    with pytest.raises(ValueError):
        MLP(2, hidden=0)
