"""Tests of the experiment runner: every method end to end at a tiny scale, the store, kill-and-resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from gearlib.data import load_dataset
from gearlib.evaluate import clean_accuracy
from gearlib.experiments import metrics_table, stage_table
from gearlib.profiles import get_profile
from gearlib.train import store
from gearlib.train.cli import summary
from gearlib.train.methods import METHODS, plan_for
from gearlib.train.runner import _source_config, evaluate_run, make_config, run_experiment

# Methods whose plan starts by taking GEARnn-2's final widths (a topology step).
SMALL_TOPOLOGY = ("small-", "vanilla-", "phase1-", "phase2-")

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
    assert 0 <= m["robust_acc"] <= 100
    # The stored clean accuracy is that of the stored network, evaluated independently here.
    x, y = load_dataset("synthetic", "test", subset=40, seed=0).tensors()
    assert m["clean_acc"] == pytest.approx(clean_accuracy(result.model(), x, y), abs=1e-9)
    assert 0 < m["size_fraction"] < 0.2 and m["params"] > 0
    assert m["train_seconds"] > 0 and m["latency_ms_per_sample"] > 0
    assert (m["train_joules"] is None) == (m["energy_backend"] == "none")
    assert m["train_joules"] is not None or m["train_joules_reason"]
    assert [s["name"] for s in m["stages"]]
    assert m["timing_stalls"] == []  # epochs under STALL_MIN_SECONDS are never judged
    assert result.epochs and all(0 <= e["cpu_seconds"] for e in result.epochs)  # logged beside wall time
    assert (result.run_dir / store.METRICS).is_file() and (result.run_dir / store.FINAL).is_file()
    assert not (result.run_dir / store.CHECKPOINT).exists()
    assert summary(m).startswith(method)
    assert result.model()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_gearnn2_reports_table_6_stages_and_small_copies_its_topology(runs_dir):
    g2 = _run("gearnn2", runs_dir).metrics
    assert [s["name"] for s in g2["stages"]] == ["osg1", "osg2", "era"]
    assert g2["width_history"][0] != g2["widths"]  # it grew
    small = _run("small-augmix", runs_dir).metrics
    assert small["widths"] == g2["widths"]
    assert small["plan"][0] == {**small["plan"][0], "kind": "topology", "source": "gearnn2"}
    assert small["topology_from"]["method"] == "gearnn2" and small["topology_from"]["widths"] == g2["widths"]
    assert [s["name"] for s in small["stages"]] == ["train"]  # GEARnn-2's costs stay in its own run
    assert len(g2["growth"]) == 1 and g2["growth"][0]["widths_after"] == g2["widths"]


def test_finished_runs_come_from_the_store_without_training(runs_dir, monkeypatch):
    first = _run("gearnn2", runs_dir)

    def no_training(*args, **kwargs):
        raise AssertionError("a stored run must not train again")

    monkeypatch.setattr("gearlib.train.plan_run.train_stage", no_training)
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


def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, killed_run):
    """SIGKILL a run after its first checkpoint; the resumed run ends with the uninterrupted run's metrics."""
    base = ["run", "gearnn2", "--profile", "smoke", "--dataset", "synthetic", "--no-progress", "--json"]
    sets = [a for kv in [*TINY, "epochs_e1=2", "epochs_e2=2", "epochs_er=2"] for a in ("--set", kv)]
    command = [sys.executable, "-m", "gearlib.cli", *base, *sets]
    run_to_end, kill_and_resume = killed_run
    reference = json.loads(run_to_end(command, tmp_path / "a").stdout)
    result = json.loads(kill_and_resume(command, tmp_path / "b").stdout)
    for key in ("clean_acc", "robust_acc", "widths", "params", "size_fraction"):
        assert result[key] == reference[key], key
    assert [s["name"] for s in result["stages"]] == [s["name"] for s in reference["stages"]]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "quadro", "jetson"])
