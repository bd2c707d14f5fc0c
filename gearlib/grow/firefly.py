"""One Firefly width-growth step, "split + new neurons" mode (book/notes/growth.md#notes-growth-step):
candidate -> train perturbations -> score -> select under the growth-ratio budget -> materialise.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from gearlib import distributed
from gearlib.grow.candidate import DW_NEW_INITS, Candidate
from gearlib.grow.materialise import UnitSelection, grown_widths, materialise
from gearlib.models import build_meta, check_widths, count_params, param_count
from gearlib.models.common import GrowableNet, GrowthGraph
from gearlib.models.layout import use_channels_last

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SPLIT_PENALTY = 1e-2  # on sum ||V_l||^2
NEW_FAN_IN_PENALTY = 1e-2 * 1e-2  # on sum ||A_l||^2
RMSPROP_PRESETS = {
    "official": {"lr": 1e-3, "alpha": 0.9, "momentum": 0.1},  # Firefly's public code
    "text": {"lr": 1e-3, "alpha": 0.1, "momentum": 0.9},  # GEARnn Appendix A as printed
}


@dataclass
class GrowthRecord:
    """What one growth step did, per growable unit (lists in width-list order).

    Attributes:
        unit_names: growable unit names; widths_before / widths_after: c_l before and after.
        split / added: s_l neurons split and n_l new neurons kept per unit.
        groups: budget groups (unit names); budgets: M_Gr = floor(gamma * sum c_l); kept: selected per group;
        thresholds: tau per group (the (M+1)-th smallest score).
        split_scores / new_scores: s_c = mean dL/dt per candidate (lower = better).
        growth_ratio: gamma used for the budgets; new_neurons: K; perturb_losses: mean loss per 10% of the
        perturbation pass; seconds: wall time of "perturb", "score", "materialise".
        size_before / size_after: size fractions (params / full-width params); target_fraction: the size
        the bisection aimed at (N-shot), if any; options: rmsprop settings, dw_new_init, grow_stream.
    """

    arch: str
    unit_names: List[str]
    widths_before: List[int]
    widths_after: List[int]
    split: List[int]
    added: List[int]
    groups: List[List[str]]
    budgets: List[int]
    kept: List[int]
    thresholds: List[float]
    split_scores: List[List[float]]
    new_scores: List[List[float]]
    growth_ratio: float
    new_neurons: int
    perturb_losses: List[float] = field(default_factory=list)
    seconds: Dict[str, float] = field(default_factory=dict)
    size_before: float = float("nan")
    size_after: float = float("nan")
    target_fraction: Optional[float] = None
    options: Dict[str, object] = field(default_factory=dict)

    def to_dict(self, scores: bool = False) -> Dict:
        """Plain dict for JSON; per-candidate scores only if `scores`."""
        out = asdict(self)
        if not scores:
            out.pop("split_scores")
            out.pop("new_scores")
        return out


# ---------------------------------------------------------------- budget


def _groups(graph: GrowthGraph, grow_stream: bool) -> List[List[str]]:
    tied = {u.name for u in graph.units if u.tied}
    groups = [[n for n in g if grow_stream or n not in tied] for g in graph.groups]
    return [g for g in groups if g]


def group_budget(widths: Sequence[int], growth_ratio: float) -> int:
    """M_Gr = floor(gamma * sum_{l in Gr} c_l), counted on the widths before growth (book/notes/growth.md#notes-growth-budget)."""
    return int(math.floor(growth_ratio * sum(widths) + 1e-9))


def check_feasible(
    arch: str,
    widths: Union[int, Sequence[int], None],
    growth_ratio: float,
    new_neurons: int,
    grow_stream: bool = True,
) -> None:
    """Raise ValueError unless every budget group can supply M_Gr + 1 candidates (book/notes/growth.md#notes-growth-feasibility).

    Feasible iff M_Gr < sum_{l in Gr}(c_l + K), i.e. gamma < 1 + K * |Gr| / sum c_l (1 + K / c_0 for a
    uniform backbone). Call it at configuration time.

    Args:
        arch: architecture name; widths: width list (or c_0); growth_ratio: gamma >= 0; new_neurons: K >= 1.
        grow_stream: ResNet only; False leaves the stream widths out of the budget.
    """
    if not growth_ratio >= 0:
        raise ValueError(f"growth_ratio (gamma) must be >= 0, got {growth_ratio}")
    if int(new_neurons) < 1:
        raise ValueError(f"new_neurons (K) must be >= 1, got {new_neurons}")
    widths = check_widths(arch, widths)
    graph = build_meta(arch, widths, 10).growth_graph()
    for group in _groups(graph, grow_stream):
        c = [graph.unit(n).width for n in group]
        budget, candidates = group_budget(c, growth_ratio), sum(c) + new_neurons * len(c)
        if budget >= candidates:
            bound = 1 + new_neurons * len(c) / sum(c)
            raise ValueError(
                f"growth_ratio {growth_ratio} is infeasible for {arch} group {group[0]}..{group[-1]}: the budget "
                f"M = floor(gamma * {sum(c)}) = {budget} needs fewer than the {candidates} candidates; use "
                f"gamma < 1 + K*|Gr|/sum(c) = {bound:.4f} or more new neurons K (now {new_neurons})"
            )


# ---------------------------------------------------------------- the two data passes


def _batches(batches: Iterable, max_batches: Optional[int], progress: bool, desc: str) -> Iterable:
    total = len(batches) if hasattr(batches, "__len__") else None
    if max_batches is not None:
        total = min(total, max_batches) if total is not None else max_batches
    it = iter(batches)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=total, desc=desc, leave=False)
    for step, batch in enumerate(it):
        if max_batches is not None and step >= max_batches:
            break
        yield batch


