"""Firefly's candidate network (spec 2.2): the frozen backbone plus split directions V, new-neuron fan-ins A,
fan-ins B from the previous layer's new neurons, and scoring multipliers t, for every growable unit.

Layout. During growth every growable unit of width c carries 2c + K channels, [originals | copies | new]:
conv rows write h+ = u + e + t*(V*x) to the originals, h- = u + e - t*(V*x) to the copies and
h_n = t*(A*x) + e_n to the K new channels; BN, activation, pooling and depthwise convs act on each channel,
and every consumer reads the average of an original and its copy. This is spec 2.7's explicit duplication,
used for all architectures: it equals spec 2.2's in-layer average when the consumer reads the unit directly,
and unlike the average it stays exact through max-pooling (VGG) and depthwise convs (MobileNet), so the
materialised network equals this candidate network (spec 2.4, "function at growth").
"""

from __future__ import annotations

import copy
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.models.common import GrowableNet, GrowthGraph, Layer

# Initial scales of spec 2.2 / 7 (growth.init).
SPLIT_UNIFORM = 0.1  # V ~ U(-0.1, 0.1)
NEW_FAN_IN_STD = 0.1  # A ~ N(0, 0.1^2); also the trained depthwise filter of a new MobileNet channel
NEW_FAN_OUT_UNIFORM = 0.01  # B, B_head ~ U(-0.01, 0.01)
DW_NEW_INITS = ("trained", "official_zero")


