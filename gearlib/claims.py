"""The paper's qualitative claims as checks on our runs: means over seeds, their spread, a computed verdict.

A claim says one method beats others on one metric (or trails them by at most a margin). The verdict is
'holds', 'fails', or 'within noise' when the gap is smaller than the seeds' spread; it is never typed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from gearlib import paper

# Metric key in a run's metrics -> (column label, factor to the paper's unit).
METRICS: Dict[str, Tuple[str, float]] = {
    "clean_acc": ("C-acc (%)", 1.0),
    "robust_acc": ("R-acc (%)", 1.0),
    "train_seconds": ("T (min)", 1 / 60),
    "train_joules": ("E (kJ)", 1 / 1000),
}
VERDICTS = ("holds", "fails", "within noise")


@dataclass(frozen=True)
class Claim:
    """One qualitative claim: `method` is better than every run in `against` on `metric`.

    Attributes:
        text: the claim in our words.
        metric: a key of METRICS.
        method, against: run labels (see `CLAIM_RUNS`); the strongest of `against` is the one compared.
        higher_is_better: False for time and energy.
        margin: how far `method` may trail and the claim still hold, in the metric's unit (1.5 points for
            "within 1.5 points of").
        source: where the paper reports it; paper_values: the paper's (method, strongest of against).
    """

    text: str
    metric: str
    method: str
    against: Tuple[str, ...]
    higher_is_better: bool = True
    margin: float = 0.0
    source: str = ""
    paper_values: Tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim on our runs.

    Attributes:
        verdict: 'holds', 'fails', 'within noise' or 'n/a (...)' when a value is missing.
        ours, theirs: means of `method` and of the strongest `against`; gap: how far the claim is met
            (positive: met), in the metric's unit; spread: the seeds' standard deviation it is judged against;
        seeds: seeds behind (ours, theirs); spread_from: where the spread came from.
    """

    verdict: str
    ours: Optional[float]
    theirs: Optional[float]
    ours_std: Optional[float]
    theirs_std: Optional[float]
    gap: Optional[float]
    spread: Optional[float]
    seeds: Tuple[int, int]
    spread_from: str


# Metrics that a stalled epoch (gearlib.measure.timer.stalled_epochs) makes incomparable across runs.
COST_METRICS = ("train_seconds", "train_joules")


