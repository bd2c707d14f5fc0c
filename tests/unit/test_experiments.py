"""Tests of the chapter helpers (gearlib.experiments) and the book's plot helpers (gearlib.plots).

One tiny One-Shot-Growth run (a few seconds on a CPU) backs the tests that need a trained network.
"""

from __future__ import annotations

import dataclasses
import json
import math

import matplotlib
import pandas as pd
import pytest
import torch

from gearlib import plots
from gearlib.experiments import (
    ADVERSARIAL_RESULT_KEYS,
    PRIME_LONGER,
    RESULT_KEYS,
    Chapter,
    StaleResultError,
    accuracy_curve,
    audit_results,
    corrupted_views,
    final_model,
    gains,
    judged_against,
    landscape_curves,
    metrics_table,
    nshot_method,
    paper_dataset,
    per_view_costs,
    phase_summary,
    plan_summary,
    provenance,
    readable_html,
    stage_table,
    sweep,
)
from gearlib.models import widths_of
from gearlib.profiles import get_profile
from gearlib.train.methods import METHODS, plan_for

matplotlib.use("Agg")

TINY = [
    "train_subset=64",
    "test_subset=32",
    "robust_per_block=2",
    "backbone_width=4",
    "new_neurons=2",
    "batch_size=32",
    "growth_batch_size=32",
    "latency_iters=2",
]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live chapter whose runs and results go to temporary folders, and its trained osg-clean run."""
    runs = tmp_path_factory.mktemp("runs")
    results = tmp_path_factory.mktemp("results")
    patch = pytest.MonkeyPatch()
    patch.setenv("GEARLIB_RUNS", str(runs))
    chapter = Chapter(profile="smoke", dataset="synthetic", overrides=list(TINY), results_root=str(results))
    run = chapter.run("osg-clean")
    yield chapter, run
    patch.undo()


def test_paper_dataset_maps_synthetic_to_cifar10_and_refuses_unknown():
    assert paper_dataset("synthetic") == "cifar10"
    assert paper_dataset("cifar100") == "cifar100"
    with pytest.raises(ValueError, match="imagenet"):
        paper_dataset("imagenet")


@pytest.mark.parametrize("base", ["gearnn1", "gearnn2", "osg-clean"])
def test_nshot_method_names_registered_methods(base):
    assert nshot_method(base, 1) == base
    for n in (2, 3, 4, 5):
        assert nshot_method(base, n) in METHODS
    with pytest.raises(ValueError):
        nshot_method(base, 6)
    with pytest.raises(ValueError):
        nshot_method("small-clean", 2)


def test_sweep_tags_each_value_and_passes_the_setting():
    calls = []

    class FakeChapter:
        def run(self, method, overrides=(), tag="", **kwargs):
            calls.append((method, list(overrides), tag, kwargs))
            return {"tag": tag}

    out = sweep(FakeChapter(), "gearnn2", "epochs_er", [1, 4], seed=2)
    assert list(out) == [1, 4] and out[4] == {"tag": "-epochs_er4"}
    assert calls[0] == ("gearnn2", ["epochs_er=1"], "-epochs_er1", {"seed": 2})


def _fake_run(stages):
    return {"stages": [{"name": n, "seconds": s, "joules": j} for n, s, j in stages]}


def test_stage_table_shares_sum_to_100_and_energy_is_nan_without_a_meter():
    runs = {
        "gearnn2": _fake_run([("osg1", 60, 600.0), ("osg2", 120, 1400.0), ("era", 60, 2000.0)]),
        "gearnn1": _fake_run([("osg1", 30, None), ("osg2", 90, None)]),
    }
    table = stage_table(runs)
    g2 = table[table.method == "gearnn2"]
    assert list(g2.stage) == ["osg1", "osg2", "era"]
    assert g2["T share (%)"].sum() == pytest.approx(100)
    assert g2["E share (%)"].tolist() == pytest.approx([15, 35, 50])
    assert g2["T (min)"].tolist() == pytest.approx([1, 2, 1])
    g1 = table[table.method == "gearnn1"]
    assert g1["T share (%)"].tolist() == pytest.approx([25, 75])
    assert g1["E (kJ)"].isna().all() and g1["E share (%)"].isna().all()


def test_final_model_is_the_runs_network_and_needs_live_mode(live):
    chapter, run = live
    model = final_model(chapter, "osg-clean")
    assert list(widths_of(model)) == list(run["widths"])
    assert not model.training
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), final_model(chapter, "osg-clean")(x))  # same stored weights
    replaying = Chapter(profile="smoke", dataset="synthetic", replay=True, results_root=chapter.results_root)
    with pytest.raises(ValueError, match="live mode"):
        final_model(replaying, "osg-clean")


def test_landscape_curves_are_json_able_and_start_at_the_models_loss(live):
    chapter, _ = live
    images, labels = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    curves = landscape_curves(chapter, ["osg-clean"], images, labels, alphas=torch.tensor([-0.5, 0.0, 0.5]))
    curve = curves["osg-clean"]
    assert curve["alphas"] == pytest.approx([-0.5, 0.0, 0.5])
    with torch.no_grad():
        plain = torch.nn.functional.cross_entropy(final_model(chapter, "osg-clean")(images), labels)
    assert curve["losses"][1] == pytest.approx(float(plain), rel=1e-4)
    assert all(isinstance(v, float) for v in curve["losses"])


def test_provenance_names_profile_hardware_and_meter(live):
    _, run = live
    text = provenance(run)
    assert "profile **smoke**" in text and run["energy_backend_detail"] in text
    assert f"{run['train_images']} training images" in text
    if run["hardware"].get("cpu_capability"):
        assert f"{run['hardware']['cpu_capability']} kernels" in text


def test_corrupted_views_are_seeded_images_in_range():
    images = torch.rand(4, 3, 32, 32)
    views = corrupted_views(images, ["gaussian_noise", "fog"], severity=3, seed=1)
    assert list(views) == ["gaussian_noise", "fog"]
    for v in views.values():
        assert v.shape == images.shape and v.dtype == torch.float32
        assert 0 <= float(v.min()) and float(v.max()) <= 1
    again = corrupted_views(images, ["gaussian_noise"], severity=3, seed=1)["gaussian_noise"]
    assert torch.equal(again, views["gaussian_noise"])
    assert (views["gaussian_noise"] - images).abs().mean() > 0.01
    uint8 = corrupted_views((images * 255).round().to(torch.uint8), ["fog"], seed=1)["fog"]
    assert torch.allclose(uint8, views["fog"])


def test_lines_draws_one_line_per_family_and_a_paper_panel():
    import pandas as pd

    ours = {"a": pd.DataFrame({"T": [1, 2], "R": [10, 20]}), "b": pd.DataFrame({"T": [1, 3], "R": [5, 6]})}
    fig = plots.lines(ours, y="R", x="T", paper={"a": pd.DataFrame({"T": [4], "R": [80]})})
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    assert list(fig.axes[0].lines[1].get_ydata()) == [5, 6]


def test_stage_shares_stacks_to_100_percent_per_bar():
    runs = {"gearnn2": _fake_run([("osg1", 60, None), ("osg2", 120, None), ("era", 60, None)])}
    import gearlib.paper as paper

    fig = plots.stage_shares(stage_table(runs), paper.table6())
    ax = fig.axes[0]
    heights = {}
    for patch in ax.patches:
        heights[patch.get_x()] = heights.get(patch.get_x(), 0) + patch.get_height()
    assert len(heights) == 3  # ours gearnn2, paper gearnn1, paper gearnn2
    assert all(math.isclose(h, 100) for h in heights.values())


def test_widths_by_run_refuses_mismatched_lengths():
    fig = plots.widths_by_run({"N=1": [4, 5, 6], "N=2": [4, 6, 6]}, names=["a", "b", "c"], full=[8, 8, 8])
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match="same architecture"):
        plots.widths_by_run({"x": [1, 2], "y": [1]})


def test_gains_compares_baseline_and_method_per_architecture():
    import pandas as pd

    cols = ["R-acc (%)", "T (min)", "E (kJ)"]
    ours = pd.DataFrame(
        [[80.0, 4.0, None], [78.0, 1.0, None]], index=["small-augmix", "gearnn2"], columns=cols
    )
    paper = pd.DataFrame([[85.0, 200.0, 1000.0], [84.0, 50.0, 250.0]], index=ours.index, columns=cols)
    table = gains(ours, paper)
    assert table.loc["gearnn2", "speed-up (ours)"] == 4 and table.loc["gearnn2", "speed-up (paper)"] == 4
    assert math.isnan(table.loc["gearnn2", "energy ratio (ours)"])
    assert table.loc["gearnn2", "energy ratio (paper)"] == 4
    assert table.loc["gearnn2", "R-acc gap (ours)"] == 2 and table.loc["gearnn2", "R-acc gap (paper)"] == 1
    both = gains(pd.concat({"vgg19": ours, "resnet18": ours}), pd.concat({"vgg19": paper, "resnet18": paper}))
    assert list(both.index) == ["vgg19", "resnet18"] and both["speed-up (ours)"].tolist() == [4, 4]


def test_plan_summary_lists_epochs_and_growth_factors(live):
    _, run = live
    text = plan_summary(run)
    assert text.count("grow x") == 1 and text.count(" ep clean") == 2
    fake = {"plan": [{"kind": "train", "epochs": 3, "augment": "era"}, {"kind": "grow", "growth_ratio": 0.5}]}
    assert plan_summary(fake) == "3 ep era -> grow x1.50"


def test_landscape_curves_default_to_a_test_subset(live):
    chapter, _ = live
    curves = landscape_curves(chapter, ["osg-clean"], n_images=20, alphas=torch.tensor([0.0, 1.0]))
    assert len(curves["osg-clean"]["losses"]) == 2 and all(v > 0 for v in curves["osg-clean"]["losses"])


def test_log2_axis_labels_powers_of_two_plainly():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [16, 512])
    plots.log2_axis(ax)
    fig.canvas.draw()
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "64" in labels and "512" in labels
    with pytest.raises(ValueError):
        plots.log2_axis(ax, axis="z")
    plt.close(fig)


def test_lines_uses_integer_ticks_for_integer_x():
    import pandas as pd

    fig = plots.lines(
        {"a": pd.DataFrame({"R": [1.0, 2.0, 3.0]}, index=pd.Index([1, 2, 3], name="steps"))}, y="R"
    )
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert fig.axes[0].get_xlabel() == "steps"


def test_committed_results_are_complete_fresh_and_seeded():
    """Every run stored under results/<profile>/ (what replay renders) passes the audit: the fields the
    book reads, no run at chance or collapsed (early curve points excepted), every promised seed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and p.name != "smoke"] if root.is_dir() else []
    problems = [f"{folder.name}/{line}" for folder in folders for line in audit_results(folder)]
    assert not problems, "\n".join(problems)


