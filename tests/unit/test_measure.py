"""Tests for gearlib.measure: energy integrals and backends (fake sources), timer, latency, parameter counts.

Energy backends run on fake sources with known joules and fake clocks, so nothing sleeps long.
"""

from __future__ import annotations

import ast
import math
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from gearlib.measure import (
    Backend,
    CallableMeter,
    EnergyMeter,
    HardwareUnavailable,
    JtopMeter,
    NullMeter,
    NvmlMeter,
    RaplMeter,
    Timer,
    auto_meter,
    count_params,
    cuda_sync_fn,
    hardware_info,
    inference_latency,
    parse_jtop_power,
    rapl_delta_uj,
    trapezoid_energy,
)
from gearlib.measure import auto as auto_mod
from gearlib.measure import energy as energy_mod
from gearlib.measure import nvml as nvml_mod
from gearlib.measure import rapl as rapl_mod


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def drive(meter: EnergyMeter, clock: FakeClock, duration: float, interval: float) -> None:
    """Start a non-threaded meter at t=0 and poll it on the grid k * interval up to `duration`, then stop."""
    clock.t = 0.0
    meter.start()
    n = int(round(duration / interval))
    for k in range(1, n + 1):
        clock.t = k * interval
        meter.poll()


# ----- integrals --------------------------------------------------------------------------------------------


def test_sinusoid_trapezoid_within_half_percent():
    clock = FakeClock()
    meter = CallableMeter(
        lambda t: 50 + 20 * math.sin(2 * math.pi * t / 7), interval=0.1, clock=clock, threaded=False
    )
    drive(meter, clock, 60.0, 0.1)
    report = meter.stop()
    exact = 50 * 60 + 20 * 7 / (2 * math.pi) * (1 - math.cos(2 * math.pi * 60 / 7))
    assert report.energy_j == pytest.approx(exact, rel=0.005)
    assert report.duration_s == pytest.approx(60.0)
    assert report.n_samples == 601 + 1  # start, 600 polls, stop
    assert report.energy_j_paper == pytest.approx(exact, rel=0.01)


def test_constant_30w_for_10s_is_300j():
    clock = FakeClock()
    meter = CallableMeter(lambda t: 30.0, interval=0.1, clock=clock, threaded=False)
    drive(meter, clock, 10.0, 0.1)
    report = meter.stop()
    assert report.energy_j == pytest.approx(300.0, rel=1e-9)
    assert report.energy_kj == pytest.approx(0.3, rel=1e-9)
    assert report.mean_power_w == pytest.approx(30.0, rel=1e-9)
    assert report.energy_j_paper == pytest.approx(300.0, rel=1e-9)
    assert report.source == "callable"


def test_piecewise_constant_aligned_trace_paper_sum_equals_integral():
    interval = 0.5
    levels = [12.0, 40.0, 7.5, 33.0, 33.0, 90.0, 1.0, 55.0]

    def mean_power_of_previous_interval(t: float) -> float:
        k = max(int(math.ceil(t / interval - 1e-9)) - 1, 0)
        return levels[min(k, len(levels) - 1)]

    clock = FakeClock()
    meter = CallableMeter(mean_power_of_previous_interval, interval=interval, clock=clock, threaded=False)
    drive(meter, clock, interval * len(levels), interval)
    report = meter.stop()
    integral = sum(levels) * interval
    assert report.energy_j_paper == pytest.approx(integral, rel=1e-12)
    assert report.energy_j != pytest.approx(integral, rel=1e-3)  # the trapezoid smears the steps


def test_trapezoid_holds_first_and_last_sample():
    assert trapezoid_energy([1.0, 2.0], [10.0, 20.0], t_start=0.0, t_end=4.0) == pytest.approx(10 + 15 + 40)
    assert trapezoid_energy([1.0, 2.0], [10.0, 20.0]) == pytest.approx(15.0)
    assert math.isnan(trapezoid_energy([], []))
    with pytest.raises(ValueError, match="decrease"):
        trapezoid_energy([2.0, 1.0], [1.0, 1.0])


def test_meter_integral_matches_trapezoid_function_with_samples():
    clock = FakeClock()
    meter = CallableMeter(
        lambda t: 3.0 + t * t, interval=0.25, clock=clock, threaded=False, keep_samples=True
    )
    drive(meter, clock, 3.0, 0.25)
    clock.t = 3.1  # stop off the grid
    report = meter.stop()
    times, powers = zip(*report.samples)
    assert report.energy_j == pytest.approx(trapezoid_energy(times, powers, 0.0, 3.1), rel=1e-12)
    assert report.energy_j == pytest.approx(3.0 * 3.1 + 3.1**3 / 3, rel=0.01)


def test_counter_source_sums_deltas():
    clock = FakeClock()
    meter = CallableMeter(energy_fn=lambda t: 1000.0 + 5.0 * t, interval=1.0, clock=clock, threaded=False)
    drive(meter, clock, 4.0, 1.0)
    clock.t = 4.5
    report = meter.stop()
    assert report.energy_j == pytest.approx(22.5)
    assert report.energy_j_paper == pytest.approx(20.0)  # four regular polls at 5 W x 1 s
    assert report.mean_power_w == pytest.approx(5.0)


