"""Shared network blocks (cryolearn.nn.layers)."""

import pytest
import torch
from torch import nn

from cryolearn.nn.layers import CONV, as_channels, check_count, check_ndim, make_activation, zero_init_


def test_check_ndim_accepts_2_and_3_only():
    assert check_ndim(2) == 2 and check_ndim(3) == 3
    with pytest.raises(ValueError, match="ndim must be 2"):
        check_ndim(1)
    assert CONV[2] is nn.Conv2d and CONV[3] is nn.Conv3d


def test_make_activation_builds_fresh_modules_and_names_the_valid_ones():
    a, b = make_activation("leaky_relu"), make_activation("leaky_relu")
    assert isinstance(a, nn.LeakyReLU) and a is not b and a.negative_slope == 0.2
    assert isinstance(make_activation("silu"), nn.SiLU)
    with pytest.raises(ValueError, match=r"\['leaky_relu', 'silu'\]"):
        make_activation("relu")


def test_as_channels_flattens_the_batch():
    x = torch.arange(2 * 3 * 4 * 5 * 6.0).reshape(2, 3, 4, 5, 6)
    h = as_channels(x, 3)
    assert h.shape == (6, 1, 4, 5, 6)
    torch.testing.assert_close(h[4, 0], x[1, 1])
    assert as_channels(x[0, 0], 3).shape == (1, 1, 4, 5, 6)
    assert as_channels(x[0, 0], 2).shape == (4, 1, 5, 6)
    with pytest.raises(ValueError, match="D, H, W"):
        as_channels(torch.zeros(4, 4), 3)


def test_check_count_and_zero_init():
    assert check_count(8.0, "base_channels") == 8 and check_count(0, "depth", minimum=0) == 0
    with pytest.raises(ValueError, match="base_channels must be a positive integer, got 0"):
        check_count(0, "base_channels")
    with pytest.raises(ValueError, match="depth must be a non-negative integer, got 1.5"):
        check_count(1.5, "depth", minimum=0)
    lin = nn.Linear(3, 2)
    assert zero_init_(lin) is lin
    assert torch.count_nonzero(lin.weight) == 0 and torch.count_nonzero(lin.bias) == 0