def _result(**changes):
    record = {k: 1 for k in RESULT_KEYS}
    record.update(method="gearnn2", arch="vgg19", dataset="synthetic", profile="cpu", seed=0, clean_acc=50.0)
    record.update(robust_acc=40.0, test_images=256, top_class_share=0.2, collapsed=False, **changes)
    return record


def test_audit_results_finds_chance_missing_fields_and_missing_seeds(tmp_path):
    def write(name, record):
        (tmp_path / name).write_text(json.dumps(record))

    for s in (0, 1, 2):
        write(f"gearnn2-vgg19-synthetic-seed{s}.json", _result(seed=s))
    write("landscape-vgg19-synthetic-seed0.json", {"curves": []})
    assert audit_results(tmp_path) == []
    write("small-clean-vgg19-synthetic-seed0.json", _result(method="small-clean", clean_acc=11.0))
    write("gearnn1-vgg19-synthetic-seed0.json", {**_result(method="gearnn1"), "collapsed": True,
                                                 "top_class_share": 0.95})  # fmt: skip
    bad = {k: v for k, v in _result(method="osg-clean").items() if k != "run_hash"}
    write("osg-clean-vgg19-synthetic-seed0.json", bad)
    early = _result(
        method="small-augmix", clean_acc=10.0, plan=[{"kind": "topology"}, {"kind": "train", "epochs": 1}]
    )
    write("small-augmix-vgg19-synthetic-seed0-epochs_small1.json", early)
    grown = {**early, "plan": [{"kind": "train", "epochs": 1}, {"kind": "grow", "epochs": 0}]}
    write("gearnn2-vgg19-synthetic-seed0-k40.json", grown)
    problems = "\n".join(audit_results(tmp_path))
    assert "small-clean-vgg19-synthetic-seed0.json: at chance: 11.0% clean" in problems
    assert "gearnn1-vgg19-synthetic-seed0.json: collapsed: one class for 95%" in problems
    assert "osg-clean-vgg19-synthetic-seed0.json: lacks run_hash" in problems
    assert "small-clean-vgg19-synthetic-seed1.json: missing" in problems
    assert "gearnn1-vgg19-synthetic-seed2.json: missing" in problems
    assert "epochs_small1" not in problems  # a baseline's early point may sit near chance
    assert "gearnn2-vgg19-synthetic-seed0-k40.json: at chance" in problems  # a grown run may not
    assert "gearnn2-vgg19-synthetic-seed0.json" not in problems


