"""Hardware and software description of the machine a measurement ran on.

CPU model and cores, library versions, CUDA device, Jetson model and power mode, and the energy backend.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any, Dict, Optional

import torch

from gearlib.measure.auto import auto_meter


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\x00", b"").decode(errors="replace").strip() or None
    except OSError:
        return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (x86 'model name', ARM 'Hardware'/'Model'), else platform's."""
    text = _read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_capability() -> Optional[str]:
    """The vector instruction set torch's CPU kernels dispatch to ('AVX2', 'AVX512', 'DEFAULT', ...), or None
    where torch cannot say. Two machines with the same model name can differ here, and so can their times."""
    backend = getattr(torch.backends, "cpu", None)
    probe = getattr(backend, "get_cpu_capability", None)
    try:
        return str(probe()) if probe is not None else None
    except RuntimeError:
        return None


def jetson_info() -> Dict[str, Optional[str]]:
    """Jetson model (device tree), L4T release and nvpmodel power mode; empty values off a Jetson."""
    model = _read_text("/proc/device-tree/model")
    info: Dict[str, Optional[str]] = {"jetson_model": None, "l4t_release": None, "nvpmodel": None}
    release = _read_text("/etc/nv_tegra_release")
    if release is None and (model is None or "jetson" not in model.lower()):
        return info
    info["jetson_model"] = model
    info["l4t_release"] = release.splitlines()[0] if release else None
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5)
            info["nvpmodel"] = " ".join(out.stdout.split()) or None
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def hardware_info(device: Any = None, energy: bool = True) -> Dict[str, Any]:
    """Describe the machine for a results table.

    Args:
        device: the compute device of the measurement (None: CUDA device 0 when present).
        energy: also name the energy backend auto_meter() would pick (probes NVML/jtop/RAPL once).

    Returns:
        Dict with python, platform, cpu_model, cpu_capability, cpu_cores, torch_threads, torch, torchvision, cuda,
        cuda_device, jetson_model, l4t_release, nvpmodel and energy_backend.
    """
    try:  # lazy: only its version is wanted, and a torchvision built for another torch raises on import
        import torchvision

        tv_version: Optional[str] = torchvision.__version__
    except Exception:  # torchvision missing or mismatched with torch
        tv_version = None
    info: Dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "cpu_model": cpu_model(),
        "cpu_capability": cpu_capability(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": tv_version,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cuda_device": None,
        "executable": sys.executable,
    }
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        index = dev.index if dev is not None and dev.index is not None else 0
        info["cuda_device"] = torch.cuda.get_device_name(index)
    info.update(jetson_info())
    if energy:
        info["energy_backend"] = auto_meter(device=device).describe()
    return info
