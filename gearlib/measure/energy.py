"""Energy meters: the polling base class, its data types, the time-only NullMeter and the energy integrals.

Backends (nvml.py, jtop.py, rapl.py) build on this module and auto.py picks one; nothing here imports them.
E = trapezoids of power P(t) over real timestamps (counters: summed per-poll deltas); the GEARnn paper's
estimate E_paper = sum_k P_k * Delta (mean power per poll times the nominal poll period).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "HardwareUnavailable",
    "Reading",
    "EnergyReport",
    "EnergyMeter",
    "CallableMeter",
    "NullMeter",
    "trapezoid_energy",
    "paper_energy",
]

NAN = float("nan")


class HardwareUnavailable(RuntimeError):
    """A power source cannot be read here (library missing, no device, no service, no permission)."""


@dataclass
class Reading:
    """One poll of a power source.

    Attributes:
        power_w: power P_k in W at the poll (instantaneous, or the sensor's own short average).
        avg_power_w: the sensor's running mean power in W when it reports one (jtop `avg`); the paper's
            sum uses it instead of `power_w`.
        energy_j: energy in J since the previous poll, for counter sources (NVML total energy, RAPL).
    """

    power_w: Optional[float] = None
    avg_power_w: Optional[float] = None
    energy_j: Optional[float] = None


@dataclass
class EnergyReport:
    """Energy over one metered span.

    Attributes:
        energy_j: E in J (trapezoid of power over time, or summed counter deltas); NaN without a source.
        duration_s: wall-clock span in s (monotonic clock).
        mean_power_w: E / duration in W.
        n_samples: number of successful polls (including those taken at start, laps and stop).
        source: 'nvml-counter', 'nvml-power', 'jtop', 'rapl', 'none' (or 'callable' for injected sources).
        device: what was metered (GPU name, Jetson module, CPU packages).
        energy_j_paper: sum_k P_k * Delta_nominal over the regular polls (GEARnn's method).
        laps: stage name -> {'seconds': s, 'joules': J}.
        samples: (t since start in s, P in W) pairs when the meter keeps them.
        reason: why the source was chosen or why there is none.
        n_failed_polls: polls that raised (skipped; the integral holds the neighbouring samples).
    """

    energy_j: float
    duration_s: float
    mean_power_w: float
    n_samples: int
    source: str
    device: str = ""
    energy_j_paper: float = NAN
    laps: Dict[str, Dict[str, float]] = field(default_factory=dict)
    samples: Optional[List[Tuple[float, float]]] = None
    reason: str = ""
    n_failed_polls: int = 0

    @property
    def energy_kj(self) -> float:
        """E in kJ (= J / 1000), the unit of the GEARnn tables."""
        return self.energy_j / 1000.0

    @property
    def energy_kj_paper(self) -> float:
        """E_paper in kJ."""
        return self.energy_j_paper / 1000.0

    def net_energy_j(self, baseline_w: float) -> float:
        """Energy above an idle baseline: E - P_idle * duration.

        Args:
            baseline_w: idle power P_idle in W (for example the mean power of a metered idle span).

        Returns:
            Net energy in J (gross energy is the default everywhere else).
        """
        return self.energy_j - baseline_w * self.duration_s

    def as_dict(self, with_samples: bool = False) -> Dict[str, Any]:
        """The report as a plain dict (with energy_kj), for JSON or a DataFrame row."""
        out = asdict(self)
        out["energy_kj"] = self.energy_kj
        out["energy_kj_paper"] = self.energy_kj_paper
        if not with_samples:
            out.pop("samples")
        return out


def trapezoid_energy(
    times: Sequence[float],
    powers: Sequence[float],
    t_start: Optional[float] = None,
    t_end: Optional[float] = None,
) -> float:
    """Trapezoid integral E = sum_k 1/2 (P_k + P_{k+1}) (t_{k+1} - t_k).

    Args:
        times: sample timestamps t_k in s, non-decreasing.
        powers: power P_k in W at each timestamp.
        t_start: span start; the first sample is held back to it (default: first timestamp).
        t_end: span end; the last sample is held up to it (default: last timestamp).

    Returns:
        Energy in J (NaN without samples).
    """
    if len(times) != len(powers):
        raise ValueError(f"times and powers differ in length ({len(times)} vs {len(powers)}); pass pairs")
    if len(times) == 0:
        return NAN
    energy = 0.0
    if t_start is not None and times[0] > t_start:
        energy += powers[0] * (times[0] - t_start)
    for k in range(len(times) - 1):
        dt = times[k + 1] - times[k]
        if dt < 0:
            raise ValueError(f"timestamps must not decrease (t[{k + 1}] < t[{k}]); sort the samples")
        energy += 0.5 * (powers[k] + powers[k + 1]) * dt
    if t_end is not None and t_end > times[-1]:
        energy += powers[-1] * (t_end - times[-1])
    return energy


def paper_energy(mean_powers: Sequence[float], interval_s: float) -> float:
    """GEARnn's estimate E_paper = sum_k P_k * Delta (at Delta = 1 s, summed watts are joules).

    Args:
        mean_powers: mean power P_k in W reported at each poll.
        interval_s: nominal poll period Delta in s.

    Returns:
        Energy in J.
    """
    return float(sum(mean_powers)) * interval_s


class EnergyMeter:
    """Base polling meter: subclasses open a source, read it, and close it.

    A daemon thread polls every `interval` s (deadlines on a fixed grid, `time.monotonic` stamps); start()
    and stop() also take a sample, lap(name) takes one and closes a stage. With `threaded=False` nothing
    runs in the background and `poll()` drives the meter (deterministic tests with a fake `clock`).

    Subclass hooks: `_open()` (raise HardwareUnavailable when the source cannot be read), `_read(t)` ->
    Reading, `_close()`, and the `source` / `device` attributes.
    """

    source = "none"
    default_interval = 0.1

    def __init__(
        self,
        interval: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        threaded: bool = True,
        keep_samples: bool = False,
        device: str = "",
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        """Args:
        interval: poll period Delta in s (default: the backend's, 0.1 s NVML, 1.0 s jtop and RAPL).
        clock: timestamp source in s (default `time.monotonic`); inject a fake clock for tests.
        cpu_clock: this process's CPU time in s (default `time.process_time`), which each lap also reports.
        threaded: poll in a background daemon thread (False: call `poll()` yourself).
        keep_samples: keep the (t, W) samples in the report.
        device: label of what is metered.
        """
        interval = self.default_interval if interval is None else float(interval)
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval={interval!r} s must be a positive number of seconds, e.g. 0.1")
        self.interval = interval
        self.device = device
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._threaded = threaded
        self._keep_samples = keep_samples
        self._available: Optional[bool] = None
        self._reason = ""
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._running = False
        self.report: Optional[EnergyReport] = None

    # ----- backend hooks ---------------------------------------------------------------------------
    def _open(self) -> None:
        """Connect to the source and take counter baselines; raise HardwareUnavailable if impossible."""

    def _read(self, t: float) -> Reading:
        """Read the source once (t: the clock time of the read)."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release the source."""

    # ----- availability ----------------------------------------------------------------------------
    def probe(self) -> Tuple[bool, str]:
        """Open and close the source once.

        Returns:
            (available, reason): reason says what was found or why the source cannot be read.
        """
        try:
            self._open()
        except HardwareUnavailable as err:
            return False, str(err)
        with contextlib.suppress(Exception):  # closing a probe must never fail the caller
            self._close()
        return True, self._reason or f"{self.source} readable"

    @property
    def available(self) -> bool:
        """Whether the source can be read here (probed once, then cached)."""
        if self._available is None:
            self._available, self._reason = self.probe()
        return self._available

    @property
    def reason(self) -> str:
        """Why the meter is (un)available."""
        _ = self.available
        return self._reason

    def describe(self) -> str:
        """One line: the chosen source, what it meters and at which interval, or why there is none."""
        if not self.available:
            return f"none: {self.reason}"
        where = f" on {self.device}" if self.device else ""
        return f"{self.source}{where}, polled every {self.interval:g} s"

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._running

    # ----- sampling --------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._energy = 0.0
        self._paper_sum_w = 0.0
        self._n_samples = 0
        self._n_failed = 0
        self._last_t: Optional[float] = None
        self._last_p: Optional[float] = None
        self._samples: List[Tuple[float, float]] = []
        self._laps: Dict[str, Dict[str, float]] = {}

    def _sample(self, kind: str) -> float:
        """Poll once and update the integrals; returns the timestamp of the poll."""
        with self._lock:
            t = self._clock()
            try:
                reading = self._read(t)
            except Exception:  # a failed poll is skipped: metering never fails the run
                self._n_failed += 1
                return t
            if reading.energy_j is not None:
                self._add_counter(t, reading.energy_j, kind)
            elif reading.power_w is not None:
                avg = reading.power_w if reading.avg_power_w is None else reading.avg_power_w
                self._add_power(t, float(reading.power_w), float(avg), kind)
            return t

    def _add_power(self, t: float, p: float, avg: float, kind: str) -> None:
        if self._last_p is None:  # hold the first sample back to the start
            self._energy += p * (t - self._t_start)
        else:
            self._energy += 0.5 * (self._last_p + p) * (t - self._last_t)
        if kind == "poll":
            self._paper_sum_w += avg
        self._record(t, p)

    def _add_counter(self, t: float, energy_j: float, kind: str) -> None:
        if kind == "start" or self._last_t is None:  # baseline only: energy before the start is not ours
            self._last_t = t
            return
        dt = t - self._last_t
        self._energy += energy_j
        if dt > 0:
            p = energy_j / dt
        else:
            p = self._last_p if self._last_p is not None else 0.0
        if kind == "poll":
            self._paper_sum_w += p
        self._record(t, p)

    def _record(self, t: float, p: float) -> None:
        self._n_samples += 1
        self._last_t, self._last_p = t, p
        if self._keep_samples:
            self._samples.append((t - self._t_start, p))

    def _energy_until(self, t: float) -> float:
        """Energy so far, holding the last power up to t (NaN before any sample)."""
        if self._n_samples == 0:
            return NAN
        extra = self._last_p * (t - self._last_t) if t > self._last_t else 0.0
        return self._energy + extra

    def _poll_loop(self) -> None:
        t0 = time.monotonic()
        k = 1
        while not self._stop_event.wait(max(0.0, t0 + k * self.interval - time.monotonic())):
            self._sample("poll")
            k = max(k + 1, int((time.monotonic() - t0) / self.interval) + 1)  # skip missed deadlines

    # ----- public API ------------------------------------------------------------------------------
    def start(self) -> EnergyMeter:
        """Open the source, take the first sample and start polling.

        Raises:
            RuntimeError: the meter is already running.
            HardwareUnavailable: the source cannot be read (use `auto_meter` to fall back instead).
        """
        if self._running:
            raise RuntimeError("EnergyMeter.start() called twice; call stop() before starting again")
        self._open()
        self._available, self._reason = True, self._reason or f"{self.source} readable"
        self._reset()
        self.report = None
        self._t_start = self._clock()
        self._lap_t, self._lap_e = self._t_start, 0.0
        self._lap_cpu = self._cpu_clock()
        self._running = True
        self._sample("start")
        if self._threaded:
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._poll_loop, name="gearlib-energy", daemon=True)
            self._thread.start()
        return self

    def poll(self) -> None:
        """Take one regular poll now (drives a meter built with threaded=False)."""
        if not self._running:
            raise RuntimeError("EnergyMeter.poll() called before start()")
        self._sample("poll")

    def lap(self, name: str) -> Dict[str, float]:
        """Close the stage that began at the previous lap (or start) under `name` (repeats accumulate).

        Returns:
            {'seconds': s, 'joules': J, 'cpu_seconds': s} of this stage: wall time, energy, and the CPU time
            this process used in it (a CPU job that got far less CPU than wall time was paused or shared its
            core: `gearlib.measure.timer.stalled_epochs`).
        """
        if not self._running:
            raise RuntimeError("EnergyMeter.lap() called before start()")
        with self._lock:
            t = self._sample("lap")
            return self._close_stage(name, t)

    def _close_stage(self, name: str, t: float) -> Dict[str, float]:
        e, cpu = self._energy_until(t), self._cpu_clock()
        stage = {"seconds": t - self._lap_t, "joules": e - self._lap_e, "cpu_seconds": cpu - self._lap_cpu}
        total = self._laps.setdefault(name, {"seconds": 0.0, "joules": 0.0})
        total["seconds"] += stage["seconds"]
        total["joules"] += stage["joules"]
        self._lap_t, self._lap_e, self._lap_cpu = t, e, cpu
        return stage

    def stop(self, lap: Optional[str] = None) -> EnergyReport:
        """Stop polling, take the last sample and integrate.

        Args:
            lap: if given, the span since the last lap is closed as a stage with this name.

        Returns:
            The EnergyReport (also kept as `self.report`).
        """
        if not self._running:
            raise RuntimeError("EnergyMeter.stop() called while not running; call start() first")
        try:
            if self._thread is not None:
                self._stop_event.set()
                self._thread.join()
                self._thread = None
            with self._lock:
                t_end = self._sample("stop")
                if lap is not None:
                    self._close_stage(lap, t_end)
                energy = self._energy_until(t_end)
        finally:
            self._running = False
            with contextlib.suppress(Exception):
                self._close()
        duration = t_end - self._t_start
        no_data = self._n_samples == 0
        self.report = EnergyReport(
            energy_j=energy,
            duration_s=duration,
            mean_power_w=energy / duration if duration > 0 else NAN,
            n_samples=self._n_samples,
            source=self.source,
            device=self.device,
            energy_j_paper=NAN if no_data else paper_energy([self._paper_sum_w], self.interval),
            laps={k: dict(v) for k, v in self._laps.items()},
            samples=list(self._samples) if self._keep_samples else None,
            reason=self._reason,
            n_failed_polls=self._n_failed,
        )
        return self.report

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self._running:
            self.stop()


class CallableMeter(EnergyMeter):
    """A meter over Python callables: a fake or custom power source (tests, external sensors).

    Give `power_fn(t) -> W` (power at clock time t) or `energy_fn(t) -> J` (a cumulative counter).
    """

    def __init__(
        self,
        power_fn: Optional[Callable[[float], float]] = None,
        energy_fn: Optional[Callable[[float], float]] = None,
        interval: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        threaded: bool = True,
        keep_samples: bool = False,
        device: str = "callable",
        source: str = "callable",
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        """Args:
        power_fn: t (s) -> power in W.
        energy_fn: t (s) -> cumulative energy in J (exclusive with power_fn).
        interval, clock, threaded, keep_samples, device, cpu_clock: see EnergyMeter.
        source: label written to the report.
        """
        if (power_fn is None) == (energy_fn is None):
            raise ValueError("CallableMeter needs exactly one of power_fn (W) or energy_fn (cumulative J)")
        super().__init__(
            interval,
            clock=clock,
            threaded=threaded,
            keep_samples=keep_samples,
            device=device,
            cpu_clock=cpu_clock,
        )
        self.source = source
        self._power_fn = power_fn
        self._energy_fn = energy_fn
        self._last_counter: Optional[float] = None

    def _open(self) -> None:
        self._last_counter = None

    def _read(self, t: float) -> Reading:
        if self._power_fn is not None:
            return Reading(power_w=float(self._power_fn(t)))
        value = float(self._energy_fn(t))
        delta = 0.0 if self._last_counter is None else value - self._last_counter
        self._last_counter = value
        return Reading(energy_j=delta)


class NullMeter(EnergyMeter):
    """No power source: times the span only (energy NaN, source 'none', available False)."""

    source = "none"

    def __init__(
        self,
        reason: str = "no power source selected: time only",
        clock: Callable[[], float] = time.monotonic,
        device: str = "",
    ) -> None:
        """Args:
        reason: why there is no energy reading (shown by describe() and in the report).
        clock: timestamp source in s.
        device: label of what would have been metered.
        """
        super().__init__(1.0, clock=clock, threaded=False, device=device)
        self._available, self._reason = False, reason

    def probe(self) -> Tuple[bool, str]:
        return False, self._reason

    def start(self) -> EnergyMeter:
        reason = self._reason
        super().start()
        self._available, self._reason = False, reason
        return self

    def _read(self, t: float) -> Reading:
        return Reading()
