"""CPU package energy from the Linux powercap RAPL counters (/sys/class/powercap/intel-rapl:*).

Counters are in microjoules and wrap at max_energy_range_uj; since CVE-2020-8694 they are usually root-only.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from gearlib.measure.energy import EnergyMeter, HardwareUnavailable, Reading

RAPL_ROOT = "/sys/class/powercap"


@dataclass
class RaplZone:
    """One powercap zone: its sysfs directory, name (package-0, dram, ...) and counter range in uJ."""

    path: str
    name: str
    max_energy_range_uj: int

    def read_uj(self) -> int:
        """The cumulative energy counter energy_uj in uJ (PermissionError when root-only)."""
        with open(os.path.join(self.path, "energy_uj")) as f:
            return int(f.read().strip())


def find_rapl_zones(root: str = RAPL_ROOT, kinds: Sequence[str] = ("package",)) -> List[RaplZone]:
    """Powercap zones whose name starts with one of `kinds`.

    Args:
        root: the powercap directory (a fake tree in tests).
        kinds: name prefixes to keep: 'package' (default), 'dram', 'core', 'uncore', 'psys'.

    Returns:
        Zones sorted by path; empty when there is no RAPL here.
    """
    zones = []
    paths = glob.glob(os.path.join(root, "intel-rapl:*")) + glob.glob(os.path.join(root, "amd-rapl:*"))
    for path in sorted(paths):
        try:
            with open(os.path.join(path, "name")) as f:
                name = f.read().strip()
            with open(os.path.join(path, "max_energy_range_uj")) as f:
                max_range = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if any(name.startswith(kind) for kind in kinds):
            zones.append(RaplZone(path, name, max_range))
    return zones


def rapl_delta_uj(previous_uj: int, current_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two counter reads in uJ; a read below the previous one has wrapped once.

    Args:
        previous_uj: earlier energy_uj.
        current_uj: later energy_uj.
        max_energy_range_uj: the counter range (added on wrap).

    Returns:
        Non-negative energy in uJ (poll at least every ~10 s so that at most one wrap happens).
    """
    if current_uj >= previous_uj:
        return current_uj - previous_uj
    return current_uj + max_energy_range_uj - previous_uj


class RaplMeter(EnergyMeter):
    """CPU energy summed over RAPL package zones: source 'rapl' (default interval 1.0 s, keep it <= 10 s)."""

    source = "rapl"
    default_interval = 1.0

    def __init__(
        self,
        root: str = RAPL_ROOT,
        kinds: Sequence[str] = ("package",),
        interval: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
        threaded: bool = True,
        keep_samples: bool = False,
    ) -> None:
        """Args:
        root: the powercap sysfs directory (point it at a fake tree in tests).
        kinds: zone-name prefixes to sum ('package' avoids double counting core/uncore subzones).
        interval: poll period in s (default 1.0; must stay well below the wrap time).
        clock, threaded, keep_samples: see EnergyMeter.
        """
        super().__init__(interval, clock=clock, threaded=threaded, keep_samples=keep_samples)
        self.root = root
        self.kinds = tuple(kinds)
        self._zones: List[RaplZone] = []
        self._last_uj: List[int] = []

    def _open(self) -> None:
        zones = find_rapl_zones(self.root, self.kinds)
        if not zones:
            raise HardwareUnavailable(f"no RAPL {'/'.join(self.kinds)} zones under {self.root}")
        try:
            self._last_uj = [zone.read_uj() for zone in zones]
        except PermissionError as err:
            raise HardwareUnavailable(
                f"RAPL not readable ({err.filename}: root-only since the CVE-2020-8694 fix; run as root or "
                "make energy_uj readable)"
            ) from err
        except (OSError, ValueError) as err:
            raise HardwareUnavailable(f"RAPL not readable ({err})") from err
        self._zones = zones
        self.device = "CPU " + "+".join(zone.name for zone in zones)
        self._reason = f"RAPL on {self.device}"

    def _read(self, t: float) -> Reading:
        total_uj = 0
        for k, zone in enumerate(self._zones):
            current = zone.read_uj()
            total_uj += rapl_delta_uj(self._last_uj[k], current, zone.max_energy_range_uj)
            self._last_uj[k] = current
        return Reading(energy_j=total_uj / 1e6)
