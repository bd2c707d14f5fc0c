"""Execute one method's plan (train, grow and topology steps) with timing, energy laps and per-epoch
checkpoints; a killed execution resumes from its last checkpoint. The runner (gearlib.train.runner) owns it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from gearlib import distributed, seed_everything
from gearlib.augment import make_augment
from gearlib.data import ImageDataset, TensorBatches, dataset_info
from gearlib.data.per_sample import PerSampleBatches
from gearlib.grow import firefly_step
from gearlib.layers.convert import ConversionReport
from gearlib.layers.models import layer_network
from gearlib.measure import auto_meter
from gearlib.models import build, full_widths, widths_of
from gearlib.profiles import Profile
from gearlib.train import store
from gearlib.train.methods import Step
from gearlib.train.stage import StageConfig, default_loss_fn, train_stage

# Seeds of a run's random streams, all derived from its seed s: batches of step i draw from
# s * BATCH_SEED_STRIDE + i (growth batches from s * BATCH_SEED_STRIDE + GROWTH_BATCHES + i) and the growth
# tensors of step i from s * GROWTH_INIT_STRIDE + i. The strides are primes so no two streams coincide.
BATCH_SEED_STRIDE = 1000003
GROWTH_BATCHES = 10_000
GROWTH_INIT_STRIDE = 7919
# Views per sample and torchvision AugMix (width, depth) of the reference per-sample pipeline.
PER_SAMPLE_VIEWS = {"clean": (1, 3, -1), "augmix": (3, 3, -1), "era": (4, 1, 3)}

# Answers a topology step: {"method", "run", "widths"} of the stored (or newly trained) source run.
TopologyFn = Callable[[Step], Dict[str, Any]]


@dataclasses.dataclass
class RunState:
    """What a checkpoint restores: the current widths and weights, the epoch log and the width history."""

    widths: List[int]
    log: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    width_history: List[List[int]] = dataclasses.field(default_factory=list)
    topology: Optional[Dict[str, Any]] = None
    growth: List[Dict[str, Any]] = dataclasses.field(default_factory=list)


class PlanRun:
    """One execution of a plan on a loaded training set, writing checkpoints into `run_dir`."""

    def __init__(
        self,
        profile: Profile,
        arch: str,
        dataset: str,
        seed: int,
        loader: str,
        plan: List[Step],
        run_dir: Path,
        train_set: ImageDataset,
        device: torch.device,
        topology: TopologyFn,
        progress: bool = True,
    ) -> None:
        self.profile, self.arch, self.seed, self.loader = profile, arch, seed, loader
        self.plan, self.run_dir, self.device, self.topology_of = plan, run_dir, device, topology
        self.progress, self.label = progress, ""
        self.info = dataset_info(dataset)
        self.loss_fn = default_loss_fn(profile.jsd_lambda)
        on_device = device if loader == "batched" else None  # batched: the whole set lives on the device
        self.train_x, self.train_y = train_set.tensors(on_device)
        # The layer comparison's network is fixed (no growth): it has no width list.
        self.layer = next((s.layer for s in plan if s.layer), "")
        self.conversion: Optional[ConversionReport] = None
        widths = [] if self.layer else [profile.backbone_width] * len(full_widths(arch))
        self.state = RunState(widths=widths)
        self.model: torch.nn.Module = torch.nn.Identity()  # built by _resume, seeded or from the checkpoint
        # Several ranks on one node: rank 0 meters every GPU of the node (the others' meters are not read).
        self.meter = auto_meter(device=device, all_gpus=distributed.world_size() > 1)

    # -- execution --------------------------------------------------------------------------------
    def execute(self, label: str) -> Any:
        """Run the plan from its last checkpoint; returns the energy meter's report."""
        self.label = label
        resume = self._resume()
        self.meter.start()
        try:
            first = int(resume.get("step", 0))
            for index in range(first, len(self.plan)):
                step = self.plan[index]
                if step.kind == "train":
                    self._train(index, step, resume if index == first else {})
                elif step.kind == "grow":
                    self._grow(index, step)
                else:
                    self._take_topology(index, step)
        finally:
            report = self.meter.stop()
        return report

    def _resume(self) -> Dict[str, Any]:
        path = self.run_dir / store.CHECKPOINT
        if not path.is_file():
            seed_everything(self.seed)
            self.model = self._build(self.state.widths)
            self.state.width_history = [list(self.state.widths)]
            return {}
        resume = store.load_torch(path)
        self.state = RunState(
            widths=list(resume["widths"]),
            log=list(resume["log"]),
            width_history=[list(w) for w in resume["width_history"]],
            topology=resume.get("topology"),
            growth=list(resume.get("growth", [])),
        )
        self.model = self._build(self.state.widths)
        self.model.load_state_dict(resume["model"])
        torch.set_rng_state(resume["rng"])
        return resume

    def _build(self, widths: List[int]) -> torch.nn.Module:
        if self.layer:  # GroupNL and its baselines: the profile's network with its convs swapped
            p = self.profile
            model, self.conversion = layer_network(
                self.layer, p.layers_arch, p.layers_width, self.info.num_classes, self.seed
            )
            return model.to(self.device)
        return build(self.arch, widths, self.info.num_classes, self.info.image_size).to(self.device)

    def _record(self, entry: Dict[str, Any]) -> None:
        """Close the meter's lap for this epoch or growth step and log its seconds, CPU seconds and joules."""
        lap = self.meter.lap(entry["stage"])
        entry["seconds"], entry["cpu_seconds"] = lap["seconds"], lap["cpu_seconds"]
        entry["joules"] = lap["joules"] if self.meter.available else float("nan")
        self.state.log.append(entry)

    def _save_checkpoint(self, position: Dict[str, Any]) -> None:
        if not distributed.is_main():  # the ranks hold the same state; rank 0 writes it
            self.meter.lap("_checkpoint")
            return
        state = dataclasses.asdict(self.state)
        state.update(position)
        state["model"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        state["rng"] = torch.get_rng_state()
        store.save_torch_atomic(self.run_dir / store.CHECKPOINT, state)
        self.meter.lap("_checkpoint")  # saving is not training time

    # -- steps ------------------------------------------------------------------------------------
    def _take_topology(self, index: int, step: Step) -> None:
        """Rebuild the network, freshly initialised from the run's seed, with another run's final widths."""
        self.state.topology = self.topology_of(step)
        self.state.widths = list(self.state.topology["widths"])
        self.state.width_history = [list(self.state.widths)]
        seed_everything(self.seed)
        self.model = self._build(self.state.widths)
        self.meter.lap("_topology")  # the source run's own costs are in its metrics
        self._save_checkpoint({"step": index + 1, "epoch": 0})

    def _train(self, index: int, step: Step, resume: Dict[str, Any]) -> None:
        p = self.profile
        config = StageConfig(
            lr=p.lr, momentum=p.momentum, nesterov=p.nesterov and step.schedule == "step",
            weight_decay=p.weight_decay, schedule=step.schedule, scale_lr_with_batch=p.lr_scaling == "linear",
            lr_gamma=p.lr_gamma, amp=p.amp and self.device.type == "cuda", channels_last=p.channels_last,
            progress=self.progress,
        )  # fmt: skip
        batches = self._batches(step, p.batch_size, seed_offset=index)
        if resume.get("batches"):  # a distributed run stores one state per rank
            batches.load_state_dict(distributed.own(resume["batches"]))

        def on_epoch_end(
            epoch: int, model: Any, optimizer: Any, scheduler: Any, metrics: Dict[str, Any]
        ) -> None:
            distributed.broadcast_state(self.model)  # BatchNorm statistics: every rank keeps rank 0's
            entry = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            entry.update({"step": index, "stage": step.stage, "augment": step.augment, "epoch": epoch + 1})
            entry["total_epoch"] = sum(1 for e in self.state.log if not e.get("growth")) + 1
            entry["widths_sum"] = sum(self.state.widths)
            self._record(entry)
            done = epoch + 1 >= step.epochs
            streams = distributed.per_rank(batches.state_dict())  # each rank's augmentation stream
            self._save_checkpoint(
                {
                    "step": index + 1 if done else index,
                    "epoch": 0 if done else epoch + 1,
                    "optimizer": None if done else optimizer.state_dict(),
                    "scheduler": None if done else _plain_scheduler_state(scheduler.state_dict()),
                    "batches": None if done else streams,
                }
            )

        train_stage(
            self.model, batches, step.epochs, config, loss_fn=self.loss_fn, device=self.device,
            start_epoch=int(resume.get("epoch", 0)), optimizer_state=resume.get("optimizer"),
            scheduler_state=_scheduler_state(resume.get("scheduler")), on_epoch_end=on_epoch_end,
            desc=f"{self.label} {step.stage} ({step.augment})", wrap=distributed.wrap,
            batch_size=batches.batch_size * distributed.world_size(),  # the global batch sets the lr
        )  # fmt: skip

    def _grow(self, index: int, step: Step) -> None:
        p = self.profile
        batches = self._batches(step, p.growth_batch_size, seed_offset=GROWTH_BATCHES + index)
        generator = torch.Generator().manual_seed(self.seed * GROWTH_INIT_STRIDE + index)
        before = list(self.state.widths)
        self.model, record = firefly_step(
            self.model, batches, step.growth_ratio, p.new_neurons, loss_fn=self.loss_fn, device=self.device,
            generator=generator, rmsprop=p.rmsprop, progress=self.progress, channels_last=p.channels_last,
        )  # fmt: skip
        self.model.to(self.device)
        self.state.widths = list(widths_of(self.model))
        distributed.rank_states(self.model, self.state.widths)  # every rank grew the same network
        self.state.width_history.append(list(self.state.widths))
        self.state.growth.append(record.to_dict())
        entry = {"step": index, "stage": step.stage, "augment": step.augment, "epoch": 0, "growth": 1}
        entry["widths_before"] = sum(before)
        entry["widths_sum"] = sum(self.state.widths)
        self._record(entry)
        self._save_checkpoint({"step": index + 1, "epoch": 0})

    # -- data -------------------------------------------------------------------------------------
    def _batches(self, step: Step, batch_size: int, seed_offset: int) -> Any:
        seed = self.seed * BATCH_SEED_STRIDE + seed_offset
        p = self.profile
        era = {"width": p.era_width, "depth": p.era_depth, "views": p.era_views}
        if self.loader == "per-sample":
            views, width, depth = PER_SAMPLE_VIEWS[step.augment]
            if step.augment == "era":
                views, width, depth = era["views"], era["width"], era["depth"]
            return PerSampleBatches(
                self.train_x, self.train_y, batch_size, max(views, 1), width, depth,
                single_augmented=step.augment != "clean" and views <= 1,
                num_workers=p.num_workers, device=self.device, seed=seed,
            )  # fmt: skip
        knobs = era if step.augment in ("era", "era_prime") else {}  # ERA's (w, d, J) come from the profile
        augment = None if step.augment == "clean" else make_augment(step.augment, **knobs)
        if distributed.world_size() == 1:
            generator = torch.Generator().manual_seed(seed)
            return TensorBatches(self.train_x, self.train_y, batch_size, augment=augment, generator=generator)
        # One shuffle stream shared by the ranks, one augmentation stream per rank (seeded by seed and rank).
        return TensorBatches(
            self.train_x, self.train_y, batch_size, augment=augment,
            generator=torch.Generator().manual_seed(distributed.shard_seed(seed)),
            shard=(distributed.rank(), distributed.world_size()),
            order_generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip

    def write_log(self) -> None:
        """The epoch log as epochs.csv (one row per epoch or growth step)."""
        store.write_epoch_log(self.run_dir, self.state.log)


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
