"""Restore subtomograms, or whole tomograms tile by tile, with a model trained by ``cryolearn train``.

Example::

    cryolearn reconstruct model.pt sim/obs --out restored --samples 4
    cryolearn reconstruct model.pt tomogram.rec --tomogram --overlap 8 --out restored

Reads ``model.pt`` and its configuration ``model.yaml``. Subtomograms (the box
the model was trained on) are normalised as in training and written as
``restored/<stem>_mean.mrc`` and, for the samplers (cryowgen1, cryowgen2),
``<stem>_std.mrc`` and ``--samples`` posterior samples ``<stem>_sampleNNN.mrc``,
with the input's voxel size. With ``--tomogram`` each input is a whole
tomogram: it is cut into overlapping cubic tiles of ``--box`` voxels (default:
the model's box), each normalised, restored and blended back without seams
(:func:`cryolearn.inference.restore_tiled`) into ``<stem>_mean.mrc`` (and
``<stem>_std.mrc``). ``restored/reconstruct.yaml`` records the model's
configuration, the inputs, the outputs, the version and the command line;
for the samplers also ``beta`` (from the checkpoint, or ``--beta``) and
``beta_field`` (``proxy``: each voxel's precision from an ensemble of rotation
proxies, the default; ``scalar``: one for every voxel, as ``--beta`` sets) and, for
cryowgen1, the effective sample size of the reweighting (a warning is printed
when ESS/K falls below 0.1: the posterior mean and spread then rest on a few
candidates). ``--posterior-mean`` makes a deterministic model (cryogen1,
cryogen2) return, instead of its own output, the mean of the Gaussian
posterior under a per-voxel precision field around that output
(:func:`cryolearn.methods.field_posterior_mean`, the samplers' mean without
their witness); ``reconstruct.yaml`` then records ``restoration:
posterior-mean``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import build_method, check_new_output, describe_device, mrc_files, read_yaml, write_yaml


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint written by `cryolearn train` (its .yaml must sit beside it)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="MRC subtomograms or folders of them; with --tomogram, MRC tomograms")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tomogram", action="store_true", help="each input is a whole tomogram, restored in overlapping tiles")
    parser.add_argument("--box", type=int, default=None, help="tile edge in voxels with --tomogram (default: the model's box)")
    parser.add_argument("--overlap", type=int, default=None,
                        help="least overlap of neighbouring tiles in voxels (default: box // 4)")
    parser.add_argument("--samples", type=int, default=0,
                        help="posterior samples to write per subtomogram, samplers only (default: 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="volumes or tiles per pass (default: 8)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--force", action="store_true", help="overwrite files in an existing output folder")
    parser.add_argument("--beta", type=float, default=None,
                        help="samplers only: one precision of the conditional prior for every voxel, overriding the "
                             "model's per-voxel field and stored value (default: the model's)")
    parser.add_argument("--posterior-mean", action="store_true",
                        help="cryogen1 and cryogen2 only: return the posterior mean under a per-voxel precision field "
                             "around the model's output (four more passes of the network and a linear solve per tile) "
                             "instead of the output itself")

#: ESS/K below which `cryolearn reconstruct` warns that the reweighting has collapsed.
ESS_WARN = 0.1


def _restorer(method, batch_size: int, posterior_mean: bool, ess: list):
    """A function from ``(B, D, H, W)`` normalised volumes to their :class:`cryolearn.methods.Reconstruction`.

    It records each call's effective sample sizes (CryoWGEN-I) in ``ess``; with ``posterior_mean`` the
    reconstruction is the precision-field posterior mean around the model's output.
    """
    import torch

    from ..methods import Reconstruction, field_posterior_mean

    generator = torch.Generator(device=method.device).manual_seed(method.seed + 1) if posterior_mean else None

    def restore(volumes):
        rec = method.reconstruct(volumes, batch_size=batch_size)
        if "ess" in rec.diagnostics:
            ess.append(rec.diagnostics["ess"])
        if posterior_mean:
            vol = volumes.to(method.device)
            mean = field_posterior_mean(method, vol, rec.mean.to(vol), batch_size=batch_size, generator=generator)
            rec = Reconstruction(mean=mean.to(volumes.device))
        return rec

    return restore


def _maps(rec) -> dict:
    """The maps of a tile batch's reconstruction that ``--tomogram`` blends and writes: ``mean``, and ``std`` if any."""
    return {"mean": rec.mean} if rec.std is None else {"mean": rec.mean, "std": rec.std}


def _load(model: Path, config: dict, box: int, device, beta: float | None = None):
    """The trained method from ``model`` and its configuration, for boxes of ``box`` voxels, on ``device``.

    A sampler takes ``beta`` from the checkpoint (written there by ``cryolearn train``), else from
    ``model.yaml``; a given ``beta`` overrides both.
    """
    method = build_method(config, box)
    try:
        method.load(model)
    except Exception as err:  # torch.load raises many types on a foreign file
        raise ValueError(f"cannot load {str(model)!r} as a {config['method']} checkpoint: {err}") from None
    if method.samples_posterior:
        if beta is not None:
            method.beta = float(beta)
            method.beta_field = "scalar"
        elif "beta" in config and not state_has_beta(model):
            method.beta = float(config["beta"])
    if method.step < config.get("steps", 0):
        print(f"note: {model} holds {method.step} of {config['steps']} training steps (an interrupted run)")
    return method.to(device)


def state_has_beta(model: Path) -> bool:
    """Whether the checkpoint stores the sampler's ``beta`` (those written before it was recorded do not)."""
    import torch

    return torch.load(model, map_location="cpu", weights_only=False).get("beta") is not None


