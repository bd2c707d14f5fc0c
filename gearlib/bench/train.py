"""`gearlib bench train`: GEARnn-2 against Small(AugMix), and the batched pipeline against per-sample loaders.

Both comparisons train real runs side by side in one process, on the same machine, profile and data.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any, Dict, List

# gearlib's training side (and torch with it) is imported inside the functions: `gearlib.bench` imports
# this module to register its options whenever the `gearlib` parser is built, and that must not load torch.

# Paper, Table 2 (VGG-19, CIFAR-10, Quadro): GEARnn-2 53 min / 298 kJ, Small(AugMix) 215 min / 1140 kJ.
PAPER_TIME_RATIO = 53 / 215
PAPER_ENERGY_RATIO = 298 / 1140


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench train` (`--json` is added by the framework)."""
    parser.add_argument("--profile", default="smoke", help="profile of both runs (default smoke)")
    parser.add_argument("--arch", default="vgg19")
    parser.add_argument("--dataset", default="synthetic", help="e.g. cifar10 with the JPEG copy on disk")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile setting")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--skip-loader", action="store_true", help="skip the batched vs per-sample comparison"
    )


def _views(augment: str, profile: Any) -> int:
    """Images per sample that one training step with augmentation `augment` puts through the network."""
    from gearlib.augment.defaults import AUGMIX_DEFAULTS

    if augment == "clean":
        return 1
    if augment.startswith("era"):
        return max(profile.era_views, 1)
    return AUGMIX_DEFAULTS.views  # AugMix and PRIME: clean + 2 views


def image_passes(metrics: Dict[str, Any], paper_scale: bool, profile: Any) -> Dict[str, float]:
    """Per stage: epochs x views (the number of times each image goes through the network)."""
    from gearlib.profiles import get_profile
    from gearlib.train.methods import plan_for

    scale_profile = get_profile("quadro") if paper_scale else profile
    _, plan = plan_for(metrics["method"], scale_profile, metrics["dataset"], metrics["arch"])
    passes: Dict[str, float] = {}
    for step in plan:
        if step.kind == "train":
            passes[step.stage] = passes.get(step.stage, 0.0) + step.epochs * _views(step.augment, profile)
    return passes


def compute_bound_estimate(gearnn2: Any, small: Any, profile: Any) -> float:
    """GEARnn-2 / Small(AugMix) time at the paper's epochs, from our measured seconds per image pass.

    Each stage's measured training time divided by its image passes gives a per-pass cost (thin backbone
    in OSG-1, grown network after); scaling those by the paper's epochs removes the effect of our shortened
    schedule. The growth step is one fixed cost and is added once, unscaled.
    """
    total = {}
    for name, result in (("g2", gearnn2), ("small", small)):
        ours = image_passes(result.metrics, False, profile)
        paper = image_passes(result.metrics, True, profile)
        train_seconds: Dict[str, float] = {}
        growth_seconds = 0.0
        for entry in result.epochs:
            if entry.get("growth"):
                growth_seconds += float(entry["seconds"])
            else:
                train_seconds[entry["stage"]] = train_seconds.get(entry["stage"], 0.0) + float(
                    entry["seconds"]
                )
        scaled = sum(train_seconds[k] / ours[k] * paper[k] for k in ours if ours[k] > 0)
        total[name] = scaled + growth_seconds
    return total["g2"] / total["small"]


# Defaults keep the paper's proportions E1 : E2 : E_R : Small = 1 : 1 : 1 : 4 at a size that takes minutes.
DEFAULT_SETTINGS = ["train_subset=2048", "epochs_e1=2", "epochs_e2=2", "epochs_er=2", "epochs_small=8"]


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Train GEARnn-2 and Small(AugMix) (and GEARnn-2 with per-sample loaders) side by side; the ratios."""
    from gearlib.train.runner import make_config, run_experiment

    results: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as runs:
        settings = [*DEFAULT_SETTINGS, *args.set] if args.profile == "smoke" else list(args.set)

        def train(method: str, extra: List[str]) -> Any:
            config = make_config(method, args.profile, args.arch, args.dataset, overrides=[*settings, *extra])
            return run_experiment(config, runs, args.data_dir, progress=False, force=True)

        g2_run, small_run = train("gearnn2", []), train("small-augmix", [])
        g2, small = g2_run.metrics, small_run.metrics
        profile = make_config("gearnn2", args.profile, args.arch, args.dataset, overrides=settings).profile
        results["gearnn2_over_small_augmix_time"] = g2["train_seconds"] / small["train_seconds"]
        if g2["train_joules"] is not None and small["train_joules"]:
            results["gearnn2_over_small_augmix_energy"] = g2["train_joules"] / small["train_joules"]
        else:
            results["gearnn2_over_small_augmix_energy"] = None
        results["paper_time_ratio"] = round(PAPER_TIME_RATIO, 4)
        results["paper_energy_ratio"] = round(PAPER_ENERGY_RATIO, 4)
        results["compute_bound_ratio_at_paper_epochs"] = compute_bound_estimate(g2_run, small_run, profile)
        results["gearnn2_seconds"] = g2["train_seconds"]
        results["small_augmix_seconds"] = small["train_seconds"]
        results["gearnn2_clean_acc"] = g2["clean_acc"]
        results["gearnn2_robust_acc"] = g2["robust_acc"]
        results["small_augmix_clean_acc"] = small["clean_acc"]
        results["small_augmix_robust_acc"] = small["robust_acc"]
        if not args.skip_loader:
            per_sample = train("gearnn2", ["loader=per-sample"]).metrics
            results["per_sample_gearnn2_seconds"] = per_sample["train_seconds"]
            results["batched_over_per_sample_speedup"] = per_sample["train_seconds"] / g2["train_seconds"]
        results["energy_backend"] = g2["energy_backend_detail"]
        results["hardware"] = g2["hardware"]["cpu_model"] + (
            f" + {g2['hardware']['cuda_device']}" if g2["hardware"].get("cuda_device") else ""
        )
        results["scale"] = (
            f"{args.profile} profile, {args.dataset}, {g2['train_images']} training images, "
            f"settings {' '.join(settings) or 'as profiled'}"
        )
    return results