def _to_device(x: torch.Tensor, device: Optional[torch.device], channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if x.dim() != 4:
        return x
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def rmsprop_settings(rmsprop: Union[str, Mapping[str, float]]) -> Dict[str, float]:
    """RMSprop hyper-parameters: a preset name ("official", "text") or a dict with lr, alpha, momentum."""
    if isinstance(rmsprop, str):
        if rmsprop not in RMSPROP_PRESETS:
            raise ValueError(f"rmsprop preset {rmsprop!r} unknown; choose one of {sorted(RMSPROP_PRESETS)}")
        return dict(RMSPROP_PRESETS[rmsprop])
    settings = dict(RMSPROP_PRESETS["official"])
    unknown = set(rmsprop) - set(settings)
    if unknown:
        raise ValueError(f"rmsprop keys {sorted(unknown)} unknown; use lr, alpha, momentum")
    settings.update({k: float(v) for k, v in rmsprop.items()})
    return settings


def train_perturbations(
    candidate: Candidate,
    batches: Iterable,
    loss_fn: LossFn,
    *,
    rmsprop: Union[str, Mapping[str, float]] = "official",
    device: Optional[torch.device] = None,
    max_batches: Optional[int] = None,
    progress: bool = True,
    channels_last: bool = False,
) -> List[float]:
    """Perturbation training (book/notes/growth.md#notes-growth-perturb): one pass, RMSprop on V, A, B (and D) at a constant lr.

    Loss = task loss + 1e-2 * sum(||V||^2 + 1e-2 * ||A||^2); the backbone stays frozen and in eval mode.
    In a distributed run the perturbations' gradients are averaged over ranks before each step, as DDP
    averages a training step's, so every rank keeps the same V, A, B.

    Returns:
        Mean total loss per tenth of the pass (a short learning curve for the record).
    """
    perturbations = list(candidate.perturbations())
    optimizer = torch.optim.RMSprop(perturbations, **rmsprop_settings(rmsprop))
    candidate.eval()
    losses = []
    for x, y in _batches(batches, max_batches, progress, "grow: perturb"):
        x, y = _to_device(x, device, channels_last), y.to(device, non_blocking=True)
        loss = loss_fn(candidate(x), y) + candidate.penalty(SPLIT_PENALTY, NEW_FAN_IN_PENALTY)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(perturbations)
        optimizer.step()
        losses.append(loss.detach())
    if not losses:
        raise ValueError("growth needs at least one batch; the batch source was empty")
    curve = torch.stack(losses).float().cpu()
    return [float(chunk.mean()) for chunk in curve.chunk(min(10, len(curve)))]


def score_candidates(
    candidate: Candidate,
    batches: Iterable,
    loss_fn: LossFn,
    *,
    device: Optional[torch.device] = None,
    max_batches: Optional[int] = None,
    progress: bool = True,
    channels_last: bool = False,
) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """Scoring pass (book/notes/growth.md#notes-growth-scoring): s_c = mean over batches of dL/dt_c at t = 1, task loss only.

    In a distributed run the sums and the batch count are all-reduced, so every rank selects from the
    mean over all ranks' batches.

    Returns:
        unit name -> (split scores [c_l], new-neuron scores [K]), on the CPU; lower is better.
    """
    sums = {
        name: (torch.zeros_like(unit.split_on), torch.zeros_like(unit.new_on))
        for name, unit in candidate.units.items()
    }
    n = 0
    with candidate.recording() as recorded:
        for x, y in _batches(batches, max_batches, progress, "grow: score"):
            x, y = _to_device(x, device, channels_last), y.to(device, non_blocking=True)
            recorded.clear()
            loss = loss_fn(candidate(x), y)
            # Gradients w.r.t. the multipliers t only: no weight gradients are computed.
            grads = torch.autograd.grad(loss, [t for _, split, new in recorded for t in (split, new)])
            with torch.no_grad():
                for (unit, _, _), split, new in zip(recorded, grads[0::2], grads[1::2]):
                    sums[unit.name][0].add_(split)
                    sums[unit.name][1].add_(new)
            n += 1
        recorded.clear()
    if n == 0:
        raise ValueError("growth needs at least one batch; the batch source was empty")
    if distributed.active():  # pool every rank's batches: the same scores, so the same selection
        names = list(sums)
        count = torch.full((1,), float(n), device=sums[names[0]][0].device)
        reduced = distributed.sum_over_ranks([t for k in names for t in sums[k]] + [count])
        sums = {k: (reduced[2 * i], reduced[2 * i + 1]) for i, k in enumerate(names)}
        n = float(reduced[-1])
    return {name: (split.cpu() / n, new.cpu() / n) for name, (split, new) in sums.items()}


# ---------------------------------------------------------------- selection


def select_candidates(
    scores: Mapping[str, Tuple[torch.Tensor, torch.Tensor]],
    groups: Sequence[Sequence[str]],
    budgets: Sequence[int],
) -> Tuple[Dict[str, UnitSelection], List[float]]:
    """Selection (book/notes/growth.md#notes-growth-selection): per group, keep every candidate scoring <= the (M+1)-th smallest.

    Args:
        scores: unit -> (split scores, new scores); groups: unit names per budget group; budgets: M per group.

    Returns:
        (unit -> UnitSelection of kept split / new indices, threshold tau per group).
    """
    selection: Dict[str, UnitSelection] = {}
    thresholds = []
    for group, budget in zip(groups, budgets):
        pooled = torch.cat([torch.cat(scores[name]) for name in group])
        if budget + 1 > pooled.numel():
            raise ValueError(
                f"budget {budget} needs more than the {pooled.numel()} candidates of group {group}"
            )
        tau = torch.kthvalue(pooled, budget + 1).values
        thresholds.append(float(tau))
        for name in group:
            split, new = scores[name]
            selection[name] = UnitSelection(
                torch.nonzero(split <= tau).flatten().tolist(), torch.nonzero(new <= tau).flatten().tolist()
            )
    return selection, thresholds


def _budgets(candidate: Candidate, groups: Sequence[Sequence[str]], growth_ratio: float) -> List[int]:
    return [group_budget([candidate.units[n].width for n in g], growth_ratio) for g in groups]


def ratio_for_size(
    candidate: Candidate,
    scores: Mapping[str, Tuple[torch.Tensor, torch.Tensor]],
    groups: Sequence[Sequence[str]],
    target_fraction: float,
    iterations: int = 40,
) -> float:
    """Bisection on gamma so that the grown network's size fraction reaches `target_fraction` (book/notes/nshot.md#notes-nshot-bisection).

    Uses the scores already computed, so each trial only re-runs the selection. Returns the smallest gamma
    (to bisection precision) whose grown size >= target, or the largest feasible gamma if none reaches it.
    """
    full = param_count(candidate.arch, None, candidate.num_classes)

    def size(gamma: float) -> float:
        selection, _ = select_candidates(scores, groups, _budgets(candidate, groups, gamma))
        widths = grown_widths(candidate, selection)
        return param_count(candidate.arch, widths, candidate.num_classes) / full

    widths = [[candidate.units[n].width for n in g] for g in groups]
    hi = min((sum(c) + candidate.new_neurons * len(c)) / sum(c) for c in widths) - 1e-6
    lo = 0.0
    if size(hi) < target_fraction:
        return hi
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if size(mid) >= target_fraction:
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------- the step


@contextlib.contextmanager
def _stopwatch(seconds: Dict[str, float], name: str, device: torch.device) -> Iterator[None]:
    """Store the wall time of the block in seconds[name] (CUDA work included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds[name] = time.perf_counter() - start


def firefly_step(
    model: GrowableNet,
    batches: Iterable,
    growth_ratio: float,
    new_neurons: int = 70,
    *,
    loss_fn: LossFn,
    device: Optional[Union[str, torch.device]] = None,
    generator: Optional[torch.Generator] = None,
    rmsprop: Union[str, Mapping[str, float]] = "official",
    max_batches: Optional[int] = None,
    progress: bool = True,
    dw_new_init: str = "trained",
    grow_stream: bool = True,
    target_fraction: Optional[float] = None,
    score_batches: Optional[Iterable] = None,
    channels_last: bool = False,
) -> Tuple[GrowableNet, GrowthRecord]:
    """One Firefly growth step (E_g = 1): f_G = G(f_B) under the neuron budget C(f) <= (1 + gamma) C(f_B).

    Args:
        model: the network to grow (a gearlib.models model); not modified.
        batches: (x [J*B,3,H,W] in [0,1], y [B]) batches: one pass trains the perturbations, a second one
            (over `score_batches` if given) scores the candidates.
        growth_ratio: gamma; each budget group may add floor(gamma * sum c_l) + 1 neurons (plus ties).
        new_neurons: K new neurons offered per growable unit (70; 40 under the jetson profile).
        loss_fn: task loss L(logits, y) of the phase (clean CE, or CE + lambda * JSD on ERA batches).
        device, generator: where to run (default: the model's device); seeds of V, A, B, D (CPU).
        rmsprop: "official" (alpha 0.9, momentum 0.1), "text" (alpha 0.1, momentum 0.9) or a dict; lr 1e-3.
        max_batches, progress: cap on batches per pass (smoke runs); tqdm bars.
        dw_new_init, grow_stream: MobileNet's new depthwise filters, "trained" or "official_zero";
            ResNet only: False grows only the 8 inner widths.
        target_fraction: if set, gamma is found by bisection so that the grown size fraction reaches it.
        channels_last: NHWC where safe (gearlib.models.layout); same result up to rounding.
    Returns (grown model in train mode, GrowthRecord).
    """
    rmsprop = _check_step(
        model, growth_ratio, new_neurons, rmsprop, dw_new_init, grow_stream, target_fraction
    )
    device = torch.device(device) if device is not None else next(model.parameters()).device
    candidate = Candidate(model, new_neurons, generator=generator, grow_stream=grow_stream).to(device)
    channels_last = use_channels_last(candidate, device, channels_last)  # oneDNN issue 6035
    candidate.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    passes = dict(device=device, max_batches=max_batches, progress=progress, channels_last=channels_last)
    seconds: Dict[str, float] = {}  # perturb, score, materialise
    with _stopwatch(seconds, "perturb", device):
        losses = train_perturbations(candidate, batches, loss_fn, rmsprop=rmsprop, **passes)
    with _stopwatch(seconds, "score", device):
        scores = score_candidates(candidate, score_batches or batches, loss_fn, **passes)
    groups = _groups(candidate.graph, grow_stream)
    if target_fraction is not None:  # N-shot growth to a size: gamma from the scores
        growth_ratio = ratio_for_size(candidate, scores, groups, target_fraction)
    budgets = _budgets(candidate, groups, growth_ratio)
    selection, thresholds = select_candidates(scores, groups, budgets)
    with _stopwatch(seconds, "materialise", device):
        grown = materialise(candidate, selection, dw_new_init=dw_new_init)
    record = _record(
        model, grown, candidate, scores, groups, budgets, selection, thresholds,
        growth_ratio=float(growth_ratio), perturb_losses=losses, seconds=seconds, target_fraction=target_fraction,
        options={"rmsprop": rmsprop, "dw_new_init": dw_new_init, "grow_stream": grow_stream},
    )  # fmt: skip
    return grown, record


def _check_step(
    model: GrowableNet,
    growth_ratio: float,
    new_neurons: int,
    rmsprop: Union[str, Mapping[str, float]],
    dw_new_init: str,
    grow_stream: bool,
    target_fraction: Optional[float],
) -> Dict[str, float]:
    """Refuse a growth step that cannot run, before any pass; returns the RMSprop settings."""
    if dw_new_init not in DW_NEW_INITS:
        raise ValueError(f"dw_new_init must be one of {DW_NEW_INITS}, got {dw_new_init!r}")
    settings = rmsprop_settings(rmsprop)
    if target_fraction is None:  # with a target, the bisection only tries feasible ratios
        check_feasible(model.arch, model.widths, growth_ratio, new_neurons, grow_stream)
    elif not target_fraction > 0:
        raise ValueError(f"target_fraction must be > 0, got {target_fraction}")
    return settings


def _record(
    model: GrowableNet,
    grown: GrowableNet,
    candidate: Candidate,
    scores: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
    groups: List[List[str]],
    budgets: List[int],
    selection: Dict[str, UnitSelection],
    thresholds: List[float],
    **extra: Any,
) -> GrowthRecord:
    """The GrowthRecord of a step: per-unit selections and scores, sizes, and `extra` fields as given."""
    names = [u.name for u in candidate.graph.growable]
    empty = UnitSelection([], [])
    full = param_count(model.arch, None, model.num_classes)
    return GrowthRecord(
        arch=model.arch,
        unit_names=names,
        widths_before=list(model.widths),
        widths_after=list(grown.widths),
        split=[len(selection.get(n, empty).split) for n in names],
        added=[len(selection.get(n, empty).new) for n in names],
        groups=[list(g) for g in groups],
        budgets=budgets,
        kept=[sum(len(selection[n].split) + len(selection[n].new) for n in g) for g in groups],
        thresholds=thresholds,
        split_scores=[scores[n][0].tolist() if n in scores else [] for n in names],
        new_scores=[scores[n][1].tolist() if n in scores else [] for n in names],
        new_neurons=candidate.new_neurons,
        size_before=count_params(model) / full,
        size_after=count_params(grown) / full,
        **extra,
    )


def zero_growth_tensors(candidate: Candidate) -> None:
    """Zero every V and B (split directions and new neurons' outgoing weights): the materialised network
    then computes exactly the backbone's function (book/notes/growth.md#notes-growth-function, exact-preservation variant)."""
    with torch.no_grad():
        for _, module in candidate.wrapped_layers():
            for name in ("V", "B"):
                if hasattr(module, name):
                    getattr(module, name).zero_()
