"""CIFAR ResNet-18 with tied residual-stream widths: 4 stream units and 8 inner (block) units.

Width list order follows the network: [stream1, inner1_1, inner1_2, stream2, inner2_1, inner2_2, ...] (book/notes/architectures.md#notes-arch-resnet).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.models.common import GrowableNet, GrowthGraph, Layer, Normalize, Unit

FULL_WIDTHS = [64, 64, 64, 128, 128, 128, 256, 256, 256, 512, 512, 512]
STAGE_STRIDES = (1, 2, 2, 2)
UNIT_NAMES = [n for s in range(1, 5) for n in (f"stream{s}", f"inner{s}_1", f"inner{s}_2")]


class BasicBlock(nn.Module):
    """conv1 (c_in -> inner), BN, ReLU, conv2 (inner -> c_out), BN, + shortcut, ReLU."""

    def __init__(self, c_in: int, inner: int, c_out: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, inner, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if project:  # 1x1 conv + BN projection; structural (first block of stages 2-4), not width-dependent
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(GrowableNet):
    """ResNet-18 (CIFAR stem, no max-pool); widths in UNIT_NAMES order."""

    arch = "resnet18"

    def __init__(self, widths: Sequence[int], num_classes: int = 10, input_size: int = 32) -> None:
        super().__init__(widths, num_classes, input_size)
        w = self.widths
        self.normalize = Normalize()
        self.stem = nn.Conv2d(3, w[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w[0])
        stages: List[nn.Module] = []
        c_in = w[0]
        for s, stride in enumerate(STAGE_STRIDES):
            stream, inner1, inner2 = w[3 * s : 3 * s + 3]
            first = BasicBlock(c_in, inner1, stream, stride, project=s > 0)
            second = BasicBlock(stream, inner2, stream, 1, project=False)
            stages.append(nn.Sequential(first, second))
            c_in = stream
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(self.normalize(x))))
        x = self.pool(self.stages(x))
        return self.head(torch.flatten(x, 1))

    def growth_graph(self) -> GrowthGraph:
        units = [Unit("input", 3, growable=False)]
        for name, c in zip(UNIT_NAMES, self.widths):
            units.append(Unit(name, c, tied=name.startswith("stream")))
        units.append(Unit("logits", self.num_classes, growable=False))
        layers = [Layer("stem", "stem_bn", "input", "stream1")]
        src = "stream1"
        for s in range(4):
            stream = f"stream{s + 1}"
            for b in range(2):
                path, inner = f"stages.{s}.{b}", f"inner{s + 1}_{b + 1}"
                layers.append(Layer(f"{path}.conv1", f"{path}.bn1", src, inner))
                layers.append(Layer(f"{path}.conv2", f"{path}.bn2", inner, stream))
                if b == 0 and s > 0:
                    layers.append(Layer(f"{path}.shortcut.0", f"{path}.shortcut.1", src, stream))
                src = stream
        layers.append(Layer("head", None, src, "logits", kind="linear"))
        return GrowthGraph(units, layers, groups=[list(UNIT_NAMES)])
