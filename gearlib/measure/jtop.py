"""Jetson module power through jetson-stats (`jtop`, imported lazily inside start()).

Reads the total input rail (VDD_IN on Xavier NX: CPU + GPU + memory) from the jtop.service daemon.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

from gearlib.measure.energy import EnergyMeter, HardwareUnavailable, Reading

JTOP_SOCKET = "/run/jtop.sock"
_INPUT_RAILS = ("VDD_IN", "IN", "POM_5V_IN", "VIN_SYS_5V0", "5V_IN")


def _milliwatts(entry: Any, keys: Tuple[str, ...]) -> Optional[float]:
    """The first of `keys` present in a rail entry (mW), or the entry itself when it is a number."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if isinstance(entry, dict):
        for key in keys:
            if entry.get(key) is not None:
                return float(entry[key])
    return None


def parse_jtop_power(power: Any) -> Tuple[float, Optional[float], Dict[str, float]]:
    """Total power from any jtop `power` shape.

    Accepts 4.x/7.x `{'rail': {name: {'power': mW, 'avg': mW, ...}}, 'tot': {'power': mW, 'avg': mW}}`
    and 3.x `(total, rails)` with `{'cur': mW, 'avg': mW}` entries. Without a total, the input rail
    (VDD_IN / IN) is used, else the sum of the rails.

    Args:
        power: the value of `jtop().power`.

    Returns:
        (P_total in W, running-average P in W or None, {rail name: P in W}).
    """
    if isinstance(power, dict):
        total, rails = power.get("tot"), power.get("rail") or {}
    elif isinstance(power, (tuple, list)) and len(power) == 2:
        total, rails = power
        rails = rails or {}
    else:
        raise ValueError(f"unrecognised jtop power reading {power!r}; expected a dict or (total, rails)")
    rails_w = {}
    for name, entry in rails.items():
        mw = _milliwatts(entry, ("power", "cur"))
        if mw is not None:
            rails_w[str(name)] = mw / 1000.0
    cur_mw = _milliwatts(total, ("power", "cur"))
    avg_mw = _milliwatts(total, ("avg",)) if isinstance(total, dict) else None
    if cur_mw is None:
        for name in _INPUT_RAILS:
            if name in rails:
                cur_mw = _milliwatts(rails[name], ("power", "cur"))
                avg_mw = _milliwatts(rails[name], ("avg",))
                break
    if cur_mw is None:
        if not rails_w:
            raise ValueError(f"jtop power reading {power!r} has neither a total nor any rail")
        return sum(rails_w.values()), None, rails_w
    return cur_mw / 1000.0, None if avg_mw is None else avg_mw / 1000.0, rails_w


class JtopMeter(EnergyMeter):
    """Jetson module energy from jtop's total rail: source 'jtop' (default interval 1.0 s)."""

    source = "jtop"
    default_interval = 1.0

    def __init__(
        self,
        interval: Optional[float] = None,
        jtop_factory: Optional[Callable[[], Any]] = None,
        socket: str = JTOP_SOCKET,
        clock: Callable[[], float] = time.monotonic,
        threaded: bool = True,
        keep_samples: bool = False,
    ) -> None:
        """Args:
        interval: poll period in s (default 1.0, jtop's own default).
        jtop_factory: callable returning a jtop-like object with start(), close() and `.power`
            (tests inject a fake; default `jtop.jtop(interval=...)`).
        socket: the jtop.service socket checked before importing jtop.
        clock, threaded, keep_samples: see EnergyMeter.
        """
        super().__init__(interval, clock=clock, threaded=threaded, keep_samples=keep_samples)
        self._factory = jtop_factory
        self._socket = socket
        self._jetson: Any = None
        self.rails_w: Dict[str, float] = {}

    def _default_factory(self) -> Callable[[], Any]:
        if not os.path.exists(self._socket):
            raise HardwareUnavailable(
                f"no jtop service ({self._socket} missing; not a Jetson or jtop.service off)"
            )
        try:  # lazy: jetson-stats is the optional [jetson] extra, present on Jetsons only
            from jtop import jtop
        except ImportError as err:
            raise HardwareUnavailable(
                "no jtop: jetson-stats is not installed (pip install 'gearlib[jetson]'; the administrator "
                "installs jtop.service system-wide)"
            ) from err
        return lambda: jtop(interval=self.interval)

    def _open(self) -> None:
        factory = self._factory if self._factory is not None else self._default_factory()
        try:
            jetson = factory()
            jetson.start()
        except Exception as err:  # JtopException: service inactive, no permission on the socket, ...
            raise HardwareUnavailable(f"no jtop service ({type(err).__name__}: {err})") from err
        try:
            parse_jtop_power(jetson.power)
            board = getattr(jetson, "board", None) or {}
            model = board.get("hardware", {}).get("Model", "") if isinstance(board, dict) else ""
        except Exception as err:
            jetson.close()
            raise HardwareUnavailable(f"jtop gives no power reading ({err})") from err
        self._jetson = jetson
        self.device = model or "Jetson module (total input rail)"
        self._reason = f"jtop on {self.device}"

    def _read(self, t: float) -> Reading:
        total_w, avg_w, self.rails_w = parse_jtop_power(self._jetson.power)
        return Reading(power_w=total_w, avg_power_w=avg_w)

    def _close(self) -> None:
        if self._jetson is not None:
            try:
                self._jetson.close()
            finally:
                self._jetson = None
