"""The experiment runner: run a method's plan with timing, energy metering, per-epoch checkpoints and resume.

`run_experiment(config)` returns a finished run from the store, or trains it (resuming a killed run from its
last epoch checkpoint) and writes metrics.json with everything the paper's tables report.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import torch

from gearlib import __version__, seed_everything
from gearlib.profiles import Profile, get_profile, parse_overrides
from gearlib.train import store
from gearlib.train.methods import Step, get_method, plan_for

LOADERS = ("batched", "per-sample")
RUN_KEYS = ("seed", "loader")  # --set keys that belong to the run, not to the profile


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; its hash names the run directory."""

    method: str
    arch: str
    dataset: str
    profile: Profile
    seed: int = 0
    loader: str = "batched"

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["profile"] = self.profile.to_dict()
        return out

    @property
    def device(self) -> torch.device:
        return torch.device(self.profile.resolved_device())


def make_config(
    method: str,
    profile: Union[str, Profile] = "smoke",
    arch: str = "vgg19",
    dataset: str = "synthetic",
    seed: int = 0,
    overrides: Union[Mapping[str, Any], Iterable[str], None] = None,
) -> RunConfig:
    """Validate everything before anything runs: method, arch, dataset, profile and `key=value` overrides."""
    from gearlib.data import dataset_info
    from gearlib.models import ARCHS

    get_method(method)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    dataset_info(dataset)
    pairs = _as_pairs(overrides)
    run_level = {k: pairs.pop(k) for k in list(pairs) if k in RUN_KEYS}
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    prof = prof.override(pairs)
    loader = str(run_level.get("loader", "batched"))
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
    try:
        seed = int(run_level.get("seed", seed))
    except ValueError:
        raise ValueError(f"seed must be an integer, got {run_level['seed']!r}") from None
    config = RunConfig(method, arch, dataset, prof, seed, loader)
    _, plan = plan_for(method, prof, dataset, arch)  # builds the plan: bad epochs / ratios fail here
    if loader == "per-sample":
        bad = sorted({s.augment for s in plan} - set(PER_SAMPLE_VIEWS))
        if bad:
            raise ValueError(f"loader=per-sample supports {', '.join(PER_SAMPLE_VIEWS)}; method uses {bad}")
    _check_growth_budget(config, plan)
    return config


def _as_pairs(overrides: Union[Mapping[str, Any], Iterable[str], None]) -> Dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"setting {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    unknown = [k for k in pairs if k not in RUN_KEYS]
    parse_overrides({k: pairs[k] for k in unknown})  # raises on unknown profile keys, listing valid ones
    return pairs


def _check_growth_budget(config: RunConfig, plan: List[Step]) -> None:
    """Firefly can add at most c_l + K neurons per layer: refuse infeasible growth ratios up front."""
    from gearlib.grow import check_feasible

    for step in plan:
        if step.kind == "grow":
            check_feasible(
                config.arch, config.profile.backbone_width, step.growth_ratio, config.profile.new_neurons
            )


@dataclass
class RunResult:
    """A finished run: its directory and metrics (as stored in metrics.json)."""

    run_dir: Path
    metrics: Dict[str, Any]
    cached: bool = False
    epochs: List[Dict[str, Any]] = field(default_factory=list)

    def model(self) -> torch.nn.Module:
        """Rebuild the final network from its width list and load the final weights."""
        from gearlib.data import dataset_info
        from gearlib.models import build

        info = dataset_info(self.metrics["dataset"])
        net = build(self.metrics["arch"], self.metrics["widths"], info.num_classes, info.image_size)
        net.load_state_dict(store.load_torch(self.run_dir / store.FINAL)["model"])
        return net.eval()


# Views per sample and torchvision AugMix settings of the reference per-sample pipeline.
PER_SAMPLE_VIEWS = {"clean": (1, 3, -1), "augmix": (3, 3, -1), "era": (4, 1, 3)}


