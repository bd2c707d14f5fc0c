"""Tests for gearlib.claims: verdicts computed from per-seed values, the strongest rival, the paper's numbers."""

import math

import pytest

from gearlib import claims, paper
from gearlib.claims import Claim, judge, verdict


def test_verdict_holds_fails_and_within_noise():
    assert verdict([60.0, 61.0, 62.0], [50.0, 51.0, 52.0]).verdict == "holds"
    assert verdict([50.0, 51.0, 52.0], [60.0, 61.0, 62.0]).verdict == "fails"
    close = verdict([50.0, 52.0, 54.0], [51.0, 52.0, 53.0])  # gap 0, spread 2
    assert close.verdict == "within noise" and close.spread == pytest.approx(2.0)
    assert verdict([50.0, 52.0, 54.0], [47.0, 47.5, 48.0]).verdict == "holds"  # gap 4.5 > spread 2


def test_verdict_margin_and_lower_is_better():
    # "within 1.5 points": 49 trails 50 by 1 point, so the claim holds; by 3 points it fails
    assert verdict([49.0, 49.0], [50.0, 50.0], margin=1.5).verdict == "holds"
    assert verdict([47.0, 47.0], [50.0, 50.0], margin=1.5).verdict == "fails"
    faster = verdict([10.0, 10.5], [20.0, 21.0], higher_is_better=False)
    assert faster.verdict == "holds" and faster.gap == pytest.approx(10.25)


def test_verdict_one_seed_borrows_the_reference_spread_and_missing_values_are_na():
    one = verdict([51.0], [50.0], reference_spread=2.0)
    assert one.verdict == "within noise" and one.spread_from == "the three-seed runs' spread"
    assert verdict([51.0], [50.0]).verdict == "holds"
    assert verdict([], [50.0]).verdict == "n/a (no meter)"


def _run(clean, robust, seconds, joules=None):
    return {"clean_acc": clean, "robust_acc": robust, "train_seconds": seconds, "train_joules": joules}


def test_judge_compares_with_the_strongest_rival_and_reads_units():
    runs = {
        "a": [_run(60, 50, 600), _run(61, 51, 620)],
        "b": [_run(55, 40, 1200), _run(56, 41, 1180)],
        "c": [_run(59, 52, 900), _run(58, 53, 960)],
    }
    table = judge(
        [
            Claim("a most robust", "robust_acc", "a", ("b", "c")),
            Claim("a fastest", "train_seconds", "a", ("b", "c"), higher_is_better=False),
            Claim("a frugal", "train_joules", "a", ("b",), higher_is_better=False),
        ],
        runs,
    )
    assert table.loc["a most robust", "compared"] == "a vs c"
    assert table.loc["a most robust", "verdict"] == "fails"
    assert table.loc["a fastest", "compared"] == "a vs c" and table.loc["a fastest", "verdict"] == "holds"
    assert "(2 seeds)" in table.loc["a fastest", "ours"] and "10.17" in table.loc["a fastest", "ours"]
    assert table.loc["a frugal", "verdict"] == "n/a (no meter)"
    with pytest.raises(KeyError, match="'z'"):
        judge([Claim("z", "clean_acc", "a", ("z",))], runs)


def test_paper_claims_read_the_papers_tables():
    found = claims.paper_claims()
    t2 = paper.table2("vgg19", "cifar10")
    first = found[0]
    assert first.paper_values == (t2.loc["gearnn2", "C-acc (%)"], t2.loc["gearnn1", "C-acc (%)"])
    assert all(not math.isnan(v) for c in found for v in c.paper_values)
    labels = {c.method for c in found} | {a for c in found for a in c.against}
    assert labels <= set(claims.CLAIM_RUNS)
    assert set(claims.SEEDED_RUNS) <= set(claims.CLAIM_RUNS)


def test_a_stalled_run_keeps_its_accuracy_but_not_its_time_in_claims_and_seed_tables():
    from gearlib.experiments import seed_table

    stall = [{"stage": "era", "epoch": 2, "seconds": 2976.0, "reason": "4.6x its stage's median epoch"}]
    stalled = {**_run(50, 45, 5356, 9000.0), "seed": 0, "timing_stalls": stall}
    runs = {"a": [stalled, {**_run(52, 44, 1200), "seed": 1}], "b": [{**stalled, "seed": 1}]}
    assert claims.values(runs["a"], "clean_acc") == [50, 52]
    assert claims.values(runs["a"], "train_seconds") == [20.0]  # seed 0's time is left out
    assert claims.values(runs["a"], "train_joules") == []
    table = judge([Claim("a faster", "train_seconds", "a", ("b",), higher_is_better=False)], runs)
    assert table.loc["a faster", "verdict"] == "n/a (a stalled time measurement left out)"
    seeds = seed_table(runs)
    assert seeds.loc["a", "T (min) mean"] == 20.0 and seeds.loc["a", "C-acc (%) mean"] == 51.0
    assert seeds.loc["a", "note"] == "T and E leave out seed 0 (a stalled epoch)"
