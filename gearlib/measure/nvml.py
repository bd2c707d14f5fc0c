"""NVIDIA GPU board energy through NVML (package nvidia-ml-py, module `pynvml`, imported lazily).

Prefers the total-energy counter (mJ since driver load, Volta and newer); falls back to polling power (mW).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, List, Optional, Tuple

from gearlib.measure.energy import EnergyMeter, HardwareUnavailable, Reading


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cuda_index(device: Any) -> Optional[int]:
    """CUDA ordinal of a device spec ('cuda:1', torch.device, int), None when not given."""
    if device is None:
        return None
    if isinstance(device, int):
        return device
    if isinstance(device, str):  # str has an .index method: parse 'cuda:N' instead of reading attributes
        kind, _, number = device.partition(":")
        index: Optional[int] = int(number) if number else None
    else:
        kind, index = str(getattr(device, "type", device)), getattr(device, "index", None)
    if kind != "cuda":
        raise ValueError(f"device={device!r} is not a CUDA device; NVML meters NVIDIA GPUs (use 'cuda:N')")
    return 0 if index is None else int(index)


def _torch_pci_bus_id(index: int) -> Optional[str]:
    """PCI bus id of CUDA device `index` as NVML spells it, when torch can tell (avoids ordering mix-ups)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(index)
        domain, bus, dev = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except Exception:
        return None
    return f"{domain:08X}:{bus:02X}:{dev:02X}.0"


def _nvml_handle(nvml: Any, device: Any) -> Tuple[Any, str]:
    """NVML handle of the metered GPU and a label; maps CUDA ordinals through PCI ids or CUDA_VISIBLE_DEVICES."""
    index = _cuda_index(device)
    if index is not None:
        bus_id = _torch_pci_bus_id(index)
        if bus_id is not None:
            try:
                return nvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode()), f"cuda:{index}"
            except Exception:
                pass
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    slot = 0 if index is None else index
    if slot < len(visible):
        entry = visible[slot]
        if entry.isdigit():
            return nvml.nvmlDeviceGetHandleByIndex(int(entry)), f"nvml:{entry}"
        return nvml.nvmlDeviceGetHandleByUUID(entry), entry
    return nvml.nvmlDeviceGetHandleByIndex(slot), f"nvml:{slot}"


class NvmlMeter(EnergyMeter):
    """GPU board energy (host excluded): source 'nvml-counter' (mJ counter) or 'nvml-power' (mW polls)."""

    default_interval = 0.1

    def __init__(
        self,
        device: Any = None,
        interval: Optional[float] = None,
        use_counter: bool = True,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        threaded: bool = True,
        keep_samples: bool = False,
        all_devices: bool = False,
    ) -> None:
        """Args:
        device: CUDA device to meter ('cuda:N', torch.device, int) or None for the first visible GPU.
        all_devices: meter the sum over every GPU NVML sees on the node (a distributed run's ranks), and
            say so in describe(); `device` is then ignored.
        interval: poll period in s (default 0.1).
        use_counter: prefer nvmlDeviceGetTotalEnergyConsumption (mJ) over power polling (mW).
        nvml: a pynvml-like module to use instead of importing pynvml (tests inject a fake).
        clock, threaded, keep_samples: see EnergyMeter.
        """
        super().__init__(interval, clock=clock, threaded=threaded, keep_samples=keep_samples)
        self._target = device
        self._use_counter = use_counter
        self._nvml_module = nvml
        self._nvml: Any = None
        self._handle: Any = None
        self._all = all_devices
        self._handles: List[Any] = []
        self._counter = use_counter
        self._last_mj: Optional[int] = None
        self._last_mjs: List[int] = []

    @property
    def source(self) -> str:  # type: ignore[override]
        return "nvml-counter" if self._counter else "nvml-power"

    def _import(self) -> Any:
        if self._nvml_module is not None:
            return self._nvml_module
        try:  # lazy: importing gearlib.measure must not load the NVML library (only start() and probes do)
            import pynvml
        except ImportError as err:
            raise HardwareUnavailable(
                "no NVML: nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            ) from err
        return pynvml

    def _open(self) -> None:
        nvml = self._import()
        try:
            nvml.nvmlInit()
        except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise HardwareUnavailable(f"no NVML device ({type(err).__name__}: {err})") from err
        if self._all:
            return self._open_all(nvml)
        try:
            handle, label = _nvml_handle(nvml, self._target)
            name = _text(nvml.nvmlDeviceGetName(handle))
            self._counter = False
            if self._use_counter:
                try:
                    self._last_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
                    self._counter = True
                except Exception:  # "Not Supported" before Volta: poll power instead
                    self._counter = False
            if not self._counter:
                nvml.nvmlDeviceGetPowerUsage(handle)
        except Exception as err:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            raise HardwareUnavailable(f"NVML cannot read GPU power ({type(err).__name__}: {err})") from err
        self._nvml, self._handle = nvml, handle
        self.device = f"{name} ({label})"
        self._reason = (
            f"NVML on {self.device}: {'total-energy counter' if self._counter else 'power polling'}"
        )

    def _open_all(self, nvml: Any) -> None:
        """Handles of every GPU on the node; the counter only if every one has it."""
        try:
            count = int(nvml.nvmlDeviceGetCount())
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            if not handles:
                raise RuntimeError("NVML sees no GPU")
            names = sorted({_text(nvml.nvmlDeviceGetName(h)) for h in handles})
            self._counter = False
            if self._use_counter:
                try:
                    self._last_mjs = [int(nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in handles]
                    self._counter = True
                except Exception:
                    self._counter = False
            if not self._counter:
                for h in handles:
                    nvml.nvmlDeviceGetPowerUsage(h)
        except Exception as err:
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
            raise HardwareUnavailable(f"NVML cannot read GPU power ({type(err).__name__}: {err})") from err
        self._nvml, self._handles = nvml, handles
        self.device = f"all {count} GPUs of the node ({', '.join(names)})"
        how = "total-energy counters" if self._counter else "power polling"
        self._reason = f"NVML summed over {self.device}: {how}"

    def _read_all(self) -> Reading:
        if self._counter:
            now = [int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles]
            delta = sum(max(b - a, 0) for a, b in zip(self._last_mjs, now))
            self._last_mjs = now
            return Reading(energy_j=delta / 1000.0)
        return Reading(power_w=sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0)

    def _read(self, t: float) -> Reading:
        if self._all:
            return self._read_all()
        if self._counter:
            mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            delta_mj = mj - self._last_mj if self._last_mj is not None else 0
            self._last_mj = mj
            return Reading(energy_j=max(delta_mj, 0) / 1000.0)  # a driver reload resets the counter
        return Reading(power_w=self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0)

    def _close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            finally:
                self._nvml, self._handle, self._handles = None, None, []
