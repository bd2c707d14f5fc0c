"""Network growth: one Firefly width-growth step (split + new neurons), used by every growth plan.

Read in order: candidate.py (candidate network) -> firefly.py (train, score, select) -> materialise.py.
One-Shot and N-shot growth are plans of gearlib.train.methods, run by gearlib.train.runner.
"""

from __future__ import annotations

from gearlib.grow.candidate import Candidate
from gearlib.grow.firefly import (
    RMSPROP_PRESETS,
    GrowthRecord,
    check_feasible,
    firefly_step,
    group_budget,
    ratio_for_size,
    score_candidates,
    select_candidates,
    train_perturbations,
    zero_growth_tensors,
)
from gearlib.grow.materialise import UnitSelection, grown_widths, materialise

__all__ = [
    "RMSPROP_PRESETS",
    "Candidate",
    "GrowthRecord",
    "UnitSelection",
    "check_feasible",
    "firefly_step",
    "group_budget",
    "grown_widths",
    "materialise",
    "ratio_for_size",
    "score_candidates",
    "select_candidates",
    "train_perturbations",
    "zero_growth_tensors",
]
