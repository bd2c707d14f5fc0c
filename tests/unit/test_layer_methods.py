"""The layer comparison in the one runner (vanilla, groupnl, ghost, sinefm, monocnn): configs, stored and
resumable runs, reloaded weights with their fixed NLF parameters, and the chapter's tables and verdicts."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from gearlib.layers import GroupNLConv2d, SineFMConv2d, paper, report
from gearlib.layers.models import LAYER_KINDS, layer_network, monocnn_seeds
from gearlib.train.methods import get_method
from gearlib.train.runner import make_config, run_experiment
from gearlib.train.stage import StageConfig, make_optimizer, make_scheduler
from gearlib.train.store import CHECKPOINT, config_hash

LAYER_METHODS = ["vanilla", "groupnl", "ghost", "sinefm", "monocnn"]
# A few seconds per run: 64 images, width 8, 2 epochs; evaluation on 40 test images and 2 per block.
FAST = ["layers_width=8", "layers_train_subset=64", "layers_epochs=2", "test_subset=40", "robust_per_block=2", "latency_iters=2",
        "latency_windows=1"]  # fmt: skip


def test_layer_methods_are_registered_with_their_layer_and_the_cosine_schedule():
    profile = make_config("groupnl", "smoke").profile
    for name, kind in zip(LAYER_METHODS, ["conv", "groupnl", "ghost", "sinefm", "monocnn"]):
        method = get_method(name)
        assert method.family == "layers"
        (step,) = method.plan(profile, "synthetic", "resnet18")
        assert (step.kind, step.layer, step.schedule, step.epochs) == ("train", kind, "cosine", 2)
    assert get_method("groupnl-era").plan(profile, "synthetic", "resnet18")[0].augment == "era"


def test_layer_runs_take_their_own_arch_and_leave_other_families_hashes_alone():
    cfg = make_config("groupnl", "smoke")
    assert cfg.arch == "resnet18" and cfg.family == "layers"
    assert make_config("ghost", "smoke", "vgg11").profile.layers_arch == "vgg11"
    with pytest.raises(ValueError, match="resnet10, resnet18, resnet34, vgg11"):
        make_config("groupnl", "smoke", "mobilenet_v1")
    gear = make_config("gearnn2", "cpu", None, "cifar10")
    assert "layers_width" not in json.dumps(gear.training_dict())
    assert config_hash(gear.training_dict()).startswith("0ed7afac2457")  # the stored cpu GEARnn-2 run
    adv = make_config("float", "smoke")
    assert "layers_width" not in json.dumps(adv.training_dict())
    # an evaluation or another family's setting does not retrain; the layer comparison's own ones do
    same = make_config("groupnl", "smoke", overrides=["adv_width=4", "backbone_width=3", "test_subset=7"])
    assert config_hash(same.training_dict()) == config_hash(cfg.training_dict())
    wider = make_config("groupnl", "smoke", overrides=["layers_width=32"])
    assert config_hash(wider.training_dict()) != config_hash(cfg.training_dict())


def test_a_revised_layer_reading_gets_a_new_identity_and_the_old_reading_keeps_its_own():
    new, raw = (make_config(m, "cpu", None, "cifar10") for m in ("sinefm", "sinefm-raw"))
    assert new.training_dict()["layer_revision"] == "seed-l2" and "layer_revision" not in raw.training_dict()
    stored_raw = "4338e2a0afd0"  # the stored cpu SineFM run (seed 0) trained before the revision
    assert config_hash(new.training_dict()) != stored_raw
    assert config_hash(dict(raw.training_dict(), method="sinefm")) == stored_raw  # same training, renamed
    groupnl = make_config("groupnl", "cpu", None, "cifar10").training_dict()
    assert "layer_revision" not in groupnl and config_hash(groupnl) == "3ff06a1baaf6"  # its stored run
    kinds = {}
    for method in ("sinefm", "sinefm-raw"):
        (step,) = get_method(method).plan(new.profile, "cifar10", "resnet18")
        model, _ = layer_network(step.layer, "resnet18", 8, 10)
        kinds[method] = {m.seed_norm for m in model.modules() if isinstance(m, SineFMConv2d)}
    assert kinds == {"sinefm": {"l2"}, "sinefm-raw": {"none"}}


def test_layer_network_builds_every_kind_and_refuses_unknown_ones():
    for kind in LAYER_KINDS:
        model, report_ = layer_network(kind, "resnet18", 8, 10, seed=0)
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        assert (report_ is None) == (kind == "conv")
        if report_ is not None:
            assert any("stem" in k.reason for k in report_.kept)
    assert monocnn_seeds(64) == 32 and monocnn_seeds(16) == 8
    with pytest.raises(ValueError, match="unknown layer 'winograd'"):
        layer_network("winograd")
    with pytest.raises(ValueError, match="unknown arch 'vgg19'"):
        layer_network("groupnl", "vgg19")


def test_cosine_schedule_anneals_to_zero_over_the_stage():
    model = torch.nn.Linear(2, 2)
    config = StageConfig(schedule="cosine", nesterov=False)
    optimizer = make_optimizer(model, config, 128)
    scheduler = make_scheduler(optimizer, 4, config)
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs == sorted(lrs, reverse=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="schedule must be one of"):
        StageConfig(schedule="linear")


def test_a_groupnl_run_resumes_is_stored_and_reloads_its_fixed_nlfs(tmp_path, monkeypatch):
    from gearlib.train import stage

    config = make_config("groupnl", "smoke", overrides=FAST)
    calls = {"epochs": 0}
    original = stage.train_epoch

    def dies_in_the_second_epoch(*args, **kwargs):
        if calls["epochs"] == 1:
            raise KeyboardInterrupt
        calls["epochs"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(stage, "train_epoch", dies_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, runs_dir=tmp_path, progress=False)
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / CHECKPOINT).is_file()
    monkeypatch.setattr(stage, "train_epoch", original)
    resumed = run_experiment(config, runs_dir=tmp_path, progress=False)
    m = resumed.metrics
    assert [e["epoch"] for e in resumed.epochs] == [1, 2] and not (run_dir / CHECKPOINT).exists()
    assert m["family"] == "layers" and m["layer"] == "groupnl" and m["width"] == 8
    assert m["replaced"] == 19 and "widths" not in m
    assert 0.45 < m["size_fraction"] < 0.55  # GroupNL halves the convs; the stem, BNs and head stay
    assert 0 <= m["clean_acc"] <= 100 and 0 <= m["robust_acc"] <= 100
    assert m["plan"][0]["schedule"] == "cosine"
    again = run_experiment(config, runs_dir=tmp_path, progress=False)
    assert again.cached and again.metrics["clean_acc"] == m["clean_acc"]
    model = again.model()
    fresh, _ = layer_network("groupnl", "resnet18", 8, 10, seed=12345)  # other NLF draws ...
    stored = [mod.omega.clone() for mod in model.modules() if isinstance(mod, GroupNLConv2d)]
    built = [mod.omega for mod in fresh.modules() if isinstance(mod, GroupNLConv2d)]
    assert not all(torch.equal(a, b) for a, b in zip(stored, built))
    fresh.load_state_dict(model.state_dict())  # ... replaced by the trained network's on load
    assert all(torch.equal(a, mod.omega) for a, mod in zip(stored, [
        mod for mod in fresh.modules() if isinstance(mod, GroupNLConv2d)]))  # fmt: skip
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), fresh.eval()(x))


def test_nlf_parameters_do_not_move_while_the_runner_trains(tmp_path):
    """The NLF frequencies and phases a run starts with are the ones its stored network has."""
    config = make_config("groupnl", "smoke", overrides=FAST)
    torch.manual_seed(0)
    start, _ = layer_network("groupnl", "resnet18", 8, 10, seed=config.seed)
    result = run_experiment(config, runs_dir=tmp_path, progress=False)
    trained = result.model()
    before = {k: v for k, v in start.state_dict().items() if k.endswith(("omega", "phi"))}
    after = {k: v for k, v in trained.state_dict().items() if k.endswith(("omega", "phi"))}
    assert before.keys() == after.keys() and len(before) == 2 * 19
    assert all(torch.equal(before[k], after[k]) for k in before)
    seed_weights = [k for k in before if k.endswith("omega")][0].replace("omega", "seed.weight")
    assert not torch.equal(start.state_dict()[seed_weights], trained.state_dict()[seed_weights])


def test_a_killed_vanilla_run_resumes_to_the_same_metrics(tmp_path, killed_run):
    sets = [a for kv in [*FAST, "layers_epochs=3", "layers_train_subset=128"] for a in ("--set", kv)]
    command = [sys.executable, "-m", "gearlib.cli", "run", "vanilla", "--no-progress", "--json", *sets]
    run_to_end, kill_and_resume = killed_run
    reference = json.loads(run_to_end(command, tmp_path / "a").stdout)
    result = json.loads(kill_and_resume(command, tmp_path / "b").stdout)
    for key in ("clean_acc", "robust_acc", "params", "size_fraction"):
        assert result[key] == reference[key]


def _fake_run(method, seed, clean, robust, params=1000, size=0.5):
    table = {
        c: {str(s): robust for s in range(1, 6)}
        for names in report.CATEGORY_CORRUPTIONS.values()
        for c in names
    }
    return {
        "method": method, "dataset": "cifar10", "seed": seed, "clean_acc": clean, "robust_acc": robust, "robust_table": table,
        "params": params, "size_fraction": size, "train_seconds": 30.0, "latency_ms_per_sample": 1.0,
        "plan": [{"kind": "train", "epochs": 3}],
    }  # fmt: skip


def test_verdicts_are_computed_from_the_seeds_spread():
    runs = {
        "groupnl": [_fake_run("groupnl", 0, 60.0, 50.0), _fake_run("groupnl", 1, 62.0, 52.0)],
        "vanilla": [_fake_run("vanilla", 0, 50.0, 51.0), _fake_run("vanilla", 1, 52.0, 51.5)],
    }
    v = report.groupnl_verdicts(runs)
    assert v.loc["groupnl beats vanilla (clean)", "verdict"] == "holds"
    assert v.loc["groupnl beats vanilla (CIFAR-10-C)", "verdict"] == "within noise"
    runs["vanilla"] = [_fake_run("vanilla", 0, 70.0, 40.0), _fake_run("vanilla", 1, 71.0, 40.0)]
    assert report.groupnl_verdicts(runs).loc["groupnl beats vanilla (clean)", "verdict"] == "fails"
    table = report.comparison_table(runs)
    assert table.loc["groupnl", "clean (%)"] == "61.0 ± 1.4" and table.loc["groupnl", "s / epoch"] == 10.0
    assert report.category_accuracy(runs["groupnl"][0]) == {c: 50.0 for c in report.CATEGORY_CORRUPTIONS}


def test_cost_table_formulas_match_the_modules_and_the_paper_at_width_64():
    table = report.cost_table("resnet18", 64)
    assert table["match"].all()
    assert table.loc["groupnl", "network params (M)"] == pytest.approx(5.60, abs=0.005)
    assert table.loc["groupnl", "FLOPs (M)"] == pytest.approx(279.49, abs=0.01)  # Table 3, exactly
    assert table.loc["vanilla", "FLOPs (M)"] == pytest.approx(556.04, abs=0.01)
    assert "paper params (M)" not in report.cost_table("resnet18", 8).columns


def test_paper_table5_flags_the_four_rows_whose_mean_is_not_their_own():
    t = paper.paper_table5()
    assert len(t) == 20
    assert set(t.index[t["mismatch"]]) == {
        ("resnet18", "vanilla"), ("resnet101", "vanilla"), ("resnet101", "monocnn"), ("resnet101", "groupnl"),
    }  # fmt: skip
    assert paper.paper_table3().loc[("resnet18", "groupnl"), "params (M)"] == 5.60


def test_seed_maps_apply_every_nlf_of_the_first_groupnl_layer():
    torch.manual_seed(0)
    model, _ = layer_network("groupnl", "resnet18", 8, 10, seed=0)
    maps = report.seed_maps(model, torch.rand(3, 32, 32))
    layer = report.first_groupnl(model)
    assert len(maps["variants"]) == layer.num_nlfs == len(maps["hyper"]) == 4
    seed = torch.tensor(maps["seed"])
    assert seed.shape == (32, 32)
    first = torch.tensor(maps["variants"][0])
    expected = torch.sin(layer.omega[0] * (seed + layer.phi[0]))
    assert torch.allclose(first, expected, atol=1e-6)
    assert not torch.allclose(first, torch.tensor(maps["variants"][1]))  # different NLFs, different maps
    with pytest.raises(ValueError, match="no GroupNLConv2d"):
        report.first_groupnl(layer_network("conv", "resnet18", 8)[0])


def test_a_diverged_run_is_recorded_replayed_and_retried_at_half_the_lr(tmp_path, monkeypatch):
    """A chapter asks for every layer type; one whose loss turns non-finite at the profile's lr becomes a
    stored record (shown, replayed) and is trained again at half the lr on the retry seeds."""
    from gearlib import experiments
    from gearlib.train.stage import TrainingDiverged

    monkeypatch.setenv("GEARLIB_RUNS", str(tmp_path / "runs"))
    chapter = experiments.Chapter(
        profile="smoke", dataset="synthetic", overrides=list(FAST), results_root=str(tmp_path / "results")
    )
    real = experiments.run_experiment

    def sinefm_diverges_at_full_lr(config, **kwargs):
        if config.method == "sinefm" and config.profile.lr == 0.1:
            raise TrainingDiverged("sinefm train (clean) epoch 1/2: the training loss became non-finite")
        return real(config, **kwargs)

    monkeypatch.setattr(experiments, "run_experiment", sinefm_diverges_at_full_lr)
    with pytest.raises(TrainingDiverged):
        chapter.run("sinefm")  # without record_divergence it stays an error
    runs, failed = experiments.runs_with_retry(chapter, ["vanilla", "sinefm"], seeds=[0, 1], retry_seeds=[0])
    assert list(runs) == ["vanilla", "sinefm (lr 0.05)"]
    assert [len(v) for v in runs.values()] == [2, 1]
    assert runs["sinefm (lr 0.05)"][0]["plan"][0]["layer"] == "sinefm"
    assert [(r["method"], r["seed"]) for r in failed] == [("sinefm", 0), ("sinefm", 1)]
    assert (
        "non-finite" in experiments.diverged_note(failed[0])
        and experiments.diverged_note(runs["vanilla"][0]) == ""
    )
    replay = experiments.Chapter(
        profile="smoke", dataset="synthetic", overrides=list(FAST), results_root=str(tmp_path / "results"),
        replay=True,
    )  # fmt: skip
    again, failed_again = experiments.runs_with_retry(replay, ["vanilla", "sinefm"], [0, 1], [0])
    assert failed_again == failed and again["vanilla"][0]["clean_acc"] == runs["vanilla"][0]["clean_acc"]


def test_a_diverged_run_is_not_trained_into_again_unless_forced(tmp_path, monkeypatch):
    from gearlib.train import stage
    from gearlib.train.stage import TrainingDiverged

    config = make_config("vanilla", "smoke", overrides=FAST)
    original = stage.train_epoch

    def diverges(*args, **kwargs):
        raise TrainingDiverged(
            "vanilla train (clean) epoch 1/2: the training loss became non-finite at step 3"
        )

    monkeypatch.setattr(stage, "train_epoch", diverges)
    with pytest.raises(TrainingDiverged, match="step 3"):
        run_experiment(config, runs_dir=tmp_path, progress=False)
    monkeypatch.setattr(stage, "train_epoch", original)
    with pytest.raises(TrainingDiverged, match=r"step 3 \[stored in .*diverged.json; --force"):
        run_experiment(config, runs_dir=tmp_path, progress=False)  # no training: the stored message
    result = run_experiment(config, runs_dir=tmp_path, progress=False, force=True)
    assert 0 <= result.metrics["clean_acc"] <= 100 and not (result.run_dir / "diverged.json").exists()
