"""Posteriors from a trained method (cryolearn.methods.posterior): setting beta without ground truth, the rotation-proxy estimate."""

import pytest
import torch

from cryolearn.methods import estimate_beta, get_method
from cryolearn.physics import missing_wedge_mask, quarter_turns_xz, rotate_cube


def _identity_method(shape):
    """An untrained CryoGEN-II: its U-Net is the identity at initialisation, so G(y) = y."""
    mask = missing_wedge_mask(shape, (-60, 60))
    return get_method("cryogen2", mask=mask, sigma=0.5, base_channels=4)


def test_identity_reconstructor_gives_wedge_power_of_rotated_input():
    """With G = identity the residual in the wedge is -(R y): beta = 1 / mean |F(R y)|^2 over the wedge."""
    shape = (12, 12, 12)
    m = _identity_method(shape)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(5, *shape, generator=g).cumsum(-1) * 0.3  # not white: the answer is not 1
    assert (m.predict(y) - y).abs().max() < 1e-5
    est = estimate_beta(m, y, generator=g)
    rots = torch.tensor(quarter_turns_xz())
    r = rots[torch.arange(5) % 4]
    wedge = ~missing_wedge_mask(shape, (-60, 60), rfft=False)  # full grid, True = missing
    power = torch.fft.fftn(rotate_cube(y, r), dim=(-3, -2, -1), norm="ortho").abs().pow(2)
    expected = 1.0 / power[:, wedge].mean().item()
    assert est.beta == pytest.approx(expected, rel=1e-4)
    assert est.spectrum is None


def test_white_input_gives_flat_unit_spectrum_and_shells_match_a_loop():
    shape = (16, 16, 16)
    m = _identity_method(shape)
    y = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    est = estimate_beta(m, y, per_shell=True)
    assert est.beta == pytest.approx(1.0, rel=0.05)
    assert est.spectrum.shape == m.mask.shape and (est.spectrum > 0).all()
    # Shell powers agree with a direct computation for one shell; the spectrum is shell power * beta there.
    wedge = ~m.mask
    kz, ky, kx = torch.meshgrid(torch.fft.fftfreq(16), torch.fft.fftfreq(16), torch.fft.rfftfreq(16), indexing="ij")
    shell = torch.round(torch.sqrt(kz**2 + ky**2 + kx**2) * 16).long()
    sel = wedge & (shell == 5)
    r = rotate_cube(y, torch.tensor(quarter_turns_xz())[torch.arange(16) % 4])
    p = torch.fft.rfftn(r, dim=(-3, -2, -1), norm="ortho").abs().pow(2).mean(0)
    wx = torch.full((9,), 2.0)
    wx[0] = wx[-1] = 1.0
    wsel = wx.expand(sel.shape)[sel]
    direct = (p[sel] * wsel).sum() / wsel.sum()
    assert est.shell_power[5].item() == pytest.approx(direct.item(), rel=1e-4)
    torch.testing.assert_close(est.spectrum[sel], (direct * est.beta).expand(int(sel.sum())), rtol=1e-4, atol=0)
    assert torch.isnan(est.shell_power[0])  # the origin is always measured
    assert est.spectrum[0, 0, 0] == est.spectrum[shell == 1].flatten()[0]  # filled from the nearest shell


def test_2d_and_errors():
    mask = missing_wedge_mask((16, 16), (-45, 45))
    m = get_method("cryogen2", mask=mask, sigma=0.3, base_channels=4)
    y = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(2))
    assert estimate_beta(m, y).beta == pytest.approx(1.0, rel=0.2)
    with pytest.raises(ValueError, match="mask"):
        estimate_beta(m, torch.randn(4, 12, 12))
    with pytest.raises(ValueError, match="NaN"):
        estimate_beta(m, torch.full((2, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="batch"):
        estimate_beta(m, torch.randn(16, 16))
