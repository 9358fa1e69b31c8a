"""CryoGEN-I and CryoGEN-II: the shared interface and the objectives (the book's chapters on the four methods)."""

import numpy as np
import ot as pot
import pytest
import torch

from cryolearn.methods import CryoGEN1, CryoGEN2, Reconstruction, available_methods, get_method
from cryolearn.physics import missing_wedge_mask, simulate_observation

N2D = 16


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, N2D, N2D, generator=g)
    x = torch.nn.functional.avg_pool2d(x[:, None], 3, 1, 1)[:, 0]  # smooth, so the wedge matters
    x = (x - x.mean((-2, -1), keepdim=True)) / x.std((-2, -1), keepdim=True)
    mask = missing_wedge_mask((N2D, N2D), (-45, 45))
    y, _ = simulate_observation(x, mask, sigma=0.3, generator=g)
    return y, mask


def _make(name, mask, **kw):
    return get_method(name, mask=mask, sigma=0.3, base_channels=4, batch_size=8, seed=3, **kw)


def test_registry():
    assert {"cryogen1", "cryogen2"} <= set(available_methods())
    y, mask = _images()
    assert isinstance(_make("cryogen2", mask), CryoGEN2)
    assert isinstance(_make("cryogen1", mask), CryoGEN1)
    with pytest.raises(ValueError, match="unknown method"):
        get_method("nope", mask=mask, sigma=1.0)


def test_identity_at_init_and_reconstruct_shapes():
    y, mask = _images()
    m = _make("cryogen2", mask)
    r = m.reconstruct(y[0])
    assert isinstance(r, Reconstruction) and r.mean.shape == y[0].shape
    torch.testing.assert_close(r.mean, y[0])  # G(y) = y before training: the no-restoration baseline
    assert m.reconstruct(y[:5]).mean.shape == (5, N2D, N2D)
    assert m.reconstruct(y[:6].view(2, 3, N2D, N2D)).mean.shape == (2, 3, N2D, N2D)
    with pytest.raises(ValueError, match="half grid"):
        m.reconstruct(torch.zeros(N2D, N2D + 2))
    with pytest.raises(ValueError, match="NaN"):
        m.fit(torch.full((4, N2D, N2D), float("nan")), 1, progress=False)


def test_cryogen2_transport_loss_equals_pot_emd2():
    y, mask = _images()
    m = _make("cryogen2", mask)
    a, b = y[:8].double(), y[8:16].double() + 0.1
    cost = 0.5 * torch.cdist(a.flatten(1), b.flatten(1)) ** 2
    ref = pot.emd2(np.full(8, 1 / 8), np.full(8, 1 / 8), cost.numpy())
    got = m.transport_loss(a, b).item() * m.sigma**2 * a[0].numel()
    assert got == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("name", ["cryogen1", "cryogen2"])
def test_gradients_reach_every_parameter(name):
    y, mask = _images()
    m = _make(name, mask)
    m.fit(y, 3, progress=False)  # after the zero-initialised output layer has moved
    for mod_name, mod in m._modules().items():
        mod.zero_grad()
    m.generator = torch.Generator().manual_seed(0)
    x = m.network(y[:8])
    loss = m.data_fidelity(y[:8], x).mean() + m.redegrade(x).pow(2).mean()
    if name == "cryogen1":
        loss = loss + m.energy(x).mean()
    loss.backward()
    for mod_name, mod in m._modules().items():
        for pname, p in mod.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{mod_name}.{pname} got no gradient"


def test_cryogen2_training_lowers_objective():
    y, mask = _images(n=8)
    m = _make("cryogen2", mask, lr=3e-3)

    def objective():
        m.generator = torch.Generator().manual_seed(123)  # same rotations and noise each time
        with torch.no_grad():
            x = m.network(y)
            return (m.data_fidelity(y, x).mean() + m.lam * m.transport_loss(m.redegrade(x), y)).item()

    before = objective()
    m.generator = torch.Generator().manual_seed(1)
    m.fit(y, 10, progress=False)
    assert objective() < before


