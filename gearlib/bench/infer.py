"""`gearlib bench infer`: batch-1 inference latency of each architecture as trained (conv, BN, activation)
against the same network with its BNs folded into the convs (gearlib.models.fold_batchnorm), side by side.

The two networks are timed in alternating windows, so a burst of other work on the machine hits both; each
side's latency is the median of its window medians. The largest output difference checks the folding.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Dict, List

# torch is imported inside the functions: building the `gearlib` parser must not load it.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench infer` (`--json` is added by the framework)."""
    parser.add_argument(
        "--archs", default="vgg19,mobilenet_v1,resnet18", help="comma-separated architectures"
    )
    parser.add_argument("--width", type=int, default=24, help="width c_0 of every growable layer")
    parser.add_argument("--iters", type=int, default=100, help="timed forwards per window")
    parser.add_argument("--windows", type=int, default=5, help="alternating windows per side")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: as set)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=0)


def _time_arch(arch: str, args: argparse.Namespace, device: Any) -> Dict[str, Any]:
    import torch

    from gearlib.measure import inference_latency
    from gearlib.models import build, fold_batchnorm

    torch.manual_seed(args.seed)
    plain = build(arch, args.width, num_classes=10, input_size=32).to(device)
    with torch.no_grad():  # BN statistics away from (0, 1), so folding has something to fold
        plain.train()
        for _ in range(3):
            plain(torch.rand(32, 3, 32, 32, device=device))
    plain.eval()
    folded = fold_batchnorm(plain)
    x = torch.rand(4, 3, 32, 32, device=device)
    with torch.no_grad():
        diff = float((plain(x) - folded(x)).abs().max())
    windows: Dict[str, List[float]] = {"plain": [], "folded": []}
    for _ in range(args.windows):
        for name, net in (("plain", plain), ("folded", folded)):
            report = inference_latency(net, device=device, warmup=10, iters=args.iters, threads=args.threads)
            windows[name].append(report.median_ms)
    plain_ms, folded_ms = statistics.median(windows["plain"]), statistics.median(windows["folded"])
    return {
        f"{arch}_plain_ms": plain_ms,
        f"{arch}_folded_ms": folded_ms,
        f"{arch}_folded_over_plain": folded_ms / plain_ms,
        f"{arch}_max_abs_output_diff": diff,
    }


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Latency with and without folded BNs per architecture; keys <arch>_folded_over_plain and raw times."""
    import torch

    from gearlib.models import ARCHS

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    for arch in archs:
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if min(args.width, args.iters, args.windows) < 1:
        raise ValueError("--width, --iters and --windows must be >= 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    results: Dict[str, Any] = {
        "device": str(device), "width": args.width, "iters": args.iters, "windows": args.windows,
        "threads": args.threads or torch.get_num_threads(),
    }  # fmt: skip
    for arch in archs:
        results.update(_time_arch(arch, args, device))
    return results
