"""Swap a model's nn.Conv2d layers for GroupNL, MonoCNN, Ghost or SineFM layers in place, following the GroupNL
paper's placement rules, and report what was replaced and what was kept (with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from gearlib.layers.ghost import GhostConv2d
from gearlib.layers.groupnl import GroupNLConv2d
from gearlib.layers.monocnn import MonoCNNConv2d
from gearlib.layers.sinefm import SineFMConv2d
from gearlib.models import GrowableNet
from gearlib.models.common import set_submodule

__all__ = ["LAYERS", "RULES", "ConversionReport", "Kept", "Replaced", "convert"]

LAYERS: Dict[str, type] = {
    "groupnl": GroupNLConv2d,
    "monocnn": MonoCNNConv2d,
    "ghost": GhostConv2d,
    "sinefm": SineFMConv2d,
}
# Where a layer goes ("auto" picks one from the model and the layer):
# - all: every conv but the stem, strided convs and 1x1 shortcuts included (GroupNL on CIFAR ResNet-18/34 and
#   VGG-11; Ghost and SineFM likewise).
# - bottleneck: only stride-1 3x3 convs, as sparse GroupNL unless `sparse` is given (GroupNL on bottleneck
#   ResNets such as ResNet-101; the strided 3x3 and all 1x1 convs stay plain).
# - depthwise: only depthwise convs, as sparse GroupNL with c_out = c_in (the paper's "-G" MobileNets).
# - monocnn: every conv but the stem, the strided convs and the 1x1 convs, with 32 seed filters per layer
#   (MonoCNN's ResNets: e = 2, 4, 8, 16 in stages 1-4 at width 64).
RULES = ("all", "bottleneck", "depthwise", "monocnn")
MONOCNN_SEEDS = 32
LAYER_TYPES = tuple(LAYERS.values())


@dataclass(frozen=True)
class Replaced:
    """A conv that was swapped: its name, the new layer's kind and both parameter counts."""

    name: str
    layer: str
    shape: str
    old_params: int
    new_params: int
    new_fixed: int


@dataclass(frozen=True)
class Kept:
    """A conv left as it was, and why."""

    name: str
    shape: str
    params: int
    reason: str


