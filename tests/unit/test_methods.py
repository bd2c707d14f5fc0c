"""Tests of the method registry and plan arithmetic: registration by name, N-shot epochs and ratios, and
the Small baselines' explicit topology step."""

from __future__ import annotations

import pytest

from gearlib.cli import main
from gearlib.profiles import get_profile
from gearlib.train.methods import (
    METHODS,
    get_method,
    per_step_ratio,
    plan_for,
    register,
    split_epochs,
)


def test_split_epochs_and_per_step_ratio():
    assert split_epochs(80, 2) == [40, 40]
    assert split_epochs(80, 3) == [27, 27, 26]
    assert split_epochs(80, 5) == [16] * 5
    assert per_step_ratio(0.9, 1) == 0.9
    assert per_step_ratio(1.9 - 1, 2) == pytest.approx(0.378, abs=1e-3)
    assert per_step_ratio(0.9, 4) == pytest.approx(0.174, abs=1e-3)
    assert (1 + per_step_ratio(0.9, 3)) ** 3 == pytest.approx(1.9)  # N steps compound to the one-shot budget


def test_nshot_plan_keeps_the_epochs_and_compounds_the_ratio():
    quadro = get_profile("quadro")
    _, osg = plan_for("gearnn2", quadro, "cifar10", "vgg19")
    _, n3 = plan_for("gearnn2-n3", quadro, "cifar10", "vgg19")
    assert [s.kind for s in osg] == ["train", "grow", "train", "train"]
    assert [s.kind for s in n3] == ["train", "grow", "train", "grow", "train", "grow", "train", "train"]
    assert sum(s.epochs for s in n3) == sum(s.epochs for s in osg) == 40 + 40 + 40  # Table 1, CIFAR-10
    assert [s.growth_ratio for s in osg if s.kind == "grow"] == [0.9]
    assert all(s.growth_ratio == pytest.approx(per_step_ratio(0.9, 3)) for s in n3 if s.kind == "grow")


def test_small_baselines_name_their_gearnn2_run_in_the_plan(capsys):
    quadro = get_profile("quadro")
    _, plan = plan_for("small-augmix", quadro, "cifar10", "vgg19")
    assert plan[0].kind == "topology" and plan[0].source == "gearnn2"
    assert plan[1].augment == "augmix" and plan[1].epochs == 160
    assert get_method("small-augmix").topology_source(quadro) == "gearnn2"
    assert get_method("gearnn2").topology_source(quadro) is None
    assert main(["methods"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "widths of the gearnn2 run" in lines["small-clean"]
    assert "widths of" not in lines["gearnn2"]


def test_register_adds_a_method_by_name_and_refuses_a_duplicate():
    @register("test-only-clean", "clean training of the backbone only", "none")
    def plan(profile, dataset, arch):
        return plan_for("phase1-vanilla", profile, dataset, arch)[1][1:]

    try:
        assert get_method("test-only-clean").plan is plan
        with pytest.raises(ValueError, match="registered twice"):
            register("test-only-clean", "again")(plan)
    finally:
        METHODS.pop("test-only-clean")
    with pytest.raises(ValueError, match="unknown method 'test-only-clean'"):
        get_method("test-only-clean")
