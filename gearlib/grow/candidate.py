"""Firefly's candidate network (book/notes/growth.md#notes-growth-candidate): the frozen backbone plus split directions V, new-neuron fan-ins A
and fan-ins B from the previous layer's new neurons, for every growable unit.

Layout. During growth every growable unit of width c carries 2c + K channels, [originals | copies | new]:
the producing layer writes h+ = u + e + t*(V*x) to the originals, h- = u + e - t*(V*x) to the copies and
h_n = t*(A*x) + e_n to the K new channels, with t = 1 (the scoring multipliers of book/notes/growth.md#notes-growth-candidate-forward, which the scoring
pass differentiates); BN, activation, pooling and depthwise convs act on each channel, and every consumer
reads the average of an original and its copy. This is explicit duplication (book/notes/decisions.md#notes-decisions-duplication), used for all
architectures: it equals Firefly's in-layer average when the consumer reads the unit directly, and unlike
the average it stays exact through max-pooling (VGG) and depthwise convs (MobileNet), so the materialised
network equals this candidate network (book/notes/growth.md#notes-growth-function, "function at growth").

Speed. The backbone is frozen and in eval mode, so each BN of a growing unit is a fixed per-channel affine
map; it is folded into the layer that writes the unit, which then produces all 2c+K channels with one
convolution of the old inputs and one of the new inputs, and no per-channel work on the activations.
In the perturbation-training pass a 1x1 convolution or linear layer reading a growable unit goes further: one
convolution of all 2c+K inputs (the old-input weights repeated for originals and copies) replaces the sum of
originals and copies, the second convolution and the add. That is 1.44x the multiply-adds at c = 24, K = 30
but less memory traffic: the MobileNet-V1 perturbation pass ran 0.84-0.87x as long at those widths (one
thread; at c = 16, K = 20 the change was within noise). Fusing the 3x3 convolutions as well made the pass
1.06x (VGG-19) and 1.03x (ResNet-18) as long, so they keep the two convolutions. In that pass the other
layers that read and write growable units (the 3x3 convolutions of VGG-19 and ResNet-18) keep the frozen W
apart from the trained tensors: W's convolution then computes no weight gradient, the fan-in B_o that
originals and copies share is convolved once instead of once per copy, and originals and copies are formed
as u + d and u - d from the shared part u and the split part d. The stems, which read the image, keep one
convolution: their outputs are the largest activations, and there the extra adds cost more than the saved
weight gradient. This path is opt-in (`Candidate(factored=True)`): it raised VGG-19's measured growth
peak by a fifth. `gearlib bench grow` prints the pass against the one-convolution layout
(`<arch>_perturb_factored_over_unfactored`; book/notes/growth.md#notes-growth-cost has the measurement).

The scoring pass always uses this split form, for every layer that writes a growable unit, and scales d and
the new channels' old-input part by explicit multipliers t (vectors of ones); dL/dt is then the score, so
no unit output is kept for the scores and in-place activations (VGG's ReLU) stay in place. Against keeping
each 2c+K output and its old-input part, the median scoring batch (128 images, c = 24, K = 30, one thread,
side by side) took 960 ms instead of 1148 ms (ResNet-18), 363 instead of 392 (VGG-19) and 355 instead of 372
(MobileNet-V1).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.models.common import GrowableNet, GrowthGraph, Layer, bn_scale_shift, set_submodule
from gearlib.models.layout import is_strided_pointwise

# Initial scales (book/notes/growth.md#notes-growth-candidate-init).
SPLIT_UNIFORM = 0.1  # V ~ U(-0.1, 0.1)
NEW_FAN_IN_STD = 0.1  # A ~ N(0, 0.1^2); also the trained depthwise filter of a new MobileNet channel
NEW_FAN_OUT_UNIFORM = 0.01  # B, B_head ~ U(-0.01, 0.01)
DW_NEW_INITS = ("trained", "official_zero")


def _uniform(shape: Sequence[int], bound: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    return (torch.rand(tuple(shape), generator=generator) * 2 - 1) * bound


def _normal(shape: Sequence[int], std: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator) * std


class CandidateUnit(nn.Module):
    """The c split candidates and K new neurons of one growable unit, with on/off masks.

    split_on / new_on switch candidates off (used to compare a candidate network with its materialisation).
    The scoring multipliers t (book/notes/growth.md#notes-growth-scoring) exist only in the scoring pass:
    there every layer writing the unit scales its split part and its new channels' old-input part by a
    vector of ones (`Candidate.recording`), and the score of a candidate is the loss gradient of its entry.
    """

    def __init__(self, name: str, width: int, new_neurons: int) -> None:
        super().__init__()
        self.name, self.width, self.k = name, int(width), int(new_neurons)
        self.register_buffer("split_on", torch.ones(self.width))
        self.register_buffer("new_on", torch.ones(self.k))

    @property
    def layout(self) -> List[int]:
        """Channel counts of [originals, copies, new] during growth."""
        return [self.width, self.width, self.k]

    def read(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Consumer view of a 2c+K tensor: (originals + copies, new channels). Consumers read the average of
        an original and its copy; the factor 1/2 is folded into their weights."""
        x_orig, x_copy, x_new = x.split(self.layout, dim=1)
        return x_orig + x_copy, x_new


# What a layer writing a growable unit records in the scoring pass: (unit, split multipliers t [c], new-neuron
# multipliers t [K]); both are ones that require grad, so dL/dt is the candidates' score contribution.
Recorded = Tuple[CandidateUnit, torch.Tensor, torch.Tensor]


def _folded_affine(
    layer: nn.Module, bn: Optional[nn.BatchNorm2d], unit: CandidateUnit
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) that `layer`'s bias and the eval-mode BN after it apply to a 2c+K unit:
    copies share their parent's, new channels get BN (weight 1, bias 0, mean 0, variance 1) and bias 0."""
    like, k = layer.weight, unit.k
    if bn is None:
        scale = like.new_ones(2 * unit.width + k)
        shift = like.new_zeros(2 * unit.width + k)
    else:
        s, b = bn_scale_shift(bn)
        scale = torch.cat([s, s, s.new_full((k,), 1.0 / (1.0 + bn.eps) ** 0.5)])
        shift = torch.cat([b, b, b.new_zeros(k)])
    if layer.bias is not None:
        bias = layer.bias
        shift = shift + scale * torch.cat([bias, bias, bias.new_zeros(k)])
    return scale, shift


def _rows(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scale the rows (dim 0) of a weight by a vector."""
    return w * v.view((-1,) + (1,) * (w.dim() - 1))


class CandidateLayer(nn.Module):
    """A frozen conv or linear layer with its growth tensors V, A (if it writes a growable unit) and
    B (if it reads one). src/dst are the CandidateUnits it reads/writes, None if not growable.

    When it writes a growable unit, the eval-mode BN that follows (`bn`) is folded into the layer: one
    convolution of the old inputs with rows [W + V | W - V | A] (times BN's scale, plus BN's shift) and one
    of the new inputs with rows [B_o | B_o | B_n] produce the unit's 2c+K channels after BN directly.
    """

    def __init__(
        self,
        layer: nn.Module,
        src: Optional[CandidateUnit],
        dst: Optional[CandidateUnit],
        generator: Optional[torch.Generator],
        bn: Optional[nn.BatchNorm2d] = None,
        factored: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError("CandidateLayer takes dense convs; use CandidateDepthwise for depthwise convs")
        self.layer, self.src, self.dst, self.factored = layer, src, dst, factored
        self.recorded: Optional[List[Recorded]] = None
        self.pointwise = isinstance(layer, nn.Linear) or tuple(layer.weight.shape[2:]) == (1, 1)
        c_out, c_in = layer.weight.shape[:2]
        kernel = tuple(layer.weight.shape[2:])
        if dst is not None:
            self.V = nn.Parameter(_uniform((c_out, c_in) + kernel, SPLIT_UNIFORM, generator))
            self.A = nn.Parameter(_normal((dst.k, c_in) + kernel, NEW_FAN_IN_STD, generator))
            with torch.no_grad():
                scale, shift = _folded_affine(layer, bn, dst)
            self.register_buffer("scale", scale)
            self.register_buffer("shift", shift)
        if src is not None:
            rows = c_out + (dst.k if dst is not None else 0)
            self.B = nn.Parameter(_uniform((rows, src.k) + kernel, NEW_FAN_OUT_UNIFORM, generator))

    def extra_strided_pointwise_inputs(self) -> List[int]:
        """Input channels of the convolution of the K new inputs when it is a strided 1x1 one (see
        gearlib.models.layout: oneDNN's channels-last weight gradient fails below 16 input channels)."""
        conv = self.layer
        if self.src is None or not isinstance(conv, nn.Conv2d) or not is_strided_pointwise(conv):
            return []
        return [self.src.k]

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, weight, bias)
        conv = self.layer
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation)

    def _weights(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Rows of the old-input and new-input weights over the 2c+K outputs, BN scale folded in."""
        dst, W = self.dst, self.layer.weight
        half = 0.5 if self.src is not None else 1.0  # consumers read originals + copies
        V = _rows(self.V, dst.split_on)
        old = _rows(torch.cat([W + V, W - V, _rows(self.A, dst.new_on)]), self.scale * half)
        if self.src is None:
            return old, None
        B_old, B_new = self.B.split([dst.width, dst.k])
        return old, _rows(torch.cat([B_old, B_old, _rows(B_new, dst.new_on)]), self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        src, dst, W = self.src, self.dst, self.layer.weight
        if dst is not None and self.recorded is not None:  # scoring pass: explicit multipliers t
            return self._split_form(x, self.recorded)
        if src is not None and self.pointwise:  # training pass: one conv
            return self._fused(x)
        if src is not None and dst is not None and self.factored:  # training pass
            return self._split_form(x)
        x_old, x_new = src.read(x) if src is not None else (x, None)
        if dst is None:  # plain output (head, or a unit that does not grow)
            out = self._op(x_old, 0.5 * W if src is not None else W, self.layer.bias)
            return out + self._op(x_new, self.B) if x_new is not None else out
        w_old, w_new = self._weights()
        out = self._op(x_old, w_old, self.shift)
        return out + self._op(x_new, w_new) if x_new is not None else out

    def _split_form(self, x: torch.Tensor, record: Optional[List[Recorded]] = None) -> torch.Tensor:
        """The unit's output as [u + d | u - d | n_old + n_new], with the frozen W apart from the trained
        V, A, B: the shared part u (W and the fan-in B_o that originals and copies share, each convolved
        once), the split part d = V*x and the new channels' parts from the old and the new inputs.

        W's convolution needs no weight gradient in the training pass. With `record` (the scoring pass), d
        and n_old are scaled by multipliers t of ones that require grad, appended to `record`.
        """
        dst, W = self.dst, self.layer.weight
        x_old, x_new = self.src.read(x) if self.src is not None else (x, None)
        half = 0.5 if self.src is not None else 1.0  # consumers read originals + copies
        s_orig, _, s_new = self.scale.split(dst.layout)
        trained = torch.cat([_rows(self.V, dst.split_on * s_orig), _rows(self.A, dst.new_on * s_new)])
        d, new = self._op(x_old, half * trained).split([dst.width, dst.k], dim=1)
        shared = self._op(x_old, _rows(W, half * s_orig), self.shift[: dst.width])
        if record is not None:
            t_split = d.new_ones(dst.width).requires_grad_(True)
            t_new = d.new_ones(dst.k).requires_grad_(True)
            record.append((dst, t_split, t_new))
            per_channel = (1, -1) + (1,) * (d.dim() - 2)
            d, new = d * t_split.view(per_channel), new * t_new.view(per_channel)
        if x_new is not None:
            B_old, B_new = self.B.split([dst.width, dst.k])
            fan_in = self._op(x_new, torch.cat([_rows(B_old, s_orig), _rows(B_new, dst.new_on * s_new)]))
            shared_in, new_in = fan_in.split([dst.width, dst.k], dim=1)
            shared, new = shared + shared_in, new + new_in
        return torch.cat([shared + d, shared - d, new], dim=1)

    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        """The same output from one convolution of all 2c+K inputs: the old-input weights repeated over
        originals and copies (which is reading their sum) beside the new-input weights."""
        if self.dst is None:
            half = 0.5 * self.layer.weight
            return self._op(x, torch.cat([half, half, self.B], dim=1), self.layer.bias)
        w_old, w_new = self._weights()
        return self._op(x, torch.cat([w_old, w_old, w_new], dim=1), self.shift)


class CandidateDepthwise(nn.Module):
    """A MobileNet depthwise conv on a 2c+K unit, with its eval-mode BN folded in: copies reuse their
    parent's filter, each new channel gets a per-channel filter D (trained during growth, book/notes/growth.md#notes-growth-mobilenet)."""

    def __init__(
        self,
        conv: nn.Conv2d,
        unit: CandidateUnit,
        generator: Optional[torch.Generator],
        bn: Optional[nn.BatchNorm2d] = None,
    ) -> None:
        super().__init__()
        self.layer, self.unit = conv, unit
        self.D = nn.Parameter(_normal((unit.k, 1) + tuple(conv.weight.shape[2:]), NEW_FAN_IN_STD, generator))
        with torch.no_grad():
            scale, shift = _folded_affine(conv, bn, unit)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, W = self.layer, self.layer.weight
        weight = _rows(torch.cat([W, W, self.D]), self.scale)
        return F.conv2d(
            x, weight, self.shift, conv.stride, conv.padding, conv.dilation, groups=weight.shape[0]
        )


class FoldedBN(nn.Module):
    """Stands where a BN of a growing unit was: the producing layer already applied it (folded), so this
    is the identity. It keeps the original BN for materialisation."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Candidate(nn.Module):
    """The candidate network of one Firefly step: a frozen eval-mode copy of the model whose growable
    layers are wrapped with their growth tensors. The original model is not modified.

    Args:
        model: a gearlib.models network (the backbone f_B or a grown net).
        new_neurons: K new neurons per growable unit.
        generator: seeds the initial V, A, B and D.
        grow_stream: ResNet only; False keeps the tied stream widths fixed (book/notes/growth.md#notes-growth-resnet-fallback).
        factored: the perturbation-training pass keeps the frozen weights apart from V, A and B (module
            docstring, Speed). Off by default: faster, but its extra tensors raise the step's memory peak
            (VGG-19 +20%), which the growth footprint of gearlib.grow.memory does not model yet.
    """

    def __init__(
        self,
        model: GrowableNet,
        new_neurons: int,
        *,
        generator: Optional[torch.Generator] = None,
        grow_stream: bool = True,
        factored: bool = False,
    ) -> None:
        super().__init__()
        self.factored = factored
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
        if src is None and dst is None:
            return  # neither reads nor writes a growing unit: stays as it is
        module = net.get_submodule(layer.module)
        bn = None
        if layer.bn is not None and dst is not None:  # folded into the layer that writes the unit
            bn = net.get_submodule(layer.bn)
            set_submodule(net, layer.bn, FoldedBN(bn))
        if layer.kind == "depthwise":  # reads and writes the same unit
            set_submodule(net, layer.module, CandidateDepthwise(module, src, generator, bn))
        else:
            set_submodule(net, layer.module, CandidateLayer(module, src, dst, generator, bn, self.factored))

    def train(self, mode: bool = True) -> Candidate:
        """The candidate network always stays in eval mode (BN uses running statistics, book/notes/growth.md#notes-growth-candidate-forward)."""
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
        """split_weight * sum ||V||^2 + new_fan_in_weight * sum ||A||^2 (book/notes/growth.md#notes-growth-perturb: 1e-2 and 1e-2 * 1e-2)."""
        terms = [
            split_weight * m.V.pow(2).sum() + new_fan_in_weight * m.A.pow(2).sum()
            for _, m in self.wrapped_layers()
            if hasattr(m, "V")
        ]
        return torch.stack(terms).sum()

    @contextlib.contextmanager
    def recording(self) -> Iterator[List[Recorded]]:
        """Within this block every forward pass appends (unit, split multipliers t, new-neuron multipliers t)
        for each layer that writes a growable unit to the yielded list; the scoring pass differentiates the
        loss with respect to them (dL/dt at t = 1)."""
        recorded: List[Recorded] = []
        layers = [m for _, m in self.wrapped_layers() if isinstance(m, CandidateLayer) and m.dst is not None]
        for m in layers:
            m.recorded = recorded
        try:
            yield recorded
        finally:
            for m in layers:
                m.recorded = None

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
