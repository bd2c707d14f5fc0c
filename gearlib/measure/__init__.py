"""Measurement: wall-clock timers, energy meters (NVML, jtop, RAPL, none), latency, size and hardware info.

Importing this package never imports pynvml or jtop; the meters import them inside start().
"""

from __future__ import annotations

from gearlib.measure.auto import Backend, auto_meter
from gearlib.measure.energy import (
    CallableMeter,
    EnergyMeter,
    EnergyReport,
    HardwareUnavailable,
    NullMeter,
    Reading,
    paper_energy,
    trapezoid_energy,
)
from gearlib.measure.hardware import hardware_info
from gearlib.measure.jtop import JtopMeter, parse_jtop_power
from gearlib.measure.latency import LatencyReport, inference_latency
from gearlib.measure.nvml import NvmlMeter
from gearlib.measure.params import count_params
from gearlib.measure.rapl import RaplMeter, find_rapl_zones, rapl_delta_uj
from gearlib.measure.timer import Timer, cuda_sync_fn, stall_note, stalled_epochs

__all__ = [
    "Backend",
    "CallableMeter",
    "EnergyMeter",
    "EnergyReport",
    "HardwareUnavailable",
    "JtopMeter",
    "LatencyReport",
    "NullMeter",
    "NvmlMeter",
    "RaplMeter",
    "Reading",
    "Timer",
    "auto_meter",
    "count_params",
    "cuda_sync_fn",
    "find_rapl_zones",
    "hardware_info",
    "inference_latency",
    "paper_energy",
    "parse_jtop_power",
    "rapl_delta_uj",
    "stall_note",
    "stalled_epochs",
    "trapezoid_energy",
]
