"""A plain CIFAR VGG-11 (Simonyan & Zisserman's configuration A with batch norm), the fourth backbone of GroupNL's
CIFAR experiments: 8 x [3x3 conv, BN, ReLU], five max-pools, one linear head.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn

from gearlib.models import Normalize

__all__ = ["VGG11_CONFIG", "VGG11", "vgg11"]

# Output channels of the 8 convs; "M" is a 2x2 max-pool. 32x32 inputs end at 1x1 x 512.
VGG11_CONFIG: Sequence[Union[int, str]] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """CIFAR VGG-11: convs without bias (BN follows), then flatten and a 512 -> num_classes linear head.

    Images in [0, 1] are normalised by the first layer with CIFAR-10 statistics, as in gearlib's own models.
    Full width: 9,228,362 parameters at 10 classes (GroupNL's Table 3 prints 9.23 M).
    """

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        if int(num_classes) < 1 or int(width) < 1:
            raise ValueError(f"need num_classes >= 1 and width >= 1, got {num_classes} and {width}")
        self.normalize = Normalize()
        layers: List[nn.Module] = []
        c_in = 3
        for item in VGG11_CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            c_out = int(item) * int(width) // 64
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c_in, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.head(torch.flatten(self.pool(x), 1))


def vgg11(num_classes: int = 10, width: int = 64) -> VGG11:
    """A plain CIFAR VGG-11 (width = channels of the first conv; 64 is the standard model)."""
    return VGG11(num_classes, width)
