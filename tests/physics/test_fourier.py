"""Fourier-grid helpers (cryolearn.physics.fourier): half-grid shape, Hermitian weights, Parseval."""

import math

import numpy as np
import pytest
import torch

from cryolearn.physics import fourier_grid, half_grid_sum, hermitian_weights, missing_wedge_mask, ortho_rfftn, rfft_shape


@pytest.mark.parametrize(
    "shape, half",
    [((8,), (5,)), ((7,), (4,)), ((4, 7), (4, 4)), ((8, 8, 8), (8, 8, 5)), ((6, 5, 9), (6, 5, 5)), ((3, 1), (3, 1))],
)
def test_rfft_shape_examples_match_torch(shape, half):
    assert rfft_shape(shape) == half
    assert rfft_shape(shape) == tuple(torch.fft.rfftn(torch.zeros(shape), dim=tuple(range(-len(shape), 0))).shape)


def test_rfft_shape_rejects_empty():
    with pytest.raises(ValueError, match="at least one axis"):
        rfft_shape(())


@pytest.mark.parametrize("shape", [(8,), (9,), (6, 7), (6, 8), (4, 6, 8), (5, 4, 7)])
def test_weights_sum_to_full_grid_size(shape):
    w = hermitian_weights(shape)
    assert tuple(w.shape) == rfft_shape(shape)
    assert w.sum().item() == math.prod(shape)
    assert set(w.unique().tolist()) <= {1.0, 2.0}


@pytest.mark.parametrize("shape", [(9,), (6, 7), (4, 6, 8), (5, 4, 7)])
def test_parseval_with_weights_matches_real_space_norm(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    X = ortho_rfftn(x, len(shape))
    w = hermitian_weights(shape, like=x)
    power = half_grid_sum(X.real**2 + X.imag**2, w)
    torch.testing.assert_close(power, x.flatten(1).pow(2).sum(-1))
    # against numpy's full-grid orthonormal FFT
    ref = np.abs(np.fft.fftn(x.numpy(), axes=tuple(range(1, len(shape) + 1)), norm="ortho")) ** 2
    np.testing.assert_allclose(power.numpy(), ref.reshape(3, -1).sum(-1), rtol=1e-12)


def test_masked_weights_give_the_region_sum_of_the_full_grid():
    shape = (6, 6, 6)
    mask = missing_wedge_mask(shape, (-45.0, 45.0))
    full_mask = missing_wedge_mask(shape, (-45.0, 45.0), rfft=False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = hermitian_weights(shape, ~mask, like=x)
    assert w.dtype == torch.float64 and w.sum().item() == (~full_mask).sum().item()
    full = torch.fft.fftn(x, dim=(-3, -2, -1), norm="ortho")
    ref = (full.abs() ** 2)[~full_mask].sum()
    torch.testing.assert_close(half_grid_sum(ortho_rfftn(x).abs() ** 2, w), ref)


def test_weights_follow_like_and_default_to_float32():
    assert hermitian_weights((4, 4)).dtype == torch.float32
    like = torch.zeros(1, dtype=torch.float64)
    assert hermitian_weights((4, 4), like=like).dtype == torch.float64


@pytest.mark.parametrize("shape", [(7,), (6, 5), (4, 6, 8)])
def test_fourier_grid_is_fftfreq_per_axis_and_broadcasts_to_the_grid(shape):
    for rfft in (True, False):
        grids = fourier_grid(shape, rfft=rfft)
        assert torch.broadcast_shapes(*(g.shape for g in grids)) == (rfft_shape(shape) if rfft else shape)
        for i, (g, n) in enumerate(zip(grids, shape)):
            ref = torch.fft.rfftfreq(n, dtype=torch.float64) if rfft and i == len(shape) - 1 else torch.fft.fftfreq(n, dtype=torch.float64)
            torch.testing.assert_close(g.flatten(), ref)
