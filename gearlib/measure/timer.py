"""Wall-clock timing: a perf_counter stopwatch with named laps and optional CUDA synchronisation, and a
check that flags epochs whose wall time does not measure the work (the process was paused or shared its core).
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

# An epoch on a CPU device that got less than this share of one core over its wall time was paused or
# shared its core with another job (a training process keeps at least one core busy).
STALL_CPU_SHARE = 0.5
# An epoch that took more than this many times the median epoch of its stage (epochs of one stage do the
# same work) was slowed by something outside the run.
STALL_MEDIAN_RATIO = 2.0
# Shorter spans are not judged: start-up and scheduling noise dominate them.
STALL_MIN_SECONDS = 5.0


def cuda_sync_fn(device: Any = None) -> Optional[Callable[[], None]]:
    """A function that waits for queued work on a CUDA device, or None for CPU devices.

    Args:
        device: a torch.device, a string such as "cuda:0", or None (no synchronisation).

    Returns:
        `torch.cuda.synchronize` bound to the device, or None when the device is not CUDA.
    """
    if device is None:
        return None
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(dev)


class Timer:
    """Stopwatch over `time.perf_counter` with named laps.

    `lap(name)` closes the stage that began at the previous lap (or at start) and adds its seconds to
    `laps[name]` (repeated names accumulate). With a CUDA device, queued GPU work is waited for before every
    clock read, so a stage is charged for the kernels it launched.

    Example:
        with Timer(device="cuda") as t:
            train_epoch(); t.lap("train")
            evaluate(); t.lap("eval")
        print(t.elapsed, t.laps)
    """

    def __init__(
        self,
        device: Any = None,
        sync: Optional[Callable[[], None]] = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Args:
        device: CUDA device to synchronise before each clock read (None or CPU: no sync).
        sync: explicit synchronisation hook (overrides `device`); injectable for tests.
        clock: time source in seconds (default `time.perf_counter`).
        """
        self._sync = sync if sync is not None else cuda_sync_fn(device)
        self._clock = clock
        self._t0: Optional[float] = None
        self._t_last: Optional[float] = None
        self._t_end: Optional[float] = None
        self.laps: Dict[str, float] = {}

    def _now(self) -> float:
        if self._sync is not None:
            self._sync()
        return self._clock()

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._t0 is not None and self._t_end is None

    def start(self) -> Timer:
        """Start (or restart) the stopwatch and clear the laps."""
        self._t0 = self._now()
        self._t_last = self._t0
        self._t_end = None
        self.laps = {}
        return self

    def lap(self, name: str) -> float:
        """Close the current stage under `name`.

        Returns:
            Seconds since the previous lap (or start).
        """
        if not self.running:
            raise RuntimeError("Timer.lap() called before start(); call start() or use `with Timer():`")
        now = self._now()
        seconds = now - self._t_last
        self.laps[name] = self.laps.get(name, 0.0) + seconds
        self._t_last = now
        return seconds

    def stop(self) -> float:
        """Stop the stopwatch.

        Returns:
            Total elapsed seconds since start().
        """
        if not self.running:
            raise RuntimeError("Timer.stop() called while the timer is not running; call start() first")
        self._t_end = self._now()
        return self._t_end - self._t0

    @property
    def elapsed(self) -> float:
        """Seconds since start (up to stop() once stopped); 0.0 before start."""
        if self._t0 is None:
            return 0.0
        end = self._t_end if self._t_end is not None else self._now()
        return end - self._t0

    def __enter__(self) -> Timer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.running:
            self.stop()


def _number(value: Any) -> Optional[float]:
    """A finite float, or None for a missing value (an older log's empty cell, NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def stalled_epochs(log: Sequence[Mapping[str, Any]], cpu_device: bool) -> List[Dict[str, Any]]:
    """The entries of an epoch log whose wall time does not measure the run's own work, one record each.

    Two signs, either enough: on a CPU device, the process used under STALL_CPU_SHARE of a core over the
    entry's wall time (its `cpu_seconds`; logs written before that column existed lack it); or a training
    epoch took over STALL_MEDIAN_RATIO times the median epoch of its stage (stages of three epochs or more).
    Entries shorter than STALL_MIN_SECONDS are not judged. A run with any such entry has a training time
    (and energy) that is not comparable with other runs'; its accuracy is unaffected.

    Args:
        log: epoch-log rows with "stage", "seconds" and optionally "cpu_seconds", "epoch", "growth".
        cpu_device: whether the run trained on a CPU (the CPU-time sign means nothing on a GPU).

    Returns:
        [{"stage", "epoch", "seconds", "reason"}, ...] in log order ("epoch" is "growth" for a growth step).
    """
    per_stage: Dict[str, List[float]] = {}
    for entry in log:
        seconds = _number(entry.get("seconds"))
        if seconds is not None and not _number(entry.get("growth")):
            per_stage.setdefault(str(entry.get("stage")), []).append(seconds)
    stalls = []
    for entry in log:
        seconds = _number(entry.get("seconds"))
        if seconds is None or seconds < STALL_MIN_SECONDS:
            continue
        growth = bool(_number(entry.get("growth")))
        reasons = []
        cpu = _number(entry.get("cpu_seconds"))
        if cpu_device and cpu is not None and cpu < STALL_CPU_SHARE * seconds:
            reasons.append(f"used {cpu / seconds:.2f} of a CPU core: paused or sharing its core")
        epochs = per_stage.get(str(entry.get("stage")), [])
        if not growth and len(epochs) >= 3:
            median = statistics.median(epochs)
            if seconds > STALL_MEDIAN_RATIO * median:
                reasons.append(f"{seconds / median:.1f}x its stage's median epoch ({median:.0f} s)")
        if reasons:
            stalls.append(
                {
                    "stage": entry.get("stage"), "epoch": "growth" if growth else entry.get("epoch"),
                    "seconds": seconds, "reason": "; ".join(reasons),
                }
            )  # fmt: skip
    return stalls


def stall_note(stalls: Sequence[Mapping[str, Any]]) -> str:
    """One line naming a run's stalled entries ('' for none), e.g. for a table's note column."""
    if not stalls:
        return ""
    parts = [f"{s['stage']} {'growth step' if s['epoch'] == 'growth' else 'epoch ' + str(s['epoch'])} "
             f"{s['seconds']:.0f} s ({s['reason']})" for s in stalls]  # fmt: skip
    return "time not comparable: " + ", ".join(parts)