def _ess_record(ess: list, k: int) -> dict:
    """reconstruct.yaml's summary of the effective sample sizes ``ess`` (one per volume or tile) of ``k`` candidates."""
    import sys

    import torch

    e = torch.cat([t.flatten().double().cpu() for t in ess])
    frac = e / k
    rec = {"n_candidates": k, "ess_mean": round(float(e.mean()), 4), "ess_min": round(float(e.min()), 4),
           "ess_fraction_mean": round(float(frac.mean()), 4), "ess_fraction_min": round(float(frac.min()), 4)}
    low = int((frac < ESS_WARN).sum())
    if low:
        print(f"warning: the effective sample size is below {ESS_WARN:g} K (K = {k}) for {low} of {e.numel()} volumes "
              f"(smallest ESS {rec['ess_min']:.3g}): their mean and std rest on a few candidates", file=sys.stderr)
    return rec


def main(args: argparse.Namespace) -> int:
    from .. import __version__, pick_device
    from ..data import read_mrc, read_subtomograms, write_mrc
    from ..methods import Reconstruction
    from ..inference import restore_tiled

    start = time.perf_counter()
    model, out = Path(args.model), Path(args.out)
    if not model.is_file():
        raise FileNotFoundError(f"model {args.model!r} does not exist")
    check_new_output(out, args.force)
    if args.samples < 0 or args.batch_size < 1:
        raise ValueError(f"--samples must be >= 0 and --batch-size >= 1, got {args.samples} and {args.batch_size}")
    if not args.tomogram and (args.box is not None or args.overlap is not None):
        raise ValueError("--box and --overlap apply to whole tomograms (--tomogram) only")
    if args.tomogram and args.samples:
        raise ValueError("--samples is for subtomograms; a tomogram gets its mean (and std for the samplers)")
    files = mrc_files(args.inputs)
    stems = [f.stem for f in files]
    if len(set(stems)) < len(stems):
        twins = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"inputs share file names {twins}; their outputs would collide")
    if args.beta is not None and not args.beta > 0:
        raise ValueError(f"--beta must be positive, got {args.beta}")
    device = pick_device(args.device)
    config = read_yaml(model.with_suffix(".yaml"))
    if args.beta is not None and config.get("method") not in ("cryowgen1", "cryowgen2"):
        raise ValueError(f"--beta applies to the samplers (cryowgen1, cryowgen2), not {config.get('method')}")
    if args.posterior_mean and config.get("method") not in ("cryogen1", "cryogen2"):
        raise ValueError(f"--posterior-mean applies to cryogen1 and cryogen2; {config.get('method')} returns its "
                         "posterior mean already")
    model_box = int(config.get("box", 0))
    written, ess = [], []
    if args.tomogram:
        box = args.box or model_box
        overlap = box // 4 if args.overlap is None else args.overlap
        method = _load(model, config, box, device, args.beta)
        restore = _restorer(method, args.batch_size, args.posterior_mean, ess)
        for f in files:
            volume, voxel_size = read_mrc(f)
            if not voxel_size > 0:
                raise ValueError(f"{str(f)!r} sets no voxel size in its header")
            maps = restore_tiled(volume.to(device), lambda tiles: _maps(restore(tiles)), box, overlap=overlap,
                                 batch_size=args.batch_size)
            out.mkdir(parents=True, exist_ok=True)
            written += [write_mrc(out / f"{f.stem}_{k}.mrc", v, voxel_size, overwrite=args.force)
                        for k, v in maps.items()]
    else:
        y, voxel_size = read_subtomograms(files)  # (N, D, H, W), each normalised as in training
        if tuple(y.shape[1:]) != (model_box,) * 3:
            raise ValueError(f"the model was trained on boxes of {model_box}^3 voxels but the inputs hold {tuple(y.shape[1:])}; "
                             "restore larger volumes with --tomogram")
        if not voxel_size > 0:
            raise ValueError(f"{str(files[0])!r} sets no voxel size in its header")
        box, overlap = model_box, None
        method = _load(model, config, box, device, args.beta)
        if args.samples and not method.samples_posterior:
            raise ValueError(f"{config['method']} gives one restoration per subtomogram; "
                             "--samples needs a sampler (cryowgen1, cryowgen2)")
        rec = _restorer(method, args.batch_size, args.posterior_mean, ess)(y.to(device))
        for i, f in enumerate(files):
            one = Reconstruction(mean=rec.mean[i], std=None if rec.std is None else rec.std[i],
                                 samples=None if rec.samples is None else rec.samples[:, i])
            written += one.save(out, voxel_size, prefix=f"{f.stem}_", n_samples=args.samples, overwrite=args.force)
    record = {
        "model": str(model.resolve()),
        "model_config": config,
        "mode": "tomogram" if args.tomogram else "subtomograms",
        "inputs": [str(f) for f in files],
        "box": box,
        "overlap": overlap,
        "samples": args.samples,
        "restoration": "posterior-mean" if args.posterior_mean else "the model's output",
        "outputs": [p.name for p in written],
        "cryolearn_version": __version__,
        "command_line": args.command_line,
        "device": describe_device(device),
    }
    if method.samples_posterior:
        record["beta"] = method.beta
        record["beta_source"] = "given (--beta)" if args.beta is not None else "the model's"
        record["beta_field"] = method.beta_field
    if ess:
        record.update(_ess_record(ess, method.n_samples))
    record["wall_time_s"] = round(time.perf_counter() - start, 3)
    write_yaml(out / "reconstruct.yaml", record)
    print(f"wrote {len(written)} MRC files and reconstruct.yaml to {out} in {record['wall_time_s']:.1f} s")
    return 0
