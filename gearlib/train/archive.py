"""The run archive: finished runs of the store as one small JSON record each, to commit and restore later.

The run store (`runs/`) is not committed, so a run trained in one session is gone in the next; its archive
record (config, metrics, epoch log, evaluations; weights only when asked for) brings it back as finished.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from gearlib.measure.timer import stalled_epochs
from gearlib.train import store

FORMAT = 1
_SKIPPED = {store.RESTORED, store.DIVERGED}  # not part of a finished run's record


def record_of(run_dir: Path) -> Dict[str, Any]:
    """The archive record of a finished run: its run name and every text file of its directory."""
    if store.finished_metrics(run_dir) is None:
        raise ValueError(f"{run_dir} has not finished (no {store.METRICS}); only finished runs are archived")
    files = {
        p.name: p.read_text()
        for p in sorted(run_dir.iterdir())
        if p.is_file()
        and p.suffix in (".json", ".csv")
        and not p.name.startswith(".")
        and p.name not in _SKIPPED
    }
    return {"format": FORMAT, "run": run_dir.name, "files": files}


def export_runs(
    dest: Path,
    runs_root: Optional[store.PathLike] = None,
    profile: Optional[str] = None,
    patterns: Sequence[str] = (),
    weights: bool = False,
    seed: Optional[int] = None,
) -> List[Path]:
    """Write the record of every finished run (of `profile` and `seed`, named by one of the glob `patterns`,
    where given) to `dest/<run>.json`, and with `weights` its final weights to `dest/<run>.pt`. A record
    that is already there unchanged is not rewritten. Returns the files written."""
    written: List[Path] = []
    base = store.runs_dir(runs_root)
    folders = sorted(p for p in base.iterdir() if (p / store.METRICS).is_file()) if base.is_dir() else []
    for folder in folders:
        config = store.read_json(folder / store.CONFIG)
        wanted = (
            (not profile or config["profile"]["name"] == profile)
            and (seed is None or config.get("seed") == seed)
            and (not patterns or any(fnmatch.fnmatch(folder.name, p) for p in patterns))
        )
        if not wanted:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        record, path = record_of(folder), dest / f"{folder.name}.json"
        if not path.is_file() or store.read_json(path) != record:
            store.write_json_atomic(path, record)
            written.append(path)
        final, copy = folder / store.FINAL, dest / f"{folder.name}.pt"
        if weights and final.is_file() and not copy.is_file():
            store.copy_atomic(final, copy)
            written.append(copy)
    return written


def restore_runs(source: Path, runs_root: Optional[store.PathLike] = None) -> List[Path]:
    """Recreate, in the run store, every archived run of `source` that the store lacks as a finished run (a
    finished local run is never overwritten). Returns the run directories restored."""
    restored: List[Path] = []
    for path in sorted(source.glob("*.json")) if source.is_dir() else []:
        record = store.read_json(path)
        _check(record, path)
        run_dir = store.runs_dir(runs_root) / record["run"]
        weights = path.with_suffix(".pt")
        if (run_dir / store.METRICS).is_file():
            if restored_without_weights(run_dir) and weights.is_file():  # the archive has gained them since
                store.copy_atomic(weights, run_dir / store.FINAL)
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        store.unlink(run_dir / store.CHECKPOINT)  # a half-trained local copy gives way to the finished run
        store.unlink(run_dir / store.DIVERGED)
        for name, text in record["files"].items():
            if name != store.METRICS:
                store.write_text_atomic(run_dir / name, text)
        if weights.is_file():
            store.copy_atomic(weights, run_dir / store.FINAL)
        store.write_json_atomic(run_dir / store.RESTORED, {"from": str(path), "weights": weights.is_file()})
        store.write_text_atomic(
            run_dir / store.METRICS, record["files"][store.METRICS]
        )  # last: marks it finished
        restored.append(run_dir)
    return restored


def restored_without_weights(run_dir: Path) -> bool:
    """Whether a run directory was restored from an archive record that carried no weights."""
    marker = run_dir / store.RESTORED
    return marker.is_file() and not (run_dir / store.FINAL).is_file()


def final_weights(run_dir: Path) -> Path:
    """The path of a finished run's final weights; a clear error when the run was restored without them."""
    path = run_dir / store.FINAL
    if not path.is_file() and (run_dir / store.RESTORED).is_file():
        source = store.read_json(run_dir / store.RESTORED)["from"]
        raise FileNotFoundError(
            f"run {run_dir.name} was restored from {source}, which holds its metrics but not its weights, "
            f"and this needs the weights (a new evaluation setting, a loss landscape...). Retrain it with "
            f"`gearlib run ... --force`, or archive it with `gearlib runs export DIR --weights` where it trained"
        )
    return path


def _check(record: Any, path: Path) -> None:
    if not isinstance(record, dict) or record.get("format") != FORMAT or not record.get("files"):
        raise ValueError(
            f"{path} is not a run archive record of format {FORMAT} (written by `gearlib runs export`)"
        )
    files = record["files"]
    if store.METRICS not in files or store.CONFIG not in files:
        raise ValueError(
            f"{path} lacks {store.METRICS} or {store.CONFIG}; export it again from its run store"
        )
    expected = store.run_dir_for(json.loads(files[store.CONFIG])).name
    if record["run"] != expected:
        raise ValueError(
            f"{path}: run name {record['run']!r} does not match its config (expected {expected!r}); the "
            f"record was edited or written by another version of gearlib's run hash"
        )


def training_totals(results: Path) -> List[Dict[str, Any]]:
    """What the runs behind a results folder cost to train, per family (gearnn, adversarial, layers): runs,
    training wall seconds and how many runs were flagged as stalled (counted with their wall time as
    measured). It reads the chapters' results (`results/<profile>/*.json`) and the run archive under them
    (`runs/*.json`), counting a run once (by its run hash) however many chapters report it."""
    runs: Dict[str, Dict[str, Any]] = {}
    for path in sorted((results / "runs").glob("*.json")):
        record = store.read_json(path)
        _check(record, path)
        metrics = json.loads(record["files"][store.METRICS])
        config = json.loads(record["files"][store.CONFIG])
        log = store.parse_epoch_log(record["files"].get(store.LOG, ""))
        stalls = stalled_epochs(log, cpu_device=config["profile"]["device"] == "cpu")
        runs[record["run"].rsplit("-", 1)[-1]] = _cost("gearnn", metrics["train_seconds"], stalls)
    for path in sorted(results.glob("*.json")):
        record = store.read_json(path)
        if isinstance(record, dict) and record.get("run_hash") and record.get("train_seconds") is not None:
            stalls = record.get("timing_stalls")
            if stalls is None:  # a result stored before the stall check: judged from its epoch log
                stalls = stalled_epochs(record.get("epochs", []), cpu_device=False)
            family = record.get("family", "gearnn")
            runs.setdefault(record["run_hash"], _cost(family, record["train_seconds"], stalls))
    totals: Dict[str, Dict[str, Any]] = {}
    for run in runs.values():
        row = totals.setdefault(
            run["family"], {"family": run["family"], "runs": 0, "seconds": 0.0, "stalled": 0}
        )
        row["runs"] += 1
        row["seconds"] += run["seconds"]
        row["stalled"] += run["stalled"]
    return [totals[f] for f in sorted(totals)]


def _cost(family: str, seconds: float, stalls: Any) -> Dict[str, Any]:
    return {"family": family, "seconds": float(seconds), "stalled": int(bool(stalls))}
