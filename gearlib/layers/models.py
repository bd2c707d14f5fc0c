"""The networks of the layer comparison (book/notes/groupnl.md): a CIFAR ResNet or VGG-11 at a width whose convs,
all but the 3-channel stem, are GroupNL, Ghost, SineFM or MonoCNN layers, or stay plain ("conv", the vanilla network).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from gearlib.adversarial.models import ADV_ARCHS, PLAIN, build_adversarial
from gearlib.layers.convert import LAYERS, ConversionReport, convert
from gearlib.layers.vgg11 import vgg11

__all__ = [
    "LAYER_ARCHS",
    "LAYER_KINDS",
    "LAYER_REVISIONS",
    "LAYER_VARIANTS",
    "layer_network",
    "monocnn_seeds",
]

LAYER_ARCHS = tuple(ADV_ARCHS) + ("vgg11",)
# Other readings of a layer, trained beside its default: name -> (layer, its keyword arguments). "sinefm-raw" feeds
# the unnormalised seed maps into the sinusoids (book/notes/groupnl.md, "Why SineFM needs bounded inputs").
LAYER_VARIANTS: Dict[str, Tuple[str, Dict[str, Any]]] = {"sinefm-raw": ("sinefm", {"seed_norm": "none"})}
# "conv": every conv stays a plain nn.Conv2d (the vanilla network)
LAYER_KINDS = ("conv",) + tuple(LAYERS) + tuple(LAYER_VARIANTS)
# Layers whose default reading changed after runs of them had been stored. A run's identity records the revision,
# so a stored run of the earlier reading is never taken for one of the current reading.
LAYER_REVISIONS: Dict[str, str] = {"sinefm": "seed-l2"}


def monocnn_seeds(width: int) -> int:
    """MonoCNN's seed filters per layer at a network width: 32 at the standard width 64 (expansions 2, 4, 8
    and 16 in stages 1-4 of a ResNet), scaled with the width so the expansions stay the same."""
    return max(1, width // 2)


def layer_network(
    layer: str, arch: str = "resnet18", width: int = 64, num_classes: int = 10, seed: int = 0
) -> Tuple[nn.Module, Optional[ConversionReport]]:
    """(network, conversion report): `arch` at `width` with its convs swapped for `layer`.

    Args:
        layer: "conv" (vanilla), "groupnl", "ghost", "sinefm" or "monocnn", with the GroupNL paper's settings
            (r = 2, g = 4, sinusoidal NLFs; Ghost d = 3; SineFM t = 5; MonoCNN one term, eta in [1, 7]), or one
            of `LAYER_VARIANTS` ("sinefm-raw": SineFM's sinusoids on the raw seed maps).
        arch: a CIFAR ResNet (resnet10, resnet18, resnet34) or vgg11.
        width: channels of the first stage (64 is the paper's network).
        num_classes: classifier outputs.
        seed: seeds the layers' fixed random hyperparameters (NLF frequencies and phases, MonoCNN exponents);
            the trainable weights come from torch's global generator, as in any nn.Module.

    Returns:
        The network in train mode and the report of what `convert` replaced (None for "conv").
    """
    if layer not in LAYER_KINDS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYER_KINDS)}")
    if arch not in LAYER_ARCHS:
        raise ValueError(
            f"unknown arch {arch!r} for the layer comparison; choose one of {', '.join(LAYER_ARCHS)}"
        )
    if arch == "vgg11":
        model: nn.Module = vgg11(num_classes, width)
    else:
        model = build_adversarial(arch, PLAIN, width, num_classes)
    if layer == "conv":
        return model, None
    layer, kw = LAYER_VARIANTS.get(layer, (layer, {}))
    if layer == "monocnn":
        kw = {"seeds": monocnn_seeds(width)}
    report = convert(model, layer, generator=torch.Generator().manual_seed(int(seed)), **kw)
    return model, report
