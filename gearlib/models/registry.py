"""Architecture registry: build a model from a width list, read widths back, count parameters and size.

Size = parameters / parameters of the full-width model with the same head (book/notes/architectures.md#notes-arch-size); BN running stats excluded.
"""

from __future__ import annotations

import operator
from typing import Dict, List, Optional, Sequence, Type, Union

import torch
from torch import nn

from gearlib.measure.params import count_params
from gearlib.models import mobilenet, resnet, vgg
from gearlib.models.common import GrowableNet

ARCHS = ("vgg19", "mobilenet_v1", "resnet18")

_CLASSES: Dict[str, Type[GrowableNet]] = {
    "vgg19": vgg.VGG19,
    "mobilenet_v1": mobilenet.MobileNetV1,
    "resnet18": resnet.ResNet18,
}
_FULL = {"vgg19": vgg.FULL_WIDTHS, "mobilenet_v1": mobilenet.FULL_WIDTHS, "resnet18": resnet.FULL_WIDTHS}
_NAMES = {"vgg19": vgg.UNIT_NAMES, "mobilenet_v1": mobilenet.UNIT_NAMES, "resnet18": resnet.UNIT_NAMES}

Widths = Union[None, int, Sequence[int]]


def _check_arch(arch: str) -> str:
    if arch not in _CLASSES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return arch


def full_widths(arch: str) -> List[int]:
    """The full-width list of `arch` (e.g. VGG-19: [64, 64, 128, ..., 512])."""
    return list(_FULL[_check_arch(arch)])


def unit_names(arch: str) -> List[str]:
    """Names of the growable units of `arch`, in width-list order (e.g. ResNet: stream1, inner1_1, ...)."""
    return list(_NAMES[_check_arch(arch)])


def budget_groups(arch: str, grow_stream: bool = True) -> List[List[int]]:
    """Budget groups (book/notes/growth.md#notes-growth-groups) as lists of width-list indices.

    Args:
        arch: architecture name.
        grow_stream: ResNet only; False leaves the 4 tied stream widths out (inner-only growth).

    Returns:
        VGG-19: one group of 16; MobileNet-V1: [[0..3], [4..13]]; ResNet-18: one group of 12 (or 8).
    """
    names = unit_names(arch)
    graph = build_meta(arch, None, 10).growth_graph()
    tied = {u.name for u in graph.units if u.tied}
    groups = []
    for group in graph.groups:
        idx = [names.index(n) for n in group if grow_stream or n not in tied]
        if idx:
            groups.append(idx)
    return groups


def check_widths(arch: str, widths: Widths) -> List[int]:
    """Validate a width list (None = full widths, int = uniform backbone width c_0) and return it as a list."""
    full = full_widths(arch)
    if widths is None:
        return full
    if isinstance(widths, bool):
        raise ValueError(f"widths must be None, an int c_0 or a list of {len(full)} ints, got {widths!r}")
    if not isinstance(widths, (list, tuple)) and not hasattr(widths, "__len__"):
        try:
            c0 = operator.index(widths)
        except TypeError:
            raise ValueError(f"widths must be None, an int c_0 or a list of ints, got {widths!r}") from None
        widths = [c0] * len(full)
    widths = list(widths)
    if len(widths) != len(full):
        raise ValueError(
            f"{arch} takes {len(full)} widths ({', '.join(unit_names(arch))}), got {len(widths)}: {widths}"
        )
    out = []
    for name, c in zip(unit_names(arch), widths):
        try:
            c = operator.index(c)
        except TypeError:
            raise ValueError(f"width of {name} must be a positive int, got {c!r}") from None
        if c <= 0:
            raise ValueError(f"width of {name} must be a positive int, got {c}")
        out.append(int(c))
    return out


def build(arch: str, widths: Widths = None, num_classes: int = 10, input_size: int = 32) -> GrowableNet:
    """Build a growable model.

    Args:
        arch: "vgg19", "mobilenet_v1" or "resnet18".
        widths: None (full widths), an int c_0 (every growable width = c_0, the backbone f_B) or a list of
            per-unit widths c_l in the order of `unit_names(arch)`.
        num_classes: n_cls of the head (10, 100, 200).
        input_size: image side in pixels (32 for CIFAR, 64 for Tiny ImageNet; pooling is adaptive).

    Returns:
        The model (train mode, default init) with attributes arch, widths, num_classes, input_size.
    """
    widths = check_widths(arch, widths)
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if int(input_size) < 32:
        raise ValueError(f"input_size must be >= 32 (five 2x downsamplings), got {input_size}")
    return _CLASSES[arch](widths, num_classes=num_classes, input_size=input_size)


def build_meta(arch: str, widths: Widths, num_classes: int, input_size: int = 32) -> GrowableNet:
    """Build on the meta device (no memory, no init): for shapes and parameter counts only."""
    with torch.device("meta"):
        return build(arch, widths, num_classes, input_size)


def widths_of(model: nn.Module) -> List[int]:
    """The growable width list of a gearlib model, in the format `build` takes."""
    if not isinstance(model, GrowableNet):
        raise ValueError(f"expected a gearlib.models model, got {type(model).__name__}")
    return list(model.widths)


def param_count(arch: str, widths: Widths, num_classes: int = 10) -> int:
    """Parameter count of `arch` at `widths` without allocating it."""
    return count_params(build_meta(arch, widths, num_classes))


def size_fraction(
    model: nn.Module,
    arch: Optional[str] = None,
    num_classes: Optional[int] = None,
    input_size: Optional[int] = None,
) -> float:
    """Size = params(model) / params(full-width model with the same head) (book/notes/architectures.md#notes-arch-size; e.g. 0.0138 for VGG c_0=45).

    Args:
        model: the model to measure.
        arch, num_classes, input_size: default to the model's own attributes.

    Returns:
        The fraction in [0, inf) (not a percentage).
    """
    arch = arch if arch is not None else getattr(model, "arch", None)
    if arch is None:
        raise ValueError("size_fraction needs arch= for a model that is not a gearlib.models model")
    num_classes = num_classes if num_classes is not None else getattr(model, "num_classes", 10)
    return count_params(model) / param_count(arch, None, num_classes)
