"""Simulate observed subtomograms of the shipped structure maps, with their ground truth.

Example::

    cryolearn simulate sim --structures 6zu5 4v8r 7pbl --n 64 --box 32 --tilt-range -60 60 --snr 1 --seed 0

writes ``sim/obs/0000.mrc ...`` (what a method sees), ``sim/truth/0000.mrc ...``
(the clean volumes, for scoring only) with the voxel size in the headers, and
``sim/simulate.yaml`` (every parameter, the source of each map, the structure
of each file and the noise level ``sigma``). Observations follow
``y = M(R x) + M n`` (the book's appendix on notation and conventions and the book's chapter on the missing wedge (data)).

With ``--tomogram`` it simulates a crowded tomogram from a tilt series
instead::

    cryolearn simulate tomo --tomogram --shape 64 192 192 --particles 40 --snr 1

writes ``tomo/tilt_series.mrc`` (the noisy images, one per tilt) and
``tomo/tilt_series.tlt`` (IMOD angles), ``tomo/tomogram.mrc`` (its weighted
back-projection), ``tomo/truth.mrc`` (the clean slab, for scoring only) and
``tomo/simulate.yaml`` (every parameter, particle positions and structures).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import add_tilt_args, check_new_output, tilt_range, write_yaml


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output folder")
    parser.add_argument("--structures", nargs="+", default=None, metavar="PDB",
                        help="PDB ids of shipped maps to use (default: all; `cryolearn info` lists them)")
    parser.add_argument("--n", type=int, default=64, help="number of subtomograms (default: 64)")
    parser.add_argument("--box", type=int, default=32, help="box edge in voxels, at most 64 (default: 32)")
    add_tilt_args(parser, required=False, note=" (default: -60 60)")
    parser.add_argument("--snr", type=float, default=1.0, help="signal-to-noise ratio var(x) / sigma^2 (default: 1)")
    parser.add_argument("--rotation", choices=("so3", "cube"), default="so3",
                        help="random continuous rotations or the 24 cube rotations (default: so3)")
    parser.add_argument("--unmasked-noise", action="store_true", help="y = M x + n instead of y = M x + M n")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    tomo = parser.add_argument_group("crowded tomogram (--tomogram)")
    tomo.add_argument("--tomogram", action="store_true",
                      help="simulate a crowded slab, its tilt series and its WBP tomogram instead of subtomograms")
    tomo.add_argument("--shape", type=int, nargs=3, default=(64, 192, 192), metavar=("D", "H", "W"),
                      help="slab size in voxels, (z, y, x) (default: 64 192 192)")
    tomo.add_argument("--particles", type=int, default=40, help="structures to place, without overlap (default: 40)")
    tomo.add_argument("--tilt-step", type=float, default=3.0, help="degrees between tilts (default: 3)")
    tomo.add_argument("--dose", type=float, default=120.0, help="total dose in e/A^2, split over the tilts (default: 120)")


def main(args: argparse.Namespace) -> int:
    from .. import __version__, pick_device
    from ..data import load_structure_maps, simulate_subtomograms, write_mrc

    start = time.perf_counter()
    out = Path(args.out)
    check_new_output(out, args.force)
    tilt = tilt_range(args) or (-60.0, 60.0)
    device = pick_device(args.device)
    maps = load_structure_maps(names=args.structures, device=device)
    if args.tomogram:
        return _tomogram(args, maps, tilt, device, start, __version__)
    ds = simulate_subtomograms(maps, n=args.n, box=args.box, tilt_range=tilt, snr=args.snr, seed=args.seed,
                               rotation=args.rotation, masked_noise=not args.unmasked_noise)
    # The noise level in the units `cryolearn train` works in (each observation normalised, the book's chapter on the missing wedge (data)).
    sigma_normalized = (ds.sigma / ds.observations.flatten(1).std(dim=1, unbiased=False)).mean().item()
    for folder, volumes in (("obs", ds.observations), ("truth", ds.ground_truth)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for i, v in enumerate(volumes):
            write_mrc(out / folder / f"{i:04d}.mrc", v, ds.voxel_size, overwrite=args.force)
    record = {
        **ds.metadata,
        "sigma": ds.sigma.mean().item(),
        "sigma_normalized": sigma_normalized,
        "labels": {f"{i:04d}": ds.names[int(k)] for i, k in enumerate(ds.labels)},
        **_provenance(args, maps, device, start, __version__),
    }
    write_yaml(out / "simulate.yaml", record)
    print(f"wrote {len(ds)} observations and truths of {ds.box}^3 voxels at {ds.voxel_size:g} A to {out} "
          f"(sigma {record['sigma']:.4g}; {sigma_normalized:.4g} after normalising each observation)")
    return 0


def _provenance(args: argparse.Namespace, maps, device, start: float, version: str) -> dict:
    """The part of ``simulate.yaml`` every data set shares: the maps' sources, version, command line, device, time."""
    return {
        "maps": [{k: info.get(k) for k in ("name", "pdb_id", "molecule", "resolution", "source")} for info in maps.info],
        "cryolearn_version": version,
        "command_line": args.command_line,
        "device": str(device),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }


def _tomogram(args: argparse.Namespace, maps, tilt, device, start: float, version: str) -> int:
    from ..data import default_tilt_angles, read_tlt, simulate_tomogram, write_mrc, write_tlt

    angles = read_tlt(args.tlt) if getattr(args, "tlt", None) else default_tilt_angles(tilt, args.tilt_step)
    sim = simulate_tomogram(maps, shape=args.shape, box=args.box, n_particles=args.particles, tilt_angles=angles,
                            dose=args.dose, snr=args.snr, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, vol in (("tilt_series", sim.tilt_series), ("tomogram", sim.tomogram), ("truth", sim.truth)):
        write_mrc(out / f"{name}.mrc", vol.float().cpu(), sim.voxel_size, overwrite=args.force)
    write_tlt(out / "tilt_series.tlt", sim.tilt_angles, overwrite=args.force)
    record = {
        **sim.metadata,
        "particles": [{"structure": lab, "corner_zyx": c} for lab, c in zip(sim.labels, sim.positions.tolist())],
        **_provenance(args, maps, device, start, version),
    }
    write_yaml(out / "simulate.yaml", record)
    print(f"wrote a tilt series of {len(sim.tilt_angles)} images, its WBP tomogram and the truth "
          f"({' x '.join(map(str, sim.truth.shape))} voxels of {sim.voxel_size:g} A, {len(sim.labels)} particles) to {out}")
    return 0
