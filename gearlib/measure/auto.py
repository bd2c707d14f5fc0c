"""Choosing the energy meter for this machine from an ordered table of backends.

Rows are tried in order (jtop on a Jetson, NVML on CUDA, RAPL on Linux CPUs); time only when none is readable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from gearlib.measure.energy import EnergyMeter, HardwareUnavailable, NullMeter
from gearlib.measure.jtop import JtopMeter
from gearlib.measure.nvml import NvmlMeter
from gearlib.measure.rapl import RaplMeter

__all__ = ["Backend", "BACKENDS", "ALIASES", "auto_meter", "backend_names"]

MeterFactory = Callable[[Any, Optional[float]], EnergyMeter]
SkipRule = Callable[[Any], Optional[str]]


def _never_skip(device: Any) -> Optional[str]:
    """Skip rule of a backend that applies to every device."""
    return None


def _device_type(device: Any) -> Optional[str]:
    """'cuda', 'cpu', ... of a device spec (str, torch.device or None)."""
    if device is None:
        return None
    return str(getattr(device, "type", device)).split(":")[0]


def skip_unless_cuda(device: Any) -> Optional[str]:
    """NVML meters NVIDIA GPUs: skip it when the compute device is explicitly not CUDA."""
    if _device_type(device) in (None, "cuda"):
        return None
    return f"NVML skipped for device {device!s}"


def skip_unless_linux(device: Any) -> Optional[str]:
    """RAPL is read from the Linux powercap sysfs: skip it on other systems."""
    if sys.platform.startswith("linux"):
        return None
    return f"RAPL skipped on {sys.platform} (Linux powercap only)"


@dataclass(frozen=True)
class Backend:
    """One row of the auto-detect table.

    Attributes:
        name: the key `prefer=` takes ('jtop', 'nvml', 'rapl').
        build: (device, interval) -> a meter of this backend (probed with `meter.available`).
        skip: device -> why this row does not apply to the device, or None when it does (auto-detect only;
            an explicit `prefer` ignores it).
    """

    name: str
    build: MeterFactory
    skip: SkipRule = _never_skip


def _build_jtop(device: Any, interval: Optional[float]) -> EnergyMeter:
    return JtopMeter(interval=interval)


def _build_nvml(device: Any, interval: Optional[float]) -> EnergyMeter:
    return NvmlMeter(device=device, interval=interval)


def _build_rapl(device: Any, interval: Optional[float]) -> EnergyMeter:
    return RaplMeter(interval=interval)


BACKENDS: Tuple[Backend, ...] = (
    Backend("jtop", _build_jtop),
    Backend("nvml", _build_nvml, skip_unless_cuda),
    Backend("rapl", _build_rapl, skip_unless_linux),
)
"""The auto-detect order: a Jetson's whole-module rail first, then the GPU board, then the CPU packages."""

ALIASES = {"null": "none", "time": "none", "auto": None, "nvidia": "nvml", "jetson": "jtop", "cpu": "rapl"}


def backend_names(backends: Sequence[Backend] = BACKENDS) -> Tuple[str, ...]:
    """The names `prefer=` accepts for a table: its rows in order, then 'none' (time only)."""
    return tuple(row.name for row in backends) + ("none",)


def _preferred(prefer: Optional[str], backends: Sequence[Backend]) -> Optional[str]:
    """`prefer` lower-cased and de-aliased ('auto' -> None); ValueError naming the choices when unknown."""
    if prefer is None:
        return None
    key = prefer.lower().strip()
    key = ALIASES.get(key, key)
    names = backend_names(backends)
    if key is not None and key not in names:
        raise ValueError(f"prefer={prefer!r} is not an energy backend; use one of {names} or None")
    return key


def _explicit(row: Backend, device: Any, interval: Optional[float], strict: bool) -> EnergyMeter:
    """The meter of a requested backend, or time only (HardwareUnavailable when strict) if unreadable."""
    meter = row.build(device, interval)
    if meter.available:
        return meter
    if strict:
        raise HardwareUnavailable(f"{row.name} requested but unavailable: {meter.reason}")
    return NullMeter(reason=f"{row.name} requested but unavailable ({meter.reason}): time only")


def _detect(device: Any, interval: Optional[float], backends: Sequence[Backend]) -> EnergyMeter:
    """The first readable row of the table, else a NullMeter whose reason lists why each row failed."""
    reasons: List[str] = []
    for row in backends:
        skipped = row.skip(device)
        if skipped is not None:
            reasons.append(skipped)
            continue
        meter = row.build(device, interval)
        if meter.available:
            return meter
        reasons.append(meter.reason)
    found = "; ".join(reasons) if reasons else "no energy backend in the table"
    return NullMeter(reason=f"{found}: time only")


def auto_meter(
    device: Any = None,
    interval: Optional[float] = None,
    prefer: Optional[str] = None,
    strict: bool = False,
    backends: Optional[Sequence[Backend]] = None,
    all_gpus: bool = False,
) -> EnergyMeter:
    """Pick the energy meter for this machine.

    Auto-detect tries the rows of `backends` in order (default BACKENDS: jtop, NVML unless `device` is
    explicitly not CUDA, RAPL on Linux) and falls back to a NullMeter whose reason lists why each failed.
    An explicit `prefer` overrides the order.

    Args:
        device: the compute device ("cuda:1", torch.device, "cpu" or None).
        interval: poll period in s (default: the backend's).
        prefer: a row name ('jtop', 'nvml', 'rapl') or 'none' (aliases 'null', 'auto', ...); None = detect.
        strict: with `prefer`, raise HardwareUnavailable instead of falling back to time only.
        backends: the table to choose from (default BACKENDS, read at call time).
        all_gpus: on a CUDA device, meter the sum over every GPU of the node through NVML when it can be
            read (a distributed run); otherwise choose as without it.

    Returns:
        An EnergyMeter; `meter.source`, `meter.reason` and `meter.describe()` say what was chosen and why.
    """
    table = BACKENDS if backends is None else tuple(backends)
    key = _preferred(prefer, table)
    if key == "none":
        return NullMeter(reason="time only requested (prefer='none')")
    if all_gpus and _device_type(device) == "cuda" and key in (None, "nvml"):
        node = NvmlMeter(interval=interval, all_devices=True)
        if node.available:
            return node
    if key is None:
        return _detect(device, interval, table)
    row = next(row for row in table if row.name == key)
    return _explicit(row, device, interval, strict)
