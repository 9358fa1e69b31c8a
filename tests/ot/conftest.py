"""Shared pieces of the transport tests: seeded generators and random weights, in float64."""

import pytest
import torch


@pytest.fixture
def gen():
    """``gen(seed)``: a new CPU generator seeded with ``seed``."""
    return lambda seed: torch.Generator().manual_seed(seed)


@pytest.fixture
def simplex():
    """``simplex(shape, g, floor)``: float64 weights ``shape``, uniform in ``[floor, 1 + floor)`` then normalised to sum 1 over the last axis."""

    def make(shape, g, floor):
        w = torch.rand(shape, dtype=torch.float64, generator=g) + floor
        return w / w.sum(-1, keepdim=True)

    return make
