"""`gearlib bench layers`: training-step time and CPU inference latency of one conv and its GroupNL-paper
replacements side by side (interleaved rounds, medians), as ratios to the plain conv beside GroupNL's Table 16.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

# torch and gearlib.layers are imported inside `run`: the CLI registers this module's options whenever it
# builds its parser, and that must not load torch.

# Layer kinds in the order they are timed; each name maps to a key of GroupNL's Table 16 (with the ratio r).
KINDS = ("conv", "groupnl", "sparse_groupnl", "ghost", "sinefm", "depthwise", "monocnn")
NOTE = (
    "Ratios are measured on this machine's CPU. GroupNL's Table 16 ratios are inference on a Raspberry Pi 4B "
    "(ARM, PyTorch-CPU) and need not transfer: on x86, oneDNN's depthwise convs are fast, so Ghost (whose "
    "cheap op is a depthwise conv) can be as fast as GroupNL, and the plain depthwise conv can beat sparse "
    "GroupNL. MonoCNN is not in Table 16 (it runs a full conv plus weight generation)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench layers` (`--json` is added by the framework)."""
    parser.add_argument("--channels", type=int, default=512, help="c_in = c_out of the layer (Table 16: 512)")
    parser.add_argument("--size", type=int, default=32, help="input height and width (Table 16: 32)")
    parser.add_argument("--batch", type=int, default=1, help="images per step (default 1)")
    parser.add_argument("--stride", type=int, default=2, help="conv stride (Table 16: 2)")
    parser.add_argument("--ratio", type=int, default=2, help="r of GroupNL, Ghost and SineFM: 2, 4 or 8")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median counts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads while timing (default 1)")


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import torch
    from torch import nn

    from gearlib.layers import (
        PAPER_TABLE16,
        GhostConv2d,
        GroupNLConv2d,
        MonoCNNConv2d,
        SineFMConv2d,
        conv_cost,
    )

    for option, value in (
        ("--channels", args.channels),
        ("--size", args.size),
        ("--batch", args.batch),
        ("--stride", args.stride),
        ("--rounds", args.rounds),
        ("--threads", args.threads),
    ):
        if value < 1:
            raise ValueError(f"{option} must be >= 1, got {value}")
    c, size, r = args.channels, args.size, args.ratio
    if r < 2 or c % r or (c // r) % 4:
        raise ValueError(
            f"--ratio r={r} must be >= 2 and divide --channels={c} into c / r seed maps divisible by GroupNL's "
            f"g = 4; e.g. --channels 512 with r = 2, 4 or 8"
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        common = dict(kernel_size=3, stride=args.stride, padding=1)
        makers: Dict[str, Callable[[], nn.Module]] = {
            "conv": lambda: nn.Conv2d(c, c, bias=False, **common),
            "groupnl": lambda: GroupNLConv2d(c, c, ratio=r, generator=gen, **common),
            "sparse_groupnl": lambda: GroupNLConv2d(c, c, ratio=r, sparse=True, generator=gen, **common),
            "ghost": lambda: GhostConv2d(c, c, ratio=r, **common),
            "sinefm": lambda: SineFMConv2d(c, c, ratio=r, generator=gen, **common),
            "depthwise": lambda: nn.Conv2d(c, c, groups=c, bias=True, **common),
            "monocnn": lambda: MonoCNNConv2d(c, c, expansion=r, generator=gen, **common),
        }
        layers = {kind: makers[kind]() for kind in KINDS}
        optimizers = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in layers.items()}
        x = torch.rand(args.batch, c, size, size, generator=gen)

        def infer(kind: str) -> float:
            layer = layers[kind].eval()
            begin = time.perf_counter()
            with torch.no_grad():
                layer(x)
            return time.perf_counter() - begin

        def train(kind: str) -> float:
            layer, optimizer = layers[kind].train(), optimizers[kind]
            begin = time.perf_counter()
            loss = layer(x).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return time.perf_counter() - begin

        passes: Tuple[Tuple[str, Callable[[str], float]], ...] = (("infer", infer), ("train", train))
        for kind in KINDS:  # warm-up: first-call allocation and kernel selection
            for _, fn in passes:
                fn(kind)
        times: Dict[str, List[float]] = {f"{k}_{p}": [] for k in KINDS for p, _ in passes}
        for _ in range(args.rounds):
            for kind in KINDS:  # interleaved, so a burst of other load hits every layer alike
                for name, fn in passes:
                    times[f"{kind}_{name}"].append(fn(kind))
    finally:
        torch.set_num_threads(previous_threads)
    out_size = (size + 2 - 3) // args.stride + 1
    out: Dict[str, Any] = {
        "channels": c, "size": size, "batch": args.batch, "stride": args.stride, "ratio": r,
        "rounds": args.rounds, "threads": args.threads, "note": NOTE,
    }  # fmt: skip
    median = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    paper_conv = PAPER_TABLE16[("conv", None)].ms
    # the Pi's ratios describe the Table 16 module only; at other sizes they are context
    out["table16_module"] = c == 512 and size == 32 and args.stride == 2
    for kind in KINDS:
        cost = conv_cost(kind, c, c, 3, out_size, ratio=r, expansion=r, bias=kind == "depthwise")
        out[f"{kind}_params"] = cost.params
        out[f"{kind}_mflops"] = cost.flops / 1e6
        for name, _ in passes:
            out[f"{kind}_{name}_ms"] = median[f"{kind}_{name}"]
            out[f"{kind}_{name}_over_conv"] = median[f"{kind}_{name}"] / median[f"conv_{name}"]
        paper = PAPER_TABLE16.get((kind, None if kind in ("conv", "depthwise") else r))
        if paper is not None:
            out[f"{kind}_infer_over_conv_paper_pi"] = paper.ms / paper_conv
    return out
