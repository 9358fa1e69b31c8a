"""Regression: the samplers restore the wedge of data they never saw, with honest spread, at a CI budget.

Trained on observations only, as a user would: the 2D toy (book chapter "CryoGEN-II":
random anisotropic blobs, +-45 degrees, sigma 0.3) on 16x16 images, then
``beta`` from the rotation proxy (as ``cryolearn train`` does), then
``reconstruct`` on images drawn with another seed (other blobs) and on small
3D boxes of the two complexes training never sees. The thresholds sit well
away from the values measured when the methods work (printed by each test)
and from those of deliberately broken samplers. Measured (1 CPU thread; default
precision field, ``beta_field="proxy"``):

============================  ===============  =================  ======  ============
case                          in-wedge error   90% coverage       ESS/K   decile ratio
============================  ===============  =================  ======  ============
2D, CryoWGEN-I / -II          0.27 / 0.26      0.94 / 0.93        1.00    1.23 / 1.24
3D, CryoWGEN-I / -II          0.79 / 0.80      0.88 / 0.89        1.00    2.03 / 2.01
3D, one beta (scalar)         0.80 / 0.87      0.79 / 0.79        1.00    about 1
CryoWGEN-I, isotropic ref.    0.64 (2D) 1.47   0.02 (2D) 0.04     0.03    -
CryoWGEN-II, chains no noise  0.28 (2D)        0.05 (2D)          -       -
============================  ===============  =================  ======  ============
"""

import pytest
import torch

from cryolearn import data, metrics, physics
from cryolearn.methods import estimate_beta, get_method

SIZE, SIGMA, TILT = 16, 0.3, (-45.0, 45.0)
SAMPLER = {
    "cryowgen1": dict(n_samples=32, n_train_samples=8),
    "cryowgen2": dict(n_chains=8, n_steps=150, burn_in=100, thin=1),  # every state after burn-in: a less noisy mean
}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _check(name, method, y_test, x_test, mask, ndim, bounds):
    """Restore held-out observations; assert in-wedge error, coverage and (CryoWGEN-I) ESS."""
    rec = method.reconstruct(y_test, batch_size=8)
    err = metrics.relative_wedge_error(rec.mean, x_test, mask, pooled=True).item()
    err_bar = metrics.relative_wedge_error(method.predict(y_test), x_test, mask, pooled=True).item()
    cover = metrics.calibration_from_samples(rec.samples, x_test, ndim=ndim).mean(0)
    ess = rec.diagnostics["ess"] / method.n_samples if "ess" in rec.diagnostics else None
    ranks = metrics.std_error_bins(rec.mean, rec.std, x_test)
    print(f"{name}: beta {method.beta:.3g} ({method.beta_field}), in-wedge error {err:.3f} (x_bar {err_bar:.3f}, "
          f"observation 1.00), coverage 50% {cover[0]:.3f} 90% {cover[1]:.3f}, ENCE {ranks.ence:.3f}, "
          f"decile ratio {ranks.decile_ratio:.2f}"
          + ("" if ess is None else f", ESS/K min {ess.min():.3f} mean {ess.mean():.3f}"))
    assert err < bounds["error"], f"in-wedge error {err:.3f}: the sampler does not restore the wedge"
    assert err < err_bar + 0.15, f"the posterior mean ({err:.3f}) is much worse than its own centre ({err_bar:.3f})"
    lo, hi = bounds["coverage90"]
    assert lo < cover[1] < hi, f"90% coverage {cover[1]:.3f} outside ({lo}, {hi})"
    if ess is not None:
        assert ess.min() > 0.1, f"ESS/K {ess.min():.3f}: the reweighting collapsed"
    if "decile_ratio" in bounds:
        assert ranks.decile_ratio > bounds["decile_ratio"], (
            f"decile ratio {ranks.decile_ratio:.2f}: the std map does not say where the error is")


@pytest.mark.parametrize("name", ["cryowgen1", "cryowgen2"])
def test_sampler_restores_the_2d_toy(name):
    mask = physics.missing_wedge_mask((SIZE, SIZE), TILT)
    g = torch.Generator().manual_seed(0)
    y_train, _ = physics.simulate_observation(data.random_blobs_2d(256, size=SIZE, seed=0), mask, sigma=SIGMA, generator=g)
    x_test = data.random_blobs_2d(32, size=SIZE, seed=1)  # other blobs than training's
    y_test, _ = physics.simulate_observation(x_test, mask, sigma=SIGMA, generator=g)
    m = get_method(name, mask=mask, sigma=SIGMA, base_channels=8, batch_size=16, seed=0, **SAMPLER[name])
    m.fit(y_train, 100, progress=False)
    m.beta = estimate_beta(m, y_train[:128], generator=torch.Generator().manual_seed(5)).beta
    _check(name, m, y_test, x_test, mask, 2, {"error": 0.6, "coverage90": (0.75, 0.98)})


@pytest.fixture(scope="module")
def boxes_3d():
    """16^3 boxes at SNR 1, +-60 degrees: training on the seen complexes, 16 test boxes of the two held-out ones."""
    from cryolearn.methods.pretrained import ReferenceSetup, reference_data

    torch.set_num_threads(1)
    train, test = reference_data(ReferenceSetup(box=16, n_train=64, n_test=48))
    seen = {train.names[i] for i in train.labels.tolist()}
    assert seen and not seen & {test.names[i] for i in test.labels.tolist()}
    return train, test


@pytest.mark.parametrize("name", ["cryowgen1", "cryowgen2"])
def test_sampler_restores_held_out_complexes_in_3d(name, boxes_3d):
    train, test = boxes_3d
    kw = {**SAMPLER[name], **({"n_steps": 80, "burn_in": 50, "n_train_steps": 5} if name == "cryowgen2" else {})}
    m = get_method(name, mask=test.mask, sigma=float(train.sigma.mean()), base_channels=4, batch_size=8, seed=0, **kw)
    m.fit(train.observations, 60, progress=False)
    m.beta = estimate_beta(m, train.observations, generator=torch.Generator().manual_seed(5)).beta
    # The rotation proxy overestimates beta in 3D (book chapter "CryoWGEN-II"), so coverage sits below 0.9.
    _check(name, m, test.observations[:16], test.ground_truth[:16], test.mask, 3,
           {"error": 0.93, "coverage90": (0.7, 0.98), "decile_ratio": 1.3})
