"""Tests of the run archive: a finished run exported as a record comes back finished in an empty store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gearlib.cli import main
from gearlib.train import archive, store
from gearlib.train.runner import make_config, run_experiment

TINY = ["train_subset=64", "test_subset=32", "robust_per_block=2", "backbone_width=8", "new_neurons=3"]
TINY += ["batch_size=32", "growth_batch_size=32", "latency_iters=2", "epochs_small=1"]


def _config(method: str, extra=()):
    return make_config(method, "smoke", "vgg19", "synthetic", overrides=[*TINY, *extra])


def _no_training(*args, **kwargs):
    raise AssertionError("a restored run must not train again")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A store with a GEARnn-2 run and the Small(clean) run that copies its topology."""
    root = tmp_path_factory.mktemp("runs")
    run_experiment(_config("small-clean"), root, progress=False)
    return root


def test_an_exported_run_is_restored_finished_and_its_dependants_need_no_training(
    trained, tmp_path, monkeypatch
):
    first = run_experiment(_config("small-clean"), trained, progress=False)
    written = archive.export_runs(tmp_path / "archive", trained)
    assert sorted(p.suffix for p in written) == [".json", ".json"]  # GEARnn-2 and Small(clean), no weights
    assert archive.export_runs(tmp_path / "archive", trained) == []  # unchanged records are not rewritten

    empty = tmp_path / "store"
    restored = archive.restore_runs(tmp_path / "archive", empty)
    assert sorted(r.name for r in restored) == sorted(p.stem for p in written)
    monkeypatch.setattr("gearlib.train.plan_run.train_stage", _no_training)
    again = run_experiment(_config("small-clean"), empty, progress=False)
    assert again.cached and again.metrics == first.metrics
    assert json.dumps(again.epochs) == json.dumps(first.epochs)  # the same log (NaN joules: no meter here)
    assert {row["status"] for row in store.list_runs(empty)} == {"finished (restored, no weights)"}
    assert archive.restore_runs(tmp_path / "archive", empty) == []  # restoring twice changes nothing

    with pytest.raises(FileNotFoundError, match="restored from .* not its weights.*--force"):
        again.model()
    with pytest.raises(FileNotFoundError, match="not its weights"):  # a new evaluation setting needs them
        run_experiment(_config("small-clean", ["robust_per_block=1"]), empty, progress=False)


def test_weights_travel_when_asked_for_and_a_local_run_is_never_overwritten(trained, tmp_path):
    archive.export_runs(tmp_path / "a", trained, patterns=["small-clean-*"], weights=True)
    assert sorted(p.suffix for p in (tmp_path / "a").iterdir()) == [".json", ".pt"]
    empty = tmp_path / "store"
    (run_dir,) = archive.restore_runs(tmp_path / "a", empty)
    assert store.list_runs(empty)[0]["status"] == "finished (restored)"
    result = run_experiment(_config("small-clean", ["robust_per_block=1"]), empty, progress=False)
    assert (
        result.run_dir == run_dir and result.metrics["robust_per_block"] == 1
    )  # evaluated anew from weights

    local = trained / run_dir.name
    before = (local / store.METRICS).read_text()
    record = json.loads((tmp_path / "a" / f"{run_dir.name}.json").read_text())
    record["files"][store.METRICS] = before.replace('"clean_acc"', '"clean_acc_edited"')
    (tmp_path / "a" / f"{run_dir.name}.json").write_text(json.dumps(record))
    assert archive.restore_runs(tmp_path / "a", trained) == []
    assert (local / store.METRICS).read_text() == before


def test_a_half_trained_local_run_gives_way_to_the_archived_finished_one(trained, tmp_path):
    archive.export_runs(tmp_path / "a", trained, patterns=["gearnn2-*"])
    name = next((tmp_path / "a").glob("*.json")).stem
    partial = tmp_path / "store" / name
    partial.mkdir(parents=True)
    (partial / store.CHECKPOINT).write_bytes(b"half")
    archive.restore_runs(tmp_path / "a", tmp_path / "store")
    assert not (partial / store.CHECKPOINT).exists() and (partial / store.METRICS).is_file()


def test_bad_records_are_refused_with_the_reason(trained, tmp_path):
    archive.export_runs(tmp_path / "a", trained, patterns=["gearnn2-*"])
    path = next((tmp_path / "a").glob("*.json"))
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "run": record["run"][:-12] + "0" * 12}))
    with pytest.raises(ValueError, match="does not match its config"):
        archive.restore_runs(tmp_path / "a", tmp_path / "store")
    path.write_text(json.dumps({"clean_acc": 50.0}))
    with pytest.raises(ValueError, match="not a run archive record"):
        archive.restore_runs(tmp_path / "a", tmp_path / "store")
    with pytest.raises(ValueError, match="has not finished"):
        archive.record_of(tmp_path)


def test_cli_exports_by_profile_and_imports(trained, tmp_path, capsys):
    assert main(["runs", "export", str(tmp_path / "a"), "--profile", "cpu", "--runs-dir", str(trained)]) == 0
    assert "0 file(s) written" in capsys.readouterr().out  # the tiny runs are smoke-profile runs
    assert (
        main(["runs", "export", str(tmp_path / "a"), "--profile", "smoke", "--runs-dir", str(trained)]) == 0
    )
    assert "2 file(s) written" in capsys.readouterr().out
    assert main(["runs", "export", str(tmp_path / "b"), "--seed", "1", "--runs-dir", str(trained)]) == 0
    assert "0 file(s) written" in capsys.readouterr().out  # both runs are seed 0
    assert main(["runs", "import", str(tmp_path / "a"), "--runs-dir", str(tmp_path / "store")]) == 0
    assert "2 run(s) restored" in capsys.readouterr().out
    assert main(["runs", "--runs-dir", str(tmp_path / "store")]) == 0
    assert "restored, no weights" in capsys.readouterr().out
    assert main(["runs", "import", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder of run records" in capsys.readouterr().err


def test_training_totals_count_each_run_once_per_family(trained, tmp_path, capsys):
    results = tmp_path / "results"
    archive.export_runs(results / "runs", trained)
    small = run_experiment(_config("small-clean"), trained, progress=False)
    archived = sum(store.read_json(p / store.METRICS)["train_seconds"] for p in trained.iterdir())
    # A chapter's result of an archived run counts once; another family's run counts in its own row.
    chapter = {"run_hash": small.run_dir.name.rsplit("-", 1)[-1], "train_seconds": 1e6, "family": "gearnn"}
    (results / "small-clean-vgg19-synthetic-seed0.json").write_text(json.dumps(chapter))
    (results / "float-seed0.json").write_text(
        json.dumps({"run_hash": "abc", "train_seconds": 30.0, "family": "adversarial"})
    )
    (results / "landscape.json").write_text(json.dumps({"alphas": [0.0]}))  # not a run: skipped
    rows = {r["family"]: r for r in archive.training_totals(results)}
    assert rows["gearnn"]["runs"] == 2 and rows["gearnn"]["seconds"] == pytest.approx(archived)
    assert rows["adversarial"] == {"family": "adversarial", "runs": 1, "seconds": 30.0, "stalled": 0}
    assert main(["runs", "total", str(results)]) == 0
    total = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("all ")]
    assert total and total[0][1] == "3"  # runs: two archived gearnn runs and the adversarial one
