"""Tests of the book runner's pieces: chapter selection, parameter parsing and refusal, fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gearlib import book
from gearlib.experiments import open_chapter
from gearlib.train import store

ROOT = Path(__file__).resolve().parents[2]


def test_every_chapter_is_listed_in_the_toc_and_has_a_parameters_cell():
    toc = (ROOT / "_toc.yml").read_text()
    sources = book.chapters(ROOT)
    assert len(sources) >= 5
    for source in sources:
        assert f"book/chapters/{source.stem}" in toc, source.name
        text = source.read_text()
        assert '# %% tags=["parameters", "remove-cell"]' in text, source.name
        assert "open_chapter(globals()" in text, source.name
        assert "kernelspec" in text and "name: gearlib" in text, source.name


def test_select_and_parse_params():
    sources = book.chapters(ROOT)
    assert book.select(sources, ["01"])[0].stem.startswith("01_")
    assert book.select(sources, []) == sources
    with pytest.raises(ValueError, match="does not name a chapter"):
        book.select(sources, ["99"])
    assert book.parse_params(["epochs=3", "replay=true", "dataset=cifar10"]) == {
        "epochs": 3,
        "replay": True,
        "dataset": "cifar10",
    }
    with pytest.raises(ValueError, match="key=value"):
        book.parse_params(["oops"])


def test_unknown_notebook_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown parameter"):
        book.check_parameters("01_motivation", {"profile": {}, "seed": {}}, {"profile": "smoke", "epochz": 3})
    book.check_parameters("01_motivation", {"profile": {}, "seed": {}}, {"profile": "smoke"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['epochz'\]"):
        open_chapter({"profile": "smoke", "dataset": "synthetic", "epochz": 3, "In": [], "_": None})
    chapter = open_chapter(
        {"profile": "smoke", "dataset": "synthetic", "extra_knob": 1}, extra=["extra_knob"]
    )
    assert chapter.dataset == "synthetic" and "smoke" in chapter.banner()
    with pytest.raises(ValueError, match="unknown profile"):
        open_chapter({"profile": "laptop", "dataset": "synthetic"})


def test_fingerprint_changes_with_source_and_parameters(tmp_path):
    (tmp_path / "gearlib").mkdir()
    (tmp_path / "gearlib" / "a.py").write_text("x = 1\n")
    source = tmp_path / "01_x.py"
    source.write_text("print(1)\n")
    first = book.fingerprint(source, {"profile": "smoke"}, tmp_path)
    assert first == book.fingerprint(source, {"profile": "smoke"}, tmp_path)
    assert first != book.fingerprint(source, {"profile": "cpu"}, tmp_path)
    (tmp_path / "gearlib" / "a.py").write_text("x = 2\n")
    assert first != book.fingerprint(source, {"profile": "smoke"}, tmp_path)


def test_replay_of_a_missing_result_is_an_error_not_a_retrain(tmp_path):
    from gearlib.experiments import Chapter

    chapter = Chapter(profile="smoke", dataset="synthetic", replay=True, results_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="never retrained"):
        chapter.run("gearnn2")


def test_profile_parameters_reach_only_chapters_that_declare_them():
    sources = {s.stem: s for s in book.chapters(ROOT)}
    with_seeds = book.notebook_parameters_of(sources["06_main_results"])
    assert "seeds" in with_seeds and "seeds" in book.PROFILE_PARAMETERS["smoke"]
    assert "seeds" not in book.notebook_parameters_of(sources["01_motivation"])


def test_live_chapters_get_the_archived_runs_of_their_profile(tmp_path, monkeypatch, capsys):
    config = {
        "method": "gearnn2",
        "arch": "vgg19",
        "dataset": "cifar10",
        "profile": {"name": "cpu"},
        "seed": 0,
    }
    name = store.run_dir_for(config).name
    record = {"format": 1, "run": name, "files": {"config.json": json.dumps(config), "metrics.json": "{}"}}
    (tmp_path / "results" / "cpu" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "cpu" / "runs" / f"{name}.json").write_text(json.dumps(record))
    monkeypatch.delenv("GEARLIB_RUNS", raising=False)
    monkeypatch.chdir(tmp_path.parent)  # the store is found under the book's root, not the caller's cwd
    book.restore_archived_runs(tmp_path, "cpu")
    assert (tmp_path / "runs" / name / "metrics.json").is_file()
    assert "restored 1 archived run(s)" in capsys.readouterr().out
    book.restore_archived_runs(tmp_path, "smoke")  # a profile with no archive: nothing to do
