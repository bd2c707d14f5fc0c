"""Per-sample inference latency: timed single-sample forwards with a synchronised clock, in windows.

Each window has its own warm-up; the headline is the median of the windows' medians, with their spread, so a
stall that covers one window (another job on the CPU) cannot become the reported latency.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
from torch import nn

from gearlib.measure.timer import cuda_sync_fn


@dataclass
class LatencyReport:
    """Inference latency of one model on one device.

    Attributes:
        median_ms: median over windows of each window's median per-forward time in ms at batch 1 (the
            headline number).
        window_medians_ms: each window's median in ms; spread_ms: their max - min.
        iqr_ms: interquartile range (q75 - q25) in ms.
        mean_ms: mean in ms.
        iters: timed forwards in all windows; warmup: untimed forwards before each window.
        batch_ms_per_sample: median batched time / batch size in ms (None unless batch_size > 1).
        batch_size: the batch size of that measurement.
        device: where it ran; threads: torch CPU threads during the run.
        times_ms: the individual timings in ms.
    """

    median_ms: float
    window_medians_ms: List[float]
    spread_ms: float
    iqr_ms: float
    mean_ms: float
    iters: int
    warmup: int
    batch_ms_per_sample: Optional[float]
    batch_size: Optional[int]
    device: str
    threads: int
    times_ms: List[float]

    def as_dict(self, with_times: bool = False) -> Dict[str, Any]:
        """The report as a plain dict (without the individual timings unless asked)."""
        out = asdict(self)
        if not with_times:
            out.pop("times_ms")
        return out


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of a non-empty sequence (numpy's default method)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _time_forwards(
    model: nn.Module,
    x: torch.Tensor,
    warmup: int,
    iters: int,
    sync: Optional[Callable[[], None]],
    clock: Callable[[], float],
) -> List[float]:
    """Seconds per forward for `iters` timed calls after `warmup` untimed ones (sync before each clock read)."""
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(iters):
        if sync is not None:
            sync()
        t0 = clock()
        model(x)
        if sync is not None:
            sync()
        times.append(clock() - t0)
    return times


def _check_arguments(input_shape: Sequence[int], warmup: int, iters: int, windows: int) -> None:
    """ValueError naming the bad value when the counts or the input shape cannot be timed."""
    if warmup < 0 or iters < 1:
        raise ValueError(f"warmup={warmup} must be >= 0 and iters={iters} >= 1 (defaults: 20 and 200)")
    if windows < 1:
        raise ValueError(f"windows={windows} must be >= 1 (default 5)")
    if len(input_shape) < 2:
        raise ValueError(
            f"input_shape={tuple(input_shape)} must include the batch dimension, e.g. (1, 3, 32, 32)"
        )


def _resolve_device(model: nn.Module, device: Any) -> torch.device:
    """`device` as a torch.device; None means where the model's first parameter lives (CPU without any)."""
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    return torch.device(device)


@contextlib.contextmanager
def _eval_on(model: nn.Module, device: torch.device, threads: Optional[int]) -> Iterator[None]:
    """Run the body with the model on `device` in eval mode (and `threads` CPU threads); restore both after."""
    old_threads = torch.get_num_threads()
    was_training = model.training
    model.to(device).eval()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        yield
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)


def _batched_ms_per_sample(
    model: nn.Module,
    input_shape: Sequence[int],
    device: torch.device,
    batch_size: int,
    warmup: int,
    iters: int,
    sync: Optional[Callable[[], None]],
    clock: Callable[[], float],
    generator: Optional[torch.Generator],
) -> float:
    """Median time of a batch of `batch_size` divided by the batch size, in ms (fewer, shorter runs)."""
    xb = torch.rand((batch_size, *input_shape[1:]), generator=generator).to(device)
    batch_times = _time_forwards(model, xb, max(1, warmup // 4), max(5, iters // 10), sync, clock)
    return statistics.median(batch_times) * 1000.0 / batch_size


def _summarise(
    windows: Sequence[Sequence[float]],
    warmup: int,
    batch_ms: Optional[float],
    batch_size: Optional[int],
    device: torch.device,
    threads: int,
) -> LatencyReport:
    """The LatencyReport of per-forward times in s, grouped by window: median of medians, spread, IQR, mean."""
    times_ms = [t * 1000.0 for window in windows for t in window]
    medians = [statistics.median(window) * 1000.0 for window in windows]
    return LatencyReport(
        median_ms=statistics.median(medians),
        window_medians_ms=medians,
        spread_ms=max(medians) - min(medians),
        iqr_ms=_quantile(times_ms, 0.75) - _quantile(times_ms, 0.25),
        mean_ms=statistics.fmean(times_ms),
        iters=len(times_ms),
        warmup=warmup,
        batch_ms_per_sample=batch_ms,
        batch_size=batch_size if batch_ms is not None else None,
        device=str(device),
        threads=threads,
        times_ms=times_ms,
    )


def inference_latency(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 32, 32),
    device: Any = None,
    warmup: int = 20,
    iters: int = 200,
    threads: Optional[int] = None,
    sync: Optional[Callable[[], None]] = None,
    clock: Callable[[], float] = time.perf_counter,
    batch_size: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    windows: int = 1,
    pause_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> LatencyReport:
    """Per-sample wall-clock inference time (eval mode, inference mode, input pre-allocated on the device).

    The model is moved to `device` and put in eval mode for the run; its train/eval mode is restored.

    Args:
        model: the network.
        input_shape: one input (1, C, H, W); host-to-device copy is excluded.
        device: where to run (default: the model's device).
        warmup: untimed forwards first (lazy init, cuDNN autotune, clock ramp); keep it >= 20.
        iters: timed forwards per window (keep it >= 200 in all for a stable median).
        threads: torch CPU threads during the run (restored afterwards); reported either way.
        sync: hook called before every clock read (default: torch.cuda.synchronize on CUDA, none on CPU).
        clock: time source in s (default time.perf_counter); injectable for tests.
        batch_size: if > 1, also time batches of this size and report time / batch_size.
        generator: seeds the random input.
        windows: timed windows, each after `warmup` untimed forwards; the latency is their medians' median.
        pause_s: idle seconds before each window after the first (spreads the windows out in time).
        sleep: how to idle (default time.sleep); injectable for tests.

    Returns:
        LatencyReport with median, IQR and mean in ms.
    """
    _check_arguments(input_shape, warmup, iters, windows)
    device = _resolve_device(model, device)
    if sync is None:
        sync = cuda_sync_fn(device)
    batch_ms = None
    with _eval_on(model, device, threads):
        x = torch.rand(tuple(input_shape), generator=generator).to(device)
        with torch.inference_mode():
            times = []
            for index in range(windows):
                if index and pause_s > 0:
                    sleep(pause_s)
                times.append(_time_forwards(model, x, warmup, iters, sync, clock))
            if batch_size is not None and batch_size > 1:
                batch_ms = _batched_ms_per_sample(
                    model, input_shape, device, batch_size, warmup, iters, sync, clock, generator
                )
        used_threads = torch.get_num_threads()
    return _summarise(times, warmup, batch_ms, batch_size, device, used_threads)
