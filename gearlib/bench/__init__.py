"""`gearlib bench ...`: side-by-side speed measurements that print ratios, never timed unit tests.

Each benchmark module `gearlib.bench.<name>` exposes `add_arguments(parser)` and `run(args) -> dict`.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any, Dict

BENCHES = {
    "grow": "growth step time against one training epoch, per architecture",
    "augment": "batched AugMix/ERA images per second against torchvision's per-sample AugMix",
    "corrupt": "corruption generation speed and the projected time for a whole CIFAR-10-C",
    "train": "GEARnn-2 against Small(AugMix), batched against per-sample loaders, full against bare steps",
    "adversarial": "seconds per training step of PGD-AT, OAT, FLOAT, SMART and FLOATS slim, side by side",
    "layers": "training step and CPU inference time of a conv against GroupNL, Ghost, SineFM and MonoCNN",
    "infer": "inference latency of each architecture with and without its BatchNorms folded into the convs",
    "cpu": "a training step on the CPU under torch.compile, all cores, glibc malloc tunables, against eager",
}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser("bench", help="run a benchmark and print measured ratios")
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, help_text in BENCHES.items():
        p = bench_sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print the results as one JSON object")
        p.set_defaults(func=_run, bench_name=name)
        try:
            module = importlib.import_module(f"gearlib.bench.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"gearlib.bench.{name}":
                p.set_defaults(func=_missing)
                continue
            raise
        module.add_arguments(p)


def _missing(args: argparse.Namespace) -> int:
    raise ValueError(f"benchmark {args.bench_name!r} is not part of this gearlib version yet")


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"gearlib.bench.{args.bench_name}")
    results: Dict[str, Any] = module.run(args)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        width = max(len(k) for k in results) if results else 0
        for key, value in results.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"{key:<{width}}  {shown}")
    return 0
