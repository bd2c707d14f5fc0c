"""`gearlib info`: versions, compute device, the energy backend that would be used, and datasets found.

The first thing to run on a new machine (a laptop, a Quadro server or a Jetson).
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any, Dict, List, Tuple

from gearlib import __version__


def add_parser(sub: Any) -> None:
    """Register `gearlib info` on the CLI's subparsers."""
    parser = sub.add_parser("info", help="versions, device, energy backend and datasets found")
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default $GEARLIB_DATA, then ./data)"
    )
    parser.set_defaults(func=run)


def collect(data_dir: Any = None) -> List[Tuple[str, str]]:
    """The lines of `gearlib info` as (label, value) pairs."""
    # Lazy: every `gearlib` command imports this module to build its parser, and `--help` needs no torch.
    import numpy
    import torch
    import torchvision

    from gearlib.data import available_datasets, resolve_data_dir

    rows: List[Tuple[str, str]] = [
        ("gearlib", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("numpy", numpy.__version__),
        ("platform", f"{platform.system()} {platform.machine()}"),
        ("cpu threads", str(torch.get_num_threads())),
    ]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        rows.append(("device", f"cuda ({names})"))
    else:
        rows.append(("device", "cpu (no CUDA device visible)"))
    rows.append(("energy backend", _energy_backend()))
    rows.append(("data dir", str(resolve_data_dir(data_dir).resolve())))
    for name, where in available_datasets(data_dir):
        rows.append((f"  {name}", where))
    return rows


def _energy_backend() -> str:
    """What auto_meter() would meter here, or why nothing (see gearlib.measure.auto)."""
    from gearlib.measure import auto_meter  # lazy, as in collect()

    return auto_meter().describe()


def run(args: argparse.Namespace) -> int:
    """Print `gearlib info` as aligned label/value lines; returns exit status 0."""
    rows = collect(args.data_dir)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def as_dict(data_dir: Any = None) -> Dict[str, str]:
    """`gearlib info` as a dictionary, for notebooks."""
    return {label.strip(): value for label, value in collect(data_dir)}
