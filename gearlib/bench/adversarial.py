"""`gearlib bench adversarial`: seconds per training step of PGD-AT, OAT, FLOAT, SMART and FLOATS slim,
measured side by side in one process (interleaved rounds on the same batches), and their ratios to FLOAT.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Dict, List

# torch and gearlib's training side are imported inside `run`: the CLI registers this module's options
# whenever it builds its parser, and that must not load torch.

# FLOAT paper (Sec. 5): per-epoch training time of PGD-AT and OAT relative to FLOAT's.
PAPER_RATIOS = {"pgd-at": 1.37, "oat": 1.43}
METHODS = ("float", "pgd-at", "oat", "smart", "floats-slim")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench adversarial` (`--json` is added by the framework)."""
    parser.add_argument("--profile", default="smoke", help="profile whose model and attack to time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile setting")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed pass (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median counts")


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import torch

    from gearlib.adversarial.objectives import TrainAttack, batch_loss
    from gearlib.adversarial.train import build_for, make_optimizer, recipe_of
    from gearlib.profiles import get_profile

    if args.steps < 1 or args.rounds < 1:
        raise ValueError(f"need --steps >= 1 and --rounds >= 1, got {args.steps} and {args.rounds}")
    p = get_profile(args.profile, args.set)
    device = torch.device(p.resolved_device())
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.steps, p.batch_size, 3, 32, 32, generator=g).to(device)
    y = torch.randint(10, (args.steps, p.batch_size), generator=g).to(device)
    attack = TrainAttack(p.adv_eps / 255.0, p.adv_train_steps)
    sides = {}
    for method in METHODS:
        objective = "pgd-at" if method == "pgd-at" else method
        model = build_for(objective, p.adv_arch, p.adv_width, 10, seed=0).to(device).train()
        sides[method] = (model, make_optimizer(model, p), recipe_of(objective))

    def one_pass(method: str) -> float:
        model, optimizer, recipe = sides[method]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        for i in range(args.steps):
            out = batch_loss(recipe.loss, model, x[i], y[i], attack, 1.0, g, recipe.kind.widths)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - begin) / args.steps

    for method in METHODS:
        one_pass(method)  # warm-up
    times: Dict[str, List[float]] = {m: [] for m in METHODS}
    for _ in range(args.rounds):
        for method in METHODS:  # interleaved, so a burst of other load hits every method alike
            times[method].append(one_pass(method))
    out: Dict[str, Any] = {
        "profile": p.name, "device": str(device), "arch": p.adv_arch, "width": p.adv_width,
        "batch_size": p.batch_size, "train_attack": f"PGD-{p.adv_train_steps}",
    }  # fmt: skip
    median = {m: statistics.median(t) for m, t in times.items()}
    for method in METHODS:
        out[f"{method}_s_per_step"] = median[method]
    for method in METHODS[1:]:
        out[f"{method}_over_float"] = median[method] / median["float"]
        if method in PAPER_RATIOS:
            out[f"{method}_over_float_paper"] = PAPER_RATIOS[method]
    return out
