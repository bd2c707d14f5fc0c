"""The experiment runner: every method goes through `run_experiment`, which trains the method's plan once
(stored by a hash of what training reads) and evaluates it once per evaluation setting (stored beside it).

A killed run resumes from its last epoch checkpoint; asking again for a stored run trains nothing, and
changing only an evaluation setting (test subset, images per corruption block, latency repeats) re-evaluates
the stored weights.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch

from gearlib import __version__, distributed
from gearlib.adversarial.evaluate import evaluate_adversarial
from gearlib.adversarial.layers import noise_scales
from gearlib.adversarial.masks import mask_counts
from gearlib.adversarial.models import ADV_ARCHS
from gearlib.adversarial.train import AdversarialRun, load_adversarial_model
from gearlib.attacks import oat_step_size
from gearlib.data import ImageDataset, dataset_info, load_dataset
from gearlib.evaluate import COLLAPSE_SHARE, at_chance, prediction_share, predictions, robust_accuracy
from gearlib.grow import check_feasible
from gearlib.layers.models import LAYER_ARCHS, LAYER_REVISIONS, layer_network
from gearlib.measure import hardware_info, inference_latency, stalled_epochs
from gearlib.models import ARCHS, build, count_params, size_fraction
from gearlib.profiles import EPOCH_FIELDS, Profile, get_profile, parse_overrides, split_pairs
from gearlib.train import store
from gearlib.train.archive import final_weights
from gearlib.train.methods import Step, get_method, growth_fit, plan_for
from gearlib.train.plan_run import PER_SAMPLE_VIEWS, PlanRun
from gearlib.train.precise_bn import recalibrate_bn
from gearlib.train.stage import TrainingDiverged

LOADERS = ("batched", "per-sample")
RUN_KEYS = ("seed", "loader")  # --set keys that belong to the run, not to the profile
LATENCY_PAUSE_S = 0.2  # idle time between latency windows, so that one burst of other work spans one window


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: what training reads names the run directory, what evaluation reads
    names its evaluation file inside it."""

    method: str
    arch: str
    dataset: str
    profile: Profile
    seed: int = 0
    loader: str = "batched"
    world_size: int = 1  # processes training together (gearlib.distributed)

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["profile"] = self.profile.to_dict()
        if self.world_size == 1:  # single-process runs keep the identity they had before DDP
            out.pop("world_size")
        return out

    @property
    def family(self) -> str:
        """The method's family: "gearnn", "adversarial" or "layers" (which fields its identity hashes)."""
        return get_method(self.method).family

    @property
    def layer(self) -> str:
        """The conv layer of a layer-comparison method ("" for the other families)."""
        _, plan = plan_for(self.method, self.profile, self.dataset, self.arch)
        return next((s.layer for s in plan if s.layer), "")

    def training_dict(self) -> Dict[str, Any]:
        out = self.to_dict()
        out["profile"] = self.profile.training_dict(self.family)
        revision = LAYER_REVISIONS.get(self.layer) if self.family == "layers" else None
        if revision:  # the layer's reading changed after runs of it were stored (gearlib.layers.models)
            out["layer_revision"] = revision
        return out

    def evaluation_dict(self) -> Dict[str, Any]:
        return self.profile.evaluation_dict(self.family)

    @property
    def device(self) -> torch.device:
        return torch.device(self.profile.resolved_device())