@dataclass
class ConversionReport:
    """What `convert` did: the layer, the rule applied, the replaced convs and the kept ones."""

    layer: str
    rule: str
    replaced: List[Replaced] = field(default_factory=list)
    kept: List[Kept] = field(default_factory=list)

    @property
    def params_before(self) -> int:
        """Parameters of the replaced convs before the swap."""
        return sum(r.old_params for r in self.replaced)

    @property
    def params_after(self) -> int:
        """Trainable parameters of their replacements."""
        return sum(r.new_params for r in self.replaced)

    def table(self) -> str:
        """Replaced and kept convs as a fixed-width text table."""
        lines = [
            f"convert to {self.layer} (rule {self.rule}): {len(self.replaced)} replaced, {len(self.kept)} kept"
        ]
        lines.append(f"  {'layer':<28} {'shape':<24} {'old params':>11} {'new params':>11} {'fixed':>6}")
        for r in self.replaced:
            lines.append(
                f"  {r.name:<28} {r.shape:<24} {r.old_params:>11,} {r.new_params:>11,} {r.new_fixed:>6}"
            )
        lines.append(f"  {'replaced convs':<53} {self.params_before:>11,} {self.params_after:>11,}")
        for k in self.kept:
            lines.append(f"  kept {k.name:<23} {k.shape:<24} {k.params:>11,}  {k.reason}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _shape(conv: nn.Conv2d) -> str:
    k = "x".join(str(s) for s in conv.kernel_size)
    return f"{conv.in_channels}->{conv.out_channels} {k} s{conv.stride[0]}" + (
        f" g{conv.groups}" if conv.groups > 1 else ""
    )


def _is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels


def _is_bottleneck_model(model: nn.Module) -> bool:
    """True when some block holds conv1, conv2 and conv3 convs (torchvision's and timm's Bottleneck)."""
    return any(
        all(isinstance(getattr(m, f"conv{i}", None), nn.Conv2d) for i in (1, 2, 3)) for m in model.modules()
    )


def _resolve_rule(model: nn.Module, layer: str, where: str) -> str:
    if where != "auto":
        if where not in RULES:
            raise ValueError(f"unknown rule where={where!r}; choose 'auto' or one of {', '.join(RULES)}")
        return where
    if layer == "monocnn":
        return "monocnn"
    return "bottleneck" if _is_bottleneck_model(model) else "all"


def _rule_reason(conv: nn.Conv2d, rule: str) -> Optional[str]:
    """Why the rule leaves this conv plain, or None when the rule picks it."""
    k, s = tuple(conv.kernel_size), tuple(conv.stride)
    if rule == "depthwise":
        return None if _is_depthwise(conv) else "rule depthwise: only depthwise convs are replaced"
    if _is_depthwise(conv):
        return f"depthwise conv (groups={conv.groups}); use where='depthwise' for sparse GroupNL"
    if conv.groups > 1:
        return f"grouped conv (groups={conv.groups}) has no dense equivalent here"
    if rule == "bottleneck" and (k != (3, 3) or s != (1, 1)):
        return f"rule bottleneck: only stride-1 3x3 convs are replaced (this is {k[0]}x{k[1]}, stride {s[0]})"
    if rule == "monocnn" and s != (1, 1):
        return f"rule monocnn: strided convs stay plain (stride {s[0]})"
    if rule == "monocnn" and k == (1, 1):
        return "rule monocnn: 1x1 convs (shortcuts) stay plain"
    return None


def _layer_kwargs(layer: str, conv: nn.Conv2d, rule: str, kw: Dict[str, Any]) -> Dict[str, Any]:
    args: Dict[str, Any] = dict(
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
    )
    if conv.bias is not None:
        if layer in ("ghost", "sinefm"):
            raise ValueError(f"has a bias, and the {layer} layer takes none")
        args["bias"] = True
    if layer == "groupnl" and rule in ("bottleneck", "depthwise"):
        args["sparse"] = True
    if layer == "monocnn" and "expansion" not in kw:
        seeds = kw.get("seeds", MONOCNN_SEEDS)
        if conv.out_channels % seeds:
            raise ValueError(
                f"out_channels={conv.out_channels} is not a multiple of {seeds} seed filters; "
                f"pass seeds= (a divisor of it) or expansion="
            )
        args["expansion"] = conv.out_channels // seeds
    args.update({k: v for k, v in kw.items() if k != "seeds"})
    return args


def convert(
    model: nn.Module,
    layer: str = "groupnl",
    where: str = "auto",
    keep: Sequence[str] = (),
    keep_stem: bool = True,
    image_channels: int = 3,
    generator: Optional[torch.Generator] = None,
    **kw: Any,
) -> ConversionReport:
    """Replace the nn.Conv2d layers of `model` in place by `layer` ("groupnl", "monocnn", "ghost", "sinefm").

    Args:
        model: e.g. gearlib's `build_adversarial("resnet18", PLAIN, 64, 10)`, `gearlib.layers.vgg11()`,
            `gearlib.models.build(...)` or torchvision's `resnet101()` (build it on the meta device to count).
        layer: the replacement layer.
        where: "auto" (monocnn for MonoCNN, bottleneck when the model has bottleneck blocks, else all) or a
            rule from `RULES`.
        keep: names of convs to leave plain.
        keep_stem: leave every conv that reads the `image_channels` image channels plain (GroupNL's CIFAR
            ResNet counts, 5.60 M for ResNet-18, need a plain 3 -> 64 stem; its VGG-11 FLOPs, 76.62 M in
            Table 3, are matched only with keep_stem=False, while its VGG-11 parameters fit either way).
        generator: seeds the fixed random hyperparameters of every new layer, in network order.
        **kw: passed to each new layer (e.g. ratio, groups, nlf, sparse; for monocnn also seeds=32 to set
            the expansion per layer, or expansion).

    Returns:
        A ConversionReport: every replaced conv (old and new parameter counts) and every kept conv with the
        reason (stem, rule, depthwise, a configuration the layer cannot take, ...). `print(report)` shows it.
        The classifier head of gearlib's own models (a 1x1 conv in MobileNet-V1) is always kept.
    """
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    rule = _resolve_rule(model, layer, where)
    if rule == "depthwise" and layer != "groupnl":
        raise ValueError(f"rule depthwise replaces depthwise convs by sparse GroupNL only, not by {layer!r}")
    report = ConversionReport(layer, rule)
    head = "head" if isinstance(model, GrowableNet) else None
    builder: Callable[..., nn.Module] = LAYERS[layer]
    takes_generator = layer != "ghost"
    skip: List[str] = []
    targets: List[Tuple[str, nn.Conv2d]] = []
    for name, module in model.named_modules():
        if any(name.startswith(p + ".") for p in skip):
            continue
        if isinstance(module, LAYER_TYPES):
            skip.append(name)  # an already converted layer: its seed conv is not a target
        elif isinstance(module, nn.Conv2d):
            targets.append((name, module))
    for name, conv in targets:
        params = sum(p.numel() for p in conv.parameters())
        reason = None
        if name in keep:
            reason = "kept by request"
        elif keep_stem and conv.in_channels == image_channels:
            reason = f"stem (reads the {image_channels} image channels) stays a plain conv"
        elif name == head:
            reason = "classifier head"
        elif getattr(conv, "noisy", False):
            reason = "noisy conv (weight noise of FLOAT/SMART) is not converted"
        elif conv.padding_mode != "zeros":
            reason = f"padding_mode={conv.padding_mode!r} (the new layers pad with zeros)"
        else:
            reason = _rule_reason(conv, rule)
        new: Optional[nn.Module] = None
        if reason is None:
            try:
                args = _layer_kwargs(layer, conv, rule, kw)
                if takes_generator:
                    args["generator"] = generator
                with torch.device(conv.weight.device):
                    new = builder(**args)
                new = new.to(dtype=conv.weight.dtype)
            except ValueError as err:
                reason = f"{layer} cannot take it: {err}"
        if new is None:
            report.kept.append(Kept(name, _shape(conv), params, str(reason)))
            continue
        set_submodule(model, name, new.train(conv.training))
        fixed = new.fixed_count() if hasattr(new, "fixed_count") else 0
        trainable = sum(p.numel() for p in new.parameters())
        report.replaced.append(Replaced(name, layer, _shape(conv), params, trainable, fixed))
    return report
