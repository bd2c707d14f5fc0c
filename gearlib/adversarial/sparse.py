"""FLOATS's sparse learning under FLOAT's global parameter budget (Eq. 5): one mask per noisy conv/linear,
pruned and regrown by sparse momentum every epoch, weight by weight (FLOATS-i) or by input channel (FLOATS-c).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from gearlib.adversarial.layers import NoisyConv2d, NoisyMixin

GRANULARITIES = ("weight", "channel")  # FLOATS-i (irregular), FLOATS-c (whole input channels)
START_RATE = 0.5  # prune rate at the first step (sparse momentum, Dettmers & Zettlemoyer 2019)
END_RATE = 0.005  # prune rate the cosine schedule reaches at the last step
REGROW_CAP = 0.99  # a layer regrows at most this fraction of its free slots before the overflow pass


def prune_rate(step: int, total_steps: int, start: float = START_RATE, end: float = END_RATE) -> float:
    """The prune rate p after `step` optimizer steps: cosine-annealed from `start` (step 0) to `end`
    (step >= total_steps), as sparse momentum anneals it (Dettmers & Zettlemoyer 2019)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1 (epochs * steps per epoch), got {total_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step == 0:
        return float(start)
    if step >= total_steps:
        return float(end)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * step / total_steps))


def _check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"unknown granularity {granularity!r}; choose 'weight' (FLOATS-i, irregular) or 'channel' "
            "(FLOATS-c, whole input channels)"
        )


def _stem(model: nn.Module) -> Optional[nn.Module]:
    """The conv that reads the image: the model's `stem` when it has one, else its first noisy conv."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, NoisyConv2d):
        return stem
    return next((m for m in model.modules() if isinstance(m, NoisyConv2d)), None)


def masked_layers(model: nn.Module, granularity: str = "weight") -> List[Tuple[str, nn.Module]]:
    """The (name, layer) pairs a sparsity of `granularity` masks, in network order.

    "weight": every noisy conv and linear layer (BN, biases and alpha stay dense); "channel": every noisy
    conv except the stem (its 3 colour channels) and the classifier, which stay dense.
    """
    _check_granularity(granularity)
    noisy = [(name, m) for name, m in model.named_modules() if isinstance(m, NoisyMixin)]
    if granularity == "weight":
        return noisy
    stem = _stem(model)
    return [(name, m) for name, m in noisy if isinstance(m, NoisyConv2d) and m is not stem]


def channel_counts(model: nn.Module) -> Dict[str, int]:
    """Kept input channels of every noisy conv (stem included): a channel is kept when any of its weights
    is on the mask; a dense conv keeps all of them."""
    counts: Dict[str, int] = {}
    for name, m in model.named_modules():
        if isinstance(m, NoisyConv2d):
            mask = m.mask_clean
            c_in = m.weight.shape[1]
            counts[name] = c_in if mask is None else int((_per_unit(mask, True, squared=True) > 0).sum())
    return counts


def layer_densities(model: nn.Module) -> Dict[str, float]:
    """Fraction of each noisy layer's weights on its mask (1.0 for a dense layer)."""
    out: Dict[str, float] = {}
    for name, m in model.named_modules():
        if isinstance(m, NoisyMixin):
            mask = m.mask_clean
            out[name] = 1.0 if mask is None else float((mask != 0).sum()) / m.weight.numel()
    return out


def _per_unit(tensor: torch.Tensor, channel: bool, squared: bool = False) -> torch.Tensor:
    """One magnitude per unit: |x| per weight, or per input channel c the Frobenius norm of x[:, c]
    (squared: f_c = ||theta[:, c]||_F^2, FLOAT Sec. 3.2 on FLOATS-c)."""
    tensor = tensor.detach()
    if not channel:
        return tensor.abs().reshape(-1)
    sq = tensor.transpose(0, 1).reshape(tensor.shape[1], -1).pow(2).sum(dim=1)
    return sq if squared else sq.sqrt()


def _momentum(optimizer: Optional[torch.optim.Optimizer], weight: torch.Tensor) -> Optional[torch.Tensor]:
    if optimizer is None:
        return None
    return optimizer.state.get(weight, {}).get("momentum_buffer")