@pytest.mark.parametrize("name", ["cryogen1", "cryogen2"])
def test_same_seed_same_result_and_resume(name, tmp_path):
    y, mask = _images()
    a = _make(name, mask).fit(y, 4, progress=False)
    b = _make(name, mask).fit(y, 4, progress=False)
    torch.testing.assert_close(a.predict(y), b.predict(y), rtol=0, atol=0)
    # Interrupted after 2 steps and resumed from the checkpoint = uninterrupted.
    ck = tmp_path / "ck.pt"
    _make(name, mask).fit(y, 2, progress=False, checkpoint=ck)
    c = _make(name, mask).fit(y, 4, progress=False, checkpoint=ck)
    assert c.step == 4 and len(c.history) == 4
    torch.testing.assert_close(a.predict(y), c.predict(y), rtol=0, atol=0)


def test_cryogen2_potential_and_witness():
    y, mask = _images()
    m = _make("cryogen2", mask, potential=True)
    m.fit(y, 2, progress=False)
    assert "potential" in m.history[-1]
    w = m.witness(y[:3].requires_grad_(True))
    assert w.shape == (3,)
    w.sum().backward()


def test_cryogen1_map_refinement_lowers_objective():
    y, mask = _images()
    m = _make("cryogen1", mask).fit(y, 3, progress=False)
    r = m.reconstruct(y[:4], refine_steps=15)
    assert r.mean.shape == (4, N2D, N2D)
    with torch.no_grad():
        j0 = m.map_objective(y[:4], m.predict(y[:4]), average=True)
    torch.testing.assert_close(r.diagnostics["map_objective"], m.map_objective(y[:4], r.mean, average=True))
    assert (r.diagnostics["map_objective"] < j0).all()  # gradient descent on a deterministic objective
    assert (r.mean - m.predict(y[:4])).abs().max() > 0  # and it moved


def test_cryogen1_critic_warmup(tmp_path):
    y, mask = _images()
    kw = dict(n_critic=1, critic_warmup_steps=2, critic_warmup_updates=3)
    m = _make("cryogen1", mask, **kw)
    assert [m.critic_updates(s) for s in range(4)] == [3, 3, 1, 1]
    m.fit(y, 4, progress=False)
    # Every critic parameter took 3 + 3 + 1 + 1 Adam steps.
    assert {int(st["step"]) for st in m.optimizers["critic"].state.values()} == {8}
    # Interrupted inside the warm-up and resumed after it = uninterrupted.
    ck = tmp_path / "ck.pt"
    _make("cryogen1", mask, **kw).fit(y, 1, progress=False, checkpoint=ck)
    c = _make("cryogen1", mask, **kw).fit(y, 4, progress=False, checkpoint=ck)
    torch.testing.assert_close(m.predict(y), c.predict(y), rtol=0, atol=0)
    # Without the warm-up the critic takes n_critic updates from the first step.
    assert _make("cryogen1", mask, n_critic=2, critic_warmup_steps=0).critic_updates(0) == 2
    with pytest.raises(ValueError, match="critic_warmup_steps"):
        _make("cryogen1", mask, critic_warmup_steps=-1)
    with pytest.raises(ValueError, match="critic_warmup_updates"):
        _make("cryogen1", mask, critic_warmup_updates=0)


def test_bad_arguments():
    y, mask = _images()
    with pytest.raises(ValueError, match="sigma"):
        CryoGEN2(mask=mask, sigma=0.0)
    with pytest.raises(ValueError, match="ot_method"):
        CryoGEN2(mask=mask, sigma=1.0, ot_method="bad")
    with pytest.raises(ValueError, match="loss"):
        CryoGEN1(mask=mask, sigma=1.0, loss="bad")
    with pytest.raises(ValueError, match="rotations"):
        CryoGEN2(mask=mask, sigma=1.0, rotations=[7])


