"""What the book's chapters call: run the experiments of a chapter, or replay them from results/<profile>/.

Results of runs are written as small JSON files (metrics and per-epoch curves, never checkpoints) so a
Jetson's or a Quadro's run can be rendered on any machine; replaying a missing result is an error.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch

from gearlib import attacks
from gearlib.adversarial.checks import masking_checks
from gearlib.adversarial.evaluate import is_stochastic
from gearlib.adversarial.layers import conditioned
from gearlib.analysis import loss_landscape_1d
from gearlib.bench import adversarial as bench_adversarial
from gearlib.bench import layers as bench_layers
from gearlib.claims import METRICS, SEEDED_RUNS
from gearlib.claims import spread as seed_spread
from gearlib.claims import values as metric_values
from gearlib.claims import verdict as claim_verdict
from gearlib.corrupt import corrupt
from gearlib.data import DatasetNotFoundError, ImageDataset, dataset_info, find_dataset, load_dataset
from gearlib.evaluate import chance_ceiling
from gearlib.measure import stall_note, stalled_epochs
from gearlib.profiles import get_profile
from gearlib.train.methods import get_method, plan_for
from gearlib.train.runner import make_config, run_experiment
from gearlib.train.stage import TrainingDiverged
from gearlib.train.store import config_hash

PathLike = Union[str, "os.PathLike[str]"]


def results_dir(profile: str, root: Optional[PathLike] = None) -> Path:
    """`results/<profile>/` under the repository root (or $GEARLIB_RESULTS)."""
    base = Path(root) if root else Path(os.environ.get("GEARLIB_RESULTS", "results"))
    return base / profile


# What 'auto' means per profile when it is not "CIFAR-10 if on disk": the smoke profile's few hundred images and
# one epoch a phase teach a network nothing on CIFAR-10, but do on the synthetic set, which is built to be
# learnable, so its book checks the code on data where a working run must beat chance.
AUTO_DATASET = {"smoke": "synthetic"}


def resolve_dataset(dataset: str, data_dir: Optional[PathLike] = None, profile: str = "") -> str:
    """'auto' means the profile's AUTO_DATASET, else CIFAR-10 when it is on disk (e.g. the JPEG copy), else
    the synthetic set."""
    if dataset != "auto":
        dataset_info(dataset)
        return dataset
    if profile in AUTO_DATASET:
        return AUTO_DATASET[profile]
    try:
        find_dataset("cifar10", data_dir)
        return "cifar10"
    except DatasetNotFoundError:
        return "synthetic"


@dataclass
class Chapter:
    """The settings of one executed chapter (from its papermill parameters) and its experiments.

    Attributes:
        profile: hardware profile name; dataset, arch, seed: what the chapter runs.
        replay: read results/<profile>/ instead of training.
        overrides: profile settings (key=value) applied to every run of the chapter.
    """

    profile: str = "smoke"
    dataset: str = "auto"
    arch: str = "vgg19"
    seed: int = 0
    data_dir: Optional[str] = None
    replay: bool = False
    overrides: List[str] = field(default_factory=list)
    results_root: Optional[str] = None
    progress: bool = False

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir or None
        get_profile(self.profile, self.overrides)  # refuse bad profiles and settings at once
        if self.replay:
            self.dataset = self.dataset if self.dataset != "auto" else self._replayed_dataset()
        else:
            self.dataset = resolve_dataset(self.dataset, self.data_dir, self.profile)

    def _replayed_dataset(self) -> str:
        folder = results_dir(self.profile, self.results_root)
        names = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        for candidate in ("cifar10", "synthetic", "cifar100", "tinyimagenet"):
            if any(f"-{candidate}-" in n for n in names):
                return candidate
        raise FileNotFoundError(
            f"replay asked for profile {self.profile!r} but {folder} holds no results; run the chapter "
            f"with replay=False on a machine for that profile first"
        )

    @property
    def profile_config(self) -> Any:
        return get_profile(self.profile, self.overrides)

    def banner(self) -> str:
        """One line for the top of every page: profile, dataset, scale, mode."""
        p = self.profile_config
        scale = f"{p.train_subset or 'all'} training images, epochs x{p.epoch_scale:g}"
        if p.bn_recalibration:  # not the paper's recipe: the page says so (book notes, precise BN)
            scale += f", BN statistics re-estimated on {p.bn_recalibration} batches after training"
        mode = "replayed from results/" + self.profile if self.replay else "executed live"
        return (
            f"profile **{self.profile}** · dataset **{self.dataset}** · arch {self.arch} · {scale} · {mode}"
        )

    def adversarial_banner(self) -> str:
        """The banner of the adversarial chapters: their own model, data and attack scale."""
        p = self.profile_config
        train = f"{p.adv_train_subset or 'all'} training images, {p.adv_epochs} epochs against PGD-{p.adv_train_steps}"
        test = (
            f"{p.adv_test_subset or 'all'} test images, {p.adv_eval_images or 'all'} attacked "
            f"(PGD-{p.adv_eval_steps}, FGSM, EOT-PGD; {p.adv_eval_repeats} repeats), eps {p.adv_eps:g}/255"
        )
        mode = "replayed from results/" + self.profile if self.replay else "executed live"
        return (
            f"profile **{self.profile}** · dataset **{self.dataset}** · {p.adv_arch} width {p.adv_width} · "
            f"{train} · {test} · seed {self.seed} · {mode}"
        )

    def layers_banner(self) -> str:
        """The banner of the GroupNL chapter: its network, data and evaluation scale."""
        p = self.profile_config
        train = f"{p.layers_train_subset or 'all'} training images, {p.layers_epochs} epochs (cosine lr)"
        test = f"{p.test_subset or 'all'} test images, {p.robust_per_block or 'all'} per corruption block"
        mode = "replayed from results/" + self.profile if self.replay else "executed live"
        return (
            f"profile **{self.profile}** · dataset **{self.dataset}** · {p.layers_arch} width {p.layers_width} · "
            f"{train} · {test} · {mode}"
        )

    def result_path(
        self, method: str, arch: Optional[str] = None, dataset: Optional[str] = None, tag: str = ""
    ) -> Path:
        name = f"{method}-{arch or self.arch}-{dataset or self.dataset}-seed{self.seed}{tag}.json"
        return results_dir(self.profile, self.results_root) / name

    def run(
        self,
        method: str,
        arch: Optional[str] = None,
        dataset: Optional[str] = None,
        overrides: Iterable[str] = (),
        tag: str = "",
        seed: Optional[int] = None,
        record_divergence: bool = False,
    ) -> Dict[str, Any]:
        """Metrics (plus per-epoch log under 'epochs') of one run: trained (and saved) or replayed.

        With `record_divergence`, a run whose training loss became non-finite is not an error: its record
        is {"method", "seed", "diverged": the trainer's message, "run_hash"}, saved and replayed like a
        result, so that a page can show the failure (`diverged_note`) instead of stopping."""
        seed = self.seed if seed is None else seed
        config = make_config(
            method,
            self.profile,
            arch or self.arch_for(method),
            dataset or self.dataset,
            seed,
            [*self.overrides, *overrides],
        )
        path = self.result_path(method, config.arch, dataset, tag)
        if seed != self.seed:
            path = path.with_name(path.name.replace(f"-seed{self.seed}", f"-seed{seed}"))
        wanted = config_hash(config.training_dict())
        if self.replay:
            return _replayed(path, wanted, self.profile)
        try:
            result = run_experiment(config, data_dir=self.data_dir, progress=self.progress)
        except TrainingDiverged as err:
            if not record_divergence:
                raise
            record = {"method": method, "arch": config.arch, "dataset": config.dataset, "seed": seed}
            record.update({"profile": self.profile, "diverged": str(err), "run_hash": wanted})
        else:
            record = dict(result.metrics)
            record["epochs"] = result.epochs
            record["run_hash"] = wanted
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True, default=_json_default)
        return record

    def arch_for(self, method: str) -> Optional[str]:
        """The chapter's arch for a GEARnn method; None (the profile's adv_arch or layers_arch) for the others."""
        return self.arch if get_method(method).family == "gearnn" else None

    def cached(self, name: str, compute: Any, arch: Optional[str] = None) -> Any:
        """A chapter's own JSON-able result (e.g. a loss landscape): computed live and saved, or replayed.
        `arch` names the network it is about in the file name (default: the chapter's arch)."""
        path = (
            results_dir(self.profile, self.results_root)
            / f"{name}-{arch or self.arch}-{self.dataset}-seed{self.seed}.json"
        )
        if self.replay:
            if not path.is_file():
                raise FileNotFoundError(f"replay: {path} is missing; run the chapter with replay=False first")
            with open(path) as handle:
                return json.load(handle)
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(value, handle, indent=1, default=_json_default)
        return value

    def trend(self, arch: Optional[str] = None) -> Tuple[List[str], str]:
        """(overrides, result-file tag) of a run of `arch` (default: the chapter's) that only illustrates a
        trend: the profile's trend_images(arch) instead of train_subset (nothing to change when they agree)."""
        p = self.profile_config
        n = p.trend_images(arch or self.arch)
        if n == p.train_subset:
            return [], ""
        return [f"train_subset={n}"], f"-n{n}"

    def trend_note(self, what: str, archs: Optional[Sequence[str]] = None) -> str:
        """A sentence for the page saying which of `archs` (default: the chapter's) train their trend runs on
        fewer images, and how many ('' when all train at full scale)."""
        trimmed = [a for a in (archs if archs is not None else [self.arch]) if self.trend(a)[0]]
        if not trimmed:
            return ""
        p = self.profile_config
        return (
            f"{what} only illustrate a trend, so at this profile the runs of {', '.join(trimmed)} train on "
            f"**{p.trend_subset:,} images** instead of {p.train_subset:,} (profile settings `trend_subset` and "
            "`trend_archs`); compare them with each other, not with other pages."
        )

    def test_images(self, n: int) -> ImageDataset:
        """The first `n` of the chapter's SAMPLE_IMAGES test images (galleries, spectra, corruptions).

        Live, they are loaded from the dataset and saved under results/samples/ so that a replayed book
        shows the same images without a data directory; replayed, they are read from there (the synthetic
        set is generated, never stored).
        """
        if not 1 <= n <= SAMPLE_IMAGES:
            raise ValueError(f"n={n} test images asked for; a chapter may show 1 to {SAMPLE_IMAGES}")
        path = samples_path(self.dataset, self.seed, self.results_root)
        if self.dataset == "synthetic" or not self.replay:
            sample = load_dataset(self.dataset, "test", self.data_dir, subset=SAMPLE_IMAGES, seed=self.seed)
            stored = load_samples(path) if path.is_file() and self.dataset != "synthetic" else None
            if self.dataset != "synthetic" and (
                stored is None or not torch.equal(stored.images, sample.images)
            ):
                save_samples(sample, path)  # (re)written only when it changed, so git sees no churn
        elif path.is_file():
            sample = load_samples(path)
        else:
            raise FileNotFoundError(
                f"replay: {path} is missing; run any chapter that shows images with replay=False on a machine "
                f"with the {self.dataset} data to write it"
            )
        return ImageDataset(sample.images[:n], sample.labels[:n], sample.classes, sample.source)

    def runs(self, methods: Sequence[str], **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        """`run` for several methods, in order (Small baselines after the GEARnn-2 run they copy)."""
        return {m: self.run(m, **kwargs) for m in methods}

    def prime_run(self, method: str) -> Dict[str, Any]:
        """`run` of a chapter-9 method: the GEARnn runs with PRIME train the profile's `prime_robust_epochs`
        robust epochs (E_R for GEARnn-2, E_2 for GEARnn-1) where that setting is not 0 (see PRIME_LONGER)."""
        epochs = self.profile_config.prime_robust_epochs
        if epochs and method in PRIME_LONGER:
            return self.run(method, overrides=[f"{PRIME_LONGER[method]}={epochs}"], tag=f"-er{epochs}")
        return self.run(method)


# The epoch setting that the profile's prime_robust_epochs replaces, per chapter-9 GEARnn method: the phase
# that trains on ERA over PRIME's primitives.
PRIME_LONGER = {"gearnn2-prime": "epochs_er", "gearnn1-prime": "epochs_e2"}


# Test images a chapter may show (galleries, spectra, corruption figures), stored with the results.
SAMPLE_IMAGES = 64


def samples_path(dataset: str, seed: int, root: Optional[PathLike] = None) -> Path:
    """`results/samples/<dataset>-test-seed<seed>.npz`, shared by every profile's book."""
    return results_dir("samples", root) / f"{dataset}-test-seed{seed}.npz"


def save_samples(sample: ImageDataset, path: Path) -> None:
    """Write images (uint8 NCHW), labels, class names and source to a compressed .npz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(
        tmp, images=sample.images.numpy(), labels=sample.labels.numpy(), classes=np.array(sample.classes),
        source=np.array(sample.source),
    )  # fmt: skip
    os.replace(tmp, path)


def load_samples(path: Path) -> ImageDataset:
    """Read what `save_samples` wrote."""
    with np.load(path) as data:
        return ImageDataset(
            torch.from_numpy(data["images"]), torch.from_numpy(data["labels"]).long(),
            [str(c) for c in data["classes"]], f"{data['source']} (stored sample {path.name})",
        )  # fmt: skip


def _replayed(path: Path, wanted: str, profile: str) -> Dict[str, Any]:
    """A stored result, refused when missing or when it was trained with other settings than asked for."""
    if not path.is_file():
        raise FileNotFoundError(
            f"replay: {path} is missing. Run this chapter with replay=False on the {profile!r} "
            f"profile to produce it (results are never retrained silently)."
        )
    with open(path) as handle:
        record = json.load(handle)
    if record.get("run_hash") != wanted:
        raise StaleResultError(
            f"replay: {path} was trained with other settings than the {profile!r} profile now asks for "
            f"(run hash {record.get('run_hash') or 'not recorded'}, expected {wanted}); run this chapter "
            f"with replay=False on that profile to regenerate it"
        )
    if "epochs" in record and "timing_stalls" not in record:  # a result stored before the check existed
        record["timing_stalls"] = stalled_epochs(record["epochs"], cpu_device=False)  # judged from its log
    return record


class StaleResultError(ValueError):
    """A stored result whose training settings differ from the current profile's (or were never recorded)."""


STANDARD_PARAMETERS = ("profile", "dataset", "arch", "seed", "data_dir", "replay", "overrides")
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}


def open_chapter(namespace: Dict[str, Any], extra: Sequence[str] = ()) -> Chapter:
    """Build the Chapter from a notebook's globals after papermill injected its parameters.

    Papermill injects unknown parameter names silently; this refuses them. Call it in the first cell after
    the `parameters` cell, before defining anything else.

    Args:
        namespace: the notebook's `globals()`.
        extra: the chapter's own parameter names besides the standard ones.
    """
    import types

    declared = set(STANDARD_PARAMETERS) | set(extra)
    literal = (str, int, float, bool, list, tuple, dict, type(None))
    unknown = sorted(
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in _IPYTHON_NAMES
        and name not in declared
        and isinstance(value, literal)
        and not isinstance(value, (types.ModuleType, types.FunctionType, type))
    )
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; this chapter takes {', '.join(sorted(declared))}")
    _inline_figures()
    kwargs = {k: namespace[k] for k in STANDARD_PARAMETERS if k in namespace}
    if isinstance(kwargs.get("overrides"), str):
        kwargs["overrides"] = [kwargs["overrides"]] if kwargs["overrides"] else []
    return Chapter(**kwargs)


def _inline_figures() -> None:
    """Inside a Jupyter kernel, draw figures into the notebook even when MPLBACKEND=Agg was inherited
    (CI sets it for the tests; a kernel started under it would otherwise keep every figure off the page)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, readable_html)


def readable_html(table: pd.DataFrame) -> str:
    """A table as the chapters show it: a missing energy reads "n/a (no meter)", a missing note (a row of a
    table joined to one with notes) is blank, any other missing value "n/a", never None or NaN."""
    energy = [c for c in table.columns if any(u in str(c) for u in ("(kJ)", "joules", "(J)"))]
    if energy:
        table = table.astype({c: object for c in energy})
        table[energy] = table[energy].where(table[energy].notna(), NO_METER)
    if "note" in table.columns:
        table = table.assign(note=table["note"].fillna(""))
    return table.to_html(na_rep="n/a")


NO_METER = "n/a (no meter)"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def epoch_curve(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per-epoch training loss and accuracy of a run on one epoch axis across all its stages."""
    return [
        {"epoch": e["total_epoch"], "loss": e["loss"], "acc": e.get("acc"), "stage": e["stage"]}
        for e in run["epochs"]
        if not e.get("growth")
    ]


def accuracy_curve(run: Dict[str, Any]) -> pd.DataFrame:
    """A run's training accuracy per epoch in % ("train acc (%)"), indexed by epoch across all its stages,
    with each epoch's stage; epochs that logged no accuracy are left out."""
    frame = pd.DataFrame(epoch_curve(run)).dropna(subset=["acc"]).set_index("epoch")
    return frame.assign(**{"train acc (%)": 100 * frame["acc"]})


def phase_summary(run: Dict[str, Any], robust_stage: str = "era") -> Dict[str, Any]:
    """Training accuracy (%) of a GEARnn run at the end of its clean growth, after its first robust epoch
    and after its last, with the number of robust epochs (the epochs of stage `robust_stage`)."""
    frame = accuracy_curve(run)
    clean, robust = frame[frame["stage"] != robust_stage], frame[frame["stage"] == robust_stage]
    if clean.empty or robust.empty:
        stages = sorted(set(frame["stage"]))
        raise ValueError(
            f"run {run.get('method')!r} has no clean epochs followed by {robust_stage!r} epochs with a logged "
            f"accuracy (stages: {stages}); pass the robust stage's name as robust_stage"
        )
    return {
        "end of growth": float(clean["train acc (%)"].iloc[-1]),
        "first robust epoch": float(robust["train acc (%)"].iloc[0]),
        "last robust epoch": float(robust["train acc (%)"].iloc[-1]),
        "robust epochs": len(robust),
    }


def median_epoch_seconds(run: Dict[str, Any]) -> float:
    """Median training seconds of a run's epochs (growth steps excluded): a per-epoch cost that one slow
    epoch on a shared machine does not move."""
    seconds = [e["seconds"] for e in run["epochs"] if not e.get("growth")]
    if not seconds:
        raise ValueError(f"run {run.get('method')!r} logged no training epochs")
    return float(statistics.median(seconds))


def per_view_costs(runs: Dict[str, Dict[str, Any]], views: Dict[str, int]) -> pd.DataFrame:
    """Per run: robust accuracy, median seconds per epoch, views per training image (`views`, at least 1:
    J = 0 trains one augmented view) and seconds per epoch and view (chapter 4, the cost of ERA's knobs)."""
    missing = sorted(set(runs) - set(views))
    if missing:
        raise KeyError(f"no view count for {missing}; give every run's number of views")
    rows = {}
    for name, m in runs.items():
        n_views = max(1, int(views[name]))
        per_epoch = median_epoch_seconds(m)
        rows[name] = {
            "R-acc (%)": round(m["robust_acc"], 2),
            "s / epoch": per_epoch,
            "views": n_views,
            "s / epoch / view": per_epoch / n_views,
        }
    return pd.DataFrame(rows).T.rename_axis("method")


def judged_against(
    runs: Dict[str, Dict[str, Any]], ours: str, others: Sequence[str], spread: Optional[float]
) -> pd.DataFrame:
    """One row per run in `others`: run `ours`'s robust-accuracy gap to it, the seed spread the gap is
    judged against (`spread` of the reference runs, for one-seed arms), the verdict and the training-time
    ratio (ours over theirs)."""
    rows = {}
    for other in others:
        judged = claim_verdict(
            [runs[ours]["robust_acc"]], [runs[other]["robust_acc"]], reference_spread=spread
        )
        rows[f"{ours} vs {other}"] = {
            "R-acc gap (points)": round(judged.gap, 2),
            "seed spread": round(judged.spread, 2),
            "verdict": judged.verdict,
            "time ratio": round(runs[ours]["train_seconds"] / runs[other]["train_seconds"], 2),
        }
    return pd.DataFrame(rows).T.rename_axis("robust accuracy, higher is better")


def stage_boundaries(run: Dict[str, Any]) -> List[float]:
    """Epochs after which a growth step or a new stage starts (for vertical lines on curves)."""
    marks: List[float] = []
    last_stage, epoch = None, 0
    for e in run["epochs"]:
        if e.get("growth"):
            marks.append(epoch + 0.5)
            continue
        if last_stage is not None and e["stage"] != last_stage and (not marks or marks[-1] != epoch + 0.5):
            marks.append(epoch + 0.5)
        last_stage, epoch = e["stage"], e["total_epoch"]
    return marks


def metrics_table(runs: Dict[str, Dict[str, Any]]) -> Any:
    """A pandas table in the paper's units: size %, C-acc %, R-acc %, T (min), E (kJ), latency, and a note
    for a run at chance or collapsed (or an early point, see `early_point`, that is expected near chance) or
    whose time is not comparable (a stalled epoch, `gearlib.measure.timer.stalled_epochs`)."""
    rows = []
    for name, m in runs.items():
        joules = m.get("train_joules")
        rows.append(
            {
                "method": name,
                "size (%)": round(100 * m["size_fraction"], 2),
                "C-acc (%)": round(m["clean_acc"], 2),
                "R-acc (%)": round(m["robust_acc"], 2),
                "T (min)": round(m["train_seconds"] / 60, 2),
                "E (kJ)": round(joules / 1000, 3) if joules is not None else None,
                "latency (ms)": round(m["latency_ms_per_sample"], 3),
                "latency spread (ms)": latency_spread(m),
                "note": "; ".join(
                    n for n in (_accuracy_note(m), stall_note(m.get("timing_stalls") or [])) if n
                ),
            }
        )
    table = pd.DataFrame(rows).set_index("method")
    return table if table["note"].any() else table.drop(columns="note")


def _accuracy_note(m: Dict[str, Any]) -> str:
    """Why a run's accuracy means little (at chance, collapsed), or why that is expected (a curve's early point,
    or a reduced budget under the profile's clean-accuracy floor)."""
    note = early_note(m) if early_point(m) else collapse_note(m)
    floor = get_profile(m["profile"]).clean_floor
    if not note and floor and m["clean_acc"] < floor and reduced_budget(m):
        note = f"{floor_exempt(m)}: under the {m['profile']} profile's {floor:g}% floor, as a curve's start may be"
    return note


def latency_spread(m: Dict[str, Any]) -> Optional[float]:
    """Max - min of the latency windows' medians in ms (None for a result stored before windows existed)."""
    spread = (m.get("latency") or {}).get("spread_ms")
    return round(spread, 3) if spread is not None else None


def seeded_runs(
    chapter: Chapter, methods: Sequence[str], seeds: Sequence[int], **kwargs: Any
) -> Dict[str, List[Dict[str, Any]]]:
    """`Chapter.run` for every method and seed: method -> one metrics dict per seed, in seed order."""
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed, e.g. [0, 1, 2]")
    return {m: [chapter.run(m, seed=s, **kwargs) for s in seeds] for m in methods}


def runs_with_retry(
    chapter: Chapter,
    methods: Sequence[str],
    seeds: Sequence[int],
    retry_seeds: Sequence[int],
    lr_factor: float = 0.5,
) -> Tuple[Dict[str, List[Dict[str, Any]]], List[Dict[str, Any]]]:
    """(finished runs, divergence records): every method over `seeds` at the profile's recipe; a method whose
    training diverged in any seed is trained again at lr x `lr_factor` on `retry_seeds` and reported under
    "METHOD (lr X)" (if that diverges too, it is only in the records). Each run is stored and replayed."""
    lr = chapter.profile_config.lr * lr_factor
    finished: Dict[str, List[Dict[str, Any]]] = {}
    failed: List[Dict[str, Any]] = []
    for method in methods:
        per_seed = [chapter.run(method, seed=s, record_divergence=True) for s in seeds]
        failed += [r for r in per_seed if r.get("diverged")]
        label, kept = method, [r for r in per_seed if not r.get("diverged")]
        if len(kept) < len(per_seed):
            label = f"{method} (lr {lr:g})"
            retried = [
                chapter.run(
                    method, seed=s, overrides=[f"lr={lr:g}"], tag=f"-lr{lr:g}", record_divergence=True
                )
                for s in retry_seeds
            ]
            failed += [r for r in retried if r.get("diverged")]
            kept = [r for r in retried if not r.get("diverged")]
        if kept:
            finished[label] = kept
    return finished, failed


def seed_table(runs: Dict[str, List[Dict[str, Any]]]) -> Any:
    """Mean and standard deviation over seeds per method, in the paper's units (C-acc, R-acc, T, E).

    A metric no run has (energy without a meter) is left out; std is n/a with one seed. The time and energy
    of a seed with a stalled epoch are left out of T and E, and the note column names that seed.
    """
    rows = []
    for name, per_seed in runs.items():
        row: Dict[str, Any] = {"method": name, "seeds": len(per_seed)}
        for metric, (label, _) in METRICS.items():
            xs = metric_values(per_seed, metric)
            if xs:
                row[f"{label} mean"] = round(statistics.fmean(xs), 2)
                std = seed_spread(xs)
                row[f"{label} std"] = round(std, 2) if std is not None else None
        stalled = [f"seed {m['seed']}" for m in per_seed if m.get("timing_stalls")]
        row["note"] = f"T and E leave out {', '.join(stalled)} (a stalled epoch)" if stalled else ""
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    return table if table["note"].any() else table.drop(columns="note")


# What every stored result must carry for the book to render it.
RESULT_KEYS = (
    "method", "arch", "dataset", "profile", "seed", "clean_acc", "robust_acc", "size_fraction",
    "train_seconds", "train_joules", "stages", "latency_ms_per_sample", "widths", "energy_backend",
    "hardware", "test_images", "run_hash",
)  # fmt: skip
# What the adversarial chapters read of a result (no widths, sizes or latency: no growth, one model).
ADVERSARIAL_RESULT_KEYS = (
    "method", "arch", "dataset", "profile", "seed", "clean_acc", "robust_acc", "adv_settings", "params",
    "train_seconds", "train_joules", "stages", "epoch_seconds", "noise_scales", "mask_counts",
    "energy_backend", "hardware", "test_images", "attacked_images", "run_hash",
)  # fmt: skip
# What the GroupNL chapter reads of a result (a fixed network: no widths).
LAYERS_RESULT_KEYS = (
    "method", "arch", "dataset", "profile", "seed", "clean_acc", "robust_acc", "robust_table", "size_fraction",
    "params", "layer", "width", "train_seconds", "stages", "latency_ms_per_sample", "energy_backend", "hardware",
    "test_images", "run_hash",
)  # fmt: skip
# A baseline trained from scratch (no growth) for fewer epochs than this is a curve's early point: it may
# sit near chance, and its table note says so instead of flagging it.
EARLY_EPOCHS = 4


def _scratch_epochs(m: Dict[str, Any]) -> Optional[int]:
    """Training epochs of a fixed network (no growth) trained from scratch, or None for any other run."""
    plan = m.get("plan") or []
    if not plan or m.get("family") in ("adversarial", "layers") or any(s.get("kind") == "grow" for s in plan):
        return None
    return sum(step.get("epochs", 0) for step in plan if step.get("kind") == "train")


def early_point(m: Dict[str, Any]) -> bool:
    """True for a run without a growth step trained for fewer than EARLY_EPOCHS epochs in all."""
    epochs = _scratch_epochs(m)
    return epochs is not None and epochs < EARLY_EPOCHS


def short_schedule(m: Dict[str, Any]) -> bool:
    """True for a fixed network (no growth) trained from scratch for at most its profile's E_R epochs."""
    epochs = _scratch_epochs(m)
    return epochs is not None and epochs <= get_profile(m["profile"]).epochs("gearnn2", m["dataset"])["ER"]


def reduced_budget(m: Dict[str, Any]) -> bool:
    """True for a point of a training-budget sweep (Appendix C): a run trained for fewer epochs in all than
    its method trains at its profile's own settings (an explicit epochs_e2=1 where E_2 is 4, say)."""
    plan = m.get("plan") or []
    if not plan or m.get("family") in ("adversarial", "layers"):
        return False
    try:
        default = plan_for(m["method"], get_profile(m["profile"]), m["dataset"], m["arch"])[1]
    except (KeyError, ValueError):  # a method or profile this version no longer knows
        return False
    trained = sum(step.get("epochs", 0) for step in plan if step.get("kind") == "train")
    return trained < sum(step.epochs for step in default if step.kind == "train")


def floor_exempt(m: Dict[str, Any]) -> str:
    """Why the clean-accuracy floor does not apply to a run ('' when it does): a short schedule from
    scratch or a reduced-budget point, both a curve's start that is expected to sit low."""
    if short_schedule(m):
        return "a short schedule from scratch"
    if reduced_budget(m):
        return "a reduced-budget point"
    return ""


def floor_note(m: Dict[str, Any]) -> str:
    """'under the floor: ...' for a run below its profile's `clean_floor` (short schedules and reduced-budget
    points excepted, see `floor_exempt`), else ''."""
    floor = get_profile(m["profile"]).clean_floor
    if not floor or m["clean_acc"] >= floor or floor_exempt(m):
        return ""
    return (
        f"under the floor: {m['clean_acc']:.1f}% clean, below the {m['profile']} profile's {floor:g}% "
        f"(profile setting clean_floor)"
    )


def audit_results(folder: PathLike, seeds: Sequence[int] = (0, 1, 2)) -> List[str]:
    """What is wrong with the results under `folder` (one line each): missing fields, runs at chance or
    collapsed (early points excepted, see `early_point`), runs under their profile's clean-accuracy floor
    (short schedules and reduced budgets excepted, see `floor_exempt`), and seeded runs (claims.SEEDED_RUNS) lacking a seed."""
    problems: List[str] = []
    names = set()
    for path in sorted(Path(folder).glob("*.json")):
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "clean_acc" not in record:
            continue  # a chapter's own cached result (a loss landscape)
        names.add(path.name)
        family = record.get("family", "gearnn")
        wanted = {"adversarial": ADVERSARIAL_RESULT_KEYS, "layers": LAYERS_RESULT_KEYS}.get(
            family, RESULT_KEYS
        )
        missing = [k for k in wanted if k not in record]
        if missing:
            problems.append(f"{path.name}: lacks {', '.join(missing)}")
            continue
        note = collapse_note(record)
        if note and early_point(record):
            note = ""  # a curve's early point may sit near chance
        elif not note:
            note = floor_note(record)
        if note:
            problems.append(f"{path.name}: {note}")
    for name in sorted(names):
        for method in SEEDED_RUNS:
            prefix = f"{method}-vgg19-"
            if name.startswith(prefix) and name.endswith("-seed0.json"):
                for s in seeds:
                    other = name.replace("-seed0.json", f"-seed{s}.json")
                    if other not in names:
                        problems.append(
                            f"{other}: missing (the chapters report {method} over seeds {list(seeds)})"
                        )
    return problems


def early_note(m: Dict[str, Any]) -> str:
    """The note of a curve's first point: near chance is expected there, and said so."""
    if m.get("collapsed") or collapse_note(m):
        return f"early point: under {EARLY_EPOCHS} epochs from scratch, near chance as expected"
    return ""


def diverged_note(m: Dict[str, Any]) -> str:
    """Markdown saying that a run diverged (a `Chapter.run(..., record_divergence=True)` record), or ''."""
    if not m.get("diverged"):
        return ""
    return f"**{m['method']}** (seed {m['seed']}) did not finish: {m['diverged']}"


def collapse_note(m: Dict[str, Any]) -> str:
    """'collapsed: ...' or 'at chance: ...' for a run whose accuracy means nothing, else ''."""
    if m.get("collapsed"):
        return f"collapsed: one class for {100 * m['top_class_share']:.0f}% of the test images"
    ceiling = chance_ceiling(m["test_images"], dataset_info(m["dataset"]).num_classes)
    if m["clean_acc"] <= ceiling:
        return f"at chance: {m['clean_acc']:.1f}% clean, a guessing network stays under {ceiling:.1f}%"
    return ""


# -- helpers for the results chapters ----------------------------------------------------------------

#: The paper reports CIFAR-10, CIFAR-100 and Tiny ImageNet; the synthetic set stands in for CIFAR-10.
PAPER_DATASETS = {**{name: name for name in ("cifar10", "cifar100", "tinyimagenet")}, "synthetic": "cifar10"}


def paper_dataset(dataset: str) -> str:
    """The dataset whose row of the paper's tables we print beside ours (synthetic -> cifar10)."""
    if dataset not in PAPER_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(PAPER_DATASETS)}")
    return PAPER_DATASETS[dataset]


