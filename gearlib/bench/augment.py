"""`gearlib bench augment`: batched AugMix/ERA images per second against torchvision's per-sample AugMix.

Both sides produce every augmented view one JSD training step needs; also the share of a step spent augmenting.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, Tuple

# torch and gearlib's torch-side modules are imported inside the functions: `gearlib.bench` imports this
# module to register its options whenever the `gearlib` parser is built, and that must not load torch.

TARGET_SPEEDUP = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gearlib bench augment` (`--json` is added by the framework)."""
    parser.add_argument("--n-images", type=int, default=2048, help="training samples per timed pass")
    parser.add_argument("--batch-size", type=int, default=128, help="samples per batch (B)")
    parser.add_argument("--severity", type=float, default=3.0, help="AugMix severity S for both sides")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0 = available cores)")
    parser.add_argument("--device", default="cpu", help="device for the batched path: cpu, cuda or auto")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of the batched path (median)")
    parser.add_argument("--smoke-width", type=int, default=16, help="c_0 of the thin VGG-19 smoke model")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for the batched path (0 = default)"
    )
    parser.add_argument("--seed", type=int, default=0)


class _PerSampleViews:
    """Dataset giving `calls` torchvision AugMix views of each uint8 CHW image (a reference data pipeline)."""

    def __init__(self, images: Any, transform: Any, calls: int) -> None:
        self.images, self.transform, self.calls = images, transform, calls

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Any:
        import torch

        img = self.images[i]
        return torch.stack([self.transform(img) for _ in range(self.calls)]), 0


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _load_average() -> float:
    """1-minute load average (-1 where unknown): other processes on the cores skew every ratio here."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return -1.0


def _images(n: int, seed: int) -> Any:
    """uint8 [n,3,32,32] images from gearlib's synthetic set."""
    from gearlib.data import synthetic_tensors

    return synthetic_tensors(n, seed=seed)[0]