def _default_plan(method, arch="vgg19"):
    """`method`'s plan at the cpu profile's own epochs, as a result record stores it."""
    return [dataclasses.asdict(s) for s in plan_for(method, get_profile("cpu"), "synthetic", arch)[1]]


def test_a_reduced_budget_point_under_the_floor_is_exempt_and_says_so(tmp_path):
    """Appendix C's budget sweep: GEARnn-1 with E_2 = 1 (fewer epochs than the cpu profile's own plan) may
    sit under the floor; the same accuracy on the full schedule is flagged. The table note says which."""
    full = _default_plan("gearnn1", "resnet18")  # not a seeded (VGG-19) comparison: one seed is enough
    short = [dict(s, epochs=1) if s["kind"] == "train" and s["stage"] == "osg2" else s for s in full]
    assert sum(s["epochs"] for s in short) < sum(s["epochs"] for s in full)
    budget = _result(method="gearnn1", arch="resnet18", clean_acc=28.8, plan=short, latency={})
    (tmp_path / "gearnn1-resnet18-synthetic-seed0-e2-1.json").write_text(json.dumps(budget))
    assert audit_results(tmp_path) == []
    note = metrics_table({"GEARnn-1 (E_2 = 1)": budget})["note"].iloc[0]
    assert note.startswith("a reduced-budget point: under the cpu profile's 30% floor")
    (tmp_path / "gearnn1-resnet18-synthetic-seed0.json").write_text(
        json.dumps(_result(method="gearnn1", arch="resnet18", clean_acc=28.8, plan=full))
    )
    assert audit_results(tmp_path) == [
        "gearnn1-resnet18-synthetic-seed0.json: under the floor: 28.8% clean, below the cpu profile's 30% "
        "(profile setting clean_floor)"
    ]
    full_run = _result(method="gearnn1", arch="resnet18", plan=full, latency={})
    assert "note" not in metrics_table({"GEARnn-1": full_run}).columns