def nshot_method(base: str, steps: int) -> str:
    """Method name of N-shot growth: ('gearnn1', 1) -> 'gearnn1', ('gearnn2', 3) -> 'gearnn2-n3'.

    Args:
        base: 'gearnn1', 'gearnn2' or 'osg-clean'.
        steps: N, the number of growth steps (1 = One-Shot Growth, up to 5).
    """
    if base not in ("gearnn1", "gearnn2", "osg-clean"):
        raise ValueError(f"N-shot growth exists for gearnn1, gearnn2 and osg-clean, not {base!r}")
    if not 1 <= int(steps) <= 5:
        raise ValueError(f"steps={steps} must be between 1 and 5 (the registered N-shot methods)")
    return base if int(steps) == 1 else f"{base}-n{int(steps)}"


def sweep(
    chapter: Chapter,
    method: str,
    setting: str,
    values: Sequence[Any],
    overrides: Sequence[str] = (),
    tag: str = "",
    **kwargs: Any,
) -> Dict[Any, Any]:
    """Runs of one method with one profile setting varied: {value: run}, each saved under its own tag.

    Args:
        chapter: the chapter whose profile, dataset, arch and seed the runs use.
        method: method name (e.g. 'gearnn2').
        setting: profile field to vary (e.g. 'epochs_er' = E_R).
        values: the values it takes.
        overrides, tag: further settings of every run and the tag they add to its file name.
        **kwargs: passed on to `Chapter.run` (arch, dataset, seed).
    """
    return {
        v: chapter.run(method, overrides=[*overrides, f"{setting}={v}"], tag=f"-{setting}{v}{tag}", **kwargs)
        for v in values
    }


