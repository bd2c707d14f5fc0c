"""CIFAR ResNets (basic blocks) built from a `Conditioning` config: plain (PGD-AT), noisy with dual BN
(FLOAT, SMART) or FiLM with dual BN (OAT); registered by name (resnet10, resnet18, resnet34).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.adversarial.knobs import OAT_TRAIN_LAMBDAS
from gearlib.adversarial.layers import (
    Condition,
    DualBatchNorm2d,
    FiLM,
    LambdaEncoding,
    NoisyConv2d,
    NoisyLinear,
    SlimDualBatchNorm2d,
    share_condition,
)

# Blocks per stage of each CIFAR ResNet (4 stages at widths w, 2w, 4w, 8w; the paper's models use w = 64).
ADV_ARCHS: Dict[str, Tuple[int, ...]] = {
    "resnet10": (1, 1, 1, 1),
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}
STAGE_STRIDES = (1, 2, 2, 2)


@dataclass(frozen=True)
class Conditioning:
    """Which conditional layers a model has: weight noise on every conv and the classifier, two BN sets,
    FiLM after the stem BN and both BNs of every block (OAT; shortcut BNs excluded)."""

    noisy: bool = False
    dual_bn: bool = False
    film: bool = False
    widths: Tuple[float, ...] = (1.0,)  # slimming factors (FLOATS slim: 1.0 and 0.5), switchable dual BN
    encoding: int = 1  # FiLM's input: lambda itself (1) or its row of a fixed orthogonal encoding (OAT: 128)


PLAIN = Conditioning()
FLOAT = Conditioning(noisy=True, dual_bn=True)
OAT = Conditioning(dual_bn=True, film=True)
OAT_128 = Conditioning(dual_bn=True, film=True, encoding=128)
FLOAT_SLIM = Conditioning(noisy=True, dual_bn=True, widths=(1.0, 0.5))


class Layers:
    """Builds convs, BNs and FiLMs for one Conditioning."""

    def __init__(self, kind: Conditioning) -> None:
        self.kind = kind
        self.encoder = (
            LambdaEncoding(OAT_TRAIN_LAMBDAS, kind.encoding) if kind.film and kind.encoding > 1 else None
        )

    def conv(self, c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
        return NoisyConv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False, noisy=self.kind.noisy)

    def bn(self, channels: int) -> nn.Module:
        if len(self.kind.widths) > 1:
            return SlimDualBatchNorm2d(channels, self.kind.widths)
        return DualBatchNorm2d(channels) if self.kind.dual_bn else nn.BatchNorm2d(channels)

    def film(self, channels: int) -> nn.Module:
        return FiLM(channels, self.encoder) if self.kind.film else nn.Identity()


class BasicBlock(nn.Module):
    """conv3x3 - BN - FiLM - ReLU - conv3x3 - BN - FiLM, plus the (projected) shortcut, then ReLU."""

    def __init__(self, layers: Layers, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1, self.film1 = (
            layers.conv(c_in, c_out, 3, stride),
            layers.bn(c_out),
            layers.film(c_out),
        )
        self.conv2, self.bn2, self.film2 = layers.conv(c_out, c_out, 3), layers.bn(c_out), layers.film(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(layers.conv(c_in, c_out, 1, stride), layers.bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.film1(self.bn1(self.conv1(x))))
        out = self.film2(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class ConditionalResNet(nn.Module):
    """A CIFAR ResNet whose conditional layers all read `self.condition` (see gearlib.adversarial.layers).

    Inputs are images in [0, 1] (attacks clip there); the stem is a 3x3 conv, as in the CIFAR ResNets
    that OAT, FLOAT and SMART train.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        width: int = 64,
        num_classes: int = 10,
        kind: Conditioning = PLAIN,
    ) -> None:
        super().__init__()
        if width < 1 or not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"need width >= 1 and >= 1 block per stage, got width={width}, blocks={blocks}")
        layers = Layers(kind)
        self.kind = kind
        self.stem, self.stem_bn, self.stem_film = (
            layers.conv(3, width, 3),
            layers.bn(width),
            layers.film(width),
        )
        stages: List[nn.Module] = []
        c_in = width
        for index, count in enumerate(blocks):
            c_out = width * 2**index
            stride = STAGE_STRIDES[index] if index < len(STAGE_STRIDES) else 2
            stage = [
                BasicBlock(layers, c_in if b == 0 else c_out, c_out, stride if b == 0 else 1)
                for b in range(count)
            ]
            stages.append(nn.Sequential(*stage))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.fc = NoisyLinear(c_in, num_classes, noisy=kind.noisy)
        self.stem.slim_in = False  # the three colour channels and the logits are never slimmed
        self.fc.slim_out = False
        self.condition: Condition = share_condition(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.stem_film(self.stem_bn(self.stem(x))))
        for stage in self.stages:
            out = stage(out)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


ModelFn = Callable[..., ConditionalResNet]


def build_adversarial(
    arch: str, kind: Conditioning = PLAIN, width: int = 64, num_classes: int = 10
) -> ConditionalResNet:
    """A registered CIFAR ResNet (resnet10, resnet18, resnet34) with the given conditional layers."""
    if arch not in ADV_ARCHS:
        raise ValueError(f"unknown adversarial arch {arch!r}; choose one of {', '.join(ADV_ARCHS)}")
    return ConditionalResNet(ADV_ARCHS[arch], width, num_classes, kind)


def stage_modules(model: ConditionalResNet, stages: Sequence[int]) -> List[nn.Module]:
    """The convs of the given 1-based stages (shortcut convs included), in network order."""
    return [m for s in stages for m in model.stages[s - 1].modules() if isinstance(m, nn.Conv2d)]
