"""`gearlib bench train`: GEARnn-2 against Small(AugMix), the batched pipeline against per-sample loaders,
and gearlib's full training step against a bare forward/backward/SGD step, per phase (clean and ERA).

Every comparison runs side by side in one process, on the same machine, profile and data.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

# gearlib's training side (and torch with it) is imported inside the functions: `gearlib.bench` imports
# this module to register its options whenever the `gearlib` parser is built, and that must not load torch.

# Paper, Table 2 (VGG-19, CIFAR-10, Quadro): GEARnn-2 53 min / 298 kJ, Small(AugMix) 215 min / 1140 kJ.
PAPER_TIME_RATIO = 53 / 215
PAPER_ENERGY_RATIO = 298 / 1140
# Full vs bare step measurement: batches per timed pass and timed passes per side (after one warm-up each).
DEFAULT_STEPS = 3
DEFAULT_REPEATS = 3


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
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"batches per timed step pass (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--repeats", type=int, default=DEFAULT_REPEATS, help="timed passes per side; the fastest counts"
    )
    parser.add_argument(
        "--only-steps",
        action="store_true",
        help="only the full vs bare training step measurement (skip GEARnn-2 vs Small and the loaders)",
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
    """The run comparisons (unless --only-steps), then the full vs bare training step per phase."""
    for option, value in (("--steps", args.steps), ("--repeats", args.repeats)):
        if value < 1:
            raise ValueError(f"{option} must be a positive whole number, got {value}; e.g. {option} 3")
    settings = [*DEFAULT_SETTINGS, *args.set] if args.profile == "smoke" else list(args.set)
    results = {} if args.only_steps else compare_runs(args, settings)
    results.update(step_overheads(args, list(args.set)))  # the run settings shape epochs only
    return results


def compare_runs(args: argparse.Namespace, settings: List[str]) -> Dict[str, Any]:
    """Train GEARnn-2 and Small(AugMix) (and GEARnn-2 with per-sample loaders) side by side; the ratios."""
    from gearlib.train.runner import make_config, run_experiment

    results: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as runs:

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


# -- full training step against a bare forward/backward/SGD step --------------------------------------
@dataclasses.dataclass
class StepSetup:
    """What both sides of the step measurement share: profile, stage config, device, data and network."""

    profile: Any
    config: Any  # the runner's StageConfig for this profile (layout already checked for the network)
    device: Any
    images: Any  # uint8 [N,3,H,W] on the device, as the runner keeps its training set
    labels: Any
    network: Any  # the grown-size network, initial weights; each side trains its own deep copy
    seed: int
    steps: int
    repeats: int


def grown_widths(profile: Any, arch: str, dataset: str) -> Tuple[List[int], str]:
    """Widths of a grown network: c_0 x (1 + gamma) rounded, in every growable unit; and that rule in words."""
    from gearlib.models import full_widths

    gamma = profile.growth_ratio(dataset, arch)
    width = max(1, int(round(profile.backbone_width * (1 + gamma))))
    units = len(full_widths(arch))
    rule = (
        f"backbone_width {profile.backbone_width} x (1 + growth ratio {gamma:g}) = "
        f"{profile.backbone_width * (1 + gamma):g}, rounded to {width}, in each of the {units} units"
    )
    return [width] * units, rule


def _step_setup(args: argparse.Namespace, settings: List[str]) -> Tuple[StepSetup, Dict[str, Any]]:
    """The runner's profile, StageConfig, device and training images, and the grown network to train."""
    import torch

    from gearlib import seed_everything
    from gearlib.data import dataset_info, load_dataset
    from gearlib.models import build, use_channels_last
    from gearlib.train.runner import make_config
    from gearlib.train.stage import StageConfig

    run_config = make_config("gearnn2", args.profile, args.arch, args.dataset, overrides=settings)
    p, device = run_config.profile, run_config.device
    info = dataset_info(args.dataset)
    widths, rule = grown_widths(p, args.arch, args.dataset)
    seed_everything(run_config.seed)
    network = build(args.arch, widths, info.num_classes, info.image_size).to(device)
    config = StageConfig(
        lr=p.lr, momentum=p.momentum, nesterov=p.nesterov, weight_decay=p.weight_decay,
        lr_gamma=p.lr_gamma, amp=p.amp and device.type == "cuda",
        channels_last=use_channels_last(network, device, p.channels_last), progress=False,
    )  # fmt: skip
    if config.channels_last:
        network.to(memory_format=torch.channels_last)
    train_set = load_dataset(
        args.dataset, "train", args.data_dir, subset=args.steps * p.batch_size, seed=run_config.seed
    )
    images, labels = train_set.tensors(device)
    setup = StepSetup(p, config, device, images, labels, network, run_config.seed, args.steps, args.repeats)
    described = {"step_widths": widths, "step_widths_rule": rule, "step_arch": args.arch}
    return setup, described


