"""BatchNorm folding for inference: an evaluation copy of a gearlib network in which every BN that follows a
convolution is merged into that convolution's weights and bias (the same function in eval mode, fewer passes).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from gearlib.models.common import GrowableNet, bn_scale_shift, set_submodule

__all__ = ["fold_batchnorm"]


@torch.no_grad()
def fold_batchnorm(model: GrowableNet) -> GrowableNet:
    """An eval-mode copy of `model` with each conv's following BN folded into it; `model` is unchanged.

    With BN in eval mode, y = gamma (W x + b - mu) / sqrt(var + eps) + beta is one convolution with weight
    W * s and bias (b - mu) s + beta, s = gamma / sqrt(var + eps), per output channel. The BN becomes an
    nn.Identity. Only the conv -> BN pairs of the model's growth graph are folded (every growable layer and
    its BN); the copy computes the same outputs up to rounding, and only in eval mode (its BNs are gone).
    """
    net = copy.deepcopy(model).eval()
    for layer in net.growth_graph().layers:
        if layer.bn is None or layer.kind == "linear":
            continue
        conv, bn = net.get_submodule(layer.module), net.get_submodule(layer.bn)
        if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
            continue
        scale, shift = bn_scale_shift(bn)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        folded = nn.Conv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        ).to(device=conv.weight.device, dtype=conv.weight.dtype)  # fmt: skip
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        folded.bias.copy_(bias * scale + shift)
        set_submodule(net, layer.module, folded)
        set_submodule(net, layer.bn, nn.Identity())
    return net
