"""Fourier shell correlation between two MRC volumes, with the 0.5 and 0.143 crossings.

Example::

    cryolearn fsc restored.mrc truth.mrc --tilt-range -60 60

With ``--tilt-range`` (or an IMOD ``--tlt`` file) the FSC is also reported
inside the missing wedge and in the measured region. With ``--std`` (a std map
written by ``cryolearn reconstruct`` for the samplers, ``A`` being the
posterior mean and ``B`` the truth) it also reports how well the std map is
calibrated: the coverage of Gaussian 50% and 90% intervals, and, with voxels
sorted by predicted std into deciles, the ENCE and the ratio of the RMSE of the
highest-std decile to the lowest's (Levi et al. 2019; 1 means the map does not
say where the error is)::

    cryolearn fsc restored/0000_mean.mrc sim/truth/0000.mrc --std restored/0000_std.mrc
"""

from __future__ import annotations

import argparse

from .common import add_tilt_args, tilt_range


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="first MRC volume")
    parser.add_argument("b", help="second MRC volume (same box)")
    add_tilt_args(parser, required=False, note=", to split the FSC into wedge and measured regions")
    parser.add_argument("--std", default=None, metavar="STD_MRC",
                        help="std map of A (a posterior mean): also report coverage, ENCE and the RMSE ratio "
                             "of the highest- to the lowest-std decile against B (the truth)")


def main(args: argparse.Namespace) -> int:
    from ..data import read_mrc
    from ..metrics import fourier_shell_correlation, fsc_crossings
    from ..physics import missing_wedge_mask

    tilt = tilt_range(args)
    a, voxel_size = read_mrc(args.a)
    b, _ = read_mrc(args.b)
    if a.shape != b.shape:
        raise ValueError(f"{args.a} has shape {tuple(a.shape)} but {args.b} has {tuple(b.shape)}")
    regions = {"all": None}
    if tilt is not None:
        mask = missing_wedge_mask(a.shape, tilt)
        regions.update({"measured": mask, "wedge": ~mask})
    for name, mask in regions.items():
        res = fourier_shell_correlation(a, b, mask=mask, voxel_size=voxel_size or None)
        cross = fsc_crossings(res)
        line = ", ".join(f"FSC {t} at {c.frequency.item():.4f} {c.unit} ({c.resolution.item():.1f} {'A' if voxel_size else 'voxels'})"
                         for t, c in cross.items())
        print(f"{name:9s} {line}")
    if args.std is not None:
        from ..metrics import calibration_gaussian, std_error_bins

        std, _ = read_mrc(args.std)
        if std.shape != a.shape:
            raise ValueError(f"{args.std} has shape {tuple(std.shape)} but {args.a} has {tuple(a.shape)}")
        cov = calibration_gaussian(a, std, b)
        bins = std_error_bins(a, std, b)
        levels = ", ".join(f"{pct}% {v.item():.3f}" for pct, v in zip((50, 90), cov))
        print(f"coverage  {levels}")
        print(f"std map   ENCE {bins.ence:.3f}, RMSE highest/lowest std decile {bins.decile_ratio:.2f}, "
              f"correlation of std with |error| {bins.error_std_correlation:.3f}")
    return 0
