"""Train a method on observed subtomograms (MRC files or folders of them), with checkpoints that resume.

Example::

    cryolearn train sim/obs --method cryogen2 --tilt-range -60 60 --steps 2000 --batch-size 32 --out model.pt

Each subtomogram is normalised to zero mean and unit standard deviation
(the book's chapter on the missing wedge (data)), exactly as ``cryolearn reconstruct`` does. Without
``--sigma`` the noise level is estimated from the data's high-frequency power
(:func:`cryolearn.physics.estimate_sigma`, an upper bound). ``model.pt`` is
written every ``--checkpoint-every`` steps; rerunning the same command after an
interruption resumes from it (more ``--steps`` continue a finished run,
``--force`` starts over). ``model.yaml`` beside it records the resolved
configuration, which ``cryolearn reconstruct`` reads. Method options go
through ``--set``, e.g. ``--set lam=0.5 base_channels=16``: they are checked
against the method's typed configuration (e.g.
:class:`cryolearn.methods.CryoGEN2Config`) and converted to its field types;
an unknown key is refused with the list of valid ones.

A data set that fits in memory (up to :data:`STREAM_ABOVE_BYTES`) is read
whole and trained from a tensor, which draws exactly the minibatches of
:meth:`cryolearn.methods.Method.fit` on a tensor; a larger one (or any with
``--stream``) is read lazily, one file per observation, through
:class:`cryolearn.data.MRCDataset` and a DataLoader (a DistributedSampler
under ``torchrun``). Either way every file is read and checked once before
training (the pass that estimates sigma).

With ``--tomogram`` the inputs are whole tomograms: training subtomograms of
``--box`` voxels are cut from them (:func:`cryolearn.data.extract_subtomograms`:
a regular grid with ``--stride``, or ``--n-subtomograms`` random positions;
near-empty boxes skipped), each normalised as ``cryolearn reconstruct
--tomogram`` normalises its tiles::

    cryolearn train tomo/tomogram.mrc --tomogram --box 32 --tilt-range -60 60 --out model.pt

With ``--tomogram`` the methods also learn to fill the wedge from the data
themselves: the masked rotation term of IsoNet and DeepDeWedge
(:meth:`cryolearn.methods.Method.masked_rotation_loss`) is added to the
method's objective with weight :data:`TOMOGRAM_MASKED_ROTATION` (``--set
masked_rotation=0`` turns it off). Without it, CryoGEN-II left the wedge of
the simulated crowded tomogram and of the real microtubule tomogram as empty
as it found it (``benchmarks/crowded_slab.md``,
``benchmarks/real_microtubules.md``).

The tilt range of each tomogram is also read off its Fourier power
(:func:`cryolearn.metrics.tilt_range_profile`, on its central 192^3 voxels at
most) and recorded in ``model.yaml`` (``tilt_range_from_data``); where it
differs from ``--tilt-range`` by more than 3 degrees, ``train`` says so and
names the ``--tilt-range`` that fits the data. It never replaces the range
given.

Real tomograms: ``--noise coloured`` re-degrades with noise of the data's own
power per Fourier shell (:func:`cryolearn.physics.estimate_noise_spectrum`,
recorded as ``noise_spectrum``) instead of white noise of one ``sigma``: the
noise of a reconstructed tomogram is shaped by the reconstruction.
``--rotations tilt-axis`` keeps the rotation proxy to the rotations that keep
the tilt axis (:func:`cryolearn.physics.tilt_axis_rotations`), for specimens
aligned with it.

A held-out score after training: ``--validation-fraction`` (default 0.1 with
``--tomogram``, 0 otherwise) holds out part of the data (with ``--tomogram``
the far end of each tomogram's longer in-plane axis, at least one box, cut
into non-overlapping boxes; otherwise subtomograms drawn at random), never
trained on. After training the held-out rotation test
(:func:`cryolearn.metrics.rotation_validation_error`: 1 = no restoration;
with the model's rotations that move the wedge, the quarter turns about X and
Z for the whole cube) is
printed and recorded in ``model.yaml`` (``validation``) next to the same score
of the trivial restorations (:func:`cryolearn.metrics.rotation_validation_baselines`).

For the samplers
(cryowgen1, cryowgen2) the precision ``beta`` of the conditional prior is
estimated after training by the rotation proxy
(:func:`cryolearn.methods.estimate_beta`) and stored in the checkpoint and in
``model.yaml`` (``beta``, ``beta_source``, ``beta_field``). By default
(``beta_field: proxy``) ``cryolearn reconstruct`` then gives every voxel its own
precision from an ensemble of rotation proxies
(:func:`cryolearn.methods.estimate_beta_field`), so the std maps say where the
restoration is unsure; ``--beta`` sets one precision for every voxel instead
(``beta_field: scalar``; it is then also the value used during training). On several GPUs::

    torchrun --nproc-per-node 4 -m cryolearn.cli train sim/obs --tilt-range -60 60 --out model.pt
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

from .common import (
    add_tilt_args,
    build_method,
    check_options,
    describe_device,
    mrc_files,
    parse_set,
    read_yaml,
    tilt_range,
    write_yaml,
)

#: Keys of model.yaml that must agree for a run to resume from a checkpoint.
SAME_RUN = ("method", "method_kwargs", "tilt_range", "sigma", "box", "voxel_size", "n_observations", "validation_fraction", "noise")

#: ``masked_rotation`` of training with ``--tomogram`` unless ``--set`` gives one (the methods' own default is 0):
#: measured in ``benchmarks/real_microtubules.md`` and ``benchmarks/crowded_slab.md``.
TOMOGRAM_MASKED_ROTATION = 16.0

#: Data sets larger than this (float32 bytes) are streamed from their files instead of held in memory.
STREAM_ABOVE_BYTES = 2 * 1024**3


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="MRC subtomograms, or folders of them (one cubic box size); tomograms with --tomogram")
    parser.add_argument("--method", default="cryogen2",
                        help="cryogen1, cryogen2, cryowgen1 or cryowgen2 (default: cryogen2)")
    add_tilt_args(parser, required=True)
    parser.add_argument("--sigma", type=float, default=None,
                        help="noise standard deviation per voxel of the normalised subtomograms "
                             "(default: estimated from the data)")
    parser.add_argument("--noise", choices=("white", "coloured"), default="white",
                        help="noise model of the rotation proxy: white (one sigma) or coloured (its power per Fourier "
                             "shell estimated from the data, cryolearn.physics.estimate_noise_spectrum; for "
                             "reconstructed tomograms, whose noise the reconstruction filters) (default: white)")
    parser.add_argument("--rotations", choices=("cube", "tilt-axis"), default="cube",
                        help="rotations of the rotation proxy: all 24 of the cube, or the 8 that keep the tilt axis "
                             "(for specimens aligned with it, e.g. filaments along Y) (default: cube)")
    parser.add_argument("--steps", type=int, default=None,
                        help="total training steps (default by CRYOLEARN_PROFILE: quick 20, standard 300, full 2000)")
    parser.add_argument("--batch-size", type=int, default=16, help="observations per step (default: 16)")
    parser.add_argument("--out", default="model.pt",
                        help="checkpoint file; its configuration goes to the same name with .yaml (default: model.pt)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="method options, checked against the method's typed configuration "
                             "(an unknown key is refused with the valid ones), e.g. lam=0.5 base_channels=16")
    parser.add_argument("--seed", type=int, default=0, help="seeds the network and every random draw (default: 0)")
    parser.add_argument("--beta", type=float, default=None,
                        help="samplers only: one precision of the conditional prior for every voxel (default: "
                             "estimated after training by the rotation proxy, and per voxel at reconstruction)")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available; under torchrun, one GPU per process)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default: 100)")
    parser.add_argument("--force", action="store_true", help="start over even if --out exists")
    parser.add_argument("--stream", action="store_true",
                        help="read the subtomograms lazily during training, one file per observation "
                             f"(default: only for data sets over {STREAM_ABOVE_BYTES / 1024**3:g} GiB)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes when streaming (default: 0, read in the training process)")
    tomo = parser.add_argument_group("whole tomograms (--tomogram)")
    tomo.add_argument("--tomogram", action="store_true",
                      help="the inputs are tomograms: cut the training subtomograms from them; the masked rotation "
                           f"term is then on (masked_rotation={TOMOGRAM_MASKED_ROTATION:g} unless given by --set)")
    tomo.add_argument("--box", type=int, default=32, help="edge of the subtomograms cut from the tomograms (default: 32)")
    tomo.add_argument("--stride", type=int, default=None,
                      help="grid step between subtomograms in voxels (default: box / 2)")
    tomo.add_argument("--n-subtomograms", type=int, default=None,
                      help="cut this many at random positions instead of a grid")
    parser.add_argument("--validation-fraction", type=float, default=None,
                        help="hold out this fraction of the data and score the trained model on it after training "
                             "(the held-out rotation test, next to the trivial restorations); with --tomogram the "
                             "far end of each tomogram's longer in-plane axis, at least one box long (default: 0.1 "
                             "with --tomogram, else 0: no validation)")


def _checkpoint_step(path: Path) -> int:
    """The step a checkpoint written by :meth:`cryolearn.methods.Method.save` holds."""
    from ..training import load_checkpoint

    try:
        return int(load_checkpoint(path)["step"])
    except Exception as err:  # torch.load raises many types on a foreign file
        raise ValueError(f"{str(path)!r} exists but is not a cryolearn checkpoint ({type(err).__name__}); "
                         "pass --force to replace it") from None


def _check_same_run(record_path: Path, record: dict[str, Any]) -> None:
    """Refuse to resume a run whose recorded configuration differs from this one."""
    if not record_path.exists():
        return
    old = read_yaml(record_path)
    diff = [f"{k}: {old.get(k)!r} -> {record[k]!r}" for k in SAME_RUN if old.get(k) != record[k]]
    if diff:
        raise ValueError(f"{str(record_path)!r} records a different configuration ({'; '.join(diff)}); "
                         "pass --force to start over")


def _set_beta(method, y, args: argparse.Namespace, trained_with: float) -> dict[str, Any]:
    """Give a trained sampler its ``beta``: ``--beta``, or the rotation-proxy estimate; returns the record's keys.

    ``trained_with`` is the configured ``beta`` the training steps used (a finished run continued with more
    ``--steps`` resumes from a checkpoint that holds the estimate, and trains its extra steps with that).
    """
    import torch

    from ..methods import estimate_beta

    if args.beta is not None:
        method.beta = float(args.beta)
        method.beta_field = "scalar"
        return {"beta": method.beta, "beta_source": "given (--beta)", "beta_field": "scalar"}
    n = min(y.shape[0], 256)  # enough observations for a stable mean power, bounded cost
    gen = torch.Generator(device=y.device).manual_seed(args.seed + 7919)
    est = estimate_beta(method, y[:n], generator=gen)
    method.beta = float(est.beta)
    record = {"beta": method.beta, "beta_training": trained_with,
              "beta_source": f"estimated after training by the rotation proxy (cryolearn.methods.estimate_beta) "
                             f"on {n} observations", "beta_field": method.beta_field}
    if method.beta_field == "proxy":
        record["beta_field_source"] = ("per voxel at reconstruction, from an ensemble of rotation proxies "
                                       f"(cryolearn.methods.estimate_beta_field), variance x {method.field_inflation:g}")
    return record


def _from_tomograms(files: list[Path], args: argparse.Namespace, fraction: float):
    """Training subtomograms ``(N, box, box, box)`` cut from tomogram files, held-out ones (or None), the voxel size.

    With ``fraction > 0`` each tomogram's far end along its longer in-plane axis (Y or X; at least ``box`` voxels,
    ``ceil(fraction * length)`` when longer) is held out: non-overlapping boxes are cut from it for validation,
    the training boxes from the rest, so that no held-out voxel is ever seen in training.
    """
    from ..data import extract_subtomograms, read_mrc

    vols, sizes = zip(*(read_mrc(f) for f in files))
    if len({round(v, 4) for v in sizes}) != 1:
        raise ValueError(f"the tomograms have different voxel sizes: {sorted(set(sizes))} A")
    if args.box < 8 or (args.stride is not None and args.stride < 1):
        raise ValueError(f"--box must be at least 8 and --stride positive, got {args.box}, {args.stride}")
    train, held = list(vols), []
    if fraction > 0:
        train = []
        for f, v in zip(files, vols):
            if v.ndim != 3 or min(v.shape) < args.box:
                raise ValueError(f"{str(f)!r} has shape {tuple(v.shape)}; need 3D with every side >= box={args.box}")
            axis = 1 if v.shape[1] >= v.shape[2] else 2
            length = v.shape[axis]
            n_val = max(args.box, math.ceil(fraction * length))
            if length - n_val < args.box:
                raise ValueError(f"{str(f)!r} of shape {tuple(v.shape)} is too small to hold out {n_val} voxels for "
                                 f"validation and still train on boxes of {args.box}; pass --validation-fraction 0")
            train.append(v.narrow(axis, 0, length - n_val))
            held.append(v.narrow(axis, length - n_val, n_val))
    y, _ = extract_subtomograms(train, box=args.box, n=args.n_subtomograms, stride=args.stride, seed=args.seed)
    y_val = extract_subtomograms(held, box=args.box, stride=args.box)[0] if held else None
    return y, y_val, sizes[0], [_tilt_range_from_data(v) for v in vols]


def _tilt_range_from_data(volume, edge: int = 192) -> list[float]:
    """The tilt range ``[lo, hi]`` read off a tomogram's Fourier power (:func:`cryolearn.metrics.tilt_range_profile`),
    on its central box of at most ``edge`` voxels per side (bounded memory on large tomograms)."""
    from ..metrics import tilt_range_profile

    crop = volume[tuple(slice(max((n - edge) // 2, 0), max((n - edge) // 2, 0) + edge) for n in volume.shape)]
    return list(tilt_range_profile(crop).tilt_range)


def _hold_out(y, fraction: float, seed: int):
    """Split ``(N, ...)`` subtomograms at random (reproducibly, from --seed) into training and ``ceil(fraction N)`` held-out ones."""
    import torch

    n_val = math.ceil(fraction * y.shape[0])
    if n_val >= y.shape[0]:
        raise ValueError(f"--validation-fraction {fraction} would hold out all {y.shape[0]} subtomograms")
    order = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(seed + 104729))
    return y[order[n_val:].sort().values], y[order[:n_val].sort().values]


def _validate(method, y_val, held_note: str) -> dict[str, Any]:
    """The held-out rotation test of the trained method and of the trivial restorations, for the record."""
    import torch

    from ..metrics import rotation_validation_baselines, rotation_validation_error

    from ..physics import quarter_turns_xz, rotated_mask

    mask = method.mask.to(y_val.device)
    # The rotations of the test: those the model was trained with that move the wedge (all of the cube: the
    # quarter turns about X and Z).
    trained = method.config.rotations
    rots = [] if trained is None else [r for r in trained
                                       if not torch.equal(rotated_mask(mask, r, y_val.shape[-3:]), mask.bool())]
    rots = rots or quarter_turns_xz()
    with torch.no_grad():
        score = float(rotation_validation_error(lambda t: method.predict(t, batch_size=method.batch_size), y_val,
                                                mask, rotations=rots))
        base = rotation_validation_baselines(y_val, mask, rotations=rots)
    return {"n_subtomograms": int(y_val.shape[0]), "held_out": held_note,
            "rotations": [int(r) for r in rots],
            "rotation_validation_error": score, "baselines": base,
            "metric": "cryolearn.metrics.rotation_validation_error (1 = no restoration, lower is better)"}


def main(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__, get_profile
    from ..data import MRCDataset, read_subtomograms
    from ..physics import estimate_sigma, missing_wedge_mask
    from ..training import barrier, cleanup, init_distributed, is_main_process

    start = time.perf_counter()
    out = Path(args.out)
    record_path = out.with_suffix(".yaml")
    if record_path == out:
        raise ValueError(f"--out {args.out!r} would be overwritten by its own configuration; give the checkpoint a .pt name")
    steps = args.steps if args.steps is not None else get_profile().choose(quick=20, standard=300, full=2000)
    if steps < 1 or args.checkpoint_every < 1 or args.batch_size < 1:
        raise ValueError(f"--steps, --checkpoint-every and --batch-size must be positive, "
                         f"got {steps}, {args.checkpoint_every}, {args.batch_size}")
    tilt = tilt_range(args)
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be at least 0, got {args.num_workers}")
    options = parse_set(args.set)
    if "beta" in options:
        raise ValueError("--set beta: beta comes from --beta (or the rotation-proxy estimate after training)")
    if args.rotations != "cube":
        if "rotations" in options:
            raise ValueError("give the rotations either by --rotations or by --set rotations=..., not both")
        from ..physics import tilt_axis_rotations

        options["rotations"] = tilt_axis_rotations()
    if args.tomogram and "masked_rotation" not in options:
        options["masked_rotation"] = TOMOGRAM_MASKED_ROTATION
    options = check_options(args.method, options)
    if args.beta is not None:
        if args.method not in ("cryowgen1", "cryowgen2"):
            raise ValueError(f"--beta applies to the samplers (cryowgen1, cryowgen2), not {args.method}")
        if not args.beta > 0:
            raise ValueError(f"--beta must be positive, got {args.beta}")
        options["beta"] = float(args.beta)
    files = mrc_files(args.inputs)
    fraction = args.validation_fraction if args.validation_fraction is not None else (0.1 if args.tomogram else 0.0)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--validation-fraction must lie in [0, 1), got {fraction}")
    y = y_val = None
    if args.tomogram:
        if args.stream:
            raise ValueError("--stream reads subtomogram files; with --tomogram the subtomograms are cut in memory")
        y, y_val, voxel_size, tilt_from_data = _from_tomograms(files, args, fraction)
        held_note = "the far end of each tomogram's longer in-plane axis, never seen in training"
        lazy, stream = None, False
    else:
        lazy = MRCDataset(files)  # reads the first file only
        stream = args.stream or len(lazy) * math.prod(lazy.shape) * 4 > STREAM_ABOVE_BYTES
        if stream and fraction > 0:
            raise ValueError("--validation-fraction needs the subtomograms in memory; it does not combine with streaming")
    if stream:
        voxel_size, shape, y = lazy.voxel_size, (len(lazy), *lazy.shape), None
    else:
        if y is None:
            y, voxel_size = read_subtomograms(files)  # (N, D, H, W), each normalised
            if fraction > 0:
                y, y_val = _hold_out(y, fraction, args.seed)
                held_note = "subtomograms drawn at random (reproducibly, from --seed), never seen in training"
        shape = tuple(y.shape)
    if len(set(shape[1:])) != 1:
        raise ValueError(f"the methods need cubic subtomograms, got boxes of {tuple(shape[1:])} voxels")
    box = shape[-1]
    mask = missing_wedge_mask((box,) * 3, tilt)
    if stream:  # one pass over the files: checks each of them, and estimates sigma unless given
        chunks = (torch.stack([lazy[i] for i in range(k, min(k + 64, len(lazy)))]) for k in range(0, len(lazy), 64))
        estimates = torch.cat([estimate_sigma(c, mask) for c in chunks])
    else:
        estimates = estimate_sigma(y, mask) if args.sigma is None else None
    if args.sigma is None:
        sigma = float(estimates.mean())
        sigma_source = "estimated from the data (cryolearn.physics.estimate_sigma)"
    else:
        sigma, sigma_source = float(args.sigma), "given (--sigma)"
    spectrum = None
    if args.noise == "coloured":
        from ..physics import estimate_noise_spectrum

        y_noise = torch.stack([lazy[i] for i in range(min(len(lazy), 512))]) if stream else y
        spectrum = [round(float(v), 6) for v in estimate_noise_spectrum(y_noise, mask)]
    record = {
        "method": args.method,
        "method_kwargs": {**options, "batch_size": args.batch_size, "seed": args.seed},
        "tilt_range": list(tilt),
        "tilt_source": args.tlt or "--tilt-range",
        "sigma": sigma,
        "sigma_source": sigma_source,
        "noise": args.noise,
        "noise_spectrum": spectrum,
        "noise_spectrum_source": None if spectrum is None else
        ("power per Fourier shell (one Fourier voxel wide), the 0.1 quantile over the training subtomograms "
         "of their measured power (cryolearn.physics.estimate_noise_spectrum)"),
        "box": box,
        "voxel_size": voxel_size,
        "n_observations": shape[0],
        "inputs": [str(f) for f in files],
        "steps": steps,
        "checkpoint_every": args.checkpoint_every,
        "seed": args.seed,
        "checkpoint": out.name,
        "validation_fraction": fraction,
    }
    if args.tomogram:
        record["tilt_range_from_data"] = tilt_from_data
        record["subtomograms_from_tomograms"] = {"box": args.box, "stride": args.stride or max(args.box // 2, 1),
                                                 "random_positions": args.n_subtomograms}
    method = build_method(record, box)
    record.update(config=method.config.to_dict(), streamed=bool(stream))

    dist = init_distributed(args.device)
    try:
        say = print if is_main_process() else (lambda *a, **k: None)
        resumed_from = 0
        if not args.force:
            if out.exists():
                resumed_from = _checkpoint_step(out)
                if resumed_from >= steps:
                    raise FileExistsError(f"{str(out)!r} already holds {resumed_from} training steps (asked for {steps}); "
                                          "pass --force to train again, or more --steps to continue")
            _check_same_run(record_path, record)
        say(f"{args.method}: {shape[0]} subtomograms of {box}^3 voxels ({voxel_size:g} A), "
            f"tilt range {tilt[0]:g} to {tilt[1]:g} degrees, sigma {sigma:.4g} {sigma_source}, "
            f"on {describe_device(dist.device)} x {dist.world_size}")
        if args.tomogram:
            off = [(f, t) for f, t in zip(files, tilt_from_data) if max(abs(t[0] - tilt[0]), abs(t[1] - tilt[1])) > 3]
            for f, t in off:
                say(f"note: the Fourier power of {f.name} shows a measured region from {t[0]:g} to {t[1]:g} degrees, "
                    f"not {tilt[0]:g} to {tilt[1]:g}; if the data are right, pass --tilt-range {t[0]:g} {t[1]:g} "
                    "(cryolearn.metrics.tilt_range_profile)")
        if resumed_from:
            say(f"resuming {out} from step {resumed_from} of {steps}")
        record.update(cryolearn_version=__version__, torch_version=str(torch.__version__),
                      command_line=args.command_line, device=describe_device(dist.device),
                      world_size=dist.world_size, resumed_from_step=resumed_from)
        if is_main_process():
            if args.force:
                out.unlink(missing_ok=True)
            write_yaml(record_path, {**record, "status": "training"})
        barrier()
        method.to(dist.device)
        beta_configured = getattr(method, "beta", None)
        method.fit(lazy if stream else y.to(dist.device), steps, progress=is_main_process(), checkpoint=out,
                   checkpoint_every=args.checkpoint_every, num_workers=args.num_workers)
        if method.samples_posterior:
            y_beta = torch.stack([lazy[i] for i in range(min(len(lazy), 256))]) if stream else y
            record.update(_set_beta(method, y_beta.to(dist.device), args, beta_configured))
            if is_main_process():
                method.save(out)
                say(f"beta = {record['beta']:.4g} ({record['beta_source']})")
            barrier()
        if y_val is not None and is_main_process():
            record["validation"] = _validate(method, y_val.to(dist.device), held_note)
            v = record["validation"]
            say(f"validation on {v['n_subtomograms']} held-out subtomograms (rotation test, 1 = no restoration): "
                f"{args.method} {v['rotation_validation_error']:.4f}, no restoration "
                f"{v['baselines']['no restoration']:.4f}, squared input {v['baselines']['squared input']:.4f}")
        if is_main_process():
            write_yaml(record_path, {**record, "status": "complete", "steps_done": method.step,
                                     "wall_time_s": round(time.perf_counter() - start, 3)})
        say(f"wrote {out} (step {method.step}) and {record_path} in {time.perf_counter() - start:.1f} s")
    finally:
        cleanup()
    return 0