def test_audit_flags_runs_under_the_profiles_clean_floor_but_not_short_schedules(tmp_path):
    """cpu's clean_floor (30%) applies to full schedules; a fixed network trained from scratch for at most
    E_R epochs (Table 7's AugMix-only arm, Appendix C's points) is exempt, and smoke has no floor."""
    er = get_profile("cpu").epochs("gearnn2", "synthetic")["ER"]
    grown = _result(clean_acc=25.0, plan=_default_plan("gearnn2"))
    (tmp_path / "gearnn2-vgg19-synthetic-seed0-n4000.json").write_text(json.dumps(grown))
    arm = _result(
        method="phase2-augmix", clean_acc=25.0, plan=[{"kind": "topology"}, {"kind": "train", "epochs": er}]
    )
    (tmp_path / "phase2-augmix-vgg19-synthetic-seed0.json").write_text(json.dumps(arm))
    longer = {**arm, "method": "phase1-vanilla", "plan": _default_plan("phase1-vanilla")}
    assert sum(s["epochs"] for s in longer["plan"]) > er
    (tmp_path / "phase1-vanilla-vgg19-synthetic-seed0.json").write_text(json.dumps(longer))
    smoke = {**grown, "profile": "smoke"}
    (tmp_path / "osg-clean-vgg19-synthetic-seed0.json").write_text(json.dumps(smoke))
    problems = audit_results(tmp_path)
    assert problems == [
        "gearnn2-vgg19-synthetic-seed0-n4000.json: under the floor: 25.0% clean, below the cpu profile's 30% "
        "(profile setting clean_floor)",
        "phase1-vanilla-vgg19-synthetic-seed0.json: under the floor: 25.0% clean, below the cpu profile's 30% "
        "(profile setting clean_floor)",
    ]


