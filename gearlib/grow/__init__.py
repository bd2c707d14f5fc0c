"""Network growth: one Firefly width-growth step (split + new neurons) and the OSG / N-shot drivers.

Read in order: candidate.py (candidate network) -> firefly.py (train, score, select) -> materialise.py.
"""

from __future__ import annotations

from gearlib.grow.candidate import Candidate
from gearlib.grow.drivers import (
    GrowthHistory,
    StageLog,
    n_shot_growth,
    one_shot_growth,
    per_step_ratio,
    split_epochs,
)
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
    "GrowthHistory",
    "GrowthRecord",
    "StageLog",
    "UnitSelection",
    "check_feasible",
    "firefly_step",
    "group_budget",
    "grown_widths",
    "materialise",
    "n_shot_growth",
    "one_shot_growth",
    "per_step_ratio",
    "ratio_for_size",
    "score_candidates",
    "select_candidates",
    "split_epochs",
    "train_perturbations",
    "zero_growth_tensors",
]
