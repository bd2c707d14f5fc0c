"""Shared pytest fixtures: the JPEG CIFAR-10 copy (when CI unpacked it) and a quiet matplotlib backend."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def jpeg_cifar10_dir() -> Path:
    """The data directory holding `cifar10/train` and `cifar10/test` JPEG class folders, or skip."""
    candidates = [os.environ.get("GEARLIB_DATA", ""), "data"]
    for base in candidates:
        if base and (Path(base) / "cifar10" / "train").is_dir():
            return Path(base)
    pytest.skip(
        "the JPEG CIFAR-10 copy is not unpacked: run `tar xzf ../shared/data/cifar10-jpeg.tar.gz -C "
        "data/cifar10` or set GEARLIB_DATA (.ci/run does this when ../shared/data exists)"
    )


def kill_and_resume(command: List[str], runs_dir: Path) -> subprocess.CompletedProcess:
    """Start `command --runs-dir runs_dir`, SIGKILL it once its first checkpoint exists (before it finishes),
    then run it again to the end; returns the resumed run (stdout is its output)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = command + ["--runs-dir", str(runs_dir)]
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, env=env)
    deadline, checkpoints = time.time() + 120, []
    while time.time() < deadline and not checkpoints and proc.poll() is None:
        checkpoints = list(runs_dir.glob("*/checkpoint.pt"))
        time.sleep(0.05)
    assert checkpoints, "the run never wrote a checkpoint"
    # Kill at once: it is already past its first checkpoint, and the tiny test runs can finish their
    # remaining epochs in a fraction of a second (a fixed wait here made the test flaky).
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(runs_dir.glob("*/metrics.json")), "killed too late: the run had finished"
    resumed = subprocess.run(full, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    return resumed


def run_to_end(command: List[str], runs_dir: Path) -> subprocess.CompletedProcess:
    """`command --runs-dir runs_dir` run uninterrupted (the reference for `kill_and_resume`)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command + ["--runs-dir", str(runs_dir)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def killed_run():
    """(run_to_end, kill_and_resume): a run's reference and its SIGKILLed-then-resumed twin."""
    return run_to_end, kill_and_resume
