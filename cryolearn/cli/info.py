"""Show the version, the run profile and device, and check the shipped structure maps.

Example::

    cryolearn info
"""

from __future__ import annotations

import argparse


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")


def main(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__, get_profile
    from ..data import verify_manifest

    profile = get_profile(device=args.device)
    print(f"cryolearn {__version__}, torch {torch.__version__}, {profile}")
    try:
        manifest = verify_manifest()
        print(f"structure maps: {len(manifest['maps'])} verified ({', '.join(m['pdb_id'] for m in manifest['maps'])})")
    except (FileNotFoundError, ValueError) as err:
        print(f"structure maps: not available ({err})")
    return 0
