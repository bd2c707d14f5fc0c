"""The `gearlib` command line: one subcommand per concern, each defined next to the code it drives.

Subcommand modules expose `add_parser(subparsers)`; this file only collects them, importing torch lazily.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# Each module registers one top-level subcommand. Order = order in `gearlib --help`.
COMMAND_MODULES = [
    "gearlib.commands.info",
    "gearlib.commands.data",
    "gearlib.commands.corrupt",
    "gearlib.train.cli",
    "gearlib.bench",
    "gearlib.book",
]


class UsageError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser from every subcommand module that is installed."""
    from gearlib import __version__

    parser = argparse.ArgumentParser(
        prog="gearlib",
        description="Growing efficient, accurate and robust networks (GEARnn) and friends.",
    )
    parser.add_argument("--version", action="version", version=f"gearlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue  # that part of gearlib has not landed yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Exception as err:  # noqa: BLE001 - user-facing errors print one line, the rest a traceback
        if not isinstance(err, (UsageError, ValueError, FileNotFoundError)) and not getattr(
            err, "user_facing", 0
        ):
            raise
        print(f"gearlib {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gearlib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
