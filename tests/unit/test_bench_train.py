"""Tests for `gearlib bench train --only-steps`: gearlib's full training step against a bare step, per phase.

Tiny scale through the command line; the keys and their arithmetic are checked, never a timing threshold.
"""

from __future__ import annotations

import json

import pytest

from gearlib.cli import main
from gearlib.models import full_widths
from gearlib.profiles import get_profile

TINY = ["--steps", "2", "--repeats", "1", "--set", "batch_size=4", "--set", "backbone_width=4"]


@pytest.fixture
def step_results(capsys: pytest.CaptureFixture) -> dict:
    """One tiny measurement at the smoke profile (c_0 = 4, B = 4, two batches, one timed repeat)."""
    assert main(["bench", "train", "--json", "--only-steps", *TINY]) == 0
    return json.loads(capsys.readouterr().out)


def test_step_measurement_reports_both_sides_per_phase(step_results: dict) -> None:
    for phase in ("clean", "era"):
        full, bare = step_results[f"{phase}_full_step_s"], step_results[f"{phase}_bare_step_s"]
        assert full > 0 and bare > 0
        assert step_results[f"{phase}_step_overhead"] == full / bare - 1
        assert step_results[f"{phase}_batch_size"] == 4
        assert step_results[f"{phase}_batches"] == 2
    assert step_results["clean_views"] == 1
    assert step_results["era_views"] == get_profile("smoke").era_views == 4
    assert step_results["step_repeats"] == 1


def test_step_measurement_uses_grown_widths_and_skips_the_run_comparisons(step_results: dict) -> None:
    # c_0 = 4 grown by VGG-19's CIFAR-10 ratio 0.9: 4 x 1.9 = 7.6 -> 8 in every growable unit
    assert step_results["step_widths"] == [8] * len(full_widths("vgg19"))
    assert "growth ratio 0.9" in step_results["step_widths_rule"]
    assert step_results["step_arch"] == "vgg19"
    assert "gearnn2_over_small_augmix_time" not in step_results
    assert "batched_over_per_sample_speedup" not in step_results


def test_steps_printed_as_a_table_without_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "train", "--only-steps", *TINY]) == 0
    lines = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert float(lines["era_views"]) == 4
    assert float(lines["clean_full_step_s"]) > 0


@pytest.mark.parametrize("option", ["--steps", "--repeats"])
def test_bad_counts_exit_with_status_2_naming_the_option(option: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "train", "--json", "--only-steps", option, "0"]) == 2
    err = capsys.readouterr().err
    assert option in err and "got 0" in err
