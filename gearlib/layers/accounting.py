"""Parameters, gradients and FLOPs of conv layers and their GroupNL-paper replacements (GroupNL, IEEE TMC 2026,
Eqs. 12-15 and Table 1), per layer from the formulas and per model from instantiated modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from gearlib.layers.ghost import GhostConv2d
from gearlib.layers.groupnl import NLF_RANGES, GroupNLConv2d, check_groupnl, groupnl_channels
from gearlib.layers.monocnn import MonoCNNConv2d
from gearlib.layers.sinefm import SineFMConv2d

__all__ = [
    "KINDS",
    "PAPER_TABLE16",
    "TABLE16_MODULE",
    "LayerCost",
    "ModelCost",
    "Table16Row",
    "conv_cost",
    "layer_cost",
    "model_cost",
    "table16_costs",
]

KINDS = ("conv", "depthwise", "groupnl", "sparse_groupnl", "ghost", "sinefm", "monocnn")
IntPair = Union[int, Tuple[int, int]]
COUNTED_LAYERS = (nn.Conv2d, nn.Linear, GroupNLConv2d, GhostConv2d, SineFMConv2d, MonoCNNConv2d)


@dataclass(frozen=True)
class Table16Row:
    """One row of GroupNL's Table 16 as printed: #Params (rounded there to 3 significant digits), #FLOPs (M),
    average time per inference (ms), FPS, power (W) and energy (Wh), PyTorch-CPU on a Raspberry Pi 4B."""

    params: float
    mflops: float
    ms: float
    fps: float
    watts: float
    wh: float


# GroupNL paper, Table 16 (module-level profiling): one layer 512 -> 512 channels, 3x3 kernel, stride 2, on a
# 512x32x32 input, keyed by (kind, r). These are the paper's numbers, not ours. The depthwise row's 5.12 K
# includes its 512 biases; every other row counts no bias.
PAPER_TABLE16: Dict[Tuple[str, Optional[int]], Table16Row] = {
    ("conv", None): Table16Row(2.36e6, 603.98, 122.2, 8.18, 5.003, 0.0208),
    ("sinefm", 2): Table16Row(1.18e6, 302.97, 97.1, 10.3, 5.396, 0.0183),
    ("sinefm", 4): Table16Row(0.59e6, 151.81, 55.36, 18.06, 5.285, 0.0112),
    ("sinefm", 8): Table16Row(0.30e6, 76.23, 34.86, 28.69, 5.024, 0.0073),
    ("ghost", 2): Table16Row(1.18e6, 302.58, 86.31, 11.59, 5.262, 0.0161),
    ("ghost", 4): Table16Row(0.59e6, 151.88, 49.95, 20.02, 5.156, 0.0099),
    ("ghost", 8): Table16Row(0.30e6, 76.53, 31.61, 31.63, 5.292, 0.0072),
    ("groupnl", 2): Table16Row(1.18e6, 302.06, 70.14, 14.26, 5.005, 0.0128),
    ("groupnl", 4): Table16Row(0.59e6, 151.09, 42.32, 23.63, 4.905, 0.0082),
    ("groupnl", 8): Table16Row(0.29e6, 75.61, 28.43, 35.17, 4.905, 0.0063),
    ("depthwise", None): Table16Row(5.12e3, 1.18, 48.71, 20.53, 6.120, 0.0116),
    ("sparse_groupnl", 2): Table16Row(4.62e3, 1.25, 30.68, 32.6, 6.096, 0.0081),
    ("sparse_groupnl", 4): Table16Row(4.63e3, 1.28, 22.65, 44.16, 5.730, 0.0062),
    ("sparse_groupnl", 8): Table16Row(4.66e3, 1.29, 18.82, 53.14, 5.831, 0.0056),
}
# The Table 16 module: (c_in, c_out, kernel, stride, padding, input height/width).
TABLE16_MODULE = (512, 512, 3, 2, 1, 32)


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer, per image.

    weights: trainable parameters as the paper's Eqs. 12-15 count them (GroupNL: the seed filters; Ghost: both
        convs, its two BNs left out; SineFM: seed conv, grouped 1x1 conv and BN_i), biases added when present.
    norm: trainable BN parameters the equation leaves out (the Ghost module's two BNs), else 0.
    fixed: non-trainable hyperparameters the layer ships (NLF omega/phi/eta/eps, MonoCNN's exponents).
    paper_fixed: the part of `fixed` the paper's "#Params" includes: GroupNL's public code keeps its NLF
        hyperparameters as frozen parameters, so Table 16 counts them (2 per sinusoid); MonoCNN's and
        SineFM's are not counted.
    flops: multiply-accumulates of the convs, plus one op per generated element for GroupNL's NLFs
        (Table 1), plus t (r + 1) per seed element for SineFM and (r - 1) d^2 per seed element for Ghost's
        cheap op; normalisation, BN and ReLU are not counted.
    """

    kind: str
    weights: int
    norm: int
    fixed: int
    paper_fixed: int
    flops: int

    @property
    def trainable(self) -> int:
        """Trainable parameters of the module as built."""
        return self.weights + self.norm

    @property
    def gradients(self) -> int:
        """Gradients exchanged per step (= trainable parameters; fixed hyperparameters have none)."""
        return self.trainable

    @property
    def params(self) -> int:
        """The paper's "#Params" for the layer."""
        return self.weights + self.paper_fixed


