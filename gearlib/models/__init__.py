"""Growable CIFAR / Tiny-ImageNet models (VGG-19, MobileNet-V1, ResNet-18) built from per-layer width lists.

`build(arch, widths)` makes a model; `widths_of(model)` reads the width list back; sizes follow book/notes/architectures.md#notes-arch-size.
"""

from __future__ import annotations

from gearlib.models.common import GrowableNet, GrowthGraph, Layer, Normalize, Unit
from gearlib.models.fold import fold_batchnorm
from gearlib.models.layout import unsafe_channels_last, use_channels_last
from gearlib.models.registry import (
    ARCHS,
    budget_groups,
    build,
    build_meta,
    check_widths,
    count_params,
    full_widths,
    param_count,
    size_fraction,
    unit_names,
    widths_of,
)

__all__ = [
    "ARCHS",
    "GrowableNet",
    "GrowthGraph",
    "Layer",
    "Normalize",
    "Unit",
    "budget_groups",
    "build",
    "build_meta",
    "check_widths",
    "count_params",
    "fold_batchnorm",
    "full_widths",
    "param_count",
    "size_fraction",
    "unit_names",
    "unsafe_channels_last",
    "use_channels_last",
    "widths_of",
]
