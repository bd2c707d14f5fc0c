"""`gearlib bench grow`: one Firefly growth step (perturbation + scoring pass) against one training epoch of
the grown network, per architecture, on the same batches and machine; prints the time ratio.

A Firefly growth step (Wu et al. 2020) makes two full data passes through a candidate network K channels
wider per growable unit than the backbone, so the ratio is a few epochs. Two references put it in context:
- FLOPs of one candidate forward pass over one grown forward pass. With perturb = forward + backward and
  score = forward + input-gradient backward, this estimates the ratio if every convolution ran at the same
  speed per operation; the candidate's wider convolutions usually run faster.
- Two passes through the plain architecture at widths c_l + K (no split copies, so narrower than the
  candidate, whose units carry 2c + K channels): one training epoch (as the perturbation pass) plus one
  forward and input-gradient pass with frozen weights (as the scoring pass), over one grown epoch. The
  candidate's convolutions do at least the work of this network's, so this is about the least any
  implementation of the growth step's two passes could cost here.

It also times one epoch of the backbone and one ERA epoch (J views, JSD loss) of the grown network, and from
those per-pass costs estimates the growth step's share of a GEARnn-2 run at the paper's epochs (Table 1:
E1 backbone epochs, the growth step, E2 grown epochs, ER ERA epochs), growth and E2 together as in the
paper's Table 6 (OSG-2), whose share is printed beside it.
"""

from __future__ import annotations

import argparse
import copy
import functools
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# torch and gearlib's torch-side modules are imported inside the functions: `gearlib.bench` imports this
# module to register its options whenever the `gearlib` parser is built, and that must not load torch.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench grow` (`--json` is added by the framework)."""
    parser.add_argument(
        "--archs", default="vgg19,mobilenet_v1,resnet18", help="comma-separated architectures"
    )
    parser.add_argument(
        "--batches", type=int, default=2, help="batches per pass (growth passes and the epoch)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (B)")
    parser.add_argument("--width", type=int, default=45, help="backbone width c_0 of every growable layer")
    parser.add_argument("--new-neurons", type=int, default=70, help="K new neurons per layer")
    parser.add_argument("--image-size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the fastest one counts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="run growth and training in NCHW layout (default: NHWC, as the profiles do)",
    )
    parser.add_argument("--seed", type=int, default=0)


