"""Tests of the run store's training lock: one process trains a run; a second one waits and reads its result.

The holder is a separate Python process (the lock is per process), driven through files so nothing is timed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gearlib.train import store
from gearlib.train.runner import make_config, train_run

pytestmark = pytest.mark.skipif(store.fcntl is None, reason="runs are locked with fcntl.flock (POSIX only)")

# Holds the lock of the run directory argv[1], says so on stdout, then waits for argv[1]/go; if it
# appears, writes argv[1]/metrics.json as a finished run would and lets go of the lock.
HOLDER = """
import json, sys, time
from pathlib import Path
from gearlib.train import store
run_dir = Path(sys.argv[1])
with store.training_lock(run_dir):
    print("held", flush=True)
    while not (run_dir / "go").exists():
        time.sleep(0.05)
    store.write_json_atomic(run_dir / store.METRICS, {"clean_acc": 0.5, "by": "holder"})
"""


def _hold(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _config():
    return make_config("gearnn2", "smoke", "vgg19", "synthetic", overrides=["train_subset=96"])


def test_a_second_process_waits_for_the_run_in_training_and_reads_what_it_stored(
    tmp_path, monkeypatch, capfd
):
    config = _config()
    run_dir = store.run_dir_for(config.training_dict(), tmp_path)
    holder = _hold(run_dir)
    assert store.lock_holder(run_dir)["pid"] == holder.pid

    def no_training(*args, **kwargs):
        raise AssertionError("the run another process trains must not be trained again")

    monkeypatch.setattr("gearlib.train.runner._train_or_raise", no_training)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(out=train_run(config, tmp_path, progress=False)))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "train_run must wait while another process holds the run"
    (run_dir / "go").touch()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and holder.wait(timeout=60) == 0
    got_dir, metrics, from_store = result["out"]
    assert got_dir == run_dir and from_store and metrics == {"clean_acc": 0.5, "by": "holder"}
    assert f"is being trained by pid {holder.pid}" in capfd.readouterr().err
    assert store.lock_holder(run_dir) is None


def test_a_killed_trainer_leaves_no_stale_lock(tmp_path):
    run_dir = tmp_path / "run"
    holder = _hold(run_dir)
    (run_dir / store.CONFIG).write_text(json.dumps(_config().training_dict()))
    assert store.list_runs(tmp_path)[0]["status"].startswith(f"training (pid {holder.pid}")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert store.lock_holder(run_dir) is None
    assert store.list_runs(tmp_path)[0]["status"] == "new"
    taken = threading.Event()

    def take() -> None:
        with store.training_lock(run_dir):
            taken.set()

    threading.Thread(target=take, daemon=True).start()
    assert taken.wait(timeout=60), "a dead process's lock must not block the run"


def test_a_process_cannot_wait_for_its_own_run(tmp_path):
    held = store.training_lock(tmp_path / "run")
    again = store.training_lock(tmp_path / "run")
    with held, pytest.raises(RuntimeError, match="cannot wait for itself"), again:
        pass
    with store.training_lock(tmp_path / "run"):  # released: the same process may lock it again
        pass


def test_a_read_only_run_store_still_lists_who_trains(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    holder = _hold(run_dir)
    (run_dir / store.CONFIG).write_text(json.dumps(_config().training_dict()))

    def read_only_open(path, mode="r", *args, **kwargs):  # the tests run as root, so chmod would not bite
        if any(c in mode for c in "wax+"):
            raise PermissionError(13, "Read-only file system", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(store, "open", read_only_open, raising=False)
    try:
        assert store.lock_holder(run_dir)["pid"] == holder.pid
        assert store.list_runs(tmp_path)[0]["status"].startswith(f"training (pid {holder.pid}")
    finally:
        (run_dir / "go").touch()
        holder.wait(timeout=60)
    assert store.lock_holder(run_dir) is None