def test_audit_reads_adversarial_results_by_their_own_fields(tmp_path):
    record = {k: 1 for k in ADVERSARIAL_RESULT_KEYS}
    record.update(method="float", family="adversarial", arch="resnet10", dataset="synthetic", profile="cpu", clean_acc=40.0,
                  test_images=256, top_class_share=0.2, plan=[{"kind": "adversarial", "epochs": 2}])  # fmt: skip
    (tmp_path / "float-resnet10-synthetic-seed0.json").write_text(json.dumps(record))
    assert audit_results(tmp_path) == []  # no widths, sizes or latency asked of it
    record.update(clean_acc=10.0)  # two epochs, but not a "curve's early point": at chance is a problem
    (tmp_path / "float-resnet10-synthetic-seed0.json").write_text(json.dumps(record))
    assert "at chance" in "\n".join(audit_results(tmp_path))
    del record["adv_settings"]
    (tmp_path / "float-resnet10-synthetic-seed0.json").write_text(json.dumps(record))
    assert "lacks adv_settings" in "\n".join(audit_results(tmp_path))


def test_replay_refuses_a_result_trained_with_other_settings(live):
    chapter, run = live
    replaying = Chapter(
        profile="smoke",
        dataset="synthetic",
        overrides=list(TINY),
        replay=True,
        results_root=chapter.results_root,
    )
    assert replaying.run("osg-clean")["run_hash"] == run["run_hash"]
    other = Chapter(
        profile="smoke", dataset="synthetic", overrides=[*TINY, "lr=0.05"], replay=True,
        results_root=chapter.results_root,
    )  # fmt: skip
    with pytest.raises(StaleResultError, match="trained with other settings"):
        other.run("osg-clean")


def test_tables_show_missing_values_as_n_a_never_none_or_nan():
    table = pd.DataFrame(
        {"C-acc (%)": [50.0, None], "E (kJ)": [1.5, None], "note": ["", None]}, index=["a", "b"]
    )
    html = readable_html(table)
    assert "n/a (no meter)" in html and html.count(">n/a<") == 1  # the missing accuracy
    assert html.count("<td></td>") == 2  # both notes blank: a row without a note has nothing to say
    assert "None" not in html and "NaN" not in html and "1.5" in html