def test_every_method_arch_and_dataset_configures_on_every_profile(profile):
    for arch in ("vgg19", "mobilenet_v1", "resnet18"):
        for dataset in ("cifar10", "cifar100", "tinyimagenet"):
            for method in (m for m in METHODS if METHODS[m].family == "gearnn"):
                config = make_config(method, profile, arch, dataset)
                _, plan = plan_for(method, config.profile, dataset, arch)
                assert all(s.epochs >= 1 for s in plan if s.kind == "train"), (method, plan)
                cap = 1 + (config.profile.new_neurons - 1) / config.profile.backbone_width
                assert all(0 < s.growth_ratio <= cap for s in plan if s.kind == "grow"), (method, plan)
                assert (plan[0].kind == "topology") == method.startswith(SMALL_TOPOLOGY), method


@pytest.mark.parametrize("profile", ["smoke", "cpu", "quadro", "jetson"])
def test_every_adversarial_method_configures_on_every_profile(profile):
    adversarial = [m for m in METHODS if METHODS[m].family == "adversarial"]
    assert {"pgd-at", "oat", "float", "smart"} <= set(adversarial)
    for arch in (None, "resnet10", "resnet18", "resnet34"):
        for dataset in ("cifar10", "cifar100", "tinyimagenet"):
            for method in adversarial:
                config = make_config(method, profile, arch, dataset)
                (step,) = plan_for(method, config.profile, dataset, config.arch)[1]
                assert step.kind == "adversarial" and step.epochs == config.profile.adv_epochs >= 1
                assert config.arch == (arch or get_profile(profile).adv_arch)


def test_jetson_caps_an_infeasible_growth_ratio_instead_of_failing():
    config = make_config("gearnn2", "jetson", "mobilenet_v1", "cifar100")
    _, plan = plan_for("gearnn2", config.profile, "cifar100", "mobilenet_v1")
    gamma = [s.growth_ratio for s in plan if s.kind == "grow"][0]
    assert 1.8 < gamma < 2.0  # Table 1 says 2.0; K = 40 and c_0 = 45 allow at most 1 + 40/45


def test_changing_an_evaluation_setting_reuses_the_trained_run(runs_dir, monkeypatch):
    first = _run("gearnn2", runs_dir)
    monkeypatch.setattr("gearlib.train.plan_run.train_stage", _no_training)
    again = _run("gearnn2", runs_dir, extra=["latency_iters=3", "robust_per_block=2"])
    assert again.run_dir == first.run_dir and not again.cached  # trained weights reused, evaluated anew
    assert again.metrics["widths"] == first.metrics["widths"]
    assert again.metrics["clean_acc"] == first.metrics["clean_acc"]  # same weights, same test set
    assert again.metrics["robust_per_block"] == 2 and first.metrics["robust_per_block"] == 4
    assert len(list(first.run_dir.glob(f"{store.EVALUATION_PREFIX}*.json"))) == 2


def _no_training(*args, **kwargs):
    raise AssertionError("a stored run must not train again")


def test_an_epoch_setting_that_changes_nothing_keeps_the_run_identity():
    def identity(method, *overrides):
        return make_config(method, "cpu", "vgg19", "cifar10", overrides=list(overrides)).training_dict()

    epochs = get_profile("cpu").epochs("gearnn2", "cifar10")
    assert identity("gearnn2", f"epochs_er={epochs['ER']}") == identity("gearnn2")  # E_R is that anyway
    assert identity("gearnn2", "epochs_small=3") == identity("gearnn2")  # GEARnn-2 trains no Small stage
    assert identity("gearnn2", f"epochs_er={epochs['ER'] + 1}") != identity("gearnn2")
    # Small(AugMix) copies GEARnn-2's topology: E_1 shapes that run, so it is part of the Small run too
    assert identity("small-augmix", f"epochs_e1={epochs['E1'] + 1}") != identity("small-augmix")
    swept = make_config("small-augmix", "cpu", "vgg19", "cifar10", overrides=["epochs_small=2"])
    assert identity("small-augmix", "epochs_small=2") != identity("small-augmix")
    assert _source_config(swept, "gearnn2").training_dict() == identity("gearnn2")  # one GEARnn-2 for a sweep