def _batches(n_batches: int, batch_size: int, size: int, seed: int) -> List[Any]:
    """Fixed float batches in [0,1] of gearlib's synthetic images."""
    from gearlib.data import synthetic_tensors

    n = n_batches * batch_size
    images, labels = synthetic_tensors(n, num_classes=10, size=size, seed=seed)
    x = images.float() / 255.0
    return [(x[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n, batch_size)]


def _input_gradient_pass(net: Any, batches: List[Any]) -> None:
    """A pass like the scoring pass on a plain network: eval mode, frozen weights, forward and the loss
    gradient down to the input (no weight gradients, no update)."""
    import torch

    from gearlib.train.stage import clean_cross_entropy

    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for x, y in batches:
        x = x.detach().requires_grad_(True)
        torch.autograd.grad(clean_cross_entropy(net(x), y), x)
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()


def _timed(run_pass: Callable[[], Any], device: Any) -> float:
    """Seconds one call of `run_pass` takes, with the device's queued work finished before and after."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    start = time.perf_counter()
    run_pass()
    sync()
    return time.perf_counter() - start


def _warm_up(net: Any, batches: List[Any], channels_last: bool) -> None:
    """One training step of `net` (first-call kernel set-up and BN statistics)."""
    from gearlib.train.stage import StageConfig, clean_cross_entropy, train_stage

    warm = StageConfig(progress=False, max_batches=1, channels_last=channels_last)
    train_stage(net, batches, 1, warm, loss_fn=clean_cross_entropy)


def _widened(arch: str, model: Any, batches: List[Any], args: argparse.Namespace, device: Any) -> Any:
    """The reference network: the plain architecture with K more channels in every growable unit, warmed
    up like the grown network."""
    import torch

    from gearlib.models import build

    torch.manual_seed(args.seed)
    widths = [w + args.new_neurons for w in model.widths]
    widened = build(arch, widths, num_classes=10, input_size=args.image_size).to(device)
    _warm_up(widened, batches, args.channels_last)
    return widened


def _factored_perturb(
    model: Any, batches: List[Any], new_neurons: int, seed: int, channels_last: bool
) -> Any:
    """The perturbation pass of a growth step whose candidate keeps the frozen W apart from V, A and B
    (`Candidate(factored=True)`), for the side-by-side ratio with the growth step's own pass."""
    import torch

    from gearlib.grow import Candidate, train_perturbations
    from gearlib.train.stage import clean_cross_entropy

    generator = torch.Generator().manual_seed(seed)
    candidate = Candidate(model, new_neurons, generator=generator, factored=True)
    device = next(model.parameters()).device
    train_perturbations(  # warm-up of its kernels, as the growth step's pass had in its's warm-up
        candidate, batches, clean_cross_entropy, progress=False, device=device, channels_last=channels_last,
        max_batches=1,
    )  # fmt: skip
    return functools.partial(
        train_perturbations,
        candidate,
        batches,
        clean_cross_entropy,
        progress=False,
        device=device,
        channels_last=channels_last,
    )


def _era_batches(batches: List[Any], seed: int) -> Any:
    """The bench's images as an ERA batch source with the paper's settings (J views, clean first)."""
    import torch

    from gearlib.augment import make_augment
    from gearlib.data import TensorBatches
    from gearlib.profiles import Profile

    p = Profile()
    images = torch.cat([x for x, _ in batches]).mul(255).round().to(torch.uint8)
    labels = torch.cat([y for _, y in batches])
    era = make_augment("era", width=p.era_width, depth=p.era_depth, views=p.era_views)
    generator = torch.Generator().manual_seed(seed)
    return TensorBatches(images, labels, batches[0][0].shape[0], era, generator=generator)


def _time_repeat(
    grow: Callable[..., Any],
    model: Any,
    widened: Any,
    batches: List[Any],
    config: Any,
    seed: int,
    device: Any,
) -> Tuple[Any, Dict[str, float]]:
    """One growth step and the timed training and reference passes: (grown network, seconds by name)."""
    import torch

    from gearlib.profiles import Profile
    from gearlib.train.stage import clean_cross_entropy, default_loss_fn, train_stage

    grown, record = grow(generator=torch.Generator().manual_seed(seed))
    _warm_up(grown, batches, config.channels_last)
    epoch = functools.partial(train_stage, epochs=1, config=config, loss_fn=clean_cross_entropy)
    seconds = dict(record.seconds)  # perturb, score, materialise
    seconds["epoch"] = _timed(functools.partial(epoch, grown, batches), device)
    factored = _factored_perturb(model, batches, record.new_neurons, seed, config.channels_last)
    seconds["perturb_factored"] = _timed(factored, device)
    seconds["widened_epoch"] = _timed(functools.partial(epoch, widened, batches), device)
    seconds["widened_score"] = _timed(functools.partial(_input_gradient_pass, widened, batches), device)
    # copies: the backbone keeps its weights for the next repeat's growth step
    seconds["backbone_epoch"] = _timed(functools.partial(epoch, copy.deepcopy(model), batches), device)
    era_epoch = functools.partial(
        train_stage, epochs=1, config=config, loss_fn=default_loss_fn(Profile().jsd_lambda)
    )
    era_batches = _era_batches(batches, seed)
    seconds["era_epoch"] = _timed(functools.partial(era_epoch, copy.deepcopy(grown), era_batches), device)
    return grown, seconds


TIMED = (
    "perturb",
    "perturb_factored",
    "score",
    "materialise",
    "epoch",
    "widened_epoch",
    "widened_score",
    "backbone_epoch",
    "era_epoch",
)


def gearnn2_growth_share(seconds: Dict[str, float], epochs: Dict[str, int]) -> float:
    """Estimated share of the growth step and the E2 grown epochs in a GEARnn-2 run of `epochs` (E1, E2, ER)
    from measured per-pass `seconds` (backbone_epoch, perturb + score, epoch, era_epoch)."""
    growth = seconds["perturb"] + seconds["score"]
    osg2 = growth + epochs["E2"] * seconds["epoch"]
    total = epochs["E1"] * seconds["backbone_epoch"] + osg2 + epochs["ER"] * seconds["era_epoch"]
    return osg2 / total


def paper_growth_share() -> float:
    """The paper's Table 6 share of OSG-2 (growth step and E2) in GEARnn-2's time (Quadro, VGG-19, CIFAR-10)."""
    from gearlib.paper import table6

    t = table6()
    minutes = t[t["method"] == "gearnn2"].set_index("stage")["T (min)"]
    return float(minutes["osg2"] / minutes.sum())


def _time_arch(arch: str, batches: List[Any], args: argparse.Namespace, device: Any) -> Dict[str, Any]:
    """Fastest of `repeats` growth steps, grown-network epochs and widened-network passes for one
    architecture."""
    import torch

    from gearlib.grow import firefly_step
    from gearlib.models import build
    from gearlib.profiles import GROWTH_RATIO
    from gearlib.train.stage import StageConfig, clean_cross_entropy, train_stage

    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    batches = [(x.to(device).contiguous(memory_format=layout), y.to(device)) for x, y in batches]
    torch.manual_seed(args.seed)
    model = build(arch, args.width, num_classes=10, input_size=args.image_size).to(device)
    config = StageConfig(progress=False, channels_last=args.channels_last)
    train_stage(model, batches, 1, config, loss_fn=clean_cross_entropy)  # warm-up; sets BN statistics
    grow = functools.partial(
        firefly_step,
        model,
        batches,
        GROWTH_RATIO["cifar10"][arch],  # Table 1
        args.new_neurons,
        loss_fn=clean_cross_entropy,
        progress=False,
        device=device,
        channels_last=args.channels_last,
    )
    grow(max_batches=1)  # warm-up of the wide kernels
    widened = _widened(arch, model, batches, args, device)
    best = dict.fromkeys(TIMED, float("inf"))
    for repeat in range(args.repeats):  # the fastest repeat is the least disturbed by other processes
        grown, seconds = _time_repeat(grow, model, widened, batches, config, args.seed + repeat, device)
        best = {key: min(value, seconds[key]) for key, value in best.items()}
    return _arch_results(arch, best, model, grown, widened, batches[0][0], args, device)


def _arch_results(
    arch: str,
    best: Dict[str, float],
    model: Any,
    grown: Any,
    widened: Any,
    x: Any,
    args: argparse.Namespace,
    device: Any,
) -> Dict[str, Any]:
    """The `<arch>_...` keys of `gearlib bench grow`: ratios to one grown epoch, raw seconds and sizes."""
    from gearlib.models import size_fraction
    from gearlib.profiles import PAPER_EPOCHS

    growth = best["perturb"] + best["score"]
    results = {
        f"{arch}_candidate_over_grown_forward_flops": _forward_flops(model, grown, x, args.new_neurons),
        f"{arch}_growth_over_epoch": growth / best["epoch"],
        f"{arch}_widened_epoch_over_epoch": best["widened_epoch"] / best["epoch"],
        f"{arch}_widened_passes_over_epoch": (best["widened_epoch"] + best["widened_score"]) / best["epoch"],
        # the growth step over the least its two passes can cost (the widened network's two passes)
        f"{arch}_growth_over_floor": growth / (best["widened_epoch"] + best["widened_score"]),
        # memory written by the candidate's forward over the floor network's (see _forward_elements)
        f"{arch}_candidate_over_widened_forward_elements": _forward_elements(
            model, widened, x, args.new_neurons
        ),
        # the pass with W apart from V, A and B (Candidate(factored=True)) over the growth step's own
        f"{arch}_perturb_factored_over_unfactored": best["perturb_factored"] / best["perturb"],
        f"{arch}_growth_s": growth,
        # estimated from the passes above at the paper's CIFAR-10 epochs; beside gearnn2_growth_share_paper
        f"{arch}_gearnn2_growth_share": gearnn2_growth_share(best, PAPER_EPOCHS["cifar10"]["gearnn2"]),
    }
    results.update({f"{arch}_{name}_s": best[name] for name in TIMED})
    results.update(
        {
            f"{arch}_mean_width_grown": sum(grown.widths) / len(grown.widths),
            f"{arch}_mean_width_widened": sum(widened.widths) / len(widened.widths),
            f"{arch}_size_before": size_fraction(model),
            f"{arch}_size_after": size_fraction(grown),
            f"{arch}_channels_last": _layout_used(model, args, device),
        }
    )
    return results


def _layout_used(model: Any, args: argparse.Namespace, device: Any) -> bool:
    """Whether growth and training ran channels-last: asked for, and safe for both the backbone and its
    candidate network (gearlib.models.layout keeps networks with thin strided 1x1 convolutions NCHW)."""
    from gearlib.grow.candidate import Candidate
    from gearlib.models import use_channels_last

    wanted = args.channels_last
    candidate = Candidate(model, args.new_neurons)
    return use_channels_last(model, device, wanted) and use_channels_last(candidate, device, wanted)


def _forward_flops(model: Any, grown: Any, x: Any, new_neurons: int) -> Optional[float]:
    """FLOPs of one candidate-network forward pass over those of one grown-network forward pass (same
    batch), or None where torch has no FlopCounterMode."""
    import torch

    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover - older torch
        return None
    from gearlib.grow.candidate import Candidate

    counts = []
    for net in (Candidate(model, new_neurons), grown):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net.eval()(x)
        counts.append(counter.get_total_flops())
    grown.train()
    return counts[0] / counts[1]


def elements_written(net: Any, x: Any) -> Optional[int]:
    """Tensor elements that every op of one no-grad eval forward pass of `net` on `x` writes (its outputs
    counted, views included), or None where torch lacks the dispatch hook."""
    import torch

    try:
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:  # pragma: no cover - older torch
        return None

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            outs = out if isinstance(out, (tuple, list)) else (out,)
            self.total += sum(t.numel() for t in outs if isinstance(t, torch.Tensor))
            return out

    was_training = net.training
    with torch.no_grad(), _Count() as counter:
        net.eval()(x)
    net.train(was_training)
    return counter.total


def _forward_elements(model: Any, widened: Any, x: Any, new_neurons: int) -> Optional[float]:
    """elements_written by the candidate network's forward (as in perturbation training) over the widened
    network's (same batch): how much more memory it writes than the floor. Well above 1, the 2c + K layout's
    traffic is a likely part of growth_over_floor on memory-bound thin networks; near or under 1 (BN folded
    into the candidate's convolutions) it is not."""
    from gearlib.grow.candidate import Candidate

    candidate, floor = elements_written(Candidate(model, new_neurons), x), elements_written(widened, x)
    return candidate / floor if candidate and floor else None


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Time growth against one epoch for each architecture; keys <arch>_growth_over_epoch and raw seconds."""
    import torch

    from gearlib.models import ARCHS

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    for arch in archs:
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if min(args.batches, args.batch_size, args.width, args.new_neurons, args.repeats) < 1:
        raise ValueError("--batches, --batch-size, --width, --new-neurons and --repeats must be >= 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    batches = _batches(args.batches, args.batch_size, args.image_size, args.seed)
    results: Dict[str, Any] = {
        "device": str(device),
        "width": args.width,
        "new_neurons": args.new_neurons,
        "batches": args.batches,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "channels_last": args.channels_last,
        "gearnn2_growth_share_paper": paper_growth_share(),
    }
    for arch in archs:
        results.update(_time_arch(arch, batches, args, device))
    return results