def stage_table(runs: Dict[str, Dict[str, Any]]) -> Any:
    """Cost per stage (Table 6): one row per (method, stage) with T (min), E (kJ) and their shares in %.

    E and its share are empty (NaN) when a run had no energy meter. A stage with a stalled epoch
    (`gearlib.measure.timer.stalled_epochs`) says so in a note column.
    """
    rows = []
    for name, run in runs.items():
        stalls = run.get("timing_stalls") or []
        stages = run["stages"]
        total_s = sum(s["seconds"] for s in stages)
        metered = all(s.get("joules") is not None for s in stages)
        total_j = sum(s["joules"] for s in stages) if metered else None
        for s in stages:
            joules = s["joules"] if metered else None
            rows.append(
                {
                    "method": name,
                    "stage": s["name"],
                    "T (min)": s["seconds"] / 60,
                    "E (kJ)": joules / 1000 if joules is not None else float("nan"),
                    "T share (%)": 100 * s["seconds"] / total_s if total_s else float("nan"),
                    "E share (%)": 100 * joules / total_j if joules is not None and total_j else float("nan"),
                    "note": stall_note([x for x in stalls if x["stage"] == s["name"]]),
                }
            )
    table = pd.DataFrame(rows)
    return table if table["note"].any() else table.drop(columns="note")


def provenance(run: Dict[str, Any]) -> str:
    """Markdown lines saying what produced a run: profile, data and scale, hardware, energy meter."""
    hw = run.get("hardware") or {}
    device = hw.get("jetson_model") or hw.get("cuda_device") or "no GPU"
    isa = f", {hw['cpu_capability']} kernels" if hw.get("cpu_capability") else ""  # absent in older runs
    epochs = sum(p.get("epochs", 0) for p in run.get("plan", []) if p.get("kind") == "train")
    return "\n".join(
        [
            f"- profile **{run['profile']}**, {run['arch']}, dataset {run['dataset']}, seed {run['seed']}",
            f"- data: {run['data_source']} ({run['train_images']} training images, {epochs} epochs in "
            f"{run['method']}'s plan)",
            f"- hardware: {hw.get('cpu_model', '?')} ({hw.get('cpu_cores', '?')} cores{isa}) / {device}, "
            f"torch {hw.get('torch', '?')}",
            f"- energy meter: {run['energy_backend_detail']}",
            f"- robust accuracy on: {run.get('robust_source', '?')}",
        ]
    )


def final_model(
    chapter: Chapter, method: str, arch: Optional[str] = None, overrides: Iterable[str] = ()
) -> Any:
    """The trained network theta* of a chapter's run (the same run `Chapter.run` reads; trained if missing).

    Weights live in the run store (results/<profile>/runs/ archives only some), so this needs live mode
    (replay=False).

    Args:
        chapter: gives profile, dataset, arch, seed, data_dir and the chapter-wide overrides.
        method: method name; arch, overrides: as in `Chapter.run`.

    Returns:
        The torch model in eval mode, on the CPU.
    """
    if chapter.replay:
        raise ValueError(
            "final_model needs trained weights, which only exist in live mode; run the chapter with "
            "replay=False (or wrap the computation in chapter.cached so replay reads its result)"
        )
    config = make_config(
        method,
        chapter.profile,
        arch or chapter.arch_for(method),
        chapter.dataset,
        chapter.seed,
        [*chapter.overrides, *overrides],
    )
    return run_experiment(config, data_dir=chapter.data_dir, progress=False).model()


