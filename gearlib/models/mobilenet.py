"""MobileNet-V1 for CIFAR as in the Firefly code: Swish everywhere, stride-1 stem, 1x1-conv head.

14 growable widths (stem + 13 pointwise convs); each depthwise conv follows the unit it reads (book/notes/growth.md#notes-growth-mobilenet).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from gearlib.models.common import GrowableNet, GrowthGraph, Layer, Normalize, Unit

FULL_WIDTHS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
BLOCK_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)  # blocks 1..13; stride 2 in blocks 2, 4, 6, 12
UNIT_NAMES = ["stem"] + [f"pw{i}" for i in range(1, 14)]
BUDGET_GROUPS = [UNIT_NAMES[:4], UNIT_NAMES[4:]]  # official code: {stem, pw1..pw3}, {pw4..pw13}


class Block(nn.Module):
    """3x3 depthwise conv (stride s), BN, Swish, then 1x1 pointwise conv, BN, Swish."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.dw(x)))
        return self.act(self.bn2(self.pw(x)))


class MobileNetV1(GrowableNet):
    """MobileNet-V1; widths = [stem, pw1, ..., pw13] output channels."""

    arch = "mobilenet_v1"

    def __init__(self, widths: Sequence[int], num_classes: int = 10, input_size: int = 32) -> None:
        super().__init__(widths, num_classes, input_size)
        self.normalize = Normalize()
        self.stem = nn.Conv2d(3, self.widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(self.widths[0])
        self.act = nn.SiLU()
        blocks: List[nn.Module] = []
        for i, stride in enumerate(BLOCK_STRIDES):
            blocks.append(Block(self.widths[i], self.widths[i + 1], stride))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)  # the CIFAR net's 2x2 average pool, any input size
        self.head = nn.Conv2d(self.widths[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem_bn(self.stem(self.normalize(x))))
        x = self.pool(self.blocks(x))
        return torch.flatten(self.head(x), 1)

    def growth_graph(self) -> GrowthGraph:
        units = [Unit("input", 3, growable=False)]
        units += [Unit(name, c) for name, c in zip(UNIT_NAMES, self.widths)]
        units.append(Unit("logits", self.num_classes, growable=False))
        layers = [Layer("stem", "stem_bn", "input", "stem")]
        for i in range(len(BLOCK_STRIDES)):
            prev, name = UNIT_NAMES[i], UNIT_NAMES[i + 1]
            layers.append(Layer(f"blocks.{i}.dw", f"blocks.{i}.bn1", prev, prev, kind="depthwise"))
            layers.append(Layer(f"blocks.{i}.pw", f"blocks.{i}.bn2", prev, name))
        layers.append(Layer("head", None, UNIT_NAMES[-1], "logits"))
        return GrowthGraph(units, layers, groups=[list(g) for g in BUDGET_GROUPS])
