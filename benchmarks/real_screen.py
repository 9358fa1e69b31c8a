"""Screening runs of CryoGEN-II on the real microtubule tomogram (benchmarks/real_microtubules.md).

Trains on the top half of ``data/real/13pf_MT.mrc`` (Y < 103) through the Python API, restores the bottom half in
tiles and prints: the pooled in-wedge power ratio (``cryolearn.metrics.wedge_power_ratio``, 0.05-0.35 cycles/voxel)
of input and restoration under the +-60 and +-65 degree masks, the FSC with the input over the measured region, and
the held-out rotation test on non-overlapping boxes of the bottom half (quarter turns about X and Z, and about Y).
Example::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/real_screen.py --steps 60 --spectrum 0.1 --rot y
"""
import argparse, time, json, torch
from cryolearn.data import load_microtubules, extract_subtomograms
from cryolearn.methods import get_method
from cryolearn.physics import missing_wedge_mask, estimate_sigma
from cryolearn.inference import restore_tiled
from cryolearn.metrics import wedge_power_ratio, fourier_shell_correlation, rotation_validation_error
p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=60); p.add_argument("--tilt", type=float, default=60)
p.add_argument("--lam", type=float, default=4.0); p.add_argument("--sigma", type=float, default=None)
p.add_argument("--rot", default="all"); p.add_argument("--bs", type=int, default=8)
p.add_argument("--box", type=int, default=32); p.add_argument("--stride", type=int, default=16)
p.add_argument("--bc", type=int, default=None); p.add_argument("--spectrum", default="none")
p.add_argument("--lr", type=float, default=None); p.add_argument("--debias", action="store_true")
a = p.parse_args()
torch.manual_seed(0)
v, vs = load_microtubules()
H = v.shape[1] // 2
top, bot = v[:, :H], v[:, H:]
y, _ = extract_subtomograms(top, box=a.box, stride=a.stride)
from cryolearn.physics import cube_rotations
mats = cube_rotations()
rot = None
if a.rot == "y":   # the 8 that keep Y
    rot = [i for i in range(24) if abs(mats[i][1, 1]) == 1]
elif a.rot == "yq":  # identity, the Y turns
    rot = [i for i in range(24) if mats[i][1, 1] == 1]
mask = missing_wedge_mask((a.box,) * 3, (-a.tilt, a.tilt))
sig = float(estimate_sigma(y, mask).mean()) if a.sigma is None else a.sigma
opts = dict(lam=a.lam, batch_size=a.bs, seed=0)
if rot is not None: opts["rotations"] = rot
if a.bc: opts["base_channels"] = a.bc
if a.lr: opts["lr"] = a.lr
if a.debias: opts["debias"] = True
kw = {}
if a.spectrum != "none":
    from cryolearn.physics import estimate_noise_spectrum
    kw["noise_spectrum"] = estimate_noise_spectrum(y, mask, quantile=float(a.spectrum))
m = get_method("cryogen2", mask=mask, sigma=sig, **opts, **kw)
t0 = time.time()
m.fit(y, a.steps, progress=False)
tt = time.time() - t0
h = m.history
print(f"N={y.shape[0]} sigma={sig:.3f} rot={rot} train {tt:.0f}s ({tt/a.steps:.2f}s/step); loss first {h[0]} last {h[-1]}")
rest = restore_tiled(bot, lambda t: {"mean": m.predict(t)}, a.box, progress=False)["mean"]
res = {}
for tr in (60, 65):
    mk = missing_wedge_mask(tuple(bot.shape), (-tr, tr))
    wi = wedge_power_ratio(bot, mk).pooled.item(); wo = wedge_power_ratio(rest, mk).pooled.item()
    f = fourier_shell_correlation(rest, bot, mask=mk)
    sel = (f.frequency >= 0.05) & (f.frequency <= 0.35)
    res[tr] = (wi, wo, wo / wi, f.fsc[sel].mean().item())
    print(f"metric mask +-{tr}: wedge ratio in {wi:.4f} out {wo:.4f} x{wo/wi:.2f}; measured FSC mean(0.05-0.35) {f.fsc[sel].mean():.3f} min {f.fsc[sel].min():.3f}")
yv, _ = extract_subtomograms(bot, box=a.box, stride=a.box)
for rname, rr in (("xz", None), ("yq", [i for i in range(24) if mats[i][1, 1] == 1 and i != 0])):
    e = rotation_validation_error(lambda t: m.predict(t), yv, mask, rotations=rr).item()
    print(f"rotation validation ({rname}) on {yv.shape[0]} held-out boxes: {e:.3f}")