def make_config(
    method: str,
    profile: Union[str, Profile] = "smoke",
    arch: Optional[str] = None,
    dataset: str = "synthetic",
    seed: int = 0,
    overrides: Union[Mapping[str, Any], Iterable[str], None] = None,
    world_size: Optional[int] = None,
) -> RunConfig:
    """Validate everything before anything runs: method, arch, dataset, profile and `key=value` overrides.

    `arch` defaults to vgg19 for the GEARnn methods, to the profile's `adv_arch` for the adversarial ones and
    to its `layers_arch` for the layer comparison (an explicit arch of those becomes the profile's field: one
    value, one place). `world_size` (default: the process group's) is part of the run's identity when > 1.
    """
    family = get_method(method).family
    dataset_info(dataset)
    pairs = dict(overrides) if isinstance(overrides, Mapping) else split_pairs(overrides or ())
    run_level = {k: pairs.pop(k) for k in list(pairs) if k in RUN_KEYS}
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    prof = prof.override(parse_overrides(pairs))
    if family == "adversarial":
        if arch is not None and arch not in ADV_ARCHS:
            raise ValueError(
                f"{method} trains a CIFAR ResNet: arch must be one of {', '.join(ADV_ARCHS)}, got {arch!r}"
            )
        prof = prof.override({"adv_arch": arch}) if arch is not None else prof
        arch = prof.adv_arch
    if family == "layers":
        if arch is not None and arch not in LAYER_ARCHS:
            raise ValueError(f"{method} trains one of {', '.join(LAYER_ARCHS)}, got arch {arch!r}")
        prof = prof.override({"layers_arch": arch}) if arch is not None else prof
        arch = prof.layers_arch
    arch = arch or "vgg19"
    if family == "gearnn" and arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    loader = str(run_level.get("loader", "batched"))
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
    try:
        seed = int(run_level.get("seed", seed))
    except ValueError:
        raise ValueError(f"seed must be an integer, got {run_level['seed']!r}") from None
    world = distributed.world_size() if world_size is None else int(world_size)
    if world > 1 and (family != "gearnn" or loader != "batched"):
        what = f"the {family} family" if family != "gearnn" else f"loader={loader}"
        raise ValueError(
            f"{method}: {what} trains in one process; distributed training (--nproc {world}) covers the "
            f"GEARnn methods with the batched loader"
        )
    _, plan = plan_for(method, prof, dataset, arch)  # unknown methods, bad epochs and ratios fail here
    prof = canonical_epochs(method, prof, dataset, arch)
    config = RunConfig(method, arch, dataset, prof, seed, loader, max(1, world))
    if loader == "per-sample" and family == "adversarial":
        raise ValueError(f"loader=per-sample is the GEARnn reference loader; {method} uses the batched one")
    if loader == "per-sample":
        bad = sorted({s.augment for s in plan if s.kind == "train"} - set(PER_SAMPLE_VIEWS))
        if bad:
            raise ValueError(f"loader=per-sample supports {', '.join(PER_SAMPLE_VIEWS)}; method uses {bad}")
    for step in plan:  # Firefly adds at most c_l + K neurons per layer: refuse infeasible ratios up front
        if step.kind == "grow":
            check_feasible(arch, prof.backbone_width, step.growth_ratio, prof.new_neurons)
    return config


@dataclass
class RunResult:
    """A finished run: its directory and metrics (training metrics.json plus its evaluation file)."""

    run_dir: Path
    metrics: Dict[str, Any]
    cached: bool = False
    epochs: List[Dict[str, Any]] = field(default_factory=list)

    def model(self) -> torch.nn.Module:
        """Rebuild the final network from its width list and load the final weights."""
        return load_final_model(self.run_dir, self.metrics)


def load_final_model(run_dir: Path, metrics: Mapping[str, Any]) -> torch.nn.Module:
    """The stored final network of a finished run, in eval mode on the CPU."""
    if metrics.get("family") == "adversarial":
        return load_adversarial_model(run_dir, dict(metrics))
    info = dataset_info(metrics["dataset"])
    if metrics.get("family") == "layers":
        net, _ = layer_network(metrics["layer"], metrics["arch"], metrics["width"], info.num_classes)
        net.load_state_dict(store.load_torch(final_weights(run_dir))["model"])  # NLF hyperparameters included
        return net.eval()
    net = build(metrics["arch"], metrics["widths"], info.num_classes, info.image_size)
    net.load_state_dict(store.load_torch(final_weights(run_dir))["model"])
    return net.eval()


def run_experiment(
    config: RunConfig,
    runs_dir: Optional[Union[str, Path]] = None,
    data_dir: Optional[Union[str, Path]] = None,
    progress: bool = True,
    force: bool = False,
) -> RunResult:
    """Return the stored run for `config`, or train it (resuming from its checkpoint) and evaluate it.

    Args:
        config: from `make_config`.
        runs_dir: where runs are stored (default $GEARLIB_RUNS, then ./runs).
        data_dir: where datasets are (default $GEARLIB_DATA, then ./data).
        progress: show tqdm progress bars.
        force: retrain (and re-evaluate) even if a finished run exists.
    """
    run_dir, trained, was_stored = train_run(config, runs_dir, data_dir, progress, force)
    if not distributed.is_main():  # rank 0 evaluates and writes the evaluation
        return RunResult(run_dir, trained, cached=was_stored)
    eval_path = run_dir / store.evaluation_name(config.evaluation_dict())
    cached = was_stored and eval_path.is_file() and not force
    evaluate = evaluate_adversarial_run if config.family == "adversarial" else evaluate_run
    if cached:
        evaluation = store.read_json(eval_path)
    else:
        evaluation = evaluate(config, load_final_model(run_dir, trained), data_dir)
        store.write_json_atomic(eval_path, evaluation)
    epochs = store.read_epoch_log(run_dir)
    # Epochs whose wall time was not the run's own work (paused, or its core shared): time not comparable.
    stalls = stalled_epochs(epochs, cpu_device=config.device.type == "cpu")
    return RunResult(
        run_dir, {**trained, **evaluation, "timing_stalls": stalls}, cached=cached, epochs=epochs
    )


PathArg = Optional[Union[str, Path]]


def train_run(
    config: RunConfig,
    runs_dir: PathArg = None,
    data_dir: PathArg = None,
    progress: bool = True,
    force: bool = False,
) -> Tuple[Path, Dict[str, Any], bool]:
    """(run directory, training metrics, whether they came from the store): trains only if needed.

    A run whose training diverged (TrainingDiverged) leaves its message in the run directory, and asking for
    it again raises the same error at once instead of training into it again; `force` retrains it."""
    run_dir = store.run_dir_for(config.training_dict(), runs_dir)
    metrics = store.finished_metrics(run_dir)
    if metrics is not None and not force:
        return run_dir, metrics, True
    if not distributed.is_main():  # rank 0 holds the run's lock for all ranks
        return _train_or_raise(config, run_dir, runs_dir, data_dir, progress, force)
    with store.training_lock(run_dir):  # another process training this run: wait, then read what it stored
        metrics = store.finished_metrics(run_dir)
        if metrics is not None and not force:
            return run_dir, metrics, True
        return _train_or_raise(config, run_dir, runs_dir, data_dir, progress, force)


def _train_or_raise(
    config: RunConfig, run_dir: Path, runs_dir: PathArg, data_dir: PathArg, progress: bool, force: bool
) -> Tuple[Path, Dict[str, Any], bool]:
    """Train the run unless it diverged before (then raise its stored error again); see `train_run`."""
    marker = run_dir / store.DIVERGED
    if marker.is_file() and not force:
        message = store.read_json(marker)["message"]
        raise TrainingDiverged(f"{message} [stored in {marker}; --force trains it again]")
    store.unlink(marker)
    try:
        return _train_new(config, run_dir, runs_dir, data_dir, progress)
    except TrainingDiverged as err:
        if distributed.is_main():
            store.write_json_atomic(marker, {"message": str(err)})
        raise


def _train_new(
    config: RunConfig, run_dir: Path, runs_dir: PathArg, data_dir: PathArg, progress: bool
) -> Tuple[Path, Dict[str, Any], bool]:
    """Train (or resume) the run in `run_dir` and store it; see `train_run`."""
    if config.world_size != distributed.world_size():
        raise ValueError(
            f"the run is configured for {config.world_size} processes but {distributed.world_size()} train it; "
            f"launch it with `gearlib run ... --nproc {config.world_size}` (or torchrun)"
        )
    main = distributed.is_main()  # rank 0 writes the run store; every rank trains
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        store.write_json_atomic(run_dir / store.CONFIG, config.training_dict())
    if config.family == "adversarial":
        return run_dir, train_adversarial(config, run_dir, data_dir, progress), False
    method, plan = plan_for(config.method, config.profile, config.dataset, config.arch)
    p = config.profile
    subset = p.layers_train_subset if config.family == "layers" else p.train_subset
    train_set = load_dataset(config.dataset, "train", data_dir, subset=subset or None, seed=config.seed)

    def topology(step: Step) -> Dict[str, Any]:
        source_dir, source, _ = train_run(_source_config(config, step.source), runs_dir, data_dir, progress)
        return {"method": step.source, "run": source_dir.name, "widths": list(source["widths"])}

    execution = PlanRun(
        config.profile, config.arch, config.dataset, config.seed, config.loader, plan, run_dir, train_set,
        distributed.local_device(config.device), topology, progress and main,
    )  # fmt: skip
    report = execution.execute(config.method)
    metrics = _training_metrics(config, execution, report, plan, train_set)
    if (
        config.family == "gearnn" and p.bn_recalibration
    ):  # every rank alike (the same images), before checksums
        metrics["bn_recalibrated_images"] = recalibrate_bn(
            execution.model, train_set, p.bn_recalibration, p.batch_size, seed=config.seed
        )
    if config.world_size > 1:  # widths and weight checksums of every rank (they must agree)
        metrics["distributed"] = distributed.rank_states(execution.model, execution.state.widths)
    if not main:
        distributed.barrier()  # until rank 0 has stored the run
        return run_dir, metrics, False
    execution.write_log()
    store.write_json_atomic(run_dir / store.WIDTHS, {"final": execution.state.widths})
    final = {k: v.cpu() for k, v in execution.model.state_dict().items()}
    store.save_torch_atomic(run_dir / store.FINAL, {"model": final, "widths": execution.state.widths})
    store.write_json_atomic(run_dir / store.METRICS, metrics)
    store.unlink(run_dir / store.CHECKPOINT)
    distributed.barrier()
    return run_dir, metrics, False