def _time_batched(images: Any, fn: Any, batch_size: int, repeats: int, device: Any, seed: int) -> float:
    """Median seconds to turn all images (uint8 on `device`) into the concatenated J*B float views of each step."""
    import torch

    data = images.to(device)
    g = torch.Generator().manual_seed(seed)
    fn(data[:batch_size].float().div(255.0), generator=g)  # warm-up
    times: List[float] = []
    for _ in range(max(1, repeats)):
        if data.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, data.shape[0], batch_size):
            views = torch.cat(fn(data[i : i + batch_size].float().div(255.0), generator=g))
        if data.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        del views
    return sorted(times)[len(times) // 2]


def _time_batched_threads(
    images: Any, fn: Any, batch_size: int, repeats: int, device: Any, seed: int
) -> Tuple[float, int, Dict[int, float]]:
    """`_time_batched` at torch's thread count and at one thread (CPU): (fastest time, its threads, all times).

    One thread wins when other processes keep the cores busy, since it never waits at a thread barrier.
    """
    import torch

    threads = torch.get_num_threads()
    counts = [threads] if device.type != "cpu" or threads == 1 else [threads, 1]
    times = {}
    try:
        for k in counts:
            torch.set_num_threads(k)
            times[k] = _time_batched(images, fn, batch_size, repeats, device, seed)
    finally:
        torch.set_num_threads(threads)
    best = min(times, key=times.__getitem__)
    return times[best], best, times


def _time_torchvision(images: Any, augment: Any, batch_size: int, workers: int) -> float:
    """Seconds for one epoch of a DataLoader that makes, per sample, the augmented views of `augment` (a
    gearlib `Augment`) with torchvision's AugMix at the same severity, width, depth and alpha.

    Workers are persistent and the second epoch is timed, so process start-up is not counted.
    """
    import torch
    from torchvision.transforms import v2

    knobs = augment.knobs
    transform = v2.AugMix(
        severity=int(round(knobs["severity"])),
        mixture_width=knobs["width"],
        chain_depth=knobs["depth"],
        alpha=knobs["alpha"],
        all_ops=False,
    )
    loader = torch.utils.data.DataLoader(
        _PerSampleViews(images, transform, augment.num_views - 1),
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    for _ in loader:  # warm-up epoch (starts the workers)
        pass
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def _smoke_model(device: Any, width: int) -> Tuple[Any, str]:
    """A thin VGG-19 (gearlib.models, every width c_0 = `width`) and its description."""
    from gearlib.models import build

    return build("vgg19", widths=width).to(device), f"vgg19 c0={width}"


def _time_step(
    views: int, batch_size: int, device: Any, seed: int, width: int, steps: int = 3
) -> Tuple[float, str]:
    """Median seconds of one SGD step (forward, JSD loss, backward, update) on J*B images, and the model."""
    import torch

    from gearlib.augment import task_loss

    torch.manual_seed(seed)
    model, name = _smoke_model(device, width)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(views * batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    times: List[float] = []
    for _ in range(steps + 1):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        task_loss(model(x), y).backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2], name


def _device(name: str) -> Any:
    """The torch device for `--device` (auto: CUDA where there is one)."""
    import torch

    resolved = name if name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if resolved.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device here; use --device cpu")
    return torch.device(resolved)


def _mixing(augment: Any) -> str:
    """An augmentation's (w,d,J) and its augmented views per sample, as the definition text states them."""
    k = augment.knobs
    return f"(w,d,J)=({k['width']},{k['depth']},{k['views']}) -> {augment.num_views - 1} views/sample"


def _definition(era: Any, augmix: Any, workers: int, batch_size: int, device: Any, threads: int) -> str:
    """What the numbers of `gearlib bench augment` measure, in one paragraph."""
    return (
        f"images/s = training samples per second with every augmented view one JSD step needs: ERA "
        f"{_mixing(era)}, AugMix {_mixing(augmix)}. torchvision: v2.AugMix(all_ops=False, same "
        f"severity/width/depth/alpha) called J-1 times per uint8 CHW sample in a DataLoader ({workers} "
        f"workers, batch {batch_size}, collated, 2nd epoch timed); ours: one batched call per uint8->float "
        f"batch of {batch_size} on {device.type}, views concatenated, at the faster of {threads} and 1 torch "
        f"threads (era_threads). era_speedup_vs_torchvision compares equal knobs and views; "
        f"era_speedup_vs_torchvision_augmix compares an ERA step's data with a reference AugMix step's. "
        f"augment_share_of_step: ERA time per batch / (that + one SGD step of the smoke model on J*B "
        f"images). Compare runs only at a low load average: busy cores hurt the multi-threaded batched path more "
        f"than worker processes."
    )


def _rates(n: int, seconds: Dict[str, float], era_all: Dict[int, float]) -> Dict[str, Any]:
    """Images per second of each side and the speed-ups between them."""
    rates: Dict[str, Any] = {f"{name}_images_per_s": n / t for name, t in seconds.items()}
    for k, t in era_all.items():
        rates[f"era_images_per_s_{k}_threads"] = n / t
    speedup = rates["era_images_per_s"] / rates["torchvision_era_images_per_s"]
    tv_augmix = rates["torchvision_augmix_images_per_s"]
    rates["era_speedup_vs_torchvision"] = speedup
    rates["augmix_speedup_vs_torchvision"] = rates["augmix_images_per_s"] / tv_augmix
    rates["era_speedup_vs_torchvision_augmix"] = rates["era_images_per_s"] / tv_augmix
    rates["meets_5x_target"] = bool(speedup >= TARGET_SPEEDUP)
    return rates


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Measure batched ERA/AugMix and torchvision's per-sample AugMix in one run; return the ratios."""
    import torch

    from gearlib.augment import make_augment

    if args.n_images < args.batch_size or args.batch_size < 1:
        raise ValueError(f"need 1 <= --batch-size <= --n-images, got {args.batch_size} and {args.n_images}")
    device = _device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = args.workers or _available_cores()
    load_before = _load_average()
    n, b = args.n_images, args.batch_size
    images = _images(n, args.seed)

    era = make_augment("era", severity=args.severity)  # ERA_DEFAULTS: 3 augmented views
    augmix = make_augment("augmix", severity=args.severity)  # AUGMIX_DEFAULTS: 2 augmented views
    threads = torch.get_num_threads()
    t_era, era_threads, era_all = _time_batched_threads(images, era, b, args.repeats, device, args.seed)
    t_augmix, augmix_threads, _ = _time_batched_threads(images, augmix, b, args.repeats, device, args.seed)
    seconds = {
        "era": t_era,
        "augmix": t_augmix,
        "torchvision_era": _time_torchvision(images, era, b, workers),
        "torchvision_augmix": _time_torchvision(images, augmix, b, workers),
    }
    t_step, smoke_model = _time_step(era.num_views, b, device, args.seed, args.smoke_width)
    t_aug_batch = t_era * b / n
    return {
        **_rates(n, seconds, era_all),
        "augment_share_of_step": t_aug_batch / (t_aug_batch + t_step),
        "era_batch_ms": 1e3 * t_aug_batch,
        "smoke_step_ms": 1e3 * t_step,
        "smoke_model": smoke_model,
        "definition": _definition(era, augmix, workers, b, device, threads),
        "load_average_before_after": [load_before, _load_average()],
        "device": str(device),
        "cpu_cores": _available_cores(),
        "torch_threads": threads,
        "era_threads": era_threads,
        "augmix_threads": augmix_threads,
        "workers": workers,
        "n_images": n,
        "batch_size": b,
    }
