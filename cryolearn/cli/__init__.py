"""The ``cryolearn`` command line: one module per subcommand, each with ``add_args(parser)`` and ``main(args)``.

No mathematics lives here; subcommands call the package. Bad input (a missing
or unreadable file, invalid values, an existing output without ``--force``)
ends with ``cryolearn <command>: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from . import fsc, info, reconstruct, simulate, train

SUBCOMMANDS = {"info": info, "simulate": simulate, "train": train, "reconstruct": reconstruct, "fsc": fsc}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cryolearn`` console script; returns the exit status."""
    from .. import __version__

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="cryolearn", description="Unsupervised missing-wedge restoration of cryo-ET subtomograms.")
    parser.add_argument("--version", action="version", version=f"cryolearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["cryolearn", *argv])
    try:
        return SUBCOMMANDS[args.command].main(args) or 0
    except (ValueError, OSError) as err:  # OSError covers FileNotFoundError, FileExistsError, PermissionError
        print(f"cryolearn {args.command}: error: {err}", file=sys.stderr)
        return 2
