"""Robust augmentation for GEARnn: batched AugMix, ERA and PRIME views on the device, and the JSD loss.

Everything works on whole NCHW batches (uint8 or float [0,1]) with per-sample randomness from a generator.
"""

from __future__ import annotations

from gearlib.augment import jsd
from gearlib.augment.augmix import AugMixOps, augmix, mix_views
from gearlib.augment.defaults import (
    AUGMIX_DEFAULTS,
    AUGMIX_SEVERITY,
    ERA_DEFAULTS,
    ERA_J3,
    JSD_LAMBDA,
    MIX_ALPHA,
    Mixing,
)
from gearlib.augment.era import ERA_PRESETS, era, resolve_ops
from gearlib.augment.factory import AUGMENT_NAMES, Augment, make_augment, valid_knobs
from gearlib.augment.jsd import jsd_divergence, jsd_loss, task_loss
from gearlib.augment.ops import AUGMIX_OPS, GEOMETRIC_OPS, OP_INDEX, POINT_OPS, apply_ops
from gearlib.augment.prime import PRIMITIVES, PrimeConfig, PrimeOps, prime
from gearlib.augment.strength import saturated_share, view_strength

__all__ = [
    "AUGMENT_NAMES",
    "AUGMIX_DEFAULTS",
    "AUGMIX_OPS",
    "AUGMIX_SEVERITY",
    "Augment",
    "AugMixOps",
    "ERA_DEFAULTS",
    "ERA_J3",
    "ERA_PRESETS",
    "GEOMETRIC_OPS",
    "JSD_LAMBDA",
    "MIX_ALPHA",
    "Mixing",
    "OP_INDEX",
    "POINT_OPS",
    "PRIMITIVES",
    "PrimeConfig",
    "PrimeOps",
    "apply_ops",
    "augmix",
    "era",
    "jsd",
    "jsd_divergence",
    "jsd_loss",
    "make_augment",
    "mix_views",
    "prime",
    "resolve_ops",
    "saturated_share",
    "task_loss",
    "valid_knobs",
    "view_strength",
]
