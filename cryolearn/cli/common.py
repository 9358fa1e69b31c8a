"""Plumbing shared by the subcommands: input lists, tilt ranges, YAML files, rebuilding a trained method.

Nothing here computes; it parses, checks and calls the package.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: File endings read from a folder of MRC files (subtomograms, maps, IMOD tomograms).
MRC_SUFFIXES = (".mrc", ".map", ".rec")


def add_tilt_args(parser: argparse.ArgumentParser, required: bool, note: str = "") -> None:
    """Add ``--tilt-range MIN MAX`` and ``--tlt FILE`` (one or the other); ``note`` ends the help of ``--tilt-range``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--tilt-range", nargs=2, type=float, metavar=("MIN", "MAX"), default=None,
                       help=f"measured tilt range in degrees, inside (-90, 90){note}")
    group.add_argument("--tlt", default=None, metavar="FILE",
                       help="IMOD .tlt file (one tilt angle in degrees per line); its smallest and largest angle set the tilt range")


def tilt_range(args: argparse.Namespace) -> tuple[float, float] | None:
    """The checked tilt range from ``--tilt-range`` or ``--tlt`` (None when neither was given)."""
    from ..data import tilt_range_from_tlt
    from ..physics import check_tilt_range

    if args.tlt is not None:
        return tilt_range_from_tlt(args.tlt)
    return None if args.tilt_range is None else check_tilt_range(args.tilt_range)


def mrc_files(inputs: list[str]) -> list[Path]:
    """Expand MRC files and folders of them (sorted by name) into a list of files.

    Raises
    ------
    FileNotFoundError
        If an input does not exist.
    ValueError
        If a folder holds no file ending in :data:`MRC_SUFFIXES`.
    """
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MRC_SUFFIXES)
            if not found:
                raise ValueError(f"folder {name!r} holds no MRC files ({', '.join(MRC_SUFFIXES)})")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"input {name!r} does not exist")
    return files


def check_new_output(path: Path, force: bool) -> None:
    """Refuse an existing output file, or a non-empty output folder, unless ``--force``."""
    exists = any(path.iterdir()) if path.is_dir() else path.exists()
    if exists and not force:
        raise FileExistsError(f"output {str(path)!r} exists; pass --force to overwrite it")


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML atomically (temporary file in the same folder, then :func:`os.replace`)."""
    import yaml

    from ..data.atomic import atomic_write

    def dump(tmp: str) -> None:
        with open(tmp, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)

    return atomic_write(path, dump)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file raises FileNotFoundError, a malformed one ValueError."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} does not hold a YAML mapping")
    return data


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["lam=0.5", "ot_method=sinkhorn"]`` -> ``{"lam": 0.5, "ot_method": "sinkhorn"}`` (values read as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"--set {item!r}: the value is not a number, string, boolean or list") from None
    return out


#: Constructor arguments and configuration fields that ``--set`` may not give, and where they come from instead.
NOT_SETTABLE = {
    "mask": "the tilt range (--tilt-range or --tlt)",
    "sigma": "--sigma (or the estimate from the data)",
    "network": "the method's configuration (e.g. base_channels)",
    "spectrum": "the data (not settable from the command line)",
    "noise_spectrum": "--noise coloured (estimated from the data)",
    "config": "the individual options",
    "batch_size": "--batch-size",
    "seed": "--seed",
}


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate ``--set`` options against the method's typed configuration and convert them to its field types.

    Parameters
    ----------
    method : str
        A method name (:func:`cryolearn.methods.available_methods`).
    options : dict
        From :func:`parse_set`.

    Returns
    -------
    dict
        The same keys, values of the fields' types (``lam=1`` becomes ``1.0``).

    Raises
    ------
    ValueError
        If the method is unknown, a key is reserved (the message says which
        option or source sets it), not a configuration field (the message
        names the valid keys), or a value has the wrong type or range.
    """
    from ..methods import get_method_class
    from ..methods.config import make_config

    cls = get_method_class(method)
    taken = [k for k in options if k in NOT_SETTABLE]
    if taken:
        raise ValueError("; ".join(f"--set {k}: {k} comes from {NOT_SETTABLE[k]}" for k in taken))
    valid = [k for k in cls.Config.field_names() if k not in NOT_SETTABLE]
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(f"invalid option for method {method!r}: {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
    try:
        config = make_config(cls.Config, **options)
    except ValueError as err:
        raise ValueError(f"invalid option for method {method!r}: {err}") from None
    return {k: getattr(config, k) for k in options}


def build_method(config: dict[str, Any], box: int):
    """Rebuild the method a ``model.yaml`` describes, for cubic boxes of ``box`` voxels.

    Raises
    ------
    ValueError
        If the configuration is incomplete, names an unknown method or
        option, or ``box`` does not fit the network.
    """
    from ..methods import get_method
    from ..physics import missing_wedge_mask

    try:
        name, kwargs, tilt, sigma = config["method"], config["method_kwargs"], config["tilt_range"], config["sigma"]
    except KeyError as err:
        raise ValueError(f"the configuration lacks {err}") from None
    try:
        # The noise spectrum (per shell of the training box) only serves training; restoring other tile sizes ignores it.
        same_box = int(config.get("box", box)) == box
        extra = {"noise_spectrum": config["noise_spectrum"]} if same_box and config.get("noise_spectrum") else {}
        method = get_method(name, mask=missing_wedge_mask((box,) * 3, tuple(tilt)), sigma=sigma, **kwargs, **extra)
    except (TypeError, ValueError) as err:  # an unknown or ill-typed option
        raise ValueError(f"invalid option for method {name!r}: {err}") from None
    multiple = getattr(method.network, "required_multiple", 1)
    if box < multiple or box % multiple:
        depth = getattr(method.network, "depth", 0)
        near = sorted({max(multiple, box // multiple * multiple), box // multiple * multiple + multiple})
        raise ValueError(
            f"a box of {box} voxels does not fit the network: its U-Net halves the box {depth} times, so the box "
            f"must be a multiple of {multiple} (e.g. {' or '.join(map(str, near))})"
        )
    return method


def describe_device(device) -> str:
    """``"cpu"`` or ``"cuda:0 (NVIDIA H100 ...)"`` for the record."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