def values(runs: Sequence[Mapping[str, Any]], metric: str) -> List[float]:
    """The metric of each run (seed) in the paper's unit. Missing values (no energy meter) are left out, and
    so are the time and energy of a run with a stalled epoch (its `timing_stalls`)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    factor = METRICS[metric][1]
    kept = [r for r in runs if not (metric in COST_METRICS and r.get("timing_stalls"))]
    return [float(r[metric]) * factor for r in kept if r.get(metric) is not None]


def spread(xs: Sequence[float]) -> Optional[float]:
    """Sample standard deviation over seeds; None with fewer than two."""
    return statistics.stdev(xs) if len(xs) >= 2 else None


def verdict(
    ours: Sequence[float],
    theirs: Sequence[float],
    higher_is_better: bool = True,
    margin: float = 0.0,
    reference_spread: Optional[float] = None,
    missing: str = "n/a (no meter)",
) -> Verdict:
    """Judge "ours beats theirs (or trails by at most `margin`)" from per-seed values.

    The gap is sign * (mean(ours) - mean(theirs)) + margin. It counts as noise when its size is below the
    larger of the two arms' seed spreads; with one seed an arm, `reference_spread` (the spread of the same
    metric over the three-seed runs) stands in. An arm without values gets the verdict `missing`.
    """
    if not ours or not theirs:
        return Verdict(missing, None, None, None, None, None, None, (len(ours), len(theirs)), "")
    a, b = statistics.fmean(ours), statistics.fmean(theirs)
    sign = 1.0 if higher_is_better else -1.0
    gap = sign * (a - b) + margin
    spreads = [s for s in (spread(ours), spread(theirs)) if s is not None]
    if spreads:
        noise, source = max(spreads), "these runs' seeds"
    elif reference_spread is not None:
        noise, source = reference_spread, "the three-seed runs' spread"
    else:
        noise, source = 0.0, "one seed, spread unknown"
    if abs(gap) < noise:
        outcome = "within noise"
    else:
        outcome = "holds" if gap >= 0 else "fails"
    return Verdict(outcome, a, b, spread(ours), spread(theirs), gap, noise, (len(ours), len(theirs)), source)


def strongest(
    labels: Sequence[str], runs: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, higher: bool
) -> str:
    """The label among `labels` with the best mean on `metric` (the one a claim must beat)."""
    missing = [label for label in labels if label not in runs]
    if missing:
        raise KeyError(f"no runs for {missing}; the claims page needs runs for {', '.join(labels)}")
    scored = [(statistics.fmean(v), label) for label in labels if (v := values(runs[label], metric))]
    if not scored:
        return labels[0]
    return (max if higher else min)(scored)[1]


def judge(
    claims: Sequence[Claim],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    reference_spread: Optional[Mapping[str, float]] = None,
) -> pd.DataFrame:
    """One row per claim: the paper's numbers, ours as mean +- std (seeds), the gap and the verdict."""
    rows = []
    for claim in claims:
        rival = strongest(claim.against, runs, claim.metric, claim.higher_is_better)
        if claim.method not in runs:
            raise KeyError(f"no runs for {claim.method!r}; the claim {claim.text!r} needs them")
        v = verdict(
            values(runs[claim.method], claim.metric),
            values(runs[rival], claim.metric),
            claim.higher_is_better,
            claim.margin,
            (reference_spread or {}).get(claim.metric),
            _missing_reason([*runs[claim.method], *runs[rival]], claim.metric),
        )
        rows.append(
            {
                "claim": claim.text,
                "metric": METRICS[claim.metric][0],
                "compared": f"{claim.method} vs {rival}",
                "paper": f"{claim.paper_values[0]:g} vs {claim.paper_values[1]:g} ({claim.source})",
                "ours": f"{_mean_std(v.ours, v.ours_std, v.seeds[0])} vs {_mean_std(v.theirs, v.theirs_std, v.seeds[1])}",
                "gap": None if v.gap is None else round(v.gap, 2),
                "seed spread": None if v.spread is None else round(v.spread, 2),
                "spread from": v.spread_from,
                "verdict": v.verdict,
            }
        )
    return pd.DataFrame(rows).set_index("claim")


def _missing_reason(runs: Sequence[Mapping[str, Any]], metric: str) -> str:
    """Why an arm may lack a metric: a stalled time measurement (see `values`), else no energy meter."""
    if metric in COST_METRICS and any(r.get("timing_stalls") for r in runs):
        return "n/a (a stalled time measurement left out)"
    return "n/a (no meter)"


def _mean_std(mean: Optional[float], std: Optional[float], n: int) -> str:
    if mean is None:
        return "n/a"
    if std is None:
        return f"{mean:.2f} (1 seed)"
    return f"{mean:.2f} ± {std:.2f} ({n} seeds)"