def test_laps_split_time_and_energy():
    clock, cpu = FakeClock(), FakeClock()
    meter = CallableMeter(lambda t: 10.0, interval=1.0, clock=clock, threaded=False, cpu_clock=cpu)
    meter.start()
    clock.t = 1.0
    meter.poll()
    clock.t, cpu.t = 2.0, 0.5  # the process ran for half a second of the two: it waited the rest
    assert meter.lap("osg1") == pytest.approx({"seconds": 2.0, "joules": 20.0, "cpu_seconds": 0.5})
    clock.t = 5.0
    meter.lap("era")
    clock.t = 6.0
    report = meter.stop(lap="osg1")
    assert report.laps["osg1"] == pytest.approx({"seconds": 3.0, "joules": 30.0})
    assert report.laps["era"] == pytest.approx({"seconds": 3.0, "joules": 30.0})
    assert report.energy_j == pytest.approx(60.0)


def test_failed_polls_are_skipped_and_counted():
    calls = {"n": 0}

    def flaky(t: float) -> float:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise OSError("sensor busy")
        return 8.0

    clock = FakeClock()
    meter = CallableMeter(flaky, interval=1.0, clock=clock, threaded=False)
    drive(meter, clock, 5.0, 1.0)
    report = meter.stop()
    assert report.n_failed_polls == 2
    assert report.energy_j == pytest.approx(40.0)


def test_context_manager_and_net_energy():
    clock = FakeClock()
    with CallableMeter(lambda t: 12.0, clock=clock, threaded=False) as meter:
        clock.t = 2.0
    assert meter.report is not None
    assert meter.report.energy_j == pytest.approx(24.0)
    assert meter.report.net_energy_j(baseline_w=2.0) == pytest.approx(20.0)
    assert meter.report.as_dict()["energy_kj"] == pytest.approx(0.024)


# ----- real polling thread ----------------------------------------------------------------------------------


def _live_meter_threads():
    return [t for t in threading.enumerate() if t.name == "gearlib-energy" and t.is_alive()]


def test_threaded_polling_constant_power():
    meter = CallableMeter(lambda t: 10.0, interval=0.02)
    meter.start()
    assert meter.running and _live_meter_threads()
    time.sleep(0.3)
    report = meter.stop()
    assert report.duration_s >= 0.3
    assert report.energy_j == pytest.approx(10.0 * report.duration_s, rel=1e-9)
    assert report.energy_j == pytest.approx(3.0, abs=1.5)
    assert report.n_samples >= 3  # start, stop and at least one poll from the thread
    assert not _live_meter_threads()
    assert meter._thread is None


def test_double_start_raises_and_stop_without_start_raises():
    meter = CallableMeter(lambda t: 1.0, interval=0.05)
    meter.start()
    with pytest.raises(RuntimeError, match="twice"):
        meter.start()
    meter.stop()
    assert not _live_meter_threads()
    with pytest.raises(RuntimeError):
        meter.stop()
    with pytest.raises(RuntimeError):
        meter.lap("x")
    meter.start()  # a stopped meter can be started again
    meter.stop()
    assert not _live_meter_threads()


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="interval"):
        CallableMeter(lambda t: 1.0, interval=0.0)
    with pytest.raises(ValueError, match="exactly one"):
        CallableMeter()
    with pytest.raises(ValueError, match="prefer"):
        auto_meter(prefer="smartplug")


# ----- backends ---------------------------------------------------------------------------------------------


def test_null_meter_times_only():
    clock = FakeClock(100.0)
    meter = NullMeter(reason="nothing readable: time only", clock=clock)
    assert meter.available is False
    assert "time only" in meter.reason
    meter.start()
    clock.t = 101.5
    meter.lap("stage")
    report = meter.stop()
    assert math.isnan(report.energy_j) and math.isnan(report.energy_kj) and math.isnan(report.energy_j_paper)
    assert report.duration_s == pytest.approx(1.5)
    assert report.source == "none" and report.n_samples == 0
    assert report.laps["stage"]["seconds"] == pytest.approx(1.5)
    assert math.isnan(report.laps["stage"]["joules"])
    assert meter.describe().startswith("none:")


def test_null_meter_real_clock_positive_duration():
    meter = NullMeter()
    meter.start()
    time.sleep(0.002)
    assert meter.stop().duration_s > 0
    assert not _live_meter_threads()


def test_rapl_delta_wraps():
    assert rapl_delta_uj(100, 250, 1000) == 150
    assert rapl_delta_uj(900, 50, 1000) == 150
    assert rapl_delta_uj(7, 7, 1000) == 0