def _pick(
    scores: torch.Tensor, candidates: torch.Tensor, count: int, largest: bool, generator: torch.Generator
) -> torch.Tensor:
    """Indices of the `count` candidates with the largest (or smallest) scores, ties broken at random."""
    index = candidates.nonzero().flatten()
    if count <= 0 or index.numel() == 0:
        return index[:0]
    shuffle = torch.randperm(index.numel(), generator=generator, device=generator.device)
    index = index[shuffle.to(index.device)]
    order = torch.sort(scores[index], descending=largest, stable=True).indices
    return index[order[:count]]


def _water_fill(total: int, scores: Sequence[float], caps: Sequence[int]) -> List[int]:
    """Integers n_l <= caps_l in proportion to scores (largest remainders), summing to min(total, sum caps):
    whatever a capped layer cannot take is shared among the others in the same proportions."""
    alloc = [0] * len(caps)
    remaining = total
    open_ = [i for i, cap in enumerate(caps) if cap > 0]
    while remaining > 0 and open_:
        weights = [Fraction(max(float(scores[i]), 0.0)) for i in open_]
        if sum(weights) <= 0:
            weights = [Fraction(1)] * len(open_)
        scale = Fraction(remaining) / sum(weights)
        shares = [w * scale for w in weights]
        give = [math.floor(s) for s in shares]
        by_remainder = sorted(range(len(open_)), key=lambda j: shares[j] - give[j], reverse=True)
        for j in by_remainder[: remaining - sum(give)]:
            give[j] += 1
        still_open = []
        for j, i in enumerate(open_):
            taken = min(give[j], caps[i] - alloc[i])
            alloc[i] += taken
            remaining -= taken
            if alloc[i] < caps[i]:
                still_open.append(i)
        if len(still_open) == len(open_):
            break  # no layer hit its cap, so every share was placed
        open_ = still_open
    return alloc