def _pair(value: IntPair) -> Tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _pixels(out_hw: IntPair) -> int:
    h, w = _pair(out_hw)
    return h * w


def conv_cost(
    kind: str,
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    out_hw: IntPair,
    ratio: int = 2,
    groups: int = 4,
    nlf: str = "sin",
    cheap_kernel: int = 3,
    terms: int = 5,
    expansion: int = 2,
    bias: bool = False,
) -> LayerCost:
    """A layer's cost from the paper's formulas (n = c_in, m = c_out, k x k kernel, output h' x w').

    kind: "conv" (n m k^2), "depthwise" (n k^2; needs n = m), "groupnl" (n m k^2 / r), "sparse_groupnl"
    (n m k^2 / (r xi), xi = gcd(n, m / r)), "ghost" (n m k^2 / r + m (r - 1) d^2 / r), "sinefm"
    (n m k^2 / r + m t (r + 1) / r) or "monocnn" (n m k^2 / e seeds, a full conv's FLOPs).
    `groups` is GroupNL's g; `ratio` r is also Ghost's and SineFM's; `expansion` e is MonoCNN's.
    """
    n, m = int(in_channels), int(out_channels)
    kh, kw = _pair(kernel_size)
    area, pixels = kh * kw, _pixels(out_hw)
    b = m if bias else 0
    if kind == "conv":
        return LayerCost(kind, n * m * area + b, 0, 0, 0, n * m * area * pixels)
    if kind == "depthwise":
        if n != m:
            raise ValueError(f"a depthwise conv has in_channels = out_channels, got {n} and {m}")
        return LayerCost(kind, n * area + b, 0, 0, 0, n * area * pixels)
    if kind in ("groupnl", "sparse_groupnl"):
        if nlf not in NLF_RANGES:
            raise ValueError(f"unknown NLF {nlf!r}; choose one of {', '.join(NLF_RANGES)}")
        seed, gen = check_groupnl(n, m, ratio, groups)
        xi = math.gcd(n, seed) if kind == "sparse_groupnl" else 1
        fixed = len(NLF_RANGES[nlf]) * (ratio - 1) * groups
        seed_weights = seed * (n // xi) * area
        return LayerCost(kind, seed_weights + b, 0, fixed, fixed, (seed_weights + gen) * pixels)
    if kind == "ghost":
        if ratio < 2:
            raise ValueError(f"Ghost ratio r must be >= 2, got {ratio}")
        primary = math.ceil(m / ratio)
        cheap = primary * (ratio - 1) * cheap_kernel**2
        weights = primary * n * area + cheap
        return LayerCost(kind, weights, 2 * primary * ratio, 0, 0, weights * pixels)
    if kind == "sinefm":
        seed, _ = groupnl_channels(m, ratio)
        per_seed = terms * (ratio + 1)  # grouped 1x1: t (r - 1) weights; BN_i: 2 t
        return LayerCost(
            kind, seed * (n * area + per_seed), 0, 2 * terms, 0, seed * (n * area + per_seed) * pixels
        )
    if kind == "monocnn":
        if expansion < 1 or m % expansion:
            raise ValueError(f"MonoCNN expansion e={expansion} must divide out_channels={m}")
        return LayerCost(kind, m // expansion * n * area + b, 0, m * n, 0, n * m * area * pixels)
    raise ValueError(f"unknown layer kind {kind!r}; choose one of {', '.join(KINDS)}")


def table16_costs() -> Dict[Tuple[str, Optional[int]], LayerCost]:
    """Our formula costs for every row of `PAPER_TABLE16` (the depthwise row with its bias, as printed)."""
    c_in, c_out, k, stride, padding, size = TABLE16_MODULE
    out = (size + 2 * padding - k) // stride + 1
    costs = {}
    for kind, r in PAPER_TABLE16:
        costs[(kind, r)] = conv_cost(kind, c_in, c_out, k, out, ratio=r or 2, bias=kind == "depthwise")
    return costs


def layer_cost(module: nn.Module, out_hw: IntPair) -> LayerCost:
    """Cost of an instantiated layer (nn.Conv2d, nn.Linear or a gearlib.layers conv) at output size out_hw."""
    pixels = _pixels(out_hw)
    if isinstance(module, GroupNLConv2d):
        kind = "sparse_groupnl" if module.sparse else "groupnl"
        cost = conv_cost(
            kind,
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            out_hw,
            ratio=module.ratio,
            groups=module.groups,
            nlf=module.nlf,
            bias=module.bias is not None,
        )
        return cost
    if isinstance(module, GhostConv2d):
        return conv_cost(
            "ghost",
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            out_hw,
            ratio=module.ratio,
            cheap_kernel=module.cheap_kernel,
        )
    if isinstance(module, SineFMConv2d):
        return conv_cost(
            "sinefm",
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            out_hw,
            ratio=module.ratio,
            terms=module.terms,
        )
    if isinstance(module, MonoCNNConv2d):
        return conv_cost(
            "monocnn",
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            out_hw,
            expansion=module.expansion,
            bias=module.bias is not None,
        )
    if isinstance(module, nn.Conv2d):
        n, m, groups = module.in_channels, module.out_channels, module.groups
        if groups == n == m and groups > 1:
            return conv_cost("depthwise", n, m, module.kernel_size, out_hw, bias=module.bias is not None)
        weights = m * (n // groups) * module.kernel_size[0] * module.kernel_size[1]
        b = m if module.bias is not None else 0
        return LayerCost("conv" if groups == 1 else "grouped_conv", weights + b, 0, 0, 0, weights * pixels)
    if isinstance(module, nn.Linear):
        b = module.out_features if module.bias is not None else 0
        weights = module.in_features * module.out_features
        return LayerCost("linear", weights + b, 0, 0, 0, weights)
    raise ValueError(
        f"no cost model for {type(module).__name__}; expected one of nn.Conv2d, nn.Linear, gearlib.layers"
    )


@dataclass
class ModelCost:
    """Per-layer costs of a model (name, output size, cost) and the totals.

    parameters: every parameter of the model (BN and head included); paper_params adds the NLF
    hyperparameters the paper counts (LayerCost.paper_fixed); flops: the sum over the counted layers
    (convs, linears and the gearlib.layers convs; BN, pooling and activations are not counted);
    bn_elements: outputs of the model's BatchNorm2d layers (outside gearlib.layers convs). GroupNL's Table 3
    FLOPs equal flops + bn_elements (one op per BN output element) for every CIFAR ResNet-18/34 and VGG-11
    entry we checked: `flops_with_bn`.
    """

    rows: List[Tuple[str, Tuple[int, int], LayerCost]]
    parameters: int
    trainable: int
    bn_elements: int = 0

    @property
    def flops_with_bn(self) -> int:
        return self.flops + self.bn_elements

    @property
    def paper_params(self) -> int:
        return self.parameters + sum(cost.paper_fixed for _, _, cost in self.rows)

    @property
    def fixed(self) -> int:
        return sum(cost.fixed for _, _, cost in self.rows)

    @property
    def flops(self) -> int:
        return sum(cost.flops for _, _, cost in self.rows)

    def table(self) -> str:
        """The rows as a fixed-width text table, totals last."""
        lines = [f"{'layer':<28} {'kind':<15} {'out':>7} {'weights':>10} {'fixed':>6} {'MFLOPs':>9}"]
        for name, (h, w), cost in self.rows:
            lines.append(
                f"{name:<28} {cost.kind:<15} {f'{h}x{w}':>7} {cost.weights:>10,} {cost.fixed:>6} {cost.flops / 1e6:>9.2f}"
            )
        lines.append(
            f"total: {self.parameters:,} parameters ({self.paper_params / 1e6:.4f} M as the paper counts), "
            f"{self.flops / 1e6:.2f} MFLOPs"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _counted_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The top-most counted layers: a gearlib.layers conv is one row (its inner convs are not rows)."""
    found: List[Tuple[str, nn.Module]] = []
    inside: List[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if isinstance(module, COUNTED_LAYERS):
            found.append((name, module))
            if not isinstance(module, (nn.Conv2d, nn.Linear)):
                inside.append(name)
    return found


def model_cost(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> ModelCost:
    """Cost of every conv and linear layer of `model` for one image of `input_size` (C, H, W).

    Output sizes come from one forward pass of a single image (in eval mode, without gradients, restored
    afterwards) on the model's device: build big models on the meta device to count them for free.
    """
    layers = _counted_modules(model)
    inner = [name for name, module in layers if not isinstance(module, (nn.Conv2d, nn.Linear))]
    norms = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and not any(name.startswith(p + ".") for p in inner)
    ]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    sizes: Dict[str, Tuple[int, int]] = {}
    handles = []
    for name, module in layers:

        def hook(_m: nn.Module, _i: object, out: torch.Tensor, name: str = name) -> None:
            sizes[name] = (int(out.shape[-2]), int(out.shape[-1])) if out.dim() == 4 else (1, 1)

        handles.append(module.register_forward_hook(hook))
    bn_elements: List[int] = []
    for _, norm in norms:

        def bn_hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            bn_elements.append(out[0].numel())

        handles.append(norm.register_forward_hook(bn_hook))
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes.items():
            m.training = mode
    rows = [(name, sizes[name], layer_cost(module, sizes[name])) for name, module in layers if name in sizes]
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelCost(rows, parameters, trainable, sum(bn_elements))