def _zone(root, name: str, zone: str, energy_uj: int, max_range: int = 1_000_000):
    d = root / name
    d.mkdir()
    (d / "name").write_text(zone + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


def test_rapl_fake_sysfs_wraps_and_sums_packages(tmp_path):
    pkg0 = _zone(tmp_path, "intel-rapl:0", "package-0", 999_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 5)  # a subzone inside package-0: not added again
    pkg1 = _zone(tmp_path, "intel-rapl:1", "package-1", 10_000)
    _zone(tmp_path, "intel-rapl:2", "psys", 0)
    clock = FakeClock()
    meter = RaplMeter(root=str(tmp_path), clock=clock, threaded=False)
    assert meter.available and meter.source == "rapl"
    meter.start()
    (pkg0 / "energy_uj").write_text("500\n")  # crossed the 1 J range: +1500 uJ
    (pkg1 / "energy_uj").write_text("12000\n")  # +2000 uJ
    clock.t = 1.0
    meter.poll()
    (pkg0 / "energy_uj").write_text("1500\n")  # +1000 uJ
    clock.t = 2.0
    report = meter.stop()
    assert report.energy_j == pytest.approx((1500 + 2000 + 1000) * 1e-6)
    assert report.source == "rapl"
    assert "package-0" in report.device and "package-1" in report.device and "psys" not in report.device


def test_rapl_unreadable_is_unavailable_not_failing(tmp_path, monkeypatch):
    _zone(tmp_path, "intel-rapl:0", "package-0", 1)

    def denied(self):
        raise PermissionError(13, "Permission denied", self.path + "/energy_uj")

    monkeypatch.setattr(rapl_mod.RaplZone, "read_uj", denied)
    meter = RaplMeter(root=str(tmp_path))
    assert meter.available is False
    assert "not readable" in meter.reason
    with pytest.raises(HardwareUnavailable):
        meter.start()
    assert RaplMeter(root=str(tmp_path / "missing")).available is False


def test_rapl_scripted_counters_exact_joules_laps_and_wrap(tmp_path):
    """Known uJ steps, one wrap at a realistic max_energy_range_uj: the meter reports exactly their sum."""
    big = 262_143_328_850
    pkg0 = _zone(tmp_path, "intel-rapl:0", "package-0", big - 3_000_000, max_range=big)
    pkg1 = _zone(tmp_path, "intel-rapl:1", "package-1", 1_000, max_range=65_532_610_987)
    dram = _zone(tmp_path, "intel-rapl:0:1", "dram", 0)

    def run(kinds):
        for path, value in ((pkg0, big - 3_000_000), (pkg1, 1_000), (dram, 0)):
            (path / "energy_uj").write_text(f"{value}\n")
        clock = FakeClock()
        meter = RaplMeter(root=str(tmp_path), kinds=kinds, clock=clock, threaded=False)
        meter.start()
        (pkg0 / "energy_uj").write_text("2000000\n")  # wrapped: 3 J to the top, then 2 J
        (pkg1 / "energy_uj").write_text(f"{1_000 + 4_500_000}\n")  # +4.5 J
        (dram / "energy_uj").write_text("1250000\n")  # +1.25 J (counted only with 'dram')
        clock.t = 1.0
        meter.poll()
        meter.lap("a")
        (pkg0 / "energy_uj").write_text(f"{2_000_000 + 7_250_000}\n")  # +7.25 J
        clock.t = 2.0
        meter.poll()
        (pkg1 / "energy_uj").write_text(f"{1_000 + 4_500_000 + 250_000}\n")  # +0.25 J
        clock.t = 3.0
        return meter.stop(lap="b")

    report = run(("package",))
    assert report.energy_j == pytest.approx(5.0 + 4.5 + 7.25 + 0.25, rel=1e-12)
    assert report.laps["a"] == pytest.approx({"seconds": 1.0, "joules": 9.5}, rel=1e-12)
    assert report.laps["b"] == pytest.approx({"seconds": 2.0, "joules": 7.5}, rel=1e-12)
    assert report.energy_j_paper == pytest.approx(9.5 + 7.25, rel=1e-12)  # the two regular polls x 1 s
    assert report.mean_power_w == pytest.approx(17.0 / 3.0, rel=1e-12)
    assert report.device == "CPU package-0+package-1"
    with_dram = run(("package", "dram"))
    assert with_dram.energy_j == pytest.approx(17.0 + 1.25, rel=1e-12)
    assert "dram" in with_dram.device


class FakeNvmlError(Exception):
    pass


class FakeNvmlLibraryNotFound(FakeNvmlError):
    pass


class FakeNvml:
    """A pynvml-shaped module: counter in mJ, power in mW."""

    NVMLError = FakeNvmlError

    def __init__(self, counter_mj=1_000_000, power_mw=75_000, counter_supported=True, library=True):
        self.counter_mj, self.power_mw = counter_mj, power_mw
        self.counter_supported, self.library = counter_supported, library
        self.inits = 0

    def nvmlInit(self):
        if not self.library:
            raise FakeNvmlLibraryNotFound("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        self.inits -= 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetName(self, handle):
        return b"Fake RTX 6000"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.counter_supported:
            raise FakeNvmlError("Not Supported")
        return self.counter_mj

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.power_mw


def test_nvml_counter_millijoules_to_joules(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml()
    clock = FakeClock()
    meter = NvmlMeter(nvml=fake, clock=clock, threaded=False)
    assert meter.available and meter.source == "nvml-counter"
    meter.start()
    fake.counter_mj += 150_000
    clock.t = 1.0
    meter.poll()
    fake.counter_mj += 100_000
    clock.t = 2.0
    report = meter.stop()
    assert report.energy_j == pytest.approx(250.0)
    assert report.source == "nvml-counter"
    assert "Fake RTX 6000" in report.device
    assert fake.inits == 0  # every nvmlInit was matched by nvmlShutdown


def test_nvml_power_polling_when_counter_unsupported(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    clock = FakeClock()
    meter = NvmlMeter(nvml=FakeNvml(counter_supported=False), interval=0.5, clock=clock, threaded=False)
    drive(meter, clock, 2.0, 0.5)
    report = meter.stop()
    assert report.source == "nvml-power"
    assert report.energy_j == pytest.approx(150.0)


def test_nvml_library_missing_is_unavailable():
    meter = NvmlMeter(nvml=FakeNvml(library=False))
    assert meter.available is False
    assert "no NVML" in meter.reason and "Library Not Found" in meter.reason


def test_nvml_without_pynvml_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` now raises ImportError
    meter = NvmlMeter()
    assert meter.available is False
    assert "nvidia-ml-py is not installed" in meter.reason and "pip install nvidia-ml-py" in meter.reason
    with pytest.raises(HardwareUnavailable, match="nvidia-ml-py"):
        meter.start()


def test_nvml_scripted_counter_exact_joules_and_driver_reset(monkeypatch):
    """Known mJ steps (one counter reset by a driver reload, which adds nothing) give exactly their sum."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml(counter_mj=123_456_789)
    clock = FakeClock()
    meter = NvmlMeter(nvml=fake, interval=0.5, clock=clock, threaded=False)
    meter.start()
    fake.counter_mj += 12_345
    clock.t = 0.5
    meter.poll()
    fake.counter_mj = 400  # driver reload: the counter restarts near zero
    clock.t = 1.0
    meter.poll()
    fake.counter_mj = 2_400  # +2 J after the reset
    clock.t = 1.5
    report = meter.stop()
    assert report.energy_j == pytest.approx(12.345 + 2.0, rel=1e-12)
    assert report.energy_j_paper == pytest.approx((12.345 / 0.5 + 0.0) * 0.5, rel=1e-12)
    assert report.mean_power_w == pytest.approx(14.345 / 1.5, rel=1e-12)
    assert report.n_samples == 3 and fake.inits == 0


def test_nvml_scripted_power_polls_exact_trapezoid(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNvml(power_mw=100_000, counter_supported=False)
    clock = FakeClock()
    meter = NvmlMeter(nvml=fake, interval=0.5, clock=clock, threaded=False, keep_samples=True)
    meter.start()
    for t, mw in ((0.5, 200_000), (1.0, 50_000)):
        fake.power_mw, clock.t = mw, t
        meter.poll()
    clock.t = 1.25
    report = meter.stop()
    assert report.source == "nvml-power"
    assert report.energy_j == pytest.approx(75.0 + 62.5 + 12.5, rel=1e-12)  # trapezoids of 100/200/50/50 W
    assert report.energy_j_paper == pytest.approx((200.0 + 50.0) * 0.5, rel=1e-12)
    assert [v for pair in report.samples for v in pair] == pytest.approx([0, 100, 0.5, 200, 1, 50, 1.25, 50])


class MultiGpuNvml(FakeNvml):
    """Three GPUs with their own counters; records which handle was asked for."""

    def __init__(self):
        super().__init__()
        self.counters = {0: 0, 1: 0, 2: 0}

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return ("gpu", {"GPU-aaa": 0, "GPU-bbb": 1, "GPU-ccc": 2}[uuid])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.counters[handle[1]]


@pytest.mark.parametrize(
    "visible, device, metered, label",
    [
        ("2,0", "cuda:0", 2, "nvml:2"),
        ("2,0", "cuda:1", 0, "nvml:0"),
        ("GPU-ccc,GPU-bbb", 1, 1, "GPU-bbb"),
        ("1,2", torch.device("cuda", 1), 2, "nvml:2"),
    ],
)
def test_nvml_meters_the_gpu_cuda_visible_devices_maps_to(monkeypatch, visible, device, metered, label):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(nvml_mod, "_torch_pci_bus_id", lambda index: None)
    fake = MultiGpuNvml()
    clock = FakeClock()
    meter = NvmlMeter(device=device, nvml=fake, clock=clock, threaded=False)
    meter.start()
    for index in fake.counters:
        fake.counters[index] += 1_000 * (index + 1)  # GPU k draws (k + 1) J in this span
    clock.t = 1.0
    report = meter.stop()
    assert report.energy_j == pytest.approx(metered + 1.0, rel=1e-12)
    assert report.device == f"Fake RTX 6000 ({label})"


JTOP_4X = {
    "rail": {
        "VDD_CPU_GPU_CV": {"volt": 4900, "curr": 400, "power": 2000, "avg": 1900, "online": True},
        "VDD_SOC": {"volt": 4900, "curr": 300, "power": 1500, "avg": 1450, "online": True},
    },
    "tot": {"volt": 4900, "curr": 1060, "power": 5200, "avg": 5000, "name": "VDD_IN"},
}
JTOP_3X = (
    {"cur": 4800, "avg": 4700},
    {"IN": {"cur": 4800, "avg": 4700}, "CPU GPU CV": {"cur": 1500, "avg": 1400}},
)


def test_parse_jtop_power_shapes():
    total, avg, rails = parse_jtop_power(JTOP_4X)
    assert (total, avg) == pytest.approx((5.2, 5.0))
    assert rails == pytest.approx({"VDD_CPU_GPU_CV": 2.0, "VDD_SOC": 1.5})
    total, avg, rails = parse_jtop_power(JTOP_3X)
    assert (total, avg) == pytest.approx((4.8, 4.7))
    assert rails["CPU GPU CV"] == pytest.approx(1.5)
    no_total = {"rail": {"VDD_IN": {"power": 6100, "avg": 6000}, "VDD_SOC": {"power": 1000}}}
    assert parse_jtop_power(no_total)[:2] == pytest.approx((6.1, 6.0))
    with pytest.raises(ValueError):
        parse_jtop_power("garbage")


class FakeJtop:
    def __init__(self, power):
        self.power = power
        self.started = self.closed = False

    def start(self):
        self.started = True

    def close(self):
        self.closed = True


def test_jtop_meter_with_fake_service():
    fake = FakeJtop(JTOP_4X)
    clock = FakeClock()
    meter = JtopMeter(jtop_factory=lambda: fake, clock=clock, threaded=False)
    assert meter.available and meter.interval == 1.0
    drive(meter, clock, 3.0, 1.0)
    report = meter.stop()
    assert report.source == "jtop"
    assert report.energy_j == pytest.approx(15.6)
    assert report.energy_j_paper == pytest.approx(15.0)  # the paper sums jtop's averaged readings
    assert fake.started and fake.closed


def test_jtop_service_down_is_unavailable(tmp_path):
    def inactive():
        raise RuntimeError("The jtop.service is not active. Please run: sudo jtop --install-service")

    meter = JtopMeter(jtop_factory=inactive)
    assert meter.available is False and "jtop" in meter.reason
    no_socket = JtopMeter(socket=str(tmp_path / "jtop.sock"))
    assert no_socket.available is False and "jtop.sock" in no_socket.reason


def _jtop_4x(mw: float, avg_mw: float):
    return {"rail": {"VDD_SOC": {"power": mw / 4, "avg": avg_mw / 4}}, "tot": {"power": mw, "avg": avg_mw}}


def _jtop_3x(mw: float, avg_mw: float):
    return ({"cur": mw, "avg": avg_mw}, {"IN": {"cur": mw, "avg": avg_mw}, "SOC": {"cur": mw / 4}})


def _jtop_rails_only(mw: float, avg_mw: float):
    return {"rail": {"VDD_IN": {"power": mw, "avg": avg_mw}, "VDD_SOC": {"power": mw / 4}}}


@pytest.mark.parametrize("shape", [_jtop_4x, _jtop_3x, _jtop_rails_only])
def test_jtop_scripted_readings_exact_joules(shape):
    """Known mW readings at known (uneven) times: the trapezoid and the paper's sum of averages, exactly."""
    fake = FakeJtop(shape(4000, 4000))
    fake.board = {"hardware": {"Model": "NVIDIA Jetson Xavier NX Developer Kit"}}
    clock = FakeClock()
    meter = JtopMeter(jtop_factory=lambda: fake, clock=clock, threaded=False, keep_samples=True)
    meter.start()
    for t, mw, avg in ((1.0, 6000, 5000), (2.5, 6000, 5500)):
        fake.power, clock.t = shape(mw, avg), t
        meter.poll()
    fake.power, clock.t = shape(2000, 4500), 3.0
    report = meter.stop()
    assert report.energy_j == pytest.approx(
        5.0 + 9.0 + 2.0, rel=1e-12
    )  # 4->6 W for 1 s, 6 W 1.5 s, 6->2 W 0.5 s
    assert report.energy_j_paper == pytest.approx((5.0 + 5.5) * 1.0, rel=1e-12)
    assert [v for pair in report.samples for v in pair] == pytest.approx([0, 4, 1, 6, 2.5, 6, 3, 2])
    assert report.device == "NVIDIA Jetson Xavier NX Developer Kit"
    assert meter.rails_w[next(name for name in meter.rails_w if "SOC" in name)] == pytest.approx(0.5)


def _table(tmp_path, jtop=True, nvml=True, rapl=True):
    """A BACKENDS-shaped table over fakes: each row readable or not as asked."""
    if rapl:
        _zone(tmp_path, "intel-rapl:0", "package-0", 1)

    def jtop_row(device, interval):
        if not jtop:
            return JtopMeter(socket=str(tmp_path / "no.sock"), interval=interval)
        fake = FakeJtop(JTOP_4X)
        fake.board = {"hardware": {"Model": "Jetson Xavier NX"}}
        return JtopMeter(jtop_factory=lambda: fake, interval=interval)

    return (
        Backend("jtop", jtop_row),
        Backend(
            "nvml",
            lambda device, interval: NvmlMeter(device, interval, nvml=FakeNvml(library=nvml)),
            auto_mod.skip_unless_cuda,
        ),
        Backend("rapl", lambda device, interval: RaplMeter(root=str(tmp_path), interval=interval)),
    )


def _broken_backends(monkeypatch, tmp_path):
    monkeypatch.setattr(auto_mod, "BACKENDS", _table(tmp_path, jtop=False, nvml=False, rapl=False))


def test_auto_meter_falls_back_to_time_only_and_says_why(monkeypatch, tmp_path):
    _broken_backends(monkeypatch, tmp_path)
    meter = auto_meter()
    assert isinstance(meter, NullMeter) and meter.source == "none" and not meter.available
    for word in ("NVML", "jtop", "RAPL", "time only"):
        assert word in meter.reason
    assert "skipped" in auto_meter(device="cpu").reason
    meter.start()
    assert math.isnan(meter.stop().energy_j)
    fallback = auto_meter(prefer="rapl")
    assert isinstance(fallback, NullMeter) and "rapl requested" in fallback.reason
    with pytest.raises(HardwareUnavailable):
        auto_meter(prefer="rapl", strict=True)
    assert isinstance(auto_meter(prefer="null"), NullMeter)


def test_auto_meter_order_and_explicit_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(auto_mod, "BACKENDS", _table(tmp_path, jtop=False, nvml=False))
    meter = auto_meter()
    assert isinstance(meter, RaplMeter) and meter.describe().startswith("rapl on CPU package-0")
    (tmp_path / "nvml").mkdir()
    monkeypatch.setattr(auto_mod, "BACKENDS", _table(tmp_path / "nvml", jtop=False))
    assert auto_meter(interval=0.2).source == "nvml-counter"
    assert auto_meter(prefer="rapl").source == "rapl"


@pytest.mark.parametrize(
    "readable, device, described",
    [
        ({}, None, "jtop on Jetson Xavier NX, polled every 1 s"),
        ({"jtop": False}, None, "nvml-counter on Fake RTX 6000 (nvml:0), polled every 0.1 s"),
        ({"jtop": False}, "cuda:0", "nvml-counter on Fake RTX 6000 (nvml:0), polled every 0.1 s"),
        ({"jtop": False}, "cpu", "rapl on CPU package-0, polled every 1 s"),
        ({"jtop": False, "nvml": False}, None, "rapl on CPU package-0, polled every 1 s"),
    ],
)
def test_auto_meter_takes_the_first_readable_row(monkeypatch, tmp_path, readable, device, described):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(nvml_mod, "_torch_pci_bus_id", lambda index: None)
    meter = auto_meter(device=device, backends=_table(tmp_path, **readable))
    assert meter.available and meter.describe() == described


def test_auto_meter_time_only_lists_every_row_in_table_order(tmp_path):
    table = _table(tmp_path, jtop=False, nvml=False, rapl=False)
    reason = auto_meter(backends=table).reason
    where = [reason.index(f"no {name}") for name in ("jtop service", "NVML device", "RAPL package zones")]
    assert where == sorted(where) and reason.endswith(": time only")
    cpu = auto_meter(device="cpu", backends=table).reason
    assert cpu.index("no jtop") < cpu.index("; NVML skipped for device cpu; ") < cpu.index("no RAPL")
    assert auto_meter(backends=()).reason == "no energy backend in the table: time only"


def test_auto_meter_prefer_overrides_the_order(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    table = _table(tmp_path)
    assert auto_meter(prefer="cpu", backends=table).source == "rapl"
    assert auto_meter(prefer="NVML", interval=0.25, backends=table).describe().endswith("every 0.25 s")
    assert auto_meter(prefer="jetson", backends=table).source == "jtop"
    assert auto_meter(prefer="auto", backends=table).source == "jtop"
    assert auto_meter(prefer="none", backends=table).describe() == "none: time only requested (prefer='none')"
    with pytest.raises(ValueError, match=r"prefer='rapl'.*\('jtop', 'nvml', 'none'\)"):
        auto_meter(prefer="rapl", backends=table[:2])


def test_default_table_order_skip_rules_and_meters(monkeypatch):
    assert [row.name for row in auto_mod.BACKENDS] == ["jtop", "nvml", "rapl"]
    assert auto_mod.backend_names() == ("jtop", "nvml", "rapl", "none")
    built = [row.build("cuda:0", 0.3) for row in auto_mod.BACKENDS]
    assert [type(m) for m in built] == [JtopMeter, NvmlMeter, RaplMeter]
    assert all(m.interval == 0.3 for m in built)
    jtop_row, nvml_row, rapl_row = auto_mod.BACKENDS
    assert jtop_row.skip("cpu") is None
    assert nvml_row.skip(None) is None and nvml_row.skip(torch.device("cuda", 1)) is None
    assert nvml_row.skip(torch.device("cpu")) == "NVML skipped for device cpu"
    monkeypatch.setattr(auto_mod.sys, "platform", "darwin")
    assert rapl_row.skip(None) == "RAPL skipped on darwin (Linux powercap only)"
    monkeypatch.setattr(auto_mod.sys, "platform", "linux")
    assert rapl_row.skip(None) is None


def _gearlib_imports(path):
    """gearlib.measure modules a source file imports, anywhere in it (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[2] for n in names if n.startswith("gearlib.measure.")}


def test_measure_modules_import_one_way():
    """energy.py imports no sibling; backends import only energy; nothing imports back up (no circle)."""
    folder = Path(energy_mod.__file__).parent
    graph = {p.stem: _gearlib_imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    assert graph["energy"] == set()
    for backend in ("nvml", "jtop", "rapl"):
        assert graph[backend] == {"energy"}
    assert graph["auto"] == {"energy", "nvml", "jtop", "rapl"}
    assert graph["hardware"] == {"auto"}
    done, visiting = set(), []

    def visit(name):
        assert name not in visiting, f"import circle: {visiting + [name]}"
        if name not in done:
            visiting.append(name)
            for dep in graph.get(name, ()):
                visit(dep)
            visiting.pop()
            done.add(name)

    for name in graph:
        visit(name)


def test_importing_measure_does_not_import_pynvml_or_jtop():
    code = (
        "import sys, torch\n"
        "sys.modules.pop('pynvml', None)  # torch itself may import pynvml; our modules must not\n"
        "import gearlib.measure, gearlib.analysis\n"
        "print('pynvml' in sys.modules, 'jtop' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


# ----- timer ------------------------------------------------------------------------------------------------


def test_timer_laps_and_sync_before_each_clock_read():
    events = []
    clock = FakeClock()

    def read():
        events.append("clock")
        return clock.t

    timer = Timer(sync=lambda: events.append("sync"), clock=read)
    timer.start()
    clock.t = 1.0
    assert timer.lap("a") == pytest.approx(1.0)
    clock.t = 3.0
    timer.lap("b")
    clock.t = 4.0
    timer.lap("a")
    assert timer.stop() == pytest.approx(4.0)
    assert timer.laps == pytest.approx({"a": 2.0, "b": 2.0})
    assert all(events[k - 1] == "sync" for k, e in enumerate(events) if e == "clock")
    assert cuda_sync_fn(None) is None and cuda_sync_fn("cpu") is None
    with Timer() as t:
        pass
    assert t.elapsed >= 0 and not t.running


# ----- latency ----------------------------------------------------------------------------------------------


class SleepyModel(nn.Module):
    """Advances a fake clock by 200 ms on the first call and 2 ms afterwards."""

    def __init__(self, clock: FakeClock, events: list) -> None:
        super().__init__()
        self.clock, self.events, self.calls = clock, events, 0
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.events.append("forward")
        self.clock.t += 0.2 if self.calls == 0 else 0.002
        self.calls += 1
        return x * self.scale


def _latency_with_fake(warmup: int):
    clock, events = FakeClock(), []

    def read():
        events.append("clock")
        return clock.t

    model = SleepyModel(clock, events)
    report = inference_latency(
        model, (1, 3, 8, 8), warmup=warmup, iters=200, sync=lambda: events.append("sync"), clock=read
    )
    return report, events, model


def test_latency_median_two_ms_and_warmup_excluded():
    report, events, model = _latency_with_fake(warmup=20)
    assert report.median_ms == pytest.approx(2.0, abs=0.5)
    assert max(report.times_ms) < 100.0  # the 200 ms first call fell in the warm-up
    assert report.iters == 200 and len(report.times_ms) == 200 and model.calls == 220
    assert all(events[k - 1] == "sync" for k, e in enumerate(events) if e == "clock")
    assert model.training  # mode restored
    cold, _, _ = _latency_with_fake(warmup=0)
    assert max(cold.times_ms) == pytest.approx(200.0)  # without warm-up the first call would count


class StalledModel(nn.Module):
    """2 ms per forward on a fake clock, except 200 ms for calls in `stalled` (another job took the CPU)."""

    def __init__(self, clock: FakeClock, stalled: range) -> None:
        super().__init__()
        self.clock, self.stalled, self.calls = clock, stalled, 0
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.clock.t += 0.2 if self.calls in self.stalled else 0.002
        self.calls += 1
        return x * self.scale


def test_latency_windows_keep_a_stall_out_of_the_headline():
    # Window 2 of 5 (calls 60..119 with 10 warm-up + 20 timed per window) runs during a stall.
    clock, pauses = FakeClock(), []
    model = StalledModel(clock, range(60, 120))
    report = inference_latency(
        model, (1, 3, 8, 8), warmup=10, iters=20, clock=lambda: clock.t, windows=5, pause_s=0.3,
        sleep=pauses.append,
    )  # fmt: skip
    assert model.calls == 5 * 30 and report.iters == 100 and pauses == [0.3] * 4
    assert report.window_medians_ms[2] == pytest.approx(200.0)
    assert report.median_ms == pytest.approx(2.0)
    assert report.spread_ms == pytest.approx(198.0)
    stalled_clock = FakeClock()
    one = inference_latency(
        StalledModel(stalled_clock, range(10, 30)), (1, 3, 8, 8), warmup=10, iters=20, clock=stalled_clock
    )
    assert one.median_ms > 100  # one window only: the stall is the reported latency
    with pytest.raises(ValueError, match="windows=0"):
        inference_latency(model, (1, 3, 8, 8), windows=0)


def test_latency_real_tiny_model_threads_and_batch():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    before = torch.get_num_threads()
    report = inference_latency(model, (1, 3, 16, 16), warmup=2, iters=5, threads=1, batch_size=4)
    assert report.threads == 1 and torch.get_num_threads() == before
    assert report.median_ms > 0 and report.iqr_ms >= 0 and report.device == "cpu"
    assert report.batch_ms_per_sample is not None and report.batch_size == 4
    assert "times_ms" not in report.as_dict()
    with pytest.raises(ValueError):
        inference_latency(model, (1, 3, 16, 16), iters=0)


# ----- parameter counts and hardware ------------------------------------------------------------------------


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))


def test_count_params_excludes_bn_running_stats():
    model = _tiny()
    assert count_params(model) == (3 * 4 * 9 + 4) + (4 + 4) + (4 * 2 + 2)
    model[0].weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 4 + 8 + 10
    assert count_params(model) == 130
    shared = nn.Linear(3, 3)
    assert count_params(nn.Sequential(shared, shared)) == 12


def test_hardware_info_keys():
    info = hardware_info(energy=False)
    for key in (
        "python",
        "cpu_model",
        "cpu_capability",
        "cpu_cores",
        "torch",
        "torchvision",
        "cuda_device",
        "jetson_model",
    ):
        assert key in info
    assert info["torch"] == torch.__version__
    # the kernels' instruction set tells apart machines that share a model name (this one has AVX2 or more)
    if platform.machine() in ("x86_64", "AMD64") and hasattr(torch.backends, "cpu"):
        assert info["cpu_capability"] in ("AVX2", "AVX512", "NO AVX", "DEFAULT")


def test_stalled_epochs_flags_a_paused_or_slowed_epoch_and_nothing_else():
    from gearlib.measure import stall_note, stalled_epochs

    era = [
        {"stage": "era", "epoch": e, "seconds": s}
        for e, s in ((1, 400.0), (2, 2976.0), (3, 740.0), (4, 555.0))
    ]
    slowed = stalled_epochs(era, cpu_device=True)  # an older log: wall time only
    assert [(s["stage"], s["epoch"]) for s in slowed] == [("era", 2)]
    assert "4.6x its stage's median epoch (648 s)" in slowed[0]["reason"]
    assert stall_note(slowed).startswith("time not comparable: era epoch 2 2976 s (4.6x")
    # The CPU-time sign: a growth step (never compared with epochs) that got 0.1 of a core was paused.
    grow = {"stage": "osg2", "epoch": 0, "growth": 1, "seconds": 4839.0, "cpu_seconds": 480.0}
    busy = {"stage": "osg2", "epoch": 1, "seconds": 60.0, "cpu_seconds": 59.0}
    paused = stalled_epochs([grow, busy], cpu_device=True)
    assert [s["epoch"] for s in paused] == ["growth"] and "used 0.10 of a CPU core" in paused[0]["reason"]
    assert "osg2 growth step 4839 s" in stall_note(paused)
    assert stalled_epochs([grow, busy], cpu_device=False) == []  # a GPU run may wait on its device
    # Even epochs, short spans and missing cells (an older log's empty column, NaN) are never flagged.
    even = [{"stage": "s", "epoch": e, "seconds": 60.0 + e, "cpu_seconds": ""} for e in range(4)]
    short = [{"stage": "t", "epoch": e, "seconds": s, "cpu_seconds": 0.0} for e, s in enumerate((1, 1, 4.0))]
    assert stalled_epochs(even + short + [{"stage": "x", "seconds": math.nan}], cpu_device=True) == []
    assert stall_note([]) == ""
