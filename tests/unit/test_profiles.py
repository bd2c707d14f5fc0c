"""Tests of gearlib.profiles: the paper's hyperparameters, scaling, overrides and validation."""

from __future__ import annotations

import pytest

from gearlib.profiles import PROFILE_NAMES, get_profile, parse_overrides


def test_paper_profile_carries_table_1_and_appendix_a():
    quadro = get_profile("quadro")
    assert quadro.epochs("gearnn2", "cifar10") == {"E1": 40, "E2": 40, "ER": 40}
    assert quadro.epochs("gearnn1", "cifar100") == {"E1": 50, "E2": 50}
    assert quadro.epochs("gearnn2", "tinyimagenet") == {"E1": 40, "E2": 40, "ER": 50}
    assert quadro.epochs("small", "cifar10") == {"E": 160}
    assert quadro.growth_ratio("cifar10", "vgg19") == 0.9
    assert quadro.growth_ratio("tinyimagenet", "mobilenet_v1") == 2.0
    assert quadro.new_neurons == 70 and get_profile("jetson").new_neurons == 40
    assert quadro.batch_size == 128 and quadro.lr == 0.1 and quadro.jsd_lambda == 12.0
    assert quadro.rmsprop == {"lr": 1e-3, "alpha": 0.9, "momentum": 0.1}
    assert get_profile("quadro", ["rmsprop_variant=text"]).rmsprop["momentum"] == 0.9


def test_scaled_profiles_keep_at_least_one_epoch_and_the_phase_ratios():
    for name in PROFILE_NAMES:
        epochs = get_profile(name).epochs("gearnn2", "cifar10")
        assert min(epochs.values()) >= 1
        assert epochs["E1"] == epochs["E2"] == epochs["ER"]


def test_overrides_are_typed():
    p = get_profile("smoke", ["lr=0.05", "amp=false", "batch_size=32", "epochs_e1=3"])
    assert p.lr == 0.05 and p.amp is False and p.batch_size == 32
    assert p.epochs("gearnn2", "cifar10")["E1"] == 3
    assert get_profile("smoke", {"lr": 1}).lr == 1.0
    assert parse_overrides(None) == {}


@pytest.mark.parametrize(
    "name, overrides, match",
    [
        ("laptop", None, "unknown profile 'laptop'"),
        ("smoke", ["epochs_e1=-1"], "epochs_e1"),
        ("smoke", ["epoch_scale=-1"], "epoch_scale"),
        ("smoke", ["batch_size=big"], "expected int"),
        ("smoke", ["batch_size=0"], "batch_size"),
        ("smoke", ["nonsense=1"], "unknown profile setting"),
        ("smoke", ["lr"], "key=value"),
        ("smoke", {"lr": "fast"}, "expected float"),
        ("smoke", ["rmsprop_variant=paper"], "rmsprop_variant"),
        ("smoke", ["device=tpu"], "device"),
    ],
)
def test_bad_profiles_and_values_are_refused(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        get_profile(name, overrides)


def test_unknown_schedule_and_arch_are_refused():
    with pytest.raises(ValueError, match="epoch schedule"):
        get_profile("smoke").epochs("gearnn3", "cifar10")
    with pytest.raises(ValueError, match="growth ratio"):
        get_profile("smoke").growth_ratio("cifar10", "alexnet")