def _uniform(shape: Sequence[int], bound: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    return (torch.rand(tuple(shape), generator=generator) * 2 - 1) * bound


def _normal(shape: Sequence[int], std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator) * std


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a [C] vector to broadcast over dim 1 of `like` (NC or NCHW)."""
    return v.view((1, -1) + (1,) * (like.dim() - 2))


class CandidateUnit(nn.Module):
    """Scoring multipliers and on/off masks of one unit's c split candidates and K new neurons.

    t_split and t_new are held at 1 (spec 2.2); the scoring pass differentiates the task loss w.r.t. them.
    split_on / new_on switch candidates off (used to compare a candidate network with its materialisation).
    """

    def __init__(self, name: str, width: int, new_neurons: int) -> None:
        super().__init__()
        self.name, self.width, self.k = name, int(width), int(new_neurons)
        self.t_split = nn.Parameter(torch.ones(self.width), requires_grad=False)
        self.t_new = nn.Parameter(torch.ones(self.k), requires_grad=False)
        self.register_buffer("split_on", torch.ones(self.width))
        self.register_buffer("new_on", torch.ones(self.k))

    @property
    def layout(self) -> List[int]:
        """Channel counts of [originals, copies, new] during growth."""
        return [self.width, self.width, self.k]

    def read(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Consumer view of a 2c+K tensor: (average of originals and copies, new channels)."""
        x_orig, x_copy, x_new = x.split(self.layout, dim=1)
        return (x_orig + x_copy) * 0.5, x_new


class CandidateLayer(nn.Module):
    """A frozen conv or linear layer with its growth tensors V, A (if it writes a growable unit) and
    B (if it reads one). src/dst are the CandidateUnits it reads/writes, None if not growable."""

    def __init__(
        self,
        layer: nn.Module,
        src: Optional[CandidateUnit],
        dst: Optional[CandidateUnit],
        generator: Optional[torch.Generator],
    ) -> None:
        super().__init__()
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError("CandidateLayer takes dense convs; use CandidateDepthwise for depthwise convs")
        self.layer, self.src, self.dst = layer, src, dst
        c_out, c_in = layer.weight.shape[:2]
        kernel = tuple(layer.weight.shape[2:])
        if dst is not None:
            self.V = nn.Parameter(_uniform((c_out, c_in) + kernel, SPLIT_UNIFORM, generator))
            self.A = nn.Parameter(_normal((dst.k, c_in) + kernel, NEW_FAN_IN_STD, generator))
        if src is not None:
            rows = c_out + (dst.k if dst is not None else 0)
            self.B = nn.Parameter(_uniform((rows, src.k) + kernel, NEW_FAN_OUT_UNIFORM, generator))

    def _op(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, weight)
        conv = self.layer
        return F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src, dst, W = self.src, self.dst, self.layer.weight
        x_old, x_new = src.read(x) if src is not None else (x, None)
        if dst is None:  # plain output (head, or a unit that does not grow)
            out = self._op(x_old, W)
            if x_new is not None:
                out = out + self._op(x_new, self.B)
            if self.layer.bias is not None:
                out = out + _per_channel(self.layer.bias, out)
            return out
        # The frozen rows W and the trained rows [V; A] are separate convolutions, so the backward pass
        # computes weight gradients only for the growth tensors.
        u = self._op(x_old, W)
        d, a = self._op(x_old, torch.cat([self.V, self.A])).split([dst.width, dst.k], 1)
        if self.layer.bias is not None:
            u = u + _per_channel(self.layer.bias, u)
        if x_new is not None:
            e_old, e_new = self._op(x_new, self.B).split([dst.width, dst.k], 1)
            u = u + e_old
        d = d * _per_channel(dst.t_split * dst.split_on, d)
        h_new = a * _per_channel(dst.t_new, a)
        if x_new is not None:
            h_new = h_new + e_new
        h_new = h_new * _per_channel(dst.new_on, h_new)
        return torch.cat([u + d, u - d, h_new], 1)


class CandidateDepthwise(nn.Module):
    """A MobileNet depthwise conv on a 2c+K unit: copies reuse their parent's filter, each new channel gets
    a per-channel filter D (trained during growth, spec 2.6)."""

    def __init__(self, conv: nn.Conv2d, unit: CandidateUnit, generator: Optional[torch.Generator]) -> None:
        super().__init__()
        self.layer, self.unit = conv, unit
        self.D = nn.Parameter(_normal((unit.k, 1) + tuple(conv.weight.shape[2:]), NEW_FAN_IN_STD, generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, W = self.layer, self.layer.weight
        weight = torch.cat([W, W, self.D])
        return F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, groups=weight.shape[0])


class CandidateBN(nn.Module):
    """Eval-mode BN on a 2c+K unit: copies share their parent's statistics and affine parameters; new
    channels use weight 1, bias 0, mean 0, variance 1.

    The backbone is frozen during growth, so eval-mode BN is a fixed per-channel affine map: its scale and
    shift are computed once here, and the backward pass (perturbations, scores) is a cheap multiply.
    """

    def __init__(self, bn: nn.BatchNorm2d, unit: CandidateUnit) -> None:
        super().__init__()
        self.bn, self.unit = bn, unit
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            new_scale = scale.new_full((unit.k,), 1.0 / (1.0 + bn.eps) ** 0.5)
            self.register_buffer("scale", torch.cat([scale, scale, new_scale]))
            self.register_buffer("shift", torch.cat([shift, shift, shift.new_zeros(unit.k)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(_per_channel(self.shift, x), x, _per_channel(self.scale, x))


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


class Candidate(nn.Module):
    """The candidate network of one Firefly step: a frozen eval-mode copy of the model whose growable
    layers are wrapped with their growth tensors. The original model is not modified.

    Args:
        model: a gearlib.models network (the backbone f_B or a grown net).
        new_neurons: K new neurons per growable unit.
        generator: seeds the initial V, A, B and D.
        grow_stream: ResNet only; False keeps the tied stream widths fixed (spec 2.7 fallback).
    """

    def __init__(
        self,
        model: GrowableNet,
        new_neurons: int,
        *,
        generator: Optional[torch.Generator] = None,
        grow_stream: bool = True,
    ) -> None:
        super().__init__()
        if int(new_neurons) < 1:
            raise ValueError(f"new_neurons (K) must be >= 1, got {new_neurons}")
        self.arch, self.num_classes, self.input_size = model.arch, model.num_classes, model.input_size
        self.new_neurons = int(new_neurons)
        self.graph: GrowthGraph = model.growth_graph()
        device = next(model.parameters()).device
        net = copy.deepcopy(model).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.units = nn.ModuleDict(
            {
                u.name: CandidateUnit(u.name, u.width, self.new_neurons)
                for u in self.graph.growable
                if grow_stream or not u.tied
            }
        )
        for layer in self.graph.layers:
            self._wrap(net, layer, generator)
        self.net = net.to(device)
        self.units.to(device)

    def unit(self, name: str) -> Optional[CandidateUnit]:
        """The CandidateUnit called `name`, or None if that unit does not grow in this step."""
        return self.units[name] if name in self.units else None  # noqa: SIM401 (ModuleDict)

    def _wrap(self, net: nn.Module, layer: Layer, generator: Optional[torch.Generator]) -> None:
        src, dst = self.unit(layer.src), self.unit(layer.dst)
        module = net.get_submodule(layer.module)
        if layer.kind == "depthwise":
            if src is not None:
                _set_module(net, layer.module, CandidateDepthwise(module, src, generator))
        elif src is not None or dst is not None:
            _set_module(net, layer.module, CandidateLayer(module, src, dst, generator))
        if layer.bn is not None and self.unit(layer.dst) is not None:
            _set_module(net, layer.bn, CandidateBN(net.get_submodule(layer.bn), self.unit(layer.dst)))

    def train(self, mode: bool = True) -> Candidate:
        """The candidate network always stays in eval mode (BN uses running statistics, spec 2.2)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def wrapped_layers(self) -> List[Tuple[Layer, nn.Module]]:
        """(graph layer, module in the candidate net) for every weight layer."""
        return [(layer, self.net.get_submodule(layer.module)) for layer in self.graph.layers]

    def perturbations(self) -> List[nn.Parameter]:
        """The trainable growth tensors: every V, A, B and new depthwise filter D."""
        params = []
        for _, module in self.wrapped_layers():
            for name in ("V", "A", "B", "D"):
                if hasattr(module, name):
                    params.append(getattr(module, name))
        return params

    def penalty(self, split_weight: float, new_fan_in_weight: float) -> torch.Tensor:
        """split_weight * sum ||V||^2 + new_fan_in_weight * sum ||A||^2 (spec 2.3: 1e-2 and 1e-2 * 1e-2)."""
        terms = [
            split_weight * m.V.pow(2).sum() + new_fan_in_weight * m.A.pow(2).sum()
            for _, m in self.wrapped_layers()
            if hasattr(m, "V")
        ]
        return torch.stack(terms).sum()

    def multipliers(self) -> Dict[str, Tuple[nn.Parameter, nn.Parameter]]:
        """unit name -> (t_split, t_new)."""
        return {name: (u.t_split, u.t_new) for name, u in self.units.items()}

    def keep_only(self, selection: Mapping[str, Tuple[Sequence[int], Sequence[int]]]) -> None:
        """Switch off every candidate that `selection` (unit -> (split indices, new indices)) leaves out.

        Afterwards this network computes what the materialised grown network computes.
        """
        for name, unit in self.units.items():
            split, new = selection.get(name, ((), ()))
            unit.split_on.zero_()
            unit.split_on[torch.as_tensor(list(split), dtype=torch.long, device=unit.split_on.device)] = 1.0
            unit.new_on.zero_()
            unit.new_on[torch.as_tensor(list(new), dtype=torch.long, device=unit.new_on.device)] = 1.0
