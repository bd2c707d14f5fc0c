"""VGG-19 for CIFAR as in the Firefly code: 16 x [3x3 conv, BN, ReLU], five max-pools, one linear head.

All 16 conv widths are growable and form one budget group (book/notes/architectures.md#notes-arch-vgg).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from gearlib.models.common import GrowableNet, GrowthGraph, Layer, Normalize, Unit

FULL_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
POOL_AFTER = (2, 4, 8, 12, 16)  # 1-based conv index followed by a 2x2 max-pool
UNIT_NAMES = [f"conv{i}" for i in range(1, 17)]


class VGG19(GrowableNet):
    """VGG-19 with batch norm; widths[l-1] = c_l output channels of conv l (l = 1..16)."""

    arch = "vgg19"

    def __init__(self, widths: Sequence[int], num_classes: int = 10, input_size: int = 32) -> None:
        super().__init__(widths, num_classes, input_size)
        self.normalize = Normalize()
        layers: List[nn.Module] = []
        self._conv_index: List[int] = []  # position of each conv inside self.features
        c_in = 3
        for i, c in enumerate(self.widths, start=1):
            self._conv_index.append(len(layers))
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)  # identity at 32x32; global average pooling at 64x64
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.head(torch.flatten(self.pool(x), 1))

    def growth_graph(self) -> GrowthGraph:
        units = [Unit("input", 3, growable=False)]
        units += [Unit(name, c) for name, c in zip(UNIT_NAMES, self.widths)]
        units.append(Unit("logits", self.num_classes, growable=False))
        layers = []
        src = "input"
        for name, idx in zip(UNIT_NAMES, self._conv_index):
            layers.append(Layer(f"features.{idx}", f"features.{idx + 1}", src, name))
            src = name
        layers.append(Layer("head", None, src, "logits", kind="linear"))
        return GrowthGraph(units, layers, groups=[list(UNIT_NAMES)])
