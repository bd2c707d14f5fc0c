"""Training: the stage trainer T(f, data, E) (stage.py), method plans (methods.py) and the runner.

Names are imported lazily so that `gearlib.train.cli` can load without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "StageConfig",
    "StageResult",
    "clean_cross_entropy",
    "default_loss_fn",
    "make_optimizer",
    "make_scheduler",
    "milestones",
    "stage_lr",
    "train_epoch",
    "train_stage",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("gearlib.train.stage"), name)
    raise AttributeError(f"module 'gearlib.train' has no attribute {name!r}")
