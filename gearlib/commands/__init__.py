"""Small command-line subcommands that do not belong to one method: `gearlib info` and `gearlib data`.

Each module exposes `add_parser(subparsers)`; see gearlib/cli.py.
"""
