"""Growth drivers (spec 3): One-Shot Growth (train E_1, grow once, train E_2) and N-shot growth
(N growth steps between N + 1 training stages, reaching the same final size).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from gearlib.grow.firefly import GrowthRecord, check_feasible, firefly_step
from gearlib.models import size_fraction
from gearlib.models.common import GrowableNet
from gearlib.train.stage import StageConfig, default_loss_fn, train_stage

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StageHook = Callable[[str, Callable[[], Any]], Any]
EpochHook = Callable[[str, int, nn.Module, torch.optim.Optimizer, Any, Dict[str, float]], None]


@dataclass
class StageLog:
    """One stage of a growth run: name ("train0", "grow1", "train1", ...), kind ("train" / "grow"),
    wall seconds, per-epoch metrics (train stages) and the width list at its end."""

    name: str
    kind: str
    seconds: float
    widths: List[int]
    epochs: List[Dict[str, float]] = field(default_factory=list)


@dataclass
class GrowthHistory:
    """Everything a growth run produced besides the final model.

    Attributes:
        widths: width list of the backbone, then after every growth step (Section 8.1 topology plots).
        size_fractions: size (params / full params) at the same points.
        records: one GrowthRecord per growth step.
        stages: StageLog per stage, in order; seconds add up to T_train (without the hooks' own overhead).
    """

    widths: List[List[int]] = field(default_factory=list)
    size_fractions: List[float] = field(default_factory=list)
    records: List[GrowthRecord] = field(default_factory=list)
    stages: List[StageLog] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total wall time of all stages (T_train)."""
        return sum(s.seconds for s in self.stages)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["records"] = [r.to_dict() for r in self.records]
        return out


def split_epochs(total: int, parts: int) -> List[int]:
    """Split `total` epochs into `parts` near-equal stages, longer ones first (80, 3 -> [27, 27, 26])."""
    if parts < 1 or total < 0:
        raise ValueError(f"need parts >= 1 and total >= 0 epochs, got {parts}, {total}")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def per_step_ratio(growth_ratio: float, steps: int) -> float:
    """Starting per-step ratio gamma_N = (1 + gamma)^(1/N) - 1 (exactly gamma for N = 1)."""
    if steps < 1:
        raise ValueError(f"steps (N) must be >= 1, got {steps}")
    return float(growth_ratio) if steps == 1 else (1.0 + growth_ratio) ** (1.0 / steps) - 1.0


def _call_stage(on_stage: Optional[StageHook], name: str, fn: Callable[[], Any]) -> Any:
    return fn() if on_stage is None else on_stage(name, fn)


@dataclass
class _Run:
    """Shared bookkeeping of the drivers: runs each stage through the hook, times it, fills the history."""

    model: GrowableNet
    batches: Iterable
    growth_batches: Iterable
    config: StageConfig
    loss_fn: LossFn
    device: torch.device
    new_neurons: int
    generator: Optional[torch.Generator] = None
    on_stage: Optional[StageHook] = None
    on_epoch_end: Optional[EpochHook] = None
    growth_options: Dict[str, Any] = field(default_factory=dict)
    history: GrowthHistory = field(init=False)

    def __post_init__(self) -> None:
        self.history = GrowthHistory(
            widths=[list(self.model.widths)], size_fractions=[size_fraction(self.model)]
        )

    def _timed(self, name: str, fn: Callable[[], Any]) -> Tuple[Any, float]:
        """Run fn through the on_stage hook; return its result and the wall time of fn alone."""
        box: Dict[str, Any] = {}

        def work() -> Any:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            box["out"] = fn()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            box["seconds"] = time.perf_counter() - start
            return box["out"]

        _call_stage(self.on_stage, name, work)
        return box["out"], box["seconds"]

    def train(self, index: int, epochs: int) -> None:
        """Stage "train<index>": T(f, data, E) with a fresh optimizer and schedule."""
        name = f"train{index}"
        hook = None
        if self.on_epoch_end is not None:

            def hook(epoch, model, optimizer, scheduler, metrics):
                self.on_epoch_end(name, epoch, model, optimizer, scheduler, metrics)

        def fn():
            return train_stage(
                self.model,
                self.batches,
                epochs,
                self.config,
                loss_fn=self.loss_fn,
                device=self.device,
                on_epoch_end=hook,
                desc=name,
            )

        result, seconds = self._timed(name, fn)
        self.history.stages.append(StageLog(name, "train", seconds, list(self.model.widths), result.metrics))

    def grow(self, index: int, growth_ratio: float, target_fraction: Optional[float] = None) -> None:
        """Stage "grow<index>": one Firefly step; the grown network replaces self.model."""
        name = f"grow{index}"
        options = dict(self.growth_options)
        options.setdefault("progress", self.config.progress)

        def fn():
            return firefly_step(
                self.model,
                self.growth_batches,
                growth_ratio,
                self.new_neurons,
                loss_fn=self.loss_fn,
                device=self.device,
                generator=self.generator,
                target_fraction=target_fraction,
                **options,
            )

        (grown, record), seconds = self._timed(name, fn)
        self.model = grown
        self.history.records.append(record)
        self.history.widths.append(list(grown.widths))
        self.history.size_fractions.append(record.size_after)
        self.history.stages.append(StageLog(name, "grow", seconds, list(grown.widths)))


def _start(
    model: GrowableNet,
    batches: Iterable,
    growth_ratio: float,
    new_neurons: int,
    *,
    stage_config: Optional[StageConfig],
    growth_batches: Optional[Iterable],
    loss_fn: Optional[LossFn],
    device: Optional[Union[str, torch.device]],
    growth_options: Optional[Mapping[str, Any]],
    **hooks: Any,
) -> _Run:
    """Validate the inputs (feasibility of the first step included) and set up a run."""
    if not isinstance(model, GrowableNet):
        raise ValueError(f"growth needs a gearlib.models model, got {type(model).__name__}")
    growth_options = dict(growth_options or {})
    check_feasible(
        model.arch, model.widths, growth_ratio, new_neurons, growth_options.get("grow_stream", True)
    )
    return _Run(
        model=model,
        batches=batches,
        growth_batches=growth_batches if growth_batches is not None else batches,
        config=stage_config if stage_config is not None else StageConfig(),
        loss_fn=loss_fn if loss_fn is not None else default_loss_fn(),
        device=torch.device(device) if device is not None else next(model.parameters()).device,
        new_neurons=new_neurons,
        growth_options=growth_options,
        **hooks,
    )


def one_shot_growth(
    model: GrowableNet,
    batches: Iterable,
    *,
    epochs_before: int,
    epochs_after: int,
    growth_ratio: float,
    new_neurons: int = 70,
    stage_config: Optional[StageConfig] = None,
    growth_batches: Optional[Iterable] = None,
    loss_fn: Optional[LossFn] = None,
    device: Optional[Union[str, torch.device]] = None,
    generator: Optional[torch.Generator] = None,
    on_stage: Optional[StageHook] = None,
    on_epoch_end: Optional[EpochHook] = None,
    growth_options: Optional[Mapping[str, Any]] = None,
) -> Tuple[GrowableNet, GrowthHistory]:
    """OSG (spec 3): T(f_B, E_1), one Firefly step f_G = G(f_B), T(f_G, E_2).

    Args:
        model: the backbone f_B (trained in place during the first stage).
        batches: batch source of the mode: clean batches with CE (GEARnn-2) or ERA batches with L_aug
            (GEARnn-1); J views concatenated, clean first.
        epochs_before, epochs_after: E_1 and E_2.
        growth_ratio: gamma (Table 1: CIFAR-10 VGG 0.9, MobileNet 1.8, ResNet 0.6).
        new_neurons: K (70; 40 under the jetson profile).
        stage_config: StageConfig of both training stages (schedule restarts per stage).
        growth_batches: batch source of the growth step (default: `batches`).
        loss_fn: task loss for training and growth (default: task_loss / clean CE).
        device: default: the model's device.
        generator: seeds the growth tensors.
        on_stage: optional on_stage(name, fn) -> fn(); wraps every stage ("train0", "grow1", "train1")
            so a runner can meter power or time it; must call fn() once and return its result.
        on_epoch_end: optional on_epoch_end(stage_name, epoch, model, optimizer, scheduler, metrics).
        growth_options: extra keyword arguments of firefly_step (rmsprop, max_batches, dw_new_init,
            grow_stream, progress).

    Returns:
        (final model f_O, GrowthHistory).
    """
    return n_shot_growth(
        model,
        batches,
        steps=1,
        growth_ratio=growth_ratio,
        epochs=[epochs_before, epochs_after],
        new_neurons=new_neurons,
        stage_config=stage_config,
        growth_batches=growth_batches,
        loss_fn=loss_fn,
        device=device,
        generator=generator,
        on_stage=on_stage,
        on_epoch_end=on_epoch_end,
        growth_options=growth_options,
    )


def n_shot_growth(
    model: GrowableNet,
    batches: Iterable,
    *,
    steps: int,
    growth_ratio: float,
    total_epochs: Optional[int] = None,
    epochs: Optional[Sequence[int]] = None,
    target_fraction: Optional[float] = None,
    new_neurons: int = 70,
    stage_config: Optional[StageConfig] = None,
    growth_batches: Optional[Iterable] = None,
    loss_fn: Optional[LossFn] = None,
    device: Optional[Union[str, torch.device]] = None,
    generator: Optional[torch.Generator] = None,
    on_stage: Optional[StageHook] = None,
    on_epoch_end: Optional[EpochHook] = None,
    growth_options: Optional[Mapping[str, Any]] = None,
) -> Tuple[GrowableNet, GrowthHistory]:
    """N-shot growth (spec 3, Tables 4, 10, 11): N Firefly steps between N + 1 training stages.

    Without `target_fraction` every step uses gamma_N = (1 + gamma)^(1/N) - 1 (N = 1 is exactly OSG).
    With it, step k's ratio is found by bisection (starting bracket from the scores) so that the size after
    step k is backbone * (target / backbone)^(k/N): the final size hits the target, each step on a
    geometric path.

    Args:
        model: the backbone f_B.
        batches: batch source of the mode (as one_shot_growth).
        steps: N >= 1.
        growth_ratio: gamma of the equivalent one-shot growth.
        total_epochs: parametric epochs in all, split into N + 1 near-equal stages (80 -> 40/40, 27/27/26,
            20 x 4, 16 x 5); or give `epochs`, the N + 1 stage lengths.
        target_fraction: final size fraction (e.g. 0.05), or None.
        Other arguments: as one_shot_growth; stages are named "train0", "grow1", "train1", ..., "trainN".

    Returns:
        (final model, GrowthHistory with N records and the width list after every step).
    """
    per_step = per_step_ratio(growth_ratio, steps)
    if epochs is None:
        if total_epochs is None:
            raise ValueError("give total_epochs (split into N + 1 stages) or epochs (N + 1 stage lengths)")
        epochs = split_epochs(total_epochs, steps + 1)
    epochs = list(epochs)
    if len(epochs) != steps + 1:
        raise ValueError(f"epochs must list N + 1 = {steps + 1} stage lengths, got {epochs}")
    if target_fraction is not None and not target_fraction > 0:
        raise ValueError(f"target_fraction must be > 0, got {target_fraction}")
    run = _start(
        model,
        batches,
        per_step,
        new_neurons,
        stage_config=stage_config,
        growth_batches=growth_batches,
        loss_fn=loss_fn,
        device=device,
        growth_options=growth_options,
        generator=generator,
        on_stage=on_stage,
        on_epoch_end=on_epoch_end,
    )
    start = run.history.size_fractions[0]
    run.train(0, epochs[0])
    for k in range(1, steps + 1):
        target = None if target_fraction is None else start * (target_fraction / start) ** (k / steps)
        run.grow(k, per_step, target_fraction=target)
        run.train(k, epochs[k])
    return run.model, run.history
