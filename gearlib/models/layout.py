"""Memory layout per network: channels-last (NHWC) where it is safe, contiguous (NCHW) where it is not.

oneDNN's x86 weight-gradient kernel for a strided 1x1 convolution writes past its buffer when the input is
channels-last with fewer than 8 channels (AVX2) or 16 (AVX-512) (oneDNN issue 6035, seen with every torch
from 2.1 to 2.14): a hang, an abort or silently wrong gradients. On the CPU gearlib therefore keeps a whole
network contiguous whenever one of its strided 1x1 convolutions would see fewer than 16 input channels.
"""

from __future__ import annotations

import logging
from typing import Iterator, List, Set, Tuple, Union

import torch
from torch import nn

# Fewest input channels a strided 1x1 convolution may have on the CPU in channels-last layout: 16 covers
# both the AVX2 (8) and the AVX-512 (16) kernels of oneDNN issue 6035.
ONEDNN_SAFE_CHANNELS = 16

logger = logging.getLogger(__name__)
_said: Set[str] = set()


def strided_pointwise_inputs(model: nn.Module) -> Iterator[Tuple[str, int]]:
    """(module name, input channels per group) of every strided 1x1 convolution the network runs.

    Besides `nn.Conv2d` modules this asks each module for `extra_strided_pointwise_inputs()`, the input
    channel counts of convolutions it runs functionally (Firefly's candidate layers convolve their K new
    input channels with the layer's own stride)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and is_strided_pointwise(module):
            yield name, module.in_channels // module.groups
        extra = getattr(module, "extra_strided_pointwise_inputs", None)
        if callable(extra):
            for channels in extra():
                yield name, int(channels)


def is_strided_pointwise(conv: nn.Conv2d) -> bool:
    """A 1x1 convolution with a stride above 1 (a ResNet shortcut, a downsampling projection)."""
    return all(k == 1 for k in conv.kernel_size) and any(s > 1 for s in conv.stride)


def unsafe_channels_last(model: nn.Module) -> List[Tuple[str, int]]:
    """The strided 1x1 convolutions that would hit oneDNN issue 6035 in channels-last on the CPU."""
    return [(name, c) for name, c in strided_pointwise_inputs(model) if c < ONEDNN_SAFE_CHANNELS]


def use_channels_last(model: nn.Module, device: Union[str, torch.device], wanted: bool) -> bool:
    """Whether to train `model` channels-last on `device`: `wanted`, unless the CPU's oneDNN kernel would
    corrupt memory for one of its strided 1x1 convolutions (then False, said once in the log)."""
    if not wanted or torch.device(device).type != "cpu":
        return wanted
    unsafe = unsafe_channels_last(model)
    if not unsafe:
        return True
    name, channels = unsafe[0]
    message = (
        f"{type(model).__name__}: training in contiguous (NCHW) layout instead of channels-last on the CPU: "
        f"the strided 1x1 convolution {name or '(root)'} has {channels} input channels, fewer than "
        f"{ONEDNN_SAFE_CHANNELS} (oneDNN issue 6035 corrupts its weight gradient in channels-last)"
    )
    if message not in _said:
        _said.add(message)
        logger.warning(message)
    return False
