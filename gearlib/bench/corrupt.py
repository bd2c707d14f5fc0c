"""`gearlib bench corrupt`: corruption throughput per corruption and the projected CIFAR-10-C generation time.

Times all 5 severities of every corruption on a few hundred synthetic 32x32 images (after a warm-up call).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict

CIFAR10C_IMAGES_PER_SEVERITY = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench corrupt`."""
    parser.add_argument("--n", type=int, default=500, help="images per severity (default 500)")
    parser.add_argument(
        "--corruptions", nargs="+", default=["all"], metavar="NAME", help="names or all/benchmark/extra"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure images per second per corruption (5 severities each) and project a full CIFAR-10-C."""
    # Lazy: gearlib.bench imports every benchmark module to build `gearlib --help`, which must not load torch.
    from gearlib.corrupt import corrupt
    from gearlib.corrupt.generate import corruption_groups
    from gearlib.data import synthetic_tensors

    n = int(getattr(args, "n", 500))
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    names = corruption_groups(getattr(args, "corruptions", ["all"]))
    seed = int(getattr(args, "seed", 0))
    images, _ = synthetic_tensors(n, seed=seed)
    batch = images.permute(0, 2, 3, 1).contiguous().numpy()
    results: Dict[str, Any] = {}
    projected = 0.0
    for name in names:
        corrupt(batch[:8], name, 1, seed=seed)  # warm-up: texture rendering, cached operators
        start = time.perf_counter()
        for severity in range(1, 6):
            corrupt(batch, name, severity, seed=seed)
        elapsed = time.perf_counter() - start
        rate = 5 * n / elapsed
        results[f"{name}_images_per_s"] = round(rate, 1)
        projected += 5 * CIFAR10C_IMAGES_PER_SEVERITY / rate
    results["n_images_per_severity"] = n
    results["projected_cifar10c_seconds"] = round(projected, 1)
    results["projected_cifar10c_minutes"] = round(projected / 60, 2)
    results["projected_cifar10c_corruptions"] = len(names)
    return results
