"""Pieces shared by the growable CIFAR models: input normalisation, the base class and the growth graph.

The growth graph names which channels every conv reads and writes, so one Firefly step serves all architectures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

# CIFAR-10 training-set channel statistics; models see float images in [0, 1] and normalise them first.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, the first op of every gearlib model (constants, not parameters)."""

    def __init__(self, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class Unit:
    """A set of channels that grows as one: one conv's outputs, or a ResNet stream written by several convs.

    Attributes:
        name: unit name (no dots), e.g. "conv3", "pw7", "stream2", "inner2_1"; "input" and "logits" are fixed.
        width: number of channels c_l.
        growable: False for the image input and the logits.
        tied: True for a ResNet residual stream (several producers share the channels).
    """

    name: str
    width: int
    growable: bool = True
    tied: bool = False


@dataclass(frozen=True)
class Layer:
    """One weight layer of the growth graph.

    Attributes:
        module: dotted path of the nn.Conv2d / nn.Linear inside the model.
        bn: dotted path of the BatchNorm2d that follows it, or None (the head).
        src: name of the unit it reads (its input channels).
        dst: name of the unit it writes (its output channels); equal to src for a depthwise conv.
        kind: "conv", "depthwise" or "linear".
    """

    module: str
    bn: Optional[str]
    src: str
    dst: str
    kind: str = "conv"


@dataclass
class GrowthGraph:
    """Units, weight layers and budget groups of one model (book/notes/growth.md#notes-growth-groups); what gearlib.grow needs to know."""

    units: List[Unit]
    layers: List[Layer]
    groups: List[List[str]]

    def unit(self, name: str) -> Unit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)

    @property
    def growable(self) -> List[Unit]:
        """The growable units, in the order of the model's width list."""
        return [u for u in self.units if u.growable]


class GrowableNet(nn.Module):
    """Base class: a model built from a per-unit width list that can describe its own growth graph."""

    arch: str = ""

    def __init__(self, widths: Sequence[int], num_classes: int, input_size: int) -> None:
        super().__init__()
        self.widths = [int(c) for c in widths]
        self.num_classes = int(num_classes)
        self.input_size = int(input_size)

    def growth_graph(self) -> GrowthGraph:  # pragma: no cover - every architecture overrides it
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"arch={self.arch}, widths={self.widths}, num_classes={self.num_classes}"


def set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    """Put `module` at the dotted `path` inside `root` (what nn.Module.set_submodule does in newer torch)."""
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def bn_scale_shift(bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) of an eval-mode BatchNorm: bn(x) = scale * x + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale
