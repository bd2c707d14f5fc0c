"""Execute an adversarial method's training (PGD-AT, OAT, FLOAT, SMART) with timing, energy laps and a
checkpoint after every epoch; a killed run resumes from its last finished epoch. The runner owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from gearlib import seed_everything
from gearlib.adversarial.masks import apply_smart_masks
from gearlib.adversarial.models import (
    FLOAT,
    FLOAT_SLIM,
    OAT,
    OAT_128,
    PLAIN,
    ConditionalResNet,
    Conditioning,
    build_adversarial,
)
from gearlib.adversarial.objectives import TrainAttack, batch_loss
from gearlib.adversarial.sparse import SparseMomentum
from gearlib.data import ImageDataset, TensorBatches
from gearlib.measure import auto_meter
from gearlib.profiles import Profile
from gearlib.train import store
from gearlib.train.archive import final_weights
from gearlib.train.methods import Step
from gearlib.train.stage import TrainingDiverged

BATCH_SEED_STRIDE = 1000003  # batches of a run with seed s draw from s * stride (as the GEARnn runs do)
MASK_SEED_STRIDE = 7919  # SMART's masks of seed s come from s * stride + 1


@dataclass(frozen=True)
class Recipe:
    """What an adversarial method builds and how it trains.

    Attributes:
        kind: the conditional layers of its network (gearlib.adversarial.models).
        loss: "pgd-at" (fixed lambda, whole batch attacked), "split" (half clean, half attacked: FLOAT,
            FLOATS, SMART) or "oat" (lambda per sample).
        smart_masks: SMART's frozen clean / adversarial masks in stages 3-4.
        density: FLOATS's fraction d of weights kept (FLOAT Eq. 5); 0 means dense.
        granularity: FLOATS's sparsity: "weight" (FLOATS-i, irregular) or "channel" (FLOATS-c).
    """

    kind: Conditioning
    loss: str
    smart_masks: bool = False
    density: float = 0.0
    granularity: str = "weight"


# FLOATS's densities are the FLOAT paper's (Table 1): FLOATS-i keeps 10% of the weights (CR 10x), FLOATS-c
# about 34% (CR 2.94x), FLOATS slim 30% of the weights shared by its two widths.
RECIPES: Dict[str, Recipe] = {
    "pgd-at": Recipe(PLAIN, "pgd-at"),
    "oat": Recipe(OAT, "oat"),
    "oat-128": Recipe(OAT_128, "oat"),
    "float": Recipe(FLOAT, "split"),
    "smart": Recipe(FLOAT, "split", smart_masks=True),
    "floats-i": Recipe(FLOAT, "split", density=0.1),
    "floats-c": Recipe(FLOAT, "split", density=0.34, granularity="channel"),
    "floats-slim": Recipe(FLOAT_SLIM, "split", density=0.3),
}


def recipe_of(objective: str) -> Recipe:
    if objective not in RECIPES:
        raise ValueError(f"unknown adversarial objective {objective!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[objective]


def build_for(objective: str, arch: str, width: int, num_classes: int, seed: int) -> ConditionalResNet:
    """The network a method trains: plain for PGD-AT, noisy with dual BN for FLOAT and SMART (SMART with
    its frozen masks in stages 3-4, drawn from the seed), FiLM with dual BN for OAT."""
    recipe = recipe_of(objective)
    model = build_adversarial(arch, recipe.kind, width, num_classes)
    if recipe.smart_masks:
        apply_smart_masks(model, generator=torch.Generator().manual_seed(seed * MASK_SEED_STRIDE + 1))
    return model


def sparsity_for(
    model: ConditionalResNet, objective: str, total_steps: int, seed: int
) -> Optional[SparseMomentum]:
    """FLOATS's masks on a freshly built model (drawn from the seed) and their sparse-momentum schedule over
    `total_steps` optimiser steps; None for the dense methods."""
    recipe = recipe_of(objective)
    if not recipe.density:
        return None
    generator = torch.Generator().manual_seed(seed * MASK_SEED_STRIDE + 2)
    return SparseMomentum(
        model, recipe.density, max(1, total_steps), granularity=recipe.granularity, generator=generator
    )


def make_optimizer(model: nn.Module, profile: Profile) -> torch.optim.SGD:
    """SGD with momentum and weight decay (OAT's recipe, lr scaled by B / 128), the noise scales alpha
    excluded from weight decay as PNI does."""
    alphas = [p for n, p in model.named_parameters() if n.endswith("alpha")]
    others = [p for n, p in model.named_parameters() if not n.endswith("alpha")]
    groups = [{"params": others}, {"params": alphas, "weight_decay": 0.0}]
    return torch.optim.SGD(
        [g for g in groups if g["params"]],
        lr=profile.lr * profile.batch_size / 128,
        momentum=profile.momentum,
        weight_decay=profile.weight_decay,
    )


class AdversarialRun:
    """One adversarial training run on a loaded training set, checkpointed into `run_dir`."""

    def __init__(
        self,
        profile: Profile,
        arch: str,
        num_classes: int,
        seed: int,
        step: Step,
        run_dir: Path,
        train_set: ImageDataset,
        device: torch.device,
        progress: bool = True,
    ) -> None:
        self.profile, self.arch, self.num_classes, self.seed = profile, arch, num_classes, seed
        self.step, self.run_dir, self.device, self.progress = step, run_dir, device, progress
        self.train_x, self.train_y = train_set.tensors(device)
        self.attack = TrainAttack(profile.adv_eps / 255.0, profile.adv_train_steps)
        self.log: List[Dict[str, Any]] = []
        self.sparsity: List[Dict[str, Any]] = []  # FLOATS: one prune-regrow record per epoch
        self.sparse: Optional[SparseMomentum] = None
        self.meter = auto_meter(device=device)
        self.recipe = recipe_of(step.objective)
        seed_everything(seed)
        self.model = build_for(step.objective, arch, profile.adv_width, num_classes, seed).to(device)

    def execute(self, label: str) -> Any:
        """Train the remaining epochs; returns the energy meter's report."""
        optimizer = make_optimizer(self.model, self.profile)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.step.epochs))
        batches = TensorBatches(
            self.train_x, self.train_y, self.profile.batch_size,
            generator=torch.Generator().manual_seed(self.seed * BATCH_SEED_STRIDE),
        )  # fmt: skip
        lambdas = torch.Generator().manual_seed(self.seed * BATCH_SEED_STRIDE + 1)  # OAT's lambda draws
        self.sparse = sparsity_for(
            self.model, self.step.objective, self.step.epochs * len(batches), self.seed
        )
        start = self._resume(optimizer, scheduler, batches, lambdas)
        self.meter.start()
        try:
            for epoch in range(start, self.step.epochs):
                lr = optimizer.param_groups[0]["lr"]
                metrics = self._epoch(
                    batches, optimizer, lambdas, f"{label} epoch {epoch + 1}/{self.step.epochs}"
                )
                scheduler.step()
                if self.sparse is not None:  # FLOATS: prune and regrow at the epoch's end
                    record = self.sparse.end_epoch(optimizer)
                    metrics["density"] = record["density"]
                    self.sparsity.append(record)
                lap = self.meter.lap(self.step.stage)
                self.log.append(
                    {
                        **metrics, "step": 0, "stage": self.step.stage, "augment": "crop_flip",
                        "epoch": epoch + 1, "total_epoch": epoch + 1, "lr": lr, "seconds": lap["seconds"],
                        "cpu_seconds": lap["cpu_seconds"],
                        "joules": lap["joules"] if self.meter.available else float("nan"),
                    }
                )  # fmt: skip
                self._checkpoint(epoch + 1, optimizer, scheduler, batches, lambdas)
        finally:
            report = self.meter.stop()
        return report

    def _epoch(
        self, batches: TensorBatches, optimizer: torch.optim.Optimizer, lambdas: torch.Generator, desc: str
    ) -> Dict[str, float]:
        self.model.train()
        total = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = images = 0
        steps = iter(batches)
        if self.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, total=len(batches), desc=desc, leave=False)
        for index, (x, y) in enumerate(steps):
            x, y = x.to(self.device), y.to(self.device)
            out = batch_loss(
                self.recipe.loss,
                self.model,
                x,
                y,
                self.attack,
                self.step.lam,
                lambdas,
                self.recipe.kind.widths,
            )
            if not bool(torch.isfinite(out.loss.detach())):
                raise TrainingDiverged(
                    f"{desc}: the training loss became non-finite at step {index + 1}; the run stops here "
                    f"(its last finished epoch stays checkpointed). Lower the learning rate "
                    f"(lr={self.profile.lr:g}, e.g. --set lr={self.profile.lr / 2:g})."
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            if self.sparse is not None:
                self.sparse.after_step(optimizer)  # pruned weights back to exactly zero
            total += out.loss.detach() * y.shape[0]
            correct += out.correct
            seen += out.seen
            images += int(y.shape[0])
        if images == 0:
            raise ValueError("the batch source yielded no batches: use more training images than one batch")
        return {"loss": float(total) / images, "acc": float(correct) / max(seen, 1)}

    # -- checkpoints ------------------------------------------------------------------------------
    def _checkpoint(
        self, epochs_done: int, optimizer: Any, scheduler: Any, batches: Any, lambdas: Any
    ) -> None:
        state = {
            "epoch": epochs_done, "log": self.log,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "batches": batches.state_dict(), "lambdas": lambdas.get_state(), "rng": torch.get_rng_state(),
            "sparse": self.sparse.state_dict() if self.sparse is not None else None, "sparsity": self.sparsity,
        }  # fmt: skip
        store.save_torch_atomic(self.run_dir / store.CHECKPOINT, state)
        self.meter.lap("_checkpoint")  # saving is not training time

    def _resume(self, optimizer: Any, scheduler: Any, batches: Any, lambdas: torch.Generator) -> int:
        path = self.run_dir / store.CHECKPOINT
        if not path.is_file():
            return 0
        state = store.load_torch(path)
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        batches.load_state_dict(state["batches"])
        lambdas.set_state(state["lambdas"])
        torch.set_rng_state(state["rng"])
        if self.sparse is not None:
            self.sparse.load_state_dict(state["sparse"])
        self.log, self.sparsity = list(state["log"]), list(state.get("sparsity") or [])
        return int(state["epoch"])

    def final_state(self) -> Dict[str, Any]:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}


def load_adversarial_model(
    run_dir: Path, metrics: Dict[str, Any], device: Optional[torch.device] = None
) -> nn.Module:
    """The stored final network of a finished adversarial run, in eval mode."""
    model = build_for(
        metrics["objective"], metrics["arch"], metrics["width"], metrics["num_classes"], metrics["seed"]
    )
    sparsity_for(model, metrics["objective"], 1, metrics["seed"])  # FLOATS: buffers for the stored masks
    model.load_state_dict(store.load_torch(final_weights(run_dir))["model"])
    return model.to(device or torch.device("cpu")).eval()
