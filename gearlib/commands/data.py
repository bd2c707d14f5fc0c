"""`gearlib data check|list|download`: is a dataset usable, where was it found, and fetching CIFAR.

`check` exits non-zero with the loader's own error message when a dataset is missing or broken.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register `gearlib data` and its actions check, list and download."""
    parser = sub.add_parser("data", help="check, list or download datasets")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_sub.add_parser("check", help="load a dataset and report where it was found")
    check.add_argument("name", help="cifar10, cifar100, tinyimagenet or synthetic")
    check.add_argument("--data-dir", default=None)
    check.add_argument("--verify", default="warn", choices=["strict", "warn", "off"], help="md5 checks")
    check.set_defaults(func=run_check)
    listing = data_sub.add_parser("list", help="every known dataset and whether it is on disk")
    listing.add_argument("--data-dir", default=None)
    listing.set_defaults(func=run_list)
    download = data_sub.add_parser("download", help="download CIFAR-10/100 with torchvision (network)")
    download.add_argument("name", choices=["cifar10", "cifar100"])
    download.add_argument("--data-dir", default=None)
    download.set_defaults(func=run_download)


def run_check(args: argparse.Namespace) -> int:
    """Find and load both splits of a dataset, printing where it was found and its size; 0 when usable."""
    from gearlib.data import find_dataset, load_dataset  # lazy in every run_*: `gearlib --help` skips torch

    folder, layout = find_dataset(args.name, args.data_dir)
    print(f"{args.name}: {layout} at {folder}")
    for split in ("train", "test"):
        dataset = load_dataset(args.name, split, data_dir=args.data_dir, verify=args.verify)
        counts = dataset.labels.bincount(minlength=dataset.num_classes)
        print(
            f"  {split}: {len(dataset)} images {dataset.image_size}x{dataset.image_size}, "
            f"{dataset.num_classes} classes ({int(counts.min())}-{int(counts.max())} per class)"
        )
    print(f"{args.name} is usable.")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print every known dataset with the layout found on disk, or where it was looked for."""
    from gearlib.data import available_datasets

    for name, where in available_datasets(args.data_dir):
        print(f"{name:<13} {where}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download CIFAR-10 or CIFAR-100 through torchvision and print the folder."""
    from gearlib.data import download

    folder = download(args.name, args.data_dir)
    print(f"{args.name} downloaded to {folder}")
    return 0
