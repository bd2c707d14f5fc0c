"""Ghost module (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020) as a drop-in k x k conv:
a primary conv makes c_out / r maps, a depthwise d x d cheap operation makes the rest.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch
from torch import nn

__all__ = ["GhostConv2d"]

IntPair = Union[int, Tuple[int, int]]


class GhostConv2d(nn.Module):
    """Ghost module replacing `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)`.

    primary: k x k conv c_in -> c_s = ceil(c_out / r) (the replaced conv's stride, padding and dilation),
    BN, ReLU; cheap: depthwise d x d conv (groups = c_s, stride 1) c_s -> c_s (r - 1), BN, ReLU; output:
    concat[primary, cheap] sliced to c_out channels. Everything is trainable. GhostNet's own module defaults
    to a 1 x 1 primary conv; a drop-in k x k replacement uses kernel k. `relu=False` drops both ReLUs (GhostNet
    does so in the second module of a bottleneck). Defaults r = 2, d = 3 as in GroupNL's comparison.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        ratio: int = 2,
        cheap_kernel: int = 3,
        relu: bool = True,
        dilation: IntPair = 1,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(ratio, bool) or int(ratio) != ratio or ratio < 2:
            raise ValueError(f"ratio r must be an integer >= 2, got {ratio!r}")
        if (
            isinstance(cheap_kernel, bool)
            or int(cheap_kernel) != cheap_kernel
            or cheap_kernel < 1
            or cheap_kernel % 2 == 0
        ):
            raise ValueError(
                f"cheap_kernel d must be an odd positive integer (padding d // 2 keeps the size), got {cheap_kernel!r}"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.ratio, self.cheap_kernel = int(ratio), int(cheap_kernel)
        self.primary_channels = math.ceil(self.out_channels / self.ratio)
        self.cheap_channels = self.primary_channels * (self.ratio - 1)
        conv = nn.Conv2d(
            self.in_channels,
            self.primary_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=False,
        )
        self.kernel_size, self.stride, self.padding, self.dilation = (
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
        )
        self.primary = nn.Sequential(
            conv, nn.BatchNorm2d(self.primary_channels), nn.ReLU(inplace=True) if relu else nn.Identity()
        )
        self.cheap = nn.Sequential(
            nn.Conv2d(
                self.primary_channels,
                self.cheap_channels,
                self.cheap_kernel,
                padding=self.cheap_kernel // 2,
                groups=self.primary_channels,
                bias=False,
            ),
            nn.BatchNorm2d(self.cheap_channels),
            nn.ReLU(inplace=True) if relu else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        primary = self.primary(x)
        out = torch.cat([primary, self.cheap(primary)], dim=1)
        return out[:, : self.out_channels]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, ratio={self.ratio}, cheap_kernel={self.cheap_kernel}"
        )
