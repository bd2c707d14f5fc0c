"""Tests of the experiment runner: every method end to end at a tiny scale, the store, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gearlib.train import store
from gearlib.train.cli import summary
from gearlib.train.runner import make_config, run_experiment

# Smaller than the smoke profile: a unit test trains for seconds, not minutes.
TINY = [
    "train_subset=96",
    "test_subset=40",
    "robust_per_block=4",
    "backbone_width=6",
    "new_neurons=3",
    "batch_size=32",
    "growth_batch_size=32",
    "latency_iters=2",
    "epochs_small=1",
]
REQUIRED = [
    "method", "arch", "dataset", "profile", "clean_acc", "robust_acc", "size_fraction", "params",
    "train_seconds", "train_joules", "stages", "latency_ms_per_sample", "widths", "energy_backend",
    "hardware", "gearlib_version",
]  # fmt: skip


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _run(method: str, runs_dir: Path, extra=(), arch: str = "vgg19"):
    config = make_config(method, "smoke", arch, "synthetic", overrides=[*TINY, *extra])
    return run_experiment(config, runs_dir, progress=False)


@pytest.mark.parametrize(
    "method",
    ["gearnn2", "gearnn1", "small-clean", "small-augmix", "small-era", "small-prime", "gearnn2-n2",
     "vanilla-augmix", "osg-augmix", "phase2-era", "gearnn1-prime"],
)  # fmt: skip
def test_each_method_runs_end_to_end_with_all_metrics(method, runs_dir):
    result = _run(method, runs_dir)
    m = result.metrics
    for key in REQUIRED:
        assert key in m, key
    assert 0 <= m["clean_acc"] <= 100 and 0 <= m["robust_acc"] <= 100
    assert 0 < m["size_fraction"] < 0.2 and m["params"] > 0
    assert m["train_seconds"] > 0 and m["latency_ms_per_sample"] > 0
    assert (m["train_joules"] is None) == (m["energy_backend"] == "none")
    assert m["train_joules"] is not None or m["train_joules_reason"]
    assert [s["name"] for s in m["stages"]]
    assert (result.run_dir / store.METRICS).is_file() and (result.run_dir / store.FINAL).is_file()
    assert not (result.run_dir / store.CHECKPOINT).exists()
    assert summary(m).startswith(method)
    assert result.model()(__import__("torch").rand(2, 3, 32, 32)).shape == (2, 10)


def test_gearnn2_reports_table_6_stages_and_small_copies_its_topology(runs_dir):
    g2 = _run("gearnn2", runs_dir).metrics
    assert [s["name"] for s in g2["stages"]] == ["osg1", "osg2", "era"]
    assert g2["width_history"][0] != g2["widths"]  # it grew
    small = _run("small-augmix", runs_dir).metrics
    assert small["widths"] == g2["widths"]


def test_finished_runs_come_from_the_store_without_training(runs_dir, monkeypatch):
    first = _run("gearnn2", runs_dir)

    def no_training(*args, **kwargs):
        raise AssertionError("a stored run must not train again")

    monkeypatch.setattr("gearlib.train.stage.train_stage", no_training)
    again = _run("gearnn2", runs_dir)
    assert again.cached and again.metrics == first.metrics and again.run_dir == first.run_dir
    assert any(
        row["method"] == "gearnn2" and row["status"] == "finished" for row in store.list_runs(runs_dir)
    )


@pytest.mark.parametrize(
    "method, overrides, match",
    [
        ("gearnn3", [], "unknown method"),
        ("gearnn2", ["epochs_e1=-1"], "epochs_e1"),
        ("gearnn2", ["colour=red"], "unknown profile setting"),
        ("gearnn2", ["loader=gpu"], "loader"),
        ("gearnn2", ["seed=one"], "seed"),
        ("gearnn2", ["growth_ratio_scale=-1"], "growth_ratio_scale"),
        ("gearnn2-prime", ["loader=per-sample"], "per-sample"),
    ],
)
def test_invalid_configurations_fail_before_training(method, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(method, "smoke", "vgg19", "synthetic", overrides=overrides)
    with pytest.raises(ValueError, match="unknown arch"):
        make_config("gearnn2", "smoke", "alexnet", "synthetic")
    with pytest.raises(ValueError, match="unknown dataset"):
        make_config("gearnn2", "smoke", "vgg19", "mnist")


def test_per_sample_loader_runs_the_same_method(runs_dir):
    m = _run("gearnn2", runs_dir, extra=["loader=per-sample", "num_workers=0"]).metrics
    assert m["loader"] == "per-sample" and m["clean_acc"] >= 0


def test_cli_run_and_runs(runs_dir, capsys):
    from gearlib.cli import main

    args = ["run", "gearnn2", "--profile", "smoke", "--dataset", "synthetic", "--runs-dir", str(runs_dir)]
    args += [a for kv in TINY for a in ("--set", kv)]
    assert main(args + ["--json", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["method"] == "gearnn2"
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    assert "gearnn2" in capsys.readouterr().out
    assert main(["run", "gearnn2", "--set", "bogus=1", "--runs-dir", str(runs_dir)]) == 2
    assert "unknown profile setting" in capsys.readouterr().err


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path):
    """SIGKILL a run after its first checkpoint; the resumed run ends with the uninterrupted run's metrics."""
    base = ["run", "gearnn2", "--profile", "smoke", "--dataset", "synthetic", "--no-progress", "--json"]
    sets = [a for kv in [*TINY, "epochs_e1=2", "epochs_e2=2", "epochs_er=2"] for a in ("--set", kv)]
    command = [sys.executable, "-m", "gearlib.cli", *base, *sets]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    clean = subprocess.run(
        command + ["--runs-dir", str(tmp_path / "a")], capture_output=True, text=True, env=env
    )
    assert clean.returncode == 0, clean.stderr
    reference = json.loads(clean.stdout)

    killed_dir = tmp_path / "b"
    proc = subprocess.Popen(command + ["--runs-dir", str(killed_dir)], stdout=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    checkpoints = []
    while time.time() < deadline and not checkpoints and proc.poll() is None:
        checkpoints = list(killed_dir.glob(f"*/{store.CHECKPOINT}"))
        time.sleep(0.05)
    assert checkpoints, "the run never wrote a checkpoint"
    time.sleep(0.3)  # let it get into a later epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(killed_dir.glob(f"*/{store.METRICS}")), "killed too late: the run had finished"
    resumed = subprocess.run(
        command + ["--runs-dir", str(killed_dir)], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    for key in ("clean_acc", "robust_acc", "widths", "params", "size_fraction"):
        assert result[key] == reference[key], key
    assert [s["name"] for s in result["stages"]] == [s["name"] for s in reference["stages"]]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "quadro", "jetson"])
def test_every_method_arch_and_dataset_configures_on_every_profile(profile):
    from gearlib.train.methods import METHODS

    for arch in ("vgg19", "mobilenet_v1", "resnet18"):
        for dataset in ("cifar10", "cifar100", "tinyimagenet"):
            for method in METHODS:
                make_config(method, profile, arch, dataset)


def test_jetson_caps_an_infeasible_growth_ratio_instead_of_failing():
    from gearlib.train.methods import plan_for

    config = make_config("gearnn2", "jetson", "mobilenet_v1", "cifar100")
    _, plan = plan_for("gearnn2", config.profile, "cifar100", "mobilenet_v1")
    gamma = [s.growth_ratio for s in plan if s.kind == "grow"][0]
    assert 1.8 < gamma < 2.0  # Table 1 says 2.0; K = 40 and c_0 = 45 allow at most 1 + 40/45
