"""Memory-aware One-Shot Growth: budgets, the measured footprint against a measured peak, the fit and plans."""

from __future__ import annotations

import pytest

from gearlib.grow import memory
from gearlib.models import build
from gearlib.profiles import get_profile
from gearlib.train.runner import make_config
from gearlib.train.store import config_hash

FIT = {"growth_ratio_mode": "fit"}


def test_parse_bytes_reads_si_and_iec_units_and_refuses_the_rest():
    assert memory.parse_bytes("8GB") == 8 * 10**9
    assert memory.parse_bytes("512MB") == 512 * 10**6
    assert memory.parse_bytes("1.5GiB") == int(1.5 * 2**30)
    assert memory.parse_bytes(" 64 kib ") == 64 * 1024
    for bad in ("8 gigs", "GB", "-1GB", "0MB", "1e3MB", ""):
        with pytest.raises(ValueError, match="memory size"):
            memory.parse_bytes(bad)


def test_profile_checks_the_budget_and_needs_one_to_fit():
    with pytest.raises(ValueError, match="memory size"):
        get_profile("smoke", {"memory_budget": "lots"})
    with pytest.raises(ValueError, match="needs a memory_budget"):
        get_profile("smoke", FIT)
    assert get_profile("jetson").memory_budget == "8GB" and get_profile("jetson").memory_margin == 0.25


def test_stored_runs_keep_their_identity():
    config = make_config("gearnn2", "cpu", "vgg19", "cifar10")
    assert config_hash(config.training_dict()).startswith("0ed7afac2457")
    jetson = get_profile("jetson").training_dict()  # the budget is not read unless growth_ratio_mode=fit
    assert not {"memory_budget", "memory_margin", "growth_ratio_mode"} & set(jetson)
    fit = get_profile("jetson", dict(FIT)).training_dict()
    assert fit["growth_ratio_mode"] == "fit" and fit["memory_budget"] == "8GB"


def test_a_smaller_budget_fits_a_smaller_ratio_and_the_plan_uses_it():
    gammas = []
    for budget in ("2GB", "150MB", "100MB"):
        profile = get_profile("smoke", dict(FIT, memory_budget=budget))
        gamma, report = memory.fit_growth_ratio(profile, "synthetic", "vgg19")
        assert report["needed_bytes"] <= report["budget_bytes"]
        gammas.append(gamma)
    assert gammas[0] == pytest.approx(0.9)  # Table 1's CIFAR-10 VGG-19 gamma fits in 2 GB
    assert gammas[0] > gammas[1] > gammas[2] > 0
    config = make_config("gearnn2", "smoke", "vgg19", "synthetic", overrides=dict(FIT, memory_budget="150MB"))
    grow = [s for s in get_plan(config) if s.kind == "grow"]
    assert [s.growth_ratio for s in grow] == [gammas[1]]
    # a margin is budget taken away
    tight = get_profile("smoke", dict(FIT, memory_budget="150MB", memory_margin=0.3))
    assert memory.fit_growth_ratio(tight, "synthetic", "vgg19")[0] < gammas[1]


def get_plan(config):
    from gearlib.train.methods import plan_for

    return plan_for(config.method, config.profile, config.dataset, config.arch)[1]


def test_an_impossible_budget_is_refused_with_its_numbers():
    with pytest.raises(ValueError) as err:
        make_config("gearnn2", "smoke", "vgg19", "synthetic", overrides=dict(FIT, memory_budget="60MB"))
    text = str(err.value)
    assert "MiB needed, the budget is 57.2 MiB" in text and "activations" in text and "growth step" in text


def test_fit_refuses_n_shot_growth():
    with pytest.raises(ValueError, match="One-Shot Growth only"):
        make_config("gearnn2-n2", "smoke", "vgg19", "synthetic", overrides=dict(FIT, memory_budget="2GB"))


def test_worst_case_widths_spend_the_budget_where_it_costs_most():
    widths = [16] * 16
    costs = [float(i) for i in range(16)]  # the last unit costs most
    grown = memory.worst_case_widths("vgg19", widths, 0.9, 20, costs)
    added = [g - w for g, w in zip(grown, widths)]
    assert sum(added) == int(0.9 * 256) + 1  # M + 1 neurons
    assert added[-6:] == [36] * 6 and max(added) == 36  # c_l + K per unit at most, costliest first


@pytest.mark.parametrize("arch", ["vgg19", "resnet18", "mobilenet_v1"])
@pytest.mark.parametrize("what", ["train", "growth"])
def test_footprint_is_within_20_percent_of_the_measured_peak(arch, what):
    """Smoke widths (16), K 20; training on 32 x 4 ERA views, growth on 64 clean images."""
    model = build(arch, 16, 10, 32)
    if what == "train":
        images, fp = 128, memory.training_footprint(model, 128)
    else:
        images, fp = 64, memory.growth_footprint(model, 20, 64)
    peak = memory.measured_step_peak(arch, model.widths, images, what=what, new_neurons=20)
    # the peak is above what the process held before the step (weights, optimiser state)
    ratio = (fp.grads + fp.activations) / peak
    assert 0.8 <= ratio <= 1.2, (arch, what, fp.as_dict(), peak)


def test_memory_fit_figure_draws_the_budget_line():
    import matplotlib

    matplotlib.use("Agg")
    profile = get_profile("smoke", dict(FIT, memory_budget="100MB"))
    _, report = memory.fit_growth_ratio(profile, "synthetic", "vgg19")
    fig = memory.memory_fit_figure(report)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and ax.get_xlabel() == "growth ratio gamma"


def test_a_fit_run_grows_by_the_fitted_ratio_and_records_why(tmp_path):
    from gearlib.train.runner import run_experiment

    tiny = [
        "train_subset=96", "test_subset=40", "robust_per_block=4", "backbone_width=6", "new_neurons=3",
        "batch_size=32", "growth_batch_size=32", "latency_iters=2", "growth_ratio_mode=fit",
        "memory_budget=40MB",
    ]  # fmt: skip
    config = make_config("osg-clean", "smoke", "vgg19", "synthetic", overrides=tiny)
    gamma, _ = memory.fit_growth_ratio(config.profile, "synthetic", "vgg19")
    assert 0 < gamma < 0.9
    metrics = run_experiment(config, tmp_path, progress=False).metrics
    assert metrics["growth"][0]["growth_ratio"] == gamma
    fit = metrics["growth_ratio_fit"]
    assert fit["growth_ratio"] == gamma and fit["why"].startswith("largest gamma")
    assert fit["needed_bytes"] <= fit["budget_bytes"] == 40 * 10**6
    # the widths Firefly chose cost no more than the worst case the fit assumed
    actual = memory.training_footprint(build("vgg19", metrics["widths"], 10, 32), fit["train_images"])
    assert actual.total <= fit["grown_step"]["total"]