def adversarial_test_images(chapter: Chapter, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced, seeded subset of `n` test images as floats in [0, 1] with their labels."""
    test = load_dataset(chapter.dataset, "test", chapter.data_dir, subset=n, seed=chapter.seed)
    x, y = test.tensors()
    return x.float() / 255, y


def masking_checks_of(chapter: Chapter, method: str, condition: Any) -> Dict[str, Any]:
    """The gradient-masking checklist (gearlib.adversarial.checks) on a chapter's trained `method` at one
    knob `condition`, on the profile's attacked images and attack settings (live mode: it needs weights)."""
    p = chapter.profile_config
    x, y = adversarial_test_images(chapter, p.adv_eval_images or 500)
    model = final_model(chapter, method)
    repeats = p.adv_eval_repeats if is_stochastic(model) else 1  # a noiseless network: one evaluation
    return masking_checks(
        model, condition, x, y, eps=p.adv_eps, steps=p.adv_eval_steps, eot=p.adv_eot, repeats=repeats
    )


def autoattack_of(chapter: Chapter, method: str, condition: Any, n: int = 100) -> Dict[str, Any]:
    """The reference AutoAttack ('rand') on `n` test images of a chapter's trained `method` at one knob
    `condition`, or {"available": False} where the package is not installed (live mode)."""
    if not attacks.autoattack_available():
        return {"available": False}
    model = final_model(chapter, method)
    x, y = adversarial_test_images(chapter, n)
    with conditioned(model, condition):
        adv = attacks.autoattack_rand(model, x, y, eps=chapter.profile_config.adv_eps / 255)
        with torch.no_grad():
            correct = float((model(adv).argmax(1) == y).float().mean())
    return {"available": True, "images": len(y), "accuracy": 100 * correct}


def bench_layers_of(ratio: int = 2, rounds: int = 5) -> Dict[str, Any]:
    """`gearlib bench layers` on GroupNL's Table 16 module (512 -> 512 channels, 3x3, stride 2, 32x32 input,
    one image, one thread): training-step and inference milliseconds per layer type, side by side."""
    args = SimpleNamespace(channels=512, size=32, batch=1, stride=2, ratio=ratio, rounds=rounds, threads=1)
    return bench_layers.run(args)


def bench_adversarial_of(chapter: Chapter, steps: int = 2, rounds: int = 3) -> Dict[str, Any]:
    """`gearlib bench adversarial` at the chapter's profile and settings (seconds per training step)."""
    args = SimpleNamespace(profile=chapter.profile, set=list(chapter.overrides), steps=steps, rounds=rounds)
    return bench_adversarial.run(args)


def landscape_curves(
    chapter: Chapter,
    methods: Sequence[str],
    images: Any = None,
    labels: Any = None,
    n_images: int = 256,
    alphas: Any = None,
    seed: int = 0,
) -> Dict[str, Dict[str, List[float]]]:
    """Filter-normalised 1-D loss curves f(alpha) = L(theta* + alpha d) of several methods' final networks.

    Args:
        chapter: live chapter (see `final_model`).
        methods: method names.
        images, labels: fixed evaluation subset (float NCHW in [0,1] or uint8, int64); default: a seeded,
            class-stratified subset of `n_images` images of the chapter's test set.
        n_images: size of that default subset.
        alphas: step sizes (default 21 points in [-1, 1]).
        seed: seeds the random direction d of every method alike.

    Returns:
        JSON-able {method: {"alphas": [...], "losses": [...]}} (mean cross-entropy per alpha).
    """
    if images is None:
        test = load_dataset(chapter.dataset, "test", chapter.data_dir, subset=n_images, seed=chapter.seed)
        images, labels = test.tensors()
    alphas = torch.linspace(-1.0, 1.0, 21) if alphas is None else alphas
    curves = {}
    for method in methods:
        generator = torch.Generator().manual_seed(seed)
        a, losses = loss_landscape_1d(
            final_model(chapter, method), images, labels, alphas, generator=generator
        )
        curves[method] = {"alphas": a.tolist(), "losses": losses.tolist()}
    return curves


def corrupted_views(images: Any, names: Sequence[str], severity: int = 3, seed: int = 0) -> Dict[str, Any]:
    """A batch under several corruptions: {name: float NCHW in [0,1]} from float (or uint8) NCHW images.

    Args:
        images: torch tensor [N,3,H,W], float in [0,1] or uint8.
        names: corruption names (see gearlib.corrupt.CORRUPTIONS).
        severity: 1..5.
        seed: seed of the stochastic corruptions.
    """
    if images.is_floating_point():
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    else:
        pixels = images
    nhwc = pixels.permute(0, 2, 3, 1).cpu().numpy()
    out = {}
    for name in names:
        corrupted = torch.from_numpy(corrupt(nhwc, name, severity, seed=seed))
        out[name] = corrupted.permute(0, 3, 1, 2).float().div(255.0)
    return out


def gains(ours: Any, paper: Any, baseline: str = "small-augmix", method: str = "gearnn2") -> Any:
    """What `method` saves against `baseline`, ours beside the paper's (tables from `metrics_table`).

    Args:
        ours, paper: DataFrames indexed by method, or by (arch, method) for several architectures.
        baseline, method: the two rows compared (e.g. Small (AugMix) and GEARnn-2).

    Returns:
        One row per architecture (or one row): speed-up T_baseline / T_method, energy ratio
        E_baseline / E_method (NaN without a meter) and the R-acc gap R_baseline - R_method in points.
    """

    def one(frame: Any) -> Dict[str, float]:
        b, m = frame.loc[baseline], frame.loc[method]
        e_b, e_m = (
            pd.to_numeric(b.get("E (kJ)"), errors="coerce"),
            pd.to_numeric(m.get("E (kJ)"), errors="coerce"),
        )
        return {
            "speed-up": b["T (min)"] / m["T (min)"] if m["T (min)"] else float("nan"),
            "energy ratio": e_b / e_m if e_m and not pd.isna(e_m) else float("nan"),
            "R-acc gap": b["R-acc (%)"] - m["R-acc (%)"],
        }

    groups = list(ours.index.get_level_values(0).unique()) if ours.index.nlevels > 1 else [None]
    rows: Dict[Any, Dict[str, float]] = {}
    for group in groups:
        row = rows.setdefault(group if group is not None else method, {})
        for source, frame in (("ours", ours), ("paper", paper)):
            part = frame.loc[group] if group is not None else frame
            row.update({f"{k} ({source})": v for k, v in one(part).items()})
    columns = [f"{k} ({s})" for k in ("speed-up", "energy ratio", "R-acc gap") for s in ("ours", "paper")]
    return pd.DataFrame(rows).T[columns].astype(float).round(2)


def plan_summary(run: Dict[str, Any]) -> str:
    """A run's plan on one line: 'E1 clean -> grow x1.90 -> E2 clean -> ER era' with epochs and ratios."""
    parts = []
    for step in run["plan"]:
        if step["kind"] == "grow":
            parts.append(f"grow x{1 + step['growth_ratio']:.2f}")
        else:
            parts.append(f"{step['epochs']} ep {step['augment']}")
    return " -> ".join(parts)