def run_experiment(
    config: RunConfig,
    runs_dir: Optional[Union[str, Path]] = None,
    data_dir: Optional[Union[str, Path]] = None,
    progress: bool = True,
    force: bool = False,
) -> RunResult:
    """Return the stored run for `config`, or train it (resuming from its checkpoint), store it and return it.

    Args:
        config: from `make_config`.
        runs_dir: where runs are stored (default $GEARLIB_RUNS, then ./runs).
        data_dir: where datasets are (default $GEARLIB_DATA, then ./data).
        progress: show tqdm progress bars.
        force: retrain even if a finished run exists.
    """
    run_dir = store.run_dir_for(config.to_dict(), runs_dir)
    metrics = store.finished_metrics(run_dir)
    if metrics is not None and not force:
        return RunResult(run_dir, metrics, cached=True, epochs=read_epoch_log(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_json_atomic(run_dir / store.CONFIG, config.to_dict())
    return _Run(config, run_dir, runs_dir, data_dir, progress).execute()


def read_epoch_log(run_dir: Path) -> List[Dict[str, Any]]:
    path = run_dir / store.LOG
    if not path.is_file():
        return []
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return [{k: _number(v) for k, v in row.items()} for row in rows]


def _number(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


class _Run:
    """One execution of a plan; state lives in a weights-only checkpoint written after every epoch."""

    def __init__(
        self, config: RunConfig, run_dir: Path, runs_dir: Any, data_dir: Any, progress: bool
    ) -> None:
        from gearlib.data import dataset_info

        self.config = config
        self.run_dir = run_dir
        self.runs_dir = runs_dir
        self.data_dir = data_dir
        self.progress = progress
        self.profile = config.profile
        self.device = config.device
        self.method, self.plan = plan_for(config.method, config.profile, config.dataset, config.arch)
        info = dataset_info(config.dataset)
        self.num_classes, self.image_size = info.num_classes, info.image_size

    # -- data -------------------------------------------------------------------------------------
    def _load_data(self) -> None:
        from gearlib.data import load_dataset

        p, c = self.profile, self.config
        self.train_set = load_dataset(
            c.dataset, "train", self.data_dir, subset=p.train_subset or None, seed=c.seed
        )
        self.test_set = load_dataset(
            c.dataset, "test", self.data_dir, subset=p.test_subset or None, seed=c.seed
        )
        # Batched path: the whole training set lives on the training device as uint8.
        self.train_x, self.train_y = self.train_set.tensors(self.device if c.loader == "batched" else None)

    def _batches(self, step: Step, batch_size: int, seed_offset: int) -> Any:
        from gearlib.augment import make_augment
        from gearlib.data import TensorBatches
        from gearlib.data.per_sample import PerSampleBatches

        seed = self.config.seed * 1000003 + seed_offset
        if self.config.loader == "per-sample":
            views, width, depth = PER_SAMPLE_VIEWS[step.augment]
            if step.augment == "era":
                views, width, depth = self.profile.era_views, self.profile.era_width, self.profile.era_depth
            return PerSampleBatches(
                self.train_x, self.train_y, batch_size, max(views, 1), width, depth,
                single_augmented=step.augment != "clean" and views <= 1,
                num_workers=self.profile.num_workers, device=self.device, seed=seed,
            )  # fmt: skip
        augment = None if step.augment == "clean" else make_augment(step.augment, **self._knobs(step.augment))
        generator = torch.Generator().manual_seed(seed)
        return TensorBatches(self.train_x, self.train_y, batch_size, augment=augment, generator=generator)

    def _knobs(self, augment: str) -> Dict[str, Any]:
        """ERA's (w, d, J) come from the profile (Table 8's sweep overrides them); other names use defaults."""
        p = self.profile
        if augment in ("era", "era_prime"):
            return {"width": p.era_width, "depth": p.era_depth, "views": p.era_views}
        return {}

    # -- model and state --------------------------------------------------------------------------
    def _start_widths(self) -> List[int]:
        from gearlib.models import full_widths

        if self.method.start == "backbone":
            return [self.profile.backbone_width] * len(full_widths(self.config.arch))
        # The Small baselines copy GEARnn-2's topology; settings only Small runs use must not change which
        # GEARnn-2 run that is (else a Small epoch sweep would retrain identical GEARnn-2 runs).
        base = get_profile(self.profile.name)
        profile = dataclasses.replace(self.profile, epochs_small=base.epochs_small)
        grown = dataclasses.replace(self.config, method="gearnn2", loader="batched", profile=profile)
        return list(run_experiment(grown, self.runs_dir, self.data_dir, self.progress).metrics["widths"])

    def _build(self, widths: List[int]) -> torch.nn.Module:
        from gearlib.models import build

        return build(self.config.arch, widths, self.num_classes, self.image_size).to(self.device)

    def _save_checkpoint(self, state: Dict[str, Any]) -> None:
        state = dict(state)
        state["model"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        state["widths"] = self.widths
        state["log"] = self.log
        state["width_history"] = self.width_history
        state["rng"] = torch.get_rng_state()
        store.save_torch_atomic(self.run_dir / store.CHECKPOINT, state)

    # -- execution --------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        from gearlib.measure import auto_meter

        self._load_data()
        checkpoint_path = self.run_dir / store.CHECKPOINT
        resume: Dict[str, Any] = store.load_torch(checkpoint_path) if checkpoint_path.is_file() else {}
        if resume:
            self.widths = list(resume["widths"])
            self.log = list(resume["log"])
            self.width_history = [list(w) for w in resume["width_history"]]
            self.model = self._build(self.widths)
            self.model.load_state_dict(resume["model"])
            torch.set_rng_state(resume["rng"])
        else:
            seed_everything(self.config.seed)
            self.widths = self._start_widths()
            seed_everything(self.config.seed)
            self.model = self._build(self.widths)
            self.log = []
            self.width_history = [list(self.widths)]
        self.meter = auto_meter(device=self.device)
        self.meter.start()
        try:
            first = int(resume.get("step", 0))
            for index in range(first, len(self.plan)):
                step = self.plan[index]
                if step.kind == "train":
                    self._train(index, step, resume if index == first else {})
                else:
                    self._grow(index, step)
        finally:
            report = self.meter.stop()
        return self._finish(report)

    def _record(self, entry: Dict[str, Any]) -> None:
        """Close the meter's lap for this epoch or growth step and log seconds and joules."""
        lap = self.meter.lap(entry["stage"])
        entry["seconds"] = lap["seconds"]
        entry["joules"] = lap["joules"] if self.meter.available else float("nan")
        self.log.append(entry)

    def _train(self, index: int, step: Step, resume: Dict[str, Any]) -> None:
        from gearlib.train.stage import StageConfig, train_stage

        p = self.profile
        cuda = self.device.type == "cuda"
        config = StageConfig(
            lr=p.lr,
            momentum=p.momentum,
            nesterov=p.nesterov,
            weight_decay=p.weight_decay,
            lr_gamma=p.lr_gamma,
            amp=p.amp and cuda,
            channels_last=p.channels_last,
            progress=self.progress,
        )
        batches = self._batches(step, p.batch_size, seed_offset=index)
        if resume.get("batches"):
            batches.load_state_dict(resume["batches"])

        def on_epoch_end(
            epoch: int, model: Any, optimizer: Any, scheduler: Any, metrics: Dict[str, Any]
        ) -> None:
            entry = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            entry.update({"step": index, "stage": step.stage, "augment": step.augment, "epoch": epoch + 1})
            entry["total_epoch"] = sum(1 for e in self.log if not e.get("growth")) + 1
            entry["widths_sum"] = sum(self.widths)
            self._record(entry)
            done = epoch + 1 >= step.epochs
            self._save_checkpoint(
                {
                    "step": index + 1 if done else index,
                    "epoch": 0 if done else epoch + 1,
                    "optimizer": None if done else optimizer.state_dict(),
                    "scheduler": None if done else _plain_scheduler_state(scheduler.state_dict()),
                    "batches": None if done else batches.state_dict(),
                }
            )
            self.meter.lap("_checkpoint")  # saving is not training time

        train_stage(
            self.model,
            batches,
            step.epochs,
            config,
            device=self.device,
            start_epoch=int(resume.get("epoch", 0)),
            optimizer_state=resume.get("optimizer"),
            scheduler_state=_scheduler_state(resume.get("scheduler")),
            on_epoch_end=on_epoch_end,
            desc=f"{self.config.method} {step.stage} ({step.augment})",
        )

    def _grow(self, index: int, step: Step) -> None:
        from gearlib.grow import firefly_step

        p = self.profile
        batches = self._batches(step, p.growth_batch_size, seed_offset=10_000 + index)
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + index)
        before = list(self.widths)
        self.model, record = firefly_step(
            self.model,
            batches,
            step.growth_ratio,
            p.new_neurons,
            device=self.device,
            generator=generator,
            rmsprop=p.rmsprop,
            progress=self.progress,
            channels_last=p.channels_last,
        )
        self.model.to(self.device)
        from gearlib.models import widths_of

        self.widths = list(widths_of(self.model))
        self.width_history.append(list(self.widths))
        entry = {"step": index, "stage": step.stage, "augment": step.augment, "epoch": 0, "growth": 1}
        entry["widths_before"] = sum(before)
        entry["widths_sum"] = sum(self.widths)
        self._record(entry)
        self._save_checkpoint({"step": index + 1, "epoch": 0})
        self.meter.lap("_checkpoint")

    # -- results ----------------------------------------------------------------------------------
    def _finish(self, report: Any) -> RunResult:
        from gearlib.evaluate import clean_accuracy, robust_accuracy
        from gearlib.measure import hardware_info, inference_latency
        from gearlib.models import count_params, size_fraction

        c, p = self.config, self.profile
        self.model.eval()
        test_x, test_y = self.test_set.tensors()
        clean = clean_accuracy(self.model, test_x, test_y, device=self.device)
        robust = robust_accuracy(
            self.model,
            dataset=c.dataset,
            data_dir=self.data_dir,
            sample=p.robust_per_block or None,
            seed=c.seed,
            device=self.device,
            clean=(test_x, test_y),
        )
        latency = inference_latency(
            self.model, (1, 3, self.image_size, self.image_size), device=self.device, iters=p.latency_iters
        )
        stages = _stage_totals(self.log)
        seconds = sum(s["seconds"] for s in stages)
        metered = self.meter.available and all(s["joules"] is not None for s in stages)
        joules = sum(s["joules"] for s in stages) if metered else None
        metrics = {
            "method": c.method,
            "arch": c.arch,
            "dataset": c.dataset,
            "profile": p.name,
            "seed": c.seed,
            "loader": c.loader,
            "data_source": self.train_set.source,
            "train_images": len(self.train_set),
            "test_images": len(self.test_set),
            "clean_acc": clean,
            "robust_acc": robust.robust_accuracy,
            "robust_source": robust.source,
            "robust_ci95": list(robust.ci95) if robust.ci95 is not None else None,
            "robust_extras_acc": robust.extras_accuracy,
            "robust_per_block": robust.n_per_block,
            "robust_table": robust.to_dict()["table"],
            "size_fraction": size_fraction(self.model, c.arch, self.num_classes, self.image_size),
            "params": count_params(self.model),
            "train_seconds": seconds,
            "train_joules": joules if metered else None,
            "train_joules_reason": None if metered else self.meter.reason,
            "stages": stages,
            "latency_ms_per_sample": latency.median_ms,
            "latency": latency.as_dict(),
            "widths": self.widths,
            "width_history": self.width_history,
            "energy_backend": report.source if metered else "none",
            "energy_backend_detail": self.meter.describe(),
            "hardware": hardware_info(self.device, energy=False),
            "plan": [dataclasses.asdict(s) for s in self.plan],
            "gearlib_version": __version__,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self._write_log()
        store.write_json_atomic(self.run_dir / store.WIDTHS, {"final": self.widths})
        store.save_torch_atomic(
            self.run_dir / store.FINAL,
            {"model": {k: v.cpu() for k, v in self.model.state_dict().items()}, "widths": self.widths},
        )
        store.write_json_atomic(self.run_dir / store.METRICS, metrics)
        _unlink(self.run_dir / store.CHECKPOINT)
        return RunResult(self.run_dir, metrics, cached=False, epochs=list(self.log))

    def _write_log(self) -> None:
        keys: List[str] = []
        for entry in self.log:
            keys.extend(k for k in entry if k not in keys)
        tmp = self.run_dir / f".{store.LOG}.tmp"
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.log)
        tmp.replace(self.run_dir / store.LOG)


def _plain_scheduler_state(state: Dict[str, Any]) -> Dict[str, Any]:
    """MultiStepLR keeps its milestones in a Counter, which torch 2.1's weights-only loader refuses."""
    return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in state.items()}


def _scheduler_state(state: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if state is None:
        return None
    state = dict(state)
    if isinstance(state.get("milestones"), dict):
        state["milestones"] = Counter(state["milestones"])
    return state


def _unlink(path: Path) -> None:
    if path.exists():
        path.unlink()


def _stage_totals(log: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Seconds and joules per stage label, in plan order (Table 6's breakdown)."""
    totals: Dict[str, Dict[str, Any]] = {}
    for entry in log:
        stage = totals.setdefault(entry["stage"], {"name": entry["stage"], "seconds": 0.0, "joules": 0.0})
        stage["seconds"] += float(entry["seconds"])
        stage["joules"] += float(entry["joules"])
    for stage in totals.values():
        if math.isnan(stage["joules"]):
            stage["joules"] = None
    return list(totals.values())