def _allocate(total: int, scores: Sequence[float], caps: Sequence[int], sizes: Sequence[int]) -> List[int]:
    """Units n_l <= caps_l of sizes_l parameters each, sum n_l sizes_l <= total, the parameters split in
    proportion to scores. Unit sizes of 1 place exactly min(total, capacity); larger units leave less
    than one unit of any layer with room unplaced."""
    params = _water_fill(total, scores, [cap * size for cap, size in zip(caps, sizes)])
    units = [p // size for p, size in zip(params, sizes)]
    left = total - sum(n * size for n, size in zip(units, sizes))
    # integrality at channel granularity: hand out whole channels, closest to their next one first
    order = sorted(
        range(len(units)), key=lambda i: (params[i] - units[i] * sizes[i]) / sizes[i], reverse=True
    )
    placed = True
    while placed:
        placed = False
        for i in order:
            if units[i] < caps[i] and sizes[i] <= left:
                units[i] += 1
                left -= sizes[i]
                placed = True
    return units


class _Layer:
    """One masked layer seen as units (single weights, or input channels of C_o * k^2 weights each)."""

    def __init__(self, name: str, module: nn.Module, channel: bool) -> None:
        self.name, self.module, self.channel = name, module, channel
        weight = module.weight
        self.units = int(weight.shape[1]) if channel else weight.numel()
        self.size = weight.numel() // self.units  # parameters per unit

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight

    def active(self) -> torch.Tensor:
        mask = self.module.mask_clean
        if mask is None:
            return torch.ones(self.units, dtype=torch.bool, device=self.weight.device)
        return _per_unit(mask, self.channel, squared=True) > 0

    def expand(self, units: torch.Tensor) -> torch.Tensor:
        """A per-unit boolean vector as a boolean tensor of the weight's shape."""
        shape = self.weight.shape
        if not self.channel:
            return units.reshape(shape)
        view = [1] * len(shape)
        view[1] = self.units
        return units.reshape(view).expand(shape)

    def write(self, active: torch.Tensor) -> None:
        """Set both paths' masks (the FLOATS mask is shared by the clean and the adversarial path)."""
        full = self.expand(active).to(self.weight.dtype).contiguous()
        for attr in ("mask_clean", "mask_adv"):
            current = getattr(self.module, attr)
            if current is None or current.shape != full.shape or current.dtype != full.dtype:
                setattr(self.module, attr, full.clone())
            else:
                current.copy_(full)


class SparseMomentum:
    """FLOATS's masks and their sparse-momentum updates (FLOAT Sec. 3.2; Dettmers & Zettlemoyer 2019).

    At construction every masked layer gets a random mask of density `density` (exactly floor(d * n_l)
    weights per layer, or max(1, floor(d * C_i)) input channels per conv at channel granularity), set on
    both paths; other noisy layers (the stem and classifier at channel granularity) are made dense.
    Call `after_step(optimizer)` after every optimizer step and `end_epoch(optimizer)` at every epoch end.

    Invariants: masked-out weights are exactly zero after every call; at weight
    granularity the total number of non-zeros equals `budget` = sum_l floor(d * n_l) <= d * sum_l n_l
    (FLOAT, Eq. 5) after every prune-regrow; at channel granularity masks hold whole input channels, every
    conv keeps at least one, and the masked convs' kept parameters never exceed `budget` (their count at
    construction) and fall short of it by less than one channel block of a layer with room.

    The masked layers pass gradients to every weight (their `dense_mask_grad`), pruned ones included,
    and `after_step` zeroes only the pruned weights: their momentum keeps averaging their gradients, and
    regrowth activates the free units whose momentum is largest (sparse momentum's rule).
    """

    def __init__(
        self,
        model: nn.Module,
        density: float,
        total_steps: int,
        *,
        granularity: str = "weight",
        generator: Optional[torch.Generator] = None,
        start_rate: float = START_RATE,
        end_rate: float = END_RATE,
    ) -> None:
        if not 0 < density <= 1:
            raise ValueError(f"density must lie in (0, 1] (the kept fraction of weights), got {density}")
        _check_granularity(granularity)
        if not 0 <= end_rate <= start_rate <= 1:
            raise ValueError(
                f"need 0 <= end_rate <= start_rate <= 1, got start_rate={start_rate}, end_rate={end_rate}"
            )
        prune_rate(0, total_steps)  # validates total_steps
        noisy = [m for m in model.modules() if isinstance(m, NoisyMixin)]
        layers = masked_layers(model, granularity)
        if not noisy or not layers:
            raise ValueError(
                "the model has no noisy conv/linear layers to mask: build it with "
                "gearlib.adversarial.models.build_adversarial (e.g. kind=FLOAT)"
            )
        self.model, self.density_target, self.granularity = model, float(density), granularity
        self.total_steps, self.start_rate, self.end_rate = (
            int(total_steps),
            float(start_rate),
            float(end_rate),
        )
        if generator is None:
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
        self.generator = generator
        self.steps = 0
        self.epochs = 0
        channel = granularity == "channel"
        self.layers = [_Layer(name, m, channel) for name, m in layers]
        covered = {id(layer.module) for layer in self.layers}
        with torch.no_grad():
            for m in noisy:
                if id(m) not in covered:
                    m.mask_clean = m.mask_adv = None
            for layer in self.layers:
                keep = math.floor(density * layer.units)
                if channel:
                    keep = max(1, keep)
                order = torch.randperm(layer.units, generator=generator, device=generator.device)
                active = torch.zeros(layer.units, dtype=torch.bool, device=layer.weight.device)
                active[order[:keep].to(active.device)] = True
                layer.write(active)
                layer.weight.mul_(layer.module.mask_clean)  # Theta <- applyMask(Theta, Pi) (FLOAT, Alg. 1)
                layer.module.dense_mask_grad = True
        self.budget = self._kept()

    def _kept(self) -> int:
        """Parameters on the masks of the masked layers."""
        return sum(int(layer.active().sum()) * layer.size for layer in self.layers)

    def density(self) -> float:
        """Non-zero fraction of all noisy conv/linear weights (dense layers count as dense)."""
        nonzero, total = self._nonzero()
        return nonzero / total

    def _nonzero(self) -> Tuple[int, int]:
        nonzero = total = 0
        for m in self.model.modules():
            if isinstance(m, NoisyMixin):
                n = m.weight.numel()
                total += n
                nonzero += n if m.mask_clean is None else int((m.mask_clean != 0).sum())
        return nonzero, total

    @torch.no_grad()
    def after_step(self, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
        """Keep pruned weights exactly zero (their momentum runs on); count the step for the schedule."""
        for layer in self.layers:
            layer.weight.mul_(layer.module.mask_clean)
        self.steps += 1

    def _layer_scores(
        self, actives: List[torch.Tensor], momenta: List[Optional[torch.Tensor]]
    ) -> List[float]:
        """mu_l: mean momentum magnitude over the layer's active units, normalised to sum 1 (sparse
        momentum, Dettmers & Zettlemoyer 2019); equal scores while there is no momentum."""
        raw = []
        for layer, active, buf in zip(self.layers, actives, momenta):
            value = 0.0
            if buf is not None and bool(active.any()):
                value = float(_per_unit(buf, layer.channel)[active].mean())
            raw.append(value if math.isfinite(value) else 0.0)
        total = sum(raw)
        if total <= 0:
            return [1.0 / len(raw)] * len(raw)
        return [v / total for v in raw]

    @torch.no_grad()
    def end_epoch(self, optimizer: Optional[torch.optim.Optimizer] = None) -> Dict[str, Any]:
        """Prune the smallest active units of every layer at the scheduled rate, regrow as many in
        proportion to the layers' momentum, and return the epoch's record (JSON-ready)."""
        rate = prune_rate(self.steps, self.total_steps, self.start_rate, self.end_rate)
        actives = [layer.active() for layer in self.layers]
        momenta = [_momentum(optimizer, layer.weight) for layer in self.layers]
        scores = self._layer_scores(actives, momenta)
        pruned = []
        for layer, active in zip(self.layers, actives):
            count = int(active.sum())
            drop = min(math.ceil(rate * count), max(count - 1, 0))  # never a layer's last unit
            gone = _pick(
                _per_unit(layer.weight, layer.channel, squared=True), active, drop, False, self.generator
            )
            active[gone] = False
            pruned.append(drop)
        # regrow what the budget leaves (FLOAT, Eq. 5): at weight granularity exactly what was pruned
        target = max(
            0, self.budget - sum(int(a.sum()) * layer.size for layer, a in zip(self.layers, actives))
        )
        free = [layer.units - int(a.sum()) for layer, a in zip(self.layers, actives)]
        sizes = [layer.size for layer in self.layers]
        grow = _allocate(target, scores, [math.floor(REGROW_CAP * f) for f in free], sizes)
        rest = target - sum(g * s for g, s in zip(grow, sizes))
        if rest > 0:  # the capped layers' overflow: now up to all free slots
            more = _allocate(rest, scores, [f - g for f, g in zip(free, grow)], sizes)
            grow = [g + extra for g, extra in zip(grow, more)]
        layers: Dict[str, Dict[str, Any]] = {}
        for layer, active, buf, n, score, drop in zip(self.layers, actives, momenta, grow, scores, pruned):
            weight = layer.weight
            by_momentum = (
                _per_unit(buf, layer.channel)
                if buf is not None
                else torch.zeros_like(active, dtype=weight.dtype)
            )
            new = _pick(by_momentum, ~active, n, True, self.generator)
            fresh = torch.zeros_like(active)
            fresh[new] = True
            active |= fresh
            layer.write(active)
            mask, fresh_full = layer.module.mask_clean, layer.expand(fresh)
            weight.mul_(mask).masked_fill_(fresh_full, 0.0)  # pruned stay 0, regrown start at 0
            if buf is not None:
                buf.masked_fill_(fresh_full, 0.0)  # regrown weights start without momentum
            kept = int(active.sum())
            layers[layer.name] = {
                "active": kept,
                "units": layer.units,
                "density": kept * layer.size / weight.numel(),
                "pruned": drop,
                "regrown": n,
                "score": score,
            }
        self.epochs += 1
        nonzero, total = self._nonzero()
        return {
            "epoch": self.epochs,
            "step": self.steps,
            "granularity": self.granularity,
            "prune_rate": rate,
            "pruned": sum(pruned),
            "regrown": sum(grow),
            "kept": self._kept(),
            "budget": self.budget,
            "nonzero": nonzero,
            "density": nonzero / total,
            "layers": layers,
        }

    def state_dict(self) -> Dict[str, Any]:
        """The schedule's position and the generator (the masks are buffers in the model's state dict)."""
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "generator": self.generator.get_state(),
            "granularity": self.granularity,
            "density": self.density_target,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state["granularity"] != self.granularity or state["density"] != self.density_target:
            raise ValueError(
                f"the state is for granularity={state['granularity']!r}, density={state['density']}, this "
                f"sparsity has granularity={self.granularity!r}, density={self.density_target}: build a "
                "SparseMomentum with the saved settings"
            )
        self.steps, self.epochs = int(state["steps"]), int(state["epochs"])
        self.generator.set_state(state["generator"])
