"""`gearlib bench cpu`: settings that may make a thin network's training step faster on a CPU (torch threads,
torch.compile, glibc's malloc tunables), each timed in a fresh process, in alternating rounds.

Every variant trains the same grown network on the same random batches; only how the step runs differs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

# glibc malloc tunables of the "malloc-keep" variant: blocks up to 32 MiB (glibc's largest mmap threshold on
# 64-bit) come from the heap instead of fresh mmap'ed pages, and freed memory stays mapped (no trim), so a
# training step reuses its activation buffers' pages instead of faulting new ones in every step.
MALLOC_KEEP = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"
# "malloc-thp": malloc asks the kernel for transparent huge pages (glibc 2.35 or later; older ones ignore it).
MALLOC_THP = "glibc.malloc.hugetlb=1"
TUNABLES = {"malloc-keep": MALLOC_KEEP, "malloc-thp": MALLOC_THP}
VARIANTS = ("eager", "compile", "threads-all", "malloc-keep", "malloc-thp")
DEFAULT_VARIANTS = ",".join(VARIANTS)

# torch is imported inside the functions: building the `gearlib` parser must not load it.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench cpu` (`--json` is added by the framework)."""
    parser.add_argument(
        "--profile", default="cpu", help="profile whose widths, batch and SGD settings to use"
    )
    parser.add_argument("--arch", default="vgg19")
    parser.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, from {DEFAULT_VARIANTS}"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of every variant but threads-all"
    )
    parser.add_argument("--views", type=int, default=1, help="images per sample in a step (ERA's J = 4: 4)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per process; the fastest counts")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each runs every variant once, in turn")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)  # a variant's own process


def _variant_env(variant: str, threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    all_cores = os.cpu_count() or 1
    env["OMP_NUM_THREADS"] = str(all_cores if variant == "threads-all" else threads)
    if variant in TUNABLES:
        env["GLIBC_TUNABLES"] = ":".join(x for x in (env.get("GLIBC_TUNABLES", ""), TUNABLES[variant]) if x)
    return env


def child(args: argparse.Namespace) -> Dict[str, Any]:
    """Time one variant in this process: seconds per training step (fastest pass) and set-up seconds."""
    import torch
    import torch.nn.functional as F

    from gearlib.bench.train import grown_widths
    from gearlib.models import build, use_channels_last
    from gearlib.profiles import get_profile

    p = get_profile(args.profile)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.manual_seed(0)
    widths, _ = grown_widths(p, args.arch, "cifar10")
    device = torch.device("cpu")
    net = build(args.arch, widths, num_classes=10, input_size=32)
    layout = (
        torch.channels_last if use_channels_last(net, device, p.channels_last) else torch.contiguous_format
    )
    net = net.to(memory_format=layout)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=p.momentum, weight_decay=p.weight_decay)
    size = p.batch_size * args.views
    batches = [
        (torch.rand(size, 3, 32, 32).contiguous(memory_format=layout), torch.randint(0, 10, (size,)))
        for _ in range(args.steps)
    ]
    model = torch.compile(net) if args.child == "compile" else net

    def one_pass() -> None:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    net.train()
    begin = time.perf_counter()
    one_pass()  # warm-up: kernel set-up, and compilation for the compiled variant
    setup_s = time.perf_counter() - begin
    passes = []
    for _ in range(args.repeats):
        begin = time.perf_counter()
        one_pass()
        passes.append((time.perf_counter() - begin) / args.steps)
    return {"step_s": min(passes), "setup_s": setup_s, "threads": torch.get_num_threads()}


def _run_child(variant: str, args: argparse.Namespace) -> Dict[str, Any]:
    command = [
        sys.executable, "-m", "gearlib.bench.cpu", "--child", variant, "--profile", args.profile,
        "--arch", args.arch, "--views", str(args.views), "--steps", str(args.steps), "--repeats", str(args.repeats),
    ]  # fmt: skip
    done = subprocess.run(command, env=_variant_env(variant, args.threads), capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Per variant: seconds per step (median over rounds of each process's fastest pass) and its ratio to
    eager; `compile_error` and the like say why a variant could not run here."""
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {DEFAULT_VARIANTS}")
    if "eager" not in variants:
        variants.insert(0, "eager")  # every ratio is against eager, measured in the same rounds
    if min(args.threads, args.views, args.steps, args.repeats, args.rounds) < 1:
        raise ValueError("--threads, --views, --steps, --repeats and --rounds must be >= 1")
    measured: Dict[str, List[Dict[str, Any]]] = {v: [] for v in variants}
    for index in range(args.rounds):
        order = variants if index % 2 == 0 else variants[::-1]  # alternate, so drift hits every variant
        for variant in order:
            measured[variant].append(_run_child(variant, args))
    results: Dict[str, Any] = {
        "profile": args.profile, "arch": args.arch, "views": args.views, "steps": args.steps,
        "repeats": args.repeats, "rounds": args.rounds, "threads": args.threads, "cores": os.cpu_count(),
    }  # fmt: skip
    for variant, runs in measured.items():
        key = variant.replace("-", "_")
        errors = [r["error"] for r in runs if "error" in r]
        if errors:
            results[f"{key}_error"] = errors[0]
            continue
        results[f"{key}_step_s"] = statistics.median(r["step_s"] for r in runs)
        results[f"{key}_setup_s"] = statistics.median(r["setup_s"] for r in runs)
        results[f"{key}_torch_threads"] = runs[0]["threads"]
    eager = results.get("eager_step_s")
    for variant in variants[1:]:
        key = variant.replace("-", "_")
        if eager and f"{key}_step_s" in results:
            results[f"{key}_over_eager"] = results[f"{key}_step_s"] / eager
    return results


if __name__ == "__main__":  # a variant's own process (see _run_child)
    parser = argparse.ArgumentParser(prog="gearlib bench cpu (child)")
    add_arguments(parser)
    print(json.dumps(child(parser.parse_args())))
