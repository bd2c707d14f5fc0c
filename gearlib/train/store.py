"""The run store: every run lives in `<runs_dir>/<method>-<arch>-<dataset>-<profile>-<hash>/`.

The hash covers what training reads, so asking again for a finished run returns it without training; each
evaluation setting has its own `eval-<hash>.json` inside. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Union

import torch

try:
    import fcntl
except ImportError:  # Windows: runs are not locked (see training_lock)
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, "os.PathLike[str]"]

CONFIG = "config.json"
METRICS = "metrics.json"
WIDTHS = "widths.json"
LOG = "epochs.csv"
CHECKPOINT = "checkpoint.pt"
DIVERGED = "diverged.json"  # the message of a run whose training loss became non-finite
FINAL = "final.pt"
RESTORED = "restored.json"  # marks a run recreated from its archive record (gearlib.train.archive)
EVALUATION_PREFIX = "eval-"
LOCK = "training.lock"  # flock'ed by the process training the run now, which writes its pid and host in it


def runs_dir(path: Optional[PathLike] = None) -> Path:
    """The runs directory: the argument, then $GEARLIB_RUNS, then ./runs."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("GEARLIB_RUNS")
    return Path(env).expanduser() if env else Path("runs")


def config_hash(config: Dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_dir_for(config: Dict[str, Any], root: Optional[PathLike] = None) -> Path:
    name = f"{config['method']}-{config['arch']}-{config['dataset']}-{config['profile']['name']}"
    return runs_dir(root) / f"{name}-{config_hash(config)}"


def evaluation_name(settings: Dict[str, Any]) -> str:
    """File name of a run's evaluation under `settings` (the profile's evaluation fields)."""
    return f"{EVALUATION_PREFIX}{config_hash(settings)}.json"


def latest_evaluation(run_dir: Path) -> Dict[str, Any]:
    """The most recently written evaluation of a run, or {} if it has none."""
    files = sorted(run_dir.glob(f"{EVALUATION_PREFIX}*.json"), key=lambda f: f.stat().st_mtime)
    return read_json(files[-1]) if files else {}


def _temporary(path: Path) -> Path:
    """A per-process name beside `path` (two streams may write the same run at once), renamed over it."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` so that a reader sees the old file or the whole new one, never half of it."""
    tmp = _temporary(path)
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file as write_text_atomic writes one."""
    tmp = _temporary(target)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def save_torch_atomic(path: Path, obj: Any) -> None:
    tmp = _temporary(path)
    torch.save(obj, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_torch(path: Path) -> Any:
    """Load a checkpoint with weights_only=True (tensors, dicts, lists and numbers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_json(path: Path) -> Any:
    with open(path) as handle:
        return json.load(handle)


def finished_metrics(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The metrics of a finished run, or None if the run has not finished."""
    path = run_dir / METRICS
    return read_json(path) if path.is_file() else None


def list_runs(root: Optional[PathLike] = None) -> List[Dict[str, Any]]:
    """One row per run directory: identity, status, and headline metrics when finished."""
    rows = []
    base = runs_dir(root)
    if not base.is_dir():
        return rows
    for folder in sorted(p for p in base.iterdir() if (p / CONFIG).is_file()):
        config = read_json(folder / CONFIG)
        metrics = finished_metrics(folder) or {}
        metrics = {**metrics, **latest_evaluation(folder)} if metrics else metrics
        rows.append(
            {
                "run": folder.name,
                "method": config["method"],
                "arch": config["arch"],
                "dataset": config["dataset"],
                "profile": config["profile"]["name"],
                "seed": config.get("seed"),
                "status": _status(folder, metrics),
                "clean_acc": metrics.get("clean_acc"),
                "robust_acc": metrics.get("robust_acc"),
                "size_fraction": metrics.get("size_fraction"),
                "train_seconds": metrics.get("train_seconds"),
                "train_joules": metrics.get("train_joules"),
            }
        )
    return rows


def _status(folder: Path, metrics: Dict[str, Any]) -> str:
    if not metrics:
        holder = lock_holder(folder)
        if holder is not None:
            return f"training (pid {holder['pid']} on {holder['host']})"
        return "partial" if (folder / CHECKPOINT).is_file() else "new"
    if not (folder / RESTORED).is_file():
        return "finished"
    return "finished (restored)" if (folder / FINAL).is_file() else "finished (restored, no weights)"


def write_epoch_log(run_dir: Path, log: List[Dict[str, Any]]) -> None:
    """The epoch log as epochs.csv (one row per epoch or growth step), written atomically."""
    keys: List[str] = []
    for entry in log:
        keys.extend(k for k in entry if k not in keys)
    tmp = run_dir / f".{LOG}.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(log)
    tmp.replace(run_dir / LOG)


def read_epoch_log(run_dir: Path) -> List[Dict[str, Any]]:
    """The rows of a run's epochs.csv (numbers parsed), or [] before its first epoch."""
    path = run_dir / LOG
    return parse_epoch_log(path.read_text()) if path.is_file() else []


def parse_epoch_log(text: str) -> List[Dict[str, Any]]:
    """The rows of an epochs.csv text (numbers parsed), e.g. from a run's archive record."""
    return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def _number(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def unlink(path: Path) -> None:
    """Remove a file if it exists."""
    if path.exists():
        path.unlink()


def lock_holder(run_dir: Path) -> Optional[Dict[str, Any]]:
    """{"pid", "host"} of the process training the run now (it holds the run's training lock), or None.

    The lock is an advisory `flock` on `training.lock`, so it ends with its process, however that process ends:
    a killed or crashed run never leaves a stale lock behind.
    The lock file is opened read-only (flock needs no write access), so a run store on a read-only disk or
    someone else's store can still be listed; one that cannot be read at all counts as not locked."""
    path = run_dir / LOCK
    if fcntl is None or not path.is_file():
        return None
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _holder(handle)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except PermissionError:  # not even readable: nothing to say about it
        pass
    return None


def _holder(handle: Any) -> Dict[str, Any]:
    handle.seek(0)
    try:
        return json.loads(handle.read())
    except ValueError:  # the holder is writing its name right now
        return {"pid": "?", "host": "?"}


_HELD: Set[str] = set()  # the lock files this process holds (a second flock of one would wait on itself)


@contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's training lock: one process at a time trains (or resumes) a run directory.

    A second process asking for the same run says who holds it and waits; the caller then re-reads the store and
    finds the run finished instead of training it again. The lock is released when its process exits, however it
    exits. Where `fcntl` is missing (Windows) runs are not locked."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    if fcntl is None:
        yield
        return
    if str(path) in _HELD:
        raise RuntimeError(
            f"this process already trains {run_dir.name}: a run cannot wait for itself ({path})"
        )
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            print(
                f"gearlib: {run_dir.name} is being trained by pid {holder['pid']} on {holder['host']}; waiting for it",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        handle.flush()
        _HELD.add(str(path))
        try:
            yield
        finally:
            _HELD.discard(str(path))
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
