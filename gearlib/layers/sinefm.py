"""SineFM convolution ("Seed feature maps-based CNN models for LEO satellite remote sensing services", ICWS
2023), GroupNL's nonlinear Ghost-like baseline: t fixed sinusoids of the seed maps, BN, then a grouped 1x1 conv.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.layers.groupnl import NLF_RANGES, groupnl_channels, sample_uniform

__all__ = ["SEED_NORMS", "SineFMConv2d"]

# What the sinusoids see: the seed maps L2-normalised across channels (as GroupNL does), or the raw ones.
SEED_NORMS = ("l2", "none")

IntPair = Union[int, Tuple[int, int]]


class SineFMConv2d(nn.Module):
    """SineFM layer replacing `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)`.

    1. Seed conv k x k, c_in -> c_s = c_out / r (no bias).
    2. t = `terms` fixed sinusoids sin(omega_i (x + phi_i)), scalars omega_i ~ U[1, 2], phi_i ~ U[1, 5] (buffers),
       applied to every seed map, each followed by its own trainable BN_i (GroupNL paper, Eq. 6). With
       `seed_norm="l2"` (the default) the sinusoids see the seed maps L2-normalised across channels at every
       pixel, as GroupNL's do; "none" gives them the raw maps, which can grow without bound and make training
       unstable (book/notes/groupnl.md, "Why SineFM needs bounded inputs").
    3. The t * c_s maps are stacked with the t versions of one seed map adjacent, and a grouped 1x1 conv
       (groups = c_s, no bias) maps them to c_gen = c_s (r - 1) (Eq. 7).
    4. Output concat[seed maps, generated maps] (Eq. 8).

    SineFM has no public code: the interleaved order, per-NLF scalar hyperparameters and input scale are our
    reading of the equations. The t BN_i are held as one BatchNorm2d over the t * c_s maps, which is the same thing (BN keeps
    statistics and affine parameters per channel). Parameters: c_in c_out k^2 / r + c_out t (r + 1) / r (Eq. 14).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        ratio: int = 2,
        terms: int = 5,
        dilation: IntPair = 1,
        generator: Optional[torch.Generator] = None,
        seed_norm: str = "l2",
    ) -> None:
        super().__init__()
        if seed_norm not in SEED_NORMS:
            raise ValueError(f"unknown seed_norm {seed_norm!r}; choose one of {', '.join(SEED_NORMS)}")
        self.seed_norm = seed_norm
        if isinstance(in_channels, bool) or int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if isinstance(terms, bool) or int(terms) != terms or terms < 1:
            raise ValueError(f"terms t must be a positive integer, got {terms!r}")
        seed, gen = groupnl_channels(out_channels, ratio)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.ratio, self.terms = int(ratio), int(terms)
        self.seed_channels, self.gen_channels = seed, gen
        self.seed = nn.Conv2d(
            self.in_channels, seed, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.kernel_size, self.stride = self.seed.kernel_size, self.seed.stride
        self.padding, self.dilation = self.seed.padding, self.seed.dilation
        weight = self.seed.weight
        for name, (low, high) in NLF_RANGES["sin"].items():
            values = sample_uniform((self.terms,), low, high, generator)
            self.register_buffer(name, values.to(device=weight.device, dtype=weight.dtype))
        self.bn = nn.BatchNorm2d(self.terms * seed)
        self.blend = nn.Conv2d(self.terms * seed, gen, 1, groups=seed, bias=False)

    def fixed_count(self) -> int:
        """Number of fixed sinusoid hyperparameters (2 t; the paper's Eq. 14 leaves them out)."""
        return self.omega.numel() + self.phi.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seed = self.seed(x)
        n, c, h, w = seed.shape
        inputs = F.normalize(seed, dim=1) if self.seed_norm == "l2" else seed
        omega, phi = self.omega.view(1, 1, -1, 1, 1), self.phi.view(1, 1, -1, 1, 1)
        expanded = torch.sin(omega * (inputs.unsqueeze(2) + phi)).reshape(n, c * self.terms, h, w)
        return torch.cat([seed, self.blend(self.bn(expanded))], dim=1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, ratio={self.ratio}, terms={self.terms}, seed_norm={self.seed_norm!r}"
        )