def test_jsd_lambda_reaches_the_training_loss(runs_dir):
    """--set jsd_lambda=6 changes the loss of the ERA phase (and the run), not only the run's name."""
    base = _run("gearnn2", runs_dir).epochs
    halved = _run("gearnn2", runs_dir, extra=["jsd_lambda=6"]).epochs
    era = [(a["loss"], b["loss"]) for a, b in zip(base, halved) if a.get("stage") == "era"]
    clean = [(a["loss"], b["loss"]) for a, b in zip(base, halved) if a.get("stage") == "osg1"]
    assert era and all(b < a for a, b in era)  # a smaller weight on a positive JSD term
    assert clean and all(a == b for a, b in clean)  # clean phases have no JSD term


def test_a_diverging_run_stops_with_a_message_and_is_not_stored_as_finished(tmp_path, monkeypatch, capsys):
    def nan_loss(jsd_lambda):
        return lambda logits, y: logits.sum() * float("nan")

    monkeypatch.setattr("gearlib.train.plan_run.default_loss_fn", nan_loss)
    from gearlib.cli import main

    args = ["run", "gearnn2", "--dataset", "synthetic", "--runs-dir", str(tmp_path), "--no-progress"]
    assert main(args + [a for kv in TINY for a in ("--set", kv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "gearlib run: error: gearnn2 osg1 (clean) epoch 1/1: the training loss became non-finite"
    )
    assert not list(tmp_path.glob(f"*/{store.METRICS}"))


class _ConstantNet(torch.nn.Module):
    """Predicts class 3 for every image (what a collapsed network does)."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Parameter((torch.arange(10) == 3).float(), requires_grad=False)

    def forward(self, x):
        return self.logits.expand(x.shape[0], 10) + 0 * x.mean()


def test_a_collapsed_network_is_flagged_in_metrics_summary_and_tables():
    config = make_config("gearnn2", "smoke", "vgg19", "synthetic", overrides=TINY)
    m = evaluate_run(config, _ConstantNet())
    assert m["collapsed"] is True and m["top_class_share"] == 1.0
    assert m["clean_acc"] == pytest.approx(10.0, abs=3)  # chance on the balanced synthetic test set
    m.update(
        method="gearnn2", arch="vgg19", dataset="synthetic", profile="smoke", size_fraction=0.01, params=1
    )
    m.update(train_seconds=1.0, train_joules=None, energy_backend_detail="time only", stages=[])
    assert "collapsed" in metrics_table({"bad": m, "ok": {**m, "collapsed": False}}).loc["bad", "note"]
    healthy = {**m, "collapsed": False, "clean_acc": 60.0}
    assert metrics_table({"ok": healthy}).columns.tolist()[-2:] == ["latency (ms)", "latency spread (ms)"]
    guessing = metrics_table({"guess": {**m, "collapsed": False}}).loc["guess", "note"]
    assert guessing.startswith("at chance: 10.0% clean")
    stall = [{"stage": "era", "epoch": 2, "seconds": 2976.0, "reason": "4.6x its stage's median epoch"}]
    slowed = {**healthy, "timing_stalls": stall}
    assert metrics_table({"slow": slowed}).loc["slow", "note"].startswith("time not comparable: era epoch 2")
    assert "WARNING: time not comparable: era epoch 2 2976 s" in summary(slowed)
    two = [
        {"name": "osg1", "seconds": 60.0, "joules": None},
        {"name": "era", "seconds": 3600.0, "joules": None},
    ]
    notes = stage_table({"slow": {**slowed, "stages": two}}).set_index("stage")["note"]
    assert notes["osg1"] == "" and notes["era"].startswith("time not comparable: era epoch 2")
    line = summary(m)
    assert "WARNING: collapsed: the network gives one class to 100% of the test images" in line
