"""The precision-field posterior mean of a CryoGEN-II model on a whole simulated tomogram.

Usage (after ``cryolearn simulate sim --tomogram`` and ``cryolearn train sim/tomogram.mrc
--tomogram --method cryogen2 ... --out cryogen2.pt``)::

    python benchmarks/slab_field_mean.py cryogen2.pt sim

Restores the tomogram in tiles twice: with the reconstructor ``G(y)`` itself, and with the
mean of the Gaussian part of the CryoWGEN posterior centred on that same ``G(y)`` (``w = 0``,
the per-voxel precision field of the chapter "CryoWGEN-II", scalar ``beta`` estimated by the
rotation proxy on 64 boxes of the tomogram), and prints the in-wedge error and the correlation
with the ground truth of each. Findings: ``benchmarks/crowded_slab.md``.
"""

import argparse
from pathlib import Path

import torch

from cryolearn import data, metrics, physics
from cryolearn.inference import restore_tiled
from cryolearn.methods import Method, estimate_beta, get_method


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a CryoGEN-II checkpoint written by cryolearn train")
    parser.add_argument("sim", help="the folder of cryolearn simulate --tomogram (tomogram.mrc, truth.mrc)")
    parser.add_argument("--tilt-range", nargs=2, type=float, default=(-60.0, 60.0))
    args = parser.parse_args(argv)
    g2 = Method.from_checkpoint(args.model, map_location="cpu")
    box = g2.mask.shape[0]
    tomogram, _ = data.read_mrc(Path(args.sim) / "tomogram.mrc")
    truth, _ = data.read_mrc(Path(args.sim) / "truth.mrc")
    # A sampler with G's weights: with w = 0 and the precision field its reconstruct returns the exact mean.
    w2 = get_method("cryowgen2", mask=g2.mask, sigma=g2.sigma, base_channels=g2.config.base_channels, seed=0,
                    n_chains=2, n_steps=4, burn_in=2, thin=1)
    w2.network.load_state_dict(g2.network.state_dict())
    boxes = data.extract_subtomograms(tomogram, box=box, stride=box)[0][:64]  # normalised, as in training
    w2.beta = float(estimate_beta(w2, boxes, generator=torch.Generator().manual_seed(0)).beta)
    mask = physics.missing_wedge_mask(tomogram.shape, tuple(args.tilt_range))
    rows = {
        "tomogram (no restoration)": tomogram,
        "CryoGEN-II, G(y)": restore_tiled(tomogram, lambda v: {"mean": g2.predict(v)}, box, progress=False)["mean"],
        "field posterior mean around G(y)": restore_tiled(tomogram, lambda v: {"mean": w2.reconstruct(v).mean}, box,
                                                          progress=False)["mean"],
    }
    print(f"beta (rotation proxy) {w2.beta:.2f}")
    for name, v in rows.items():
        err = metrics.relative_wedge_error(v.double(), truth.double(), mask).item()
        ncc = metrics.normalized_cross_correlation(v.double(), truth.double()).item()
        print(f"{name:34s} in-wedge error {err:.3f}  correlation with the truth {ncc:.3f}")


if __name__ == "__main__":
    main()