def reference_spreads(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Dict[str, float]:
    """Per metric, the largest seed spread among runs with several seeds (the noise one-seed arms borrow)."""
    out: Dict[str, float] = {}
    for metric in METRICS:
        spreads = [s for label in runs if (s := spread(values(runs[label], metric))) is not None]
        if spreads:
            out[metric] = max(spreads)
    return out


# Run labels the claims read -> (method, result-file tag). The first four and the 3-shot runs have seeds.
CLAIM_RUNS: Dict[str, Tuple[str, str]] = {
    "gearnn1": ("gearnn1", ""),
    "gearnn2": ("gearnn2", ""),
    "small-clean": ("small-clean", ""),
    "small-augmix": ("small-augmix", ""),
    "gearnn1-n3": ("gearnn1-n3", ""),
    "gearnn2-n3": ("gearnn2-n3", ""),
    "small-era": ("small-era", "-w1d3j4"),
    "phase1-vanilla": ("phase1-vanilla", ""),
    "osg-clean": ("osg-clean", ""),
    "phase2-augmix": ("phase2-augmix", ""),
    "phase2-era": ("phase2-era", ""),
    "vanilla-augmix": ("vanilla-augmix", ""),
}
SEEDED_RUNS = ("gearnn1", "gearnn2", "small-clean", "small-augmix", "gearnn1-n3", "gearnn2-n3")


def paper_claims() -> List[Claim]:
    """The paper's qualitative claims, with its numbers read from gearlib.paper (VGG-19)."""
    t2 = paper.table2("vgg19", "cifar10")
    t4, t7, t8 = paper.table4(), paper.table7(), paper.table8()
    src2 = "Table 2, VGG-19, CIFAR-10, Quadro"

    def pair(frame: Any, a: str, b: str, column: str) -> Tuple[float, float]:
        return float(frame.loc[a, column]), float(frame.loc[b, column])

    # Table 2 rows: (claim, metric, rival, the paper's column, higher is better, margin).
    table2_claims = [
        ("GEARnn-2 beats GEARnn-1 on clean accuracy", "clean_acc", "gearnn1", "C-acc (%)", True, 0.0),
        ("GEARnn-2 beats GEARnn-1 on robust accuracy", "robust_acc", "gearnn1", "R-acc (%)", True, 0.0),
        ("GEARnn-2 trains faster than GEARnn-1", "train_seconds", "gearnn1", "T (min)", False, 0.0),
        ("GEARnn-2 uses less energy than GEARnn-1", "train_joules", "gearnn1", "E (kJ)", False, 0.0),
        ("GEARnn-2 is within 1.5 points of Small (AugMix) robust accuracy", "robust_acc", "small-augmix",
         "R-acc (%)", True, 1.5),
        ("GEARnn-2 costs less training time than Small (AugMix)", "train_seconds", "small-augmix", "T (min)",
         False, 0.0),
        ("GEARnn-2 beats Small (clean) on robust accuracy", "robust_acc", "small-clean", "R-acc (%)", True, 0.0),
    ]  # fmt: skip
    claims = [
        Claim(text, metric, "gearnn2", (rival,), higher, margin, src2, pair(t2, "gearnn2", rival, column))
        for text, metric, rival, column, higher, margin in table2_claims
    ]
    src4 = "Table 4, VGG-19, CIFAR-10, Jetson"
    for g, col in (("gearnn1", "G1"), ("gearnn2", "G2")):
        name = "GEARnn-1" if g == "gearnn1" else "GEARnn-2"
        claims += [
            Claim(
                f"One-Shot Growth is at least as robust as 3-shot ({name})",
                "robust_acc",
                g,
                (f"{g}-n3",),
                source=src4,
                paper_values=(float(t4.loc[1, f"{col} R-acc"]), float(t4.loc[3, f"{col} R-acc"])),
            ),
            Claim(
                f"One-Shot Growth trains no slower than 3-shot ({name})",
                "train_seconds",
                g,
                (f"{g}-n3",),
                higher_is_better=False,
                source=src4,
                paper_values=(float(t4.loc[1, f"{col} T"]), float(t4.loc[3, f"{col} T"])),
            ),
        ]
    src8 = "Table 8, VGG-19, CIFAR-10"
    era, augmix = "+depth+JSD-4 (ERA)", "AugMix"
    claims += [
        Claim(
            "ERA matches AugMix's robust accuracy",
            "robust_acc",
            "small-era",
            ("small-augmix",),
            source=src8,
            paper_values=pair(t8, era, augmix, "R-acc (%)"),
        ),
        Claim(
            "ERA trains faster than AugMix",
            "train_seconds",
            "small-era",
            ("small-augmix",),
            higher_is_better=False,
            source=src8,
            paper_values=pair(t8, era, augmix, "T (min)"),
        ),
    ]
    arms = ("phase1-vanilla", "osg-clean", "phase2-augmix", "phase2-era", "vanilla-augmix")
    claims.append(
        Claim("In the ablation, OSG then ERA (GEARnn-2) is the most robust arm", "robust_acc", "gearnn2", arms,
              source="Table 7, VGG-19, CIFAR-100, Quadro",
              paper_values=(float(t7.loc["gearnn2", "R-acc (%)"]), float(t7.loc[list(arms), "R-acc (%)"].max()))),
    )  # fmt: skip
    return claims