def test_debiased_transport_is_minimal_at_the_observations_distribution():
    """Matching a scale: a = s z against b ~ N(0, I). The plain minibatch loss prefers a shrunk distribution
    (s < 1); the debiased one is zero in expectation at s = 1 and smallest there."""
    method = CryoGEN2(missing_wedge_mask((8, 8), (-60, 60)), sigma=1.0, base_channels=2)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, 8, 2, generator=g, dtype=torch.float64)
    b = torch.randn(400, 8, 2, generator=g, dtype=torch.float64)
    scales = [0.6, 0.8, 1.0, 1.2, 1.4]

    def expected(debias):
        method.debias = debias
        return torch.tensor([sum(method.transport_loss(s * z[i], b[i]).item() for i in range(400)) / 400 for s in scales])

    plain, debiased = expected(False), expected(True)
    assert scales[int(plain.argmin())] < 1.0
    assert scales[int(debiased.argmin())] == 1.0 and abs(debiased[2].item()) < 0.05 * plain[2].item()
    method.debias = True
    with pytest.raises(ValueError, match="at least 2"):
        method.transport_loss(z[0, :1], b[0])


def test_masked_rotation_loss_is_the_training_form_of_the_held_out_rotation_test():
    """Identity network: the loss is the power of the data a turn moved into the wedge (closed form, full FFT in
    numpy); any network: that times the held-out rotation test; rotations that keep the wedge give 0."""
    from cryolearn.metrics import rotation_validation_error
    from cryolearn.physics import apply_missing_wedge, rotate_cube

    n, sigma, r = 12, 0.7, 3  # r: a quarter turn about X, which moves the wedge
    mask = missing_wedge_mask((n,) * 3, (-60, 60))
    g = torch.Generator().manual_seed(0)
    y = apply_missing_wedge(torch.randn(5, n, n, n, generator=g, dtype=torch.float64), mask)
    m = get_method("cryogen2", mask=mask, sigma=sigma, base_channels=4, rotations=[0, r], masked_rotation=2.0)
    m.network.double()
    ident = get_method("cryogen2", mask=mask, sigma=sigma, base_channels=4, rotations=[r])
    ident.network = torch.nn.Identity()
    full_missing = ~missing_wedge_mask((n,) * 3, (-60, 60), rfft=False).numpy()
    fy = np.fft.fftn(rotate_cube(y, r).numpy(), axes=(-3, -2, -1), norm="ortho")
    closed = (np.abs(fy) ** 2 * full_missing).sum() / (2 * sigma**2 * n**3 * y.shape[0])
    assert ident.masked_rotation_loss(y).item() == pytest.approx(closed, rel=1e-10)
    assert closed > 0.01
    with torch.no_grad():  # rotation 0 moves nothing, so every draw is r
        rve = rotation_validation_error(m.network, y, mask, rotations=[r]).item()
        assert m.masked_rotation_loss(y).item() == pytest.approx(rve * closed, rel=1e-8)
    loss = m.masked_rotation_loss(y)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.network.parameters())  # the residual U-Net starts as the identity: its last layer first
    keep = get_method("cryogen2", mask=mask, sigma=sigma, base_channels=4, rotations=[0, 1], masked_rotation=1.0)
    assert keep.masked_rotation_loss(y.float()).item() == 0.0  # half turns about Z keep the wedge in place
    with pytest.raises(ValueError, match="masked_rotation"):
        _make("cryogen2", mask, masked_rotation=-1.0)


@pytest.mark.parametrize("name", ["cryogen1", "cryogen2", "cryowgen2"])
def test_masked_rotation_term_enters_the_objective(name):
    y, mask = _images()
    m = _make(name, mask, masked_rotation=3.0)
    m.fit(y, 2, progress=False)
    assert all(h["masked_rotation"] > 0 for h in m.history)
    assert "masked_rotation" not in _make(name, mask).fit(y, 1, progress=False).history[0]
