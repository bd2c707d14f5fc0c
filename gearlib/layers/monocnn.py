"""MonoCNN convolution ("Towards transmission-friendly and robust CNN models over cloud and device", IEEE TMC
2023), the GroupNL paper's filter-generation baseline: few trainable seed filters, fixed monomials make the rest.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from gearlib.layers.groupnl import sample_uniform

__all__ = ["MONO_EXPONENT_RANGE", "MonoCNNConv2d"]

IntPair = Union[int, Tuple[int, int]]

# The exponent range of GroupNL's MonoCNN comparison (one monomial term); MonoCNN's code defaults to
# five terms and [0, 10).
MONO_EXPONENT_RANGE = (1.0, 7.0)
_EPS = 1e-5  # added to each filter's standard deviation in the weight standardisation


class MonoCNNConv2d(nn.Module):
    """A conv whose c_out filters are generated from c_out / e trainable seed filters V (c_out/e, c_in, k, k).

    Forward: tile V e = `expansion` times along the filters, apply w = sign(v) |v|^eta with fixed exponents
    eta ~ U[1, 7] (a buffer of one exponent per output filter and input channel, shared by its k x k taps),
    standardise every output filter (subtract its mean, divide by its standard deviation + 1e-5), then run an
    ordinary conv. As in MonoCNN's public code every tiled copy, the first included, is transformed; one
    monomial term is used (GroupNL's comparison) and the optional 1x1 blend is left out. The conv still costs
    a full conv's FLOPs; only the parameters (and gradients) shrink by e.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        expansion: int = 2,
        dilation: IntPair = 1,
        bias: bool = False,
        generator: Optional[torch.Generator] = None,
        exponent_range: Tuple[float, float] = MONO_EXPONENT_RANGE,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("expansion", expansion),
        ):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if out_channels % expansion:
            raise ValueError(
                f"expansion e={expansion} must divide out_channels={out_channels} (c_out / e seed filters); "
                f"choose e from {[d for d in range(1, out_channels + 1) if out_channels % d == 0]}"
            )
        self.in_channels, self.out_channels, self.expansion = (
            int(in_channels),
            int(out_channels),
            int(expansion),
        )
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        if self.in_channels * self.kernel_size[0] * self.kernel_size[1] < 2:
            raise ValueError(
                f"weight standardisation needs >= 2 weights per filter, got in_channels={in_channels} and "
                f"kernel_size={self.kernel_size}"
            )
        low, high = exponent_range
        if not low <= high:
            raise ValueError(f"exponent_range must have low <= high, got {exponent_range}")
        # nn.Conv2d's own initialisation for the seeds (and bias), then its tensors are taken over.
        init = nn.Conv2d(self.in_channels, self.out_channels // self.expansion, self.kernel_size, bias=bias)
        self.seeds = nn.Parameter(init.weight.detach())
        self.register_parameter("bias", nn.Parameter(init.bias.detach()) if bias else None)
        eta = sample_uniform((self.out_channels, self.in_channels, 1, 1), low, high, generator)
        self.register_buffer("eta", eta.to(device=self.seeds.device, dtype=self.seeds.dtype))

    def fixed_count(self) -> int:
        """Number of fixed exponents shipped with the layer (MonoCNN's parameter counts leave them out)."""
        return self.eta.numel()

    def generated_weight(self) -> torch.Tensor:
        """The (c_out, c_in, k, k) weight the conv runs with: tiled, transformed and standardised seeds."""
        v = self.seeds.repeat(self.expansion, 1, 1, 1)
        w = torch.sign(v) * v.abs().pow(self.eta)
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        return w / (w.flatten(1).std(dim=1).view(-1, 1, 1, 1) + _EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.generated_weight(), self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, expansion={self.expansion}, seeds={self.out_channels // self.expansion}"
        )
