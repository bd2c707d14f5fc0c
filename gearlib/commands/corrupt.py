"""`gearlib corrupt`: regenerate CIFAR-10-C / CIFAR-100-C / Tiny-ImageNet-C style sets in the official layout.

Resumable: rerunning the same command continues after the last finished corruption file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

DATASET_CHOICES = ("cifar10", "cifar100", "tinyimagenet", "synthetic")


def add_parser(subparsers: Any) -> None:
    """Register the `corrupt` subcommand."""
    parser = subparsers.add_parser(
        "corrupt",
        help="generate a corrupted test set (official -C .npy layout + labels.npy + metadata.json)",
        description="Corrupt a clean test set with the 19 common corruptions at 5 severities and write it in "
        "the CIFAR-10-C layout, readable by gearlib.data.load_corrupted. Interrupted runs resume.",
    )
    parser.add_argument("--dataset", required=True, choices=DATASET_CHOICES, help="clean test set to corrupt")
    parser.add_argument("--out", default=None, help="output folder (default: <data-dir>/<dataset>-c)")
    parser.add_argument(
        "--corruptions",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="corruption names, or the groups all / benchmark / extra (default: all 19)",
    )
    parser.add_argument(
        "--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], help="default: 1 2 3 4 5"
    )
    parser.add_argument(
        "--data-dir", default=None, help="data directory (default: $GEARLIB_DATA, then ./data)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=None,
        help="also JPEG-save every corrupted image at this quality (default: 85 for tinyimagenet, as "
        "Tiny-ImageNet-C does; none otherwise; 0 disables)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the set described by the parsed arguments; returns the exit status."""
    # Lazy, so that `gearlib --help` does not import numpy, scipy and torch.
    from gearlib.corrupt.generate import clean_test_set, corruption_groups, generate_corrupted_set
    from gearlib.corrupt.params import STORED_JPEG_QUALITY, check_severity
    from gearlib.data.paths import resolve_data_dir

    # Every argument is checked before any data is read.
    corruptions = corruption_groups(args.corruptions)
    for severity in args.severities:
        check_severity(severity)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of images, got {args.limit}")
    quality = args.jpeg_quality
    if quality is None:
        quality = STORED_JPEG_QUALITY.get(args.dataset)
    if quality is not None and not 0 <= quality <= 95:
        raise ValueError(f"--jpeg-quality must be in 0..95, got {quality}")
    out = Path(args.out) if args.out else resolve_data_dir(args.data_dir) / f"{args.dataset}-c"
    images, labels, source = clean_test_set(args.dataset, args.data_dir, args.limit)
    print(f"corrupting {len(labels)} images of {source}")
    print(f"  {len(corruptions)} corruptions x severities {args.severities} -> {out}")
    start = time.perf_counter()
    meta = generate_corrupted_set(
        images,
        labels,
        out,
        corruptions=corruptions,
        severities=args.severities,
        seed=args.seed,
        source=source,
        jpeg_quality=quality or None,
        progress=not args.no_progress,
    )
    elapsed = time.perf_counter() - start
    done = sum(1 for name in meta["files"] if name != "labels.npy")
    print(f"done in {elapsed:.1f} s: {done} corruption files, labels.npy and metadata.json in {out}")
    return 0
