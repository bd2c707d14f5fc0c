"""Conv layers that generate feature maps cheaply (GroupNL and its baselines MonoCNN, Ghost, SineFM), a converter
that swaps them into CIFAR/ImageNet CNNs, and their parameter/gradient/FLOP accounting.
"""

from __future__ import annotations

from gearlib.layers.accounting import (
    KINDS,
    PAPER_TABLE16,
    TABLE16_MODULE,
    LayerCost,
    ModelCost,
    Table16Row,
    conv_cost,
    layer_cost,
    model_cost,
    table16_costs,
)
from gearlib.layers.convert import LAYERS, RULES, ConversionReport, Kept, Replaced, convert
from gearlib.layers.ghost import GhostConv2d
from gearlib.layers.groupnl import NLF_RANGES, NLFS, GroupNLConv2d, apply_nlf, check_groupnl
from gearlib.layers.monocnn import MONO_EXPONENT_RANGE, MonoCNNConv2d
from gearlib.layers.sinefm import SineFMConv2d
from gearlib.layers.vgg11 import VGG11, vgg11

__all__ = [
    "KINDS",
    "LAYERS",
    "MONO_EXPONENT_RANGE",
    "NLFS",
    "NLF_RANGES",
    "PAPER_TABLE16",
    "RULES",
    "TABLE16_MODULE",
    "VGG11",
    "ConversionReport",
    "GhostConv2d",
    "GroupNLConv2d",
    "Kept",
    "LayerCost",
    "ModelCost",
    "MonoCNNConv2d",
    "Replaced",
    "SineFMConv2d",
    "Table16Row",
    "apply_nlf",
    "check_groupnl",
    "conv_cost",
    "convert",
    "layer_cost",
    "model_cost",
    "table16_costs",
    "vgg11",
]
