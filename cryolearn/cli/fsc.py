"""Fourier shell correlation between two MRC volumes, with the 0.5 and 0.143 crossings.

Example::

    cryolearn fsc restored.mrc truth.mrc --tilt-range -60 60

With ``--tilt-range`` (or an IMOD ``--tlt`` file) the FSC is also reported
inside the missing wedge and in the measured region.
"""

from __future__ import annotations

import argparse

from ._common import add_tilt_args, tilt_range


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", help="first MRC volume")
    parser.add_argument("b", help="second MRC volume (same box)")
    add_tilt_args(parser, required=False, note=", to split the FSC into wedge and measured regions")


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
    return 0
