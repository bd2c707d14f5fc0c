"""Wall-clock timing: a perf_counter stopwatch with named laps and optional CUDA synchronisation.

Use it for training time per stage (OSG-1, OSG-2, ERA) or any span that must wait for queued GPU work.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional


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