def train_adversarial(config: RunConfig, run_dir: Path, data_dir: PathArg, progress: bool) -> Dict[str, Any]:
    """Train an adversarial method's one stage (resuming from its checkpoint) and store its final model."""
    _, plan = plan_for(config.method, config.profile, config.dataset, config.arch)
    (step,) = plan
    p, info = config.profile, dataset_info(config.dataset)
    train_set = load_dataset(
        config.dataset, "train", data_dir, subset=p.adv_train_subset or None, seed=config.seed
    )
    execution = AdversarialRun(
        p, config.arch, info.num_classes, config.seed, step, run_dir, train_set, config.device, progress
    )
    report = execution.execute(config.method)
    stages = stage_totals(execution.log)
    meter = execution.meter
    metered = meter.available and all(s["joules"] is not None for s in stages)
    epoch_seconds = [float(e["seconds"]) for e in execution.log]
    metrics = {
        "method": config.method, "family": "adversarial", "objective": step.objective, "lam": step.lam,
        "arch": config.arch, "width": p.adv_width, "num_classes": info.num_classes, "dataset": config.dataset,
        "profile": p.name, "seed": config.seed, "loader": config.loader,
        "data_source": train_set.source, "train_images": len(train_set),
        "params": count_params(execution.model), "noise_scales": noise_scales(execution.model),
        "mask_counts": mask_counts(execution.model), "sparsity": execution.sparsity,
        "train_attack": {"eps": p.adv_eps / 255.0, "steps": p.adv_train_steps, "step_size": oat_step_size(p.adv_eps / 255.0, p.adv_train_steps)},
        "train_seconds": sum(epoch_seconds), "epoch_seconds": epoch_seconds,
        "train_joules": sum(s["joules"] for s in stages) if metered else None,
        "train_joules_reason": None if metered else meter.reason, "stages": stages,
        "energy_backend": report.source if metered else "none", "energy_backend_detail": meter.describe(),
        "hardware": hardware_info(config.device, energy=False), "plan": [dataclasses.asdict(step)],
        "gearlib_version": __version__, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    store.write_epoch_log(run_dir, execution.log)
    store.save_torch_atomic(run_dir / store.FINAL, execution.final_state())
    store.write_json_atomic(run_dir / store.METRICS, metrics)
    store.unlink(run_dir / store.CHECKPOINT)
    return metrics


def evaluate_adversarial_run(
    config: RunConfig, model: torch.nn.Module, data_dir: Optional[Union[str, Path]] = None
) -> Dict[str, Any]:
    """Clean and adversarial accuracy at every knob setting, under the profile's adversarial evaluation."""
    p, info = config.profile, dataset_info(config.dataset)
    test_set = load_dataset(
        config.dataset, "test", data_dir, subset=p.adv_test_subset or None, seed=config.seed
    )
    test_x, test_y = test_set.tensors()
    objective = get_method_step(config).objective
    out = evaluate_adversarial(
        model, objective, test_x, test_y, p, info.num_classes, config.seed, config.device
    )
    out["evaluated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return out


def get_method_step(config: RunConfig) -> Step:
    return plan_for(config.method, config.profile, config.dataset, config.arch)[1][0]


def _source_config(config: RunConfig, source: str) -> RunConfig:
    """The run a topology step reads: same arch, dataset, seed and profile, the source's method, batched
    loader; epoch settings the source does not read (epochs_small) are reset, so a Small epoch sweep shares one."""
    profile = canonical_epochs(source, config.profile, config.dataset, config.arch)
    return dataclasses.replace(config, method=source, loader="batched", profile=profile)


def canonical_epochs(method: str, profile: Profile, dataset: str, arch: str) -> Profile:
    """`profile` with each explicit epoch setting that changes nothing `method` trains reset to 0 ("the
    paper's number times epoch_scale"), so one training has one run identity.

    A setting changes nothing when the plan is the same without it and, for a method that copies another
    run's topology, so is that run: `epochs_er=4` where E_R is 4 anyway, or `epochs_small` on GEARnn-2.
    """
    plan = plan_for(method, profile, dataset, arch)[1]
    source = next((s.source for s in plan if s.kind == "topology"), None)

    def copied(p: Profile) -> Optional[Profile]:  # the profile of the run whose topology is copied
        return canonical_epochs(source, p, dataset, arch) if source else None

    for name in EPOCH_FIELDS.values():
        if not getattr(profile, name):
            continue
        reset = dataclasses.replace(profile, **{name: 0})
        if plan_for(method, reset, dataset, arch)[1] == plan and copied(reset) == copied(profile):
            profile = reset
    return profile


def _training_metrics(
    config: RunConfig, execution: PlanRun, report: Any, plan: List[Step], train_set: ImageDataset
) -> Dict[str, Any]:
    """metrics.json of a trained run: identity, costs per stage, widths, growth records, hardware."""
    model, meter, state = execution.model, execution.meter, execution.state
    info = dataset_info(config.dataset)
    stages = stage_totals(state.log)
    metered = meter.available and all(s["joules"] is not None for s in stages)
    if config.family == "layers":
        with torch.random.fork_rng():  # building the reference must not move the run's random stream
            vanilla, _ = layer_network("conv", config.arch, config.profile.layers_width, info.num_classes)
        size = count_params(model) / count_params(vanilla)  # the share of the same network with plain convs
    else:
        size = size_fraction(model, config.arch, info.num_classes, info.image_size)
    out = {
        "method": config.method, "arch": config.arch, "dataset": config.dataset,
        "profile": config.profile.name, "seed": config.seed, "loader": config.loader,
        "data_source": train_set.source, "train_images": len(train_set),
        "size_fraction": size, "params": count_params(model),
        "train_seconds": sum(s["seconds"] for s in stages),
        "train_joules": sum(s["joules"] for s in stages) if metered else None,
        "train_joules_reason": None if metered else meter.reason,
        "stages": stages, "widths": state.widths, "width_history": state.width_history,
        "growth": state.growth, "topology_from": state.topology,
        "energy_backend": report.source if metered else "none", "energy_backend_detail": meter.describe(),
        "hardware": hardware_info(config.device, energy=False),
        "plan": [dataclasses.asdict(s) for s in plan],
        "gearlib_version": __version__, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    grows = [s for s in plan if s.kind == "grow"]
    if config.family == "gearnn" and config.profile.growth_ratio_mode == "fit" and grows:
        out["growth_ratio_fit"] = growth_fit(config.profile, config.dataset, config.arch, grows[0].augment)[1]
    if config.family == "layers":  # a fixed network: its layer and conversion instead of a width history
        conversion = execution.conversion
        for key in ("widths", "width_history", "growth", "topology_from"):
            out.pop(key)
        out.update(
            family="layers", layer=execution.layer, width=config.profile.layers_width,
            num_classes=info.num_classes, replaced=len(conversion.replaced) if conversion else 0,
            kept=[dataclasses.asdict(k) for k in conversion.kept] if conversion else [],
        )  # fmt: skip
    return out


def evaluate_run(
    config: RunConfig, model: torch.nn.Module, data_dir: Optional[Union[str, Path]] = None
) -> Dict[str, Any]:
    """Clean accuracy, robust accuracy on the corrupted test set and latency of a trained network, under
    the profile's evaluation settings (which key the stored result)."""
    p, device, info = config.profile, config.device, dataset_info(config.dataset)
    test_set = load_dataset(config.dataset, "test", data_dir, subset=p.test_subset or None, seed=config.seed)
    model = model.to(device).eval()
    test_x, test_y = test_set.tensors()
    predicted = predictions(model, test_x, device=device)
    clean = 100.0 * float((predicted == test_y).float().mean())
    share = prediction_share(predicted)
    robust = robust_accuracy(
        model, dataset=config.dataset, data_dir=data_dir, sample=p.robust_per_block or None,
        seed=config.seed, device=device, clean=(test_x, test_y),
    )  # fmt: skip
    size = (1, 3, info.image_size, info.image_size)
    latency = inference_latency(
        model, size, device=device, iters=p.latency_iters, windows=p.latency_windows, pause_s=LATENCY_PAUSE_S
    )
    return {
        "evaluation": p.evaluation_dict(), "test_images": len(test_set), "clean_acc": clean,
        "top_class_share": share, "collapsed": share >= COLLAPSE_SHARE,
        "at_chance": at_chance(clean, len(test_set), info.num_classes),
        "robust_acc": robust.robust_accuracy, "robust_source": robust.source,
        "robust_ci95": list(robust.ci95) if robust.ci95 is not None else None,
        "robust_extras_acc": robust.extras_accuracy, "robust_per_block": robust.n_per_block,
        "robust_table": robust.to_dict()["table"],
        "latency_ms_per_sample": latency.median_ms, "latency": latency.as_dict(),
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip


def stage_totals(log: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
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