def _timed_pass(run_pass: Callable[[], Any], device: Any) -> float:
    """Wall seconds of one call of `run_pass`, the device's queued work finished before and after."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    begin = time.perf_counter()
    run_pass()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - begin


def _phase_sides(setup: StepSetup, augment: Any) -> Tuple[Dict[str, Callable[[], Any]], Dict[str, int]]:
    """{full, bare, reset} passes of one phase and {views, batch_size, batches}: same batches and weights.

    The full pass is gearlib's `train_epoch` over a `TensorBatches` source that augments on the fly, with the
    phase loss; the bare pass replays those batches, drawn once beforehand, through forward, CE on every
    view, backward and an SGD step (under the same autocast and gradient scaler when AMP is on). `reset`
    puts both sides back to the initial weights with empty momentum, so no pass trains on far enough to
    overfit the few batches and diverge.
    """
    import torch
    import torch.nn.functional as F

    from gearlib.data import TensorBatches
    from gearlib.train.stage import _grad_scaler, default_loss_fn, make_optimizer, stage_lr, train_epoch

    c, device, amp = setup.config, setup.device, setup.config.amp
    generator = torch.Generator().manual_seed(setup.seed)
    source = TensorBatches(
        setup.images, setup.labels, setup.profile.batch_size, augment, generator=generator,
        max_batches=setup.steps,
    )  # fmt: skip
    start = source.state_dict()
    layout = torch.channels_last if c.channels_last else torch.contiguous_format
    drawn = [(x.contiguous(memory_format=layout), y) for x, y in source]  # the already-augmented batches
    size = source.batch_size
    views = drawn[0][0].shape[0] // size  # J: the views are concatenated, clean first
    full_net, bare_net = copy.deepcopy(setup.network), copy.deepcopy(setup.network)
    full_opt, loss_fn = make_optimizer(full_net, c, size), default_loss_fn(setup.profile.jsd_lambda)
    bare_opt = torch.optim.SGD(bare_net.parameters(), lr=stage_lr(c, size), momentum=c.momentum,
                               nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay)  # fmt: skip
    full_scaler, bare_scaler = (_grad_scaler(True), _grad_scaler(True)) if amp else (None, None)
    initial = copy.deepcopy(setup.network.state_dict())

    def reset() -> None:
        for net, opt in ((full_net, full_opt), (bare_net, bare_opt)):
            net.load_state_dict(initial)
            opt.state.clear()

    def full() -> None:
        source.load_state_dict(start)  # the same batches, drawn again on the fly
        train_epoch(full_net, source, full_opt, loss_fn, c, device, full_scaler)

    def bare() -> None:
        bare_net.train()
        for x, y in drawn:
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(bare_net(x), y.repeat(views))
            bare_opt.zero_grad(set_to_none=True)
            if bare_scaler is None:
                loss.backward()
                bare_opt.step()
            else:
                bare_scaler.scale(loss).backward()
                bare_scaler.step(bare_opt)
                bare_scaler.update()

    passes = {"full": full, "bare": bare, "reset": reset}
    return passes, {"views": views, "batch_size": size, "batches": len(drawn)}


def measure_phase(setup: StepSetup, phase: str, augment: Any) -> Dict[str, Any]:
    """Seconds per step of both sides of one phase (warm-up once each, then alternating, fastest repeat)."""
    passes, shape = _phase_sides(setup, augment)
    passes["full"]()  # warm-up: first-call kernel set-up, untimed
    passes["bare"]()
    seconds: Dict[str, List[float]] = {"full": [], "bare": []}
    for _ in range(setup.repeats):
        for side in ("full", "bare"):
            passes["reset"]()  # untimed: both sides start every pass from the same weights
            seconds[side].append(_timed_pass(passes[side], setup.device))
    full_s, bare_s = min(seconds["full"]) / shape["batches"], min(seconds["bare"]) / shape["batches"]
    results = {f"{phase}_full_step_s": full_s, f"{phase}_bare_step_s": bare_s}
    results[f"{phase}_step_overhead"] = full_s / bare_s - 1
    results.update({f"{phase}_{key}": value for key, value in shape.items()})
    return results


def step_overheads(args: argparse.Namespace, settings: List[str]) -> Dict[str, Any]:
    """Per phase (clean, ERA): gearlib's full training step over a bare step, minus 1 (target <= 0.10)."""
    import torch

    from gearlib.augment import make_augment
    from gearlib.measure.hardware import hardware_info

    setup, results = _step_setup(args, settings)
    p = setup.profile
    era = make_augment("era", width=p.era_width, depth=p.era_depth, views=p.era_views)
    results.update(measure_phase(setup, "clean", None))
    results.update(measure_phase(setup, "era", era))
    hardware = hardware_info(setup.device, energy=False)
    results.update(
        step_repeats=setup.repeats,
        step_threads=torch.get_num_threads(),
        step_channels_last=setup.config.channels_last,
        step_amp=setup.config.amp,
        step_era=f"width {p.era_width}, depth {p.era_depth}, views {p.era_views}, jsd_lambda {p.jsd_lambda:g}",
        step_device=f"{setup.device}: {hardware['cpu_model']}"
        + (f" + {hardware['cuda_device']}" if hardware.get("cuda_device") else ""),
        step_scale=f"{args.profile} profile, {args.dataset}, settings {' '.join(settings) or 'as profiled'}",
    )
    return results