def test_test_images_are_stored_live_and_replayed_without_data(tmp_path):
    from gearlib.data import load_dataset
    from gearlib.experiments import SAMPLE_IMAGES, samples_path, save_samples

    sample = load_dataset("synthetic", "test", subset=SAMPLE_IMAGES, seed=0)
    # stand in for a CIFAR-10 sample written by a live chapter: replay must read it, with no data directory
    save_samples(sample, samples_path("cifar10", 0, tmp_path))
    replaying = Chapter(profile="smoke", dataset="cifar10", replay=True, results_root=str(tmp_path))
    shown = replaying.test_images(5)
    assert torch.equal(shown.images, sample.images[:5]) and torch.equal(shown.labels, sample.labels[:5])
    assert shown.classes == sample.classes and "stored sample" in shown.source
    live = Chapter(profile="smoke", dataset="synthetic", results_root=str(tmp_path))
    assert torch.equal(live.test_images(3).images, sample.images[:3])
    assert not samples_path("synthetic", 0, tmp_path).exists()  # generated data is never stored
    with pytest.raises(ValueError, match="n=65"):
        live.test_images(SAMPLE_IMAGES + 1)
    other = Chapter(profile="smoke", dataset="cifar10", seed=3, replay=True, results_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cifar10-test-seed3.npz is missing"):
        other.test_images(2)


def test_default_book_replays_cpu_once_every_chapter_has_its_results_else_builds_smoke_live(tmp_path):
    from gearlib import book

    (tmp_path / "notebooks").mkdir()
    for name in ("01_a", "02_b"):
        (tmp_path / "notebooks" / f"{name}.py").write_text("")
    assert book.default_build(tmp_path)[:2] == ("smoke", False)
    (tmp_path / "results" / "cpu").mkdir(parents=True)
    (tmp_path / "results" / "cpu" / "gearnn2-vgg19-cifar10-seed0.json").write_text("{}")
    book.record_completed(tmp_path, "cpu", "01_a")
    profile, replay, why = book.default_build(tmp_path)
    assert (profile, replay) == ("smoke", False) and "1 of 2 chapters (missing: 02_b)" in why
    book.record_completed(tmp_path, "cpu", "02_b")
    assert book.default_build(tmp_path)[:2] == ("cpu", True)
    assert set(book.completed_chapters(tmp_path, "cpu")) == {"01_a", "02_b"}


def test_trend_runs_use_the_profiles_trend_subset_and_their_own_file_names(tmp_path):
    full = Chapter(profile="smoke", dataset="synthetic", results_root=str(tmp_path))
    assert full.trend() == ([], "") and full.trend_note("These runs") == ""
    cpu = Chapter(profile="cpu", dataset="synthetic", results_root=str(tmp_path))
    # cpu trims only ResNet-18's trend runs (trend_archs): VGG-19's and MobileNet-V1's train at full scale
    assert cpu.trend("resnet18") == (["train_subset=4000"], "-n4000")
    assert cpu.trend() == ([], "") and cpu.trend("mobilenet_v1") == ([], "")
    note = cpu.trend_note("These rows", ["mobilenet_v1", "resnet18"])
    assert "resnet18" in note and "mobilenet_v1" not in note and "4,000 images" in note and "10,000" in note
    assert cpu.trend_note("These curves") == "" and cpu.trend_note("These rows", []) == ""
    every = Chapter(profile="cpu", dataset="synthetic", overrides=["trend_archs="])
    assert every.trend() == (["train_subset=4000"], "-n4000") and "vgg19" in every.trend_note("These curves")
    same = Chapter(profile="cpu", dataset="synthetic", overrides=["trend_subset=10000", "trend_archs="])
    assert same.trend() == ([], "")
    with pytest.raises(ValueError, match="trend_archs.*vgg16"):
        get_profile("cpu", ["trend_archs=resnet18, vgg16"])
    # the trend settings pick runs; they are not part of any run's training identity
    training = get_profile("cpu").training_dict()
    assert "trend_subset" not in training and "trend_archs" not in training
    assert "prime_robust_epochs" not in training  # chapter 9 passes its runs explicit epoch settings instead


def _epochs(*rows):
    """A run's epoch log from (stage, accuracy or None, seconds) rows; a ("growth", s) row is a growth step."""
    log, total = [], 0
    for row in rows:
        if row[0] == "growth":
            log.append({"growth": True, "seconds": row[1], "stage": "growth"})
            continue
        total += 1
        log.append({"stage": row[0], "acc": row[1], "loss": 1.0, "seconds": row[2], "total_epoch": total})
    return log


def test_phase_summary_reads_the_end_of_growth_and_the_robust_phase():
    run = {"method": "gearnn2", "epochs": _epochs(
        ("e1", 0.3, 1.0), ("growth", 5.0), ("e2", 0.5, 1.0), ("era", 0.2, 4.0), ("era", None, 4.0), ("era", 0.4, 4.0)
    )}  # fmt: skip
    curve = accuracy_curve(run)
    assert list(curve.index) == [1, 2, 3, 5] and list(curve["train acc (%)"]) == pytest.approx(
        [30, 50, 20, 40]
    )
    summary = phase_summary(run)
    assert summary == {
        "end of growth": pytest.approx(50.0),
        "first robust epoch": pytest.approx(20.0),
        "last robust epoch": pytest.approx(40.0),
        "robust epochs": 2,  # the epoch that logged no accuracy is left out
    }
    with pytest.raises(
        ValueError, match="no clean epochs followed by 'prime'.*stages: \\['e1', 'e2', 'era'\\]"
    ):
        phase_summary(run, robust_stage="prime")


def test_per_view_costs_divide_the_median_epoch_by_the_views():
    runs = {
        "basic": {
            "robust_acc": 40.0,
            "epochs": _epochs(("era", 0.1, 2.0), ("era", 0.1, 9.0), ("era", 0.1, 2.2)),
        },
        "ERA": {
            "robust_acc": 45.0,
            "epochs": _epochs(("growth", 99.0), ("era", 0.1, 8.0), ("era", 0.1, 8.4)),
        },
    }
    costs = per_view_costs(runs, {"basic": 0, "ERA": 4})
    assert costs.loc["basic", "s / epoch"] == pytest.approx(2.2)  # the slow epoch does not move the median
    assert costs.loc["basic", "views"] == 1  # J = 0 trains one augmented view
    assert costs.loc["ERA", "s / epoch"] == pytest.approx(8.2)  # the growth step is not an epoch
    assert costs.loc["ERA", "s / epoch / view"] == pytest.approx(2.05)
    with pytest.raises(KeyError, match="no view count for \\['ERA'\\]"):
        per_view_costs(runs, {"basic": 0})


def test_judged_against_uses_the_reference_spread_for_one_seed_arms():
    runs = {
        "ours": {"robust_acc": 50.0, "train_seconds": 100.0},
        "near": {"robust_acc": 48.0, "train_seconds": 400.0},
        "far": {"robust_acc": 40.0, "train_seconds": 50.0},
    }
    table = judged_against(runs, "ours", ["near", "far"], spread=3.0)
    assert list(table.index) == ["ours vs near", "ours vs far"]
    assert table.loc["ours vs near", "verdict"] == "within noise"
    assert table.loc["ours vs far", "verdict"] == "holds"
    assert (
        table.loc["ours vs far", "R-acc gap (points)"] == 10.0
        and table.loc["ours vs near", "time ratio"] == 0.25
    )
    assert judged_against(runs, "far", ["ours"], spread=3.0).loc["far vs ours", "verdict"] == "fails"


@pytest.mark.parametrize("profile, epochs", [("cpu", 8), ("smoke", 0)])
def test_prime_run_trains_the_profiles_robust_epochs_only_for_the_gearnn_prime_runs(
    tmp_path, profile, epochs
):
    chapter = Chapter(profile=profile, dataset="synthetic", results_root=str(tmp_path))
    assert chapter.profile_config.prime_robust_epochs == epochs
    calls = []
    chapter.run = lambda method, **kwargs: calls.append((method, kwargs)) or {}
    for method in ("small-prime", "gearnn1-prime", "gearnn2-prime"):
        chapter.prime_run(method)
    if epochs:
        assert calls == [
            ("small-prime", {}),
            ("gearnn1-prime", {"overrides": ["epochs_e2=8"], "tag": "-er8"}),
            ("gearnn2-prime", {"overrides": ["epochs_er=8"], "tag": "-er8"}),
        ]
    else:
        assert calls == [(m, {}) for m in ("small-prime", "gearnn1-prime", "gearnn2-prime")]
    assert set(PRIME_LONGER) == {"gearnn1-prime", "gearnn2-prime"}
