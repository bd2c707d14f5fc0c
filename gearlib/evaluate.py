"""Clean and corruption ("robust") accuracy with RobustBench's protocol, plus corruption errors (CE, mCE).

Robust accuracy = unweighted mean of the 15 x 5 per-(corruption, severity) accuracies, in percent.
"""

from __future__ import annotations

import collections
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from gearlib.corrupt import backends, corrupt
from gearlib.corrupt.digital import jpeg_roundtrip
from gearlib.corrupt.generate import clean_test_set, progress_bar
from gearlib.corrupt.params import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    STORED_JPEG_QUALITY,
    check_corruption,
    check_severity,
)
from gearlib.data import dataset_info
from gearlib.data.corrupted import (
    LAYOUTS,
    available_corruptions,
    find_corrupted,
    load_corrupted,
    read_metadata,
)

SOURCES = ("auto", "disk", "generate")
# Corrupted blocks generated on the fly, kept per process: the runs of one chapter evaluate the same test
# images, so each (images, corruption, severity, seed) block is generated once. About 3 KB per CIFAR image.
_BLOCK_CACHE: collections.OrderedDict[Tuple[Any, ...], np.ndarray] = collections.OrderedDict()
BLOCK_CACHE_BYTES = 256 * 2**20
Z95 = 1.959963984540054


@dataclass
class RobustResult:
    """Corruption accuracy of one model, all numbers in percent.

    Attributes:
        dataset: "cifar10", "cifar100", "tinyimagenet" (or the clean set's name when generated).
        source: where the corrupted images came from, e.g. "CIFAR-10-C (official)".
        robust_accuracy: unweighted mean of `table` (15 x 5 blocks by default), %.
        table: accuracy per corruption (rows) and severity (columns), %.
        extras_table: the same for the held-out corruptions, or None (never part of `robust_accuracy`).
        n_per_block: images evaluated per (corruption, severity) block.
        sample: k when a random subset of k images per block was evaluated, else None.
        ci95: 95% confidence interval of `robust_accuracy` in sample mode (normal approximation to the
            binomial over the pooled samples, finite-population corrected), else None.
        seed: seed of generation and sampling.
    """

    dataset: str
    source: str
    robust_accuracy: float
    table: pd.DataFrame
    extras_table: Optional[pd.DataFrame] = None
    n_per_block: int = 0
    sample: Optional[int] = None
    ci95: Optional[Tuple[float, float]] = None
    seed: int = 0
    notes: List[str] = field(default_factory=list)

    @property
    def mean_corruption_error(self) -> float:
        """Unnormalised mean corruption error (AugMix's CIFAR convention): 100 - robust accuracy, %."""
        return 100.0 - self.robust_accuracy

    @property
    def per_corruption(self) -> pd.Series:
        """Accuracy per corruption averaged over the severities, %."""
        return self.table.mean(axis=1)

    @property
    def per_severity(self) -> pd.Series:
        """Accuracy per severity averaged over the corruptions, %."""
        return self.table.mean(axis=0)

    @property
    def extras_accuracy(self) -> Optional[float]:
        """Mean accuracy over the held-out corruptions, % (None when they were not evaluated)."""
        if self.extras_table is None or self.extras_table.empty:
            return None
        return float(self.extras_table.values.mean())

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready summary with the full tables (corruption -> {severity: accuracy})."""
        return {
            "dataset": self.dataset,
            "source": self.source,
            "robust_accuracy": self.robust_accuracy,
            "mean_corruption_error": self.mean_corruption_error,
            "extras_accuracy": self.extras_accuracy,
            "n_per_block": self.n_per_block,
            "sample": self.sample,
            "ci95": list(self.ci95) if self.ci95 else None,
            "seed": self.seed,
            "table": {c: {int(s): float(v) for s, v in row.items()} for c, row in self.table.iterrows()},
            "extras_table": None
            if self.extras_table is None
            else {c: {int(s): float(v) for s, v in row.items()} for c, row in self.extras_table.iterrows()},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        text = f"{self.source}: robust accuracy {self.robust_accuracy:.2f}%"
        if self.ci95:
            text += f" (95% CI {self.ci95[0]:.2f}-{self.ci95[1]:.2f}, {self.sample} images per block)"
        if self.extras_accuracy is not None:
            text += f"; extras {self.extras_accuracy:.2f}%"
        return text


# ------------------------------------------------------------------------------------------- predictions


def _model_device(model: torch.nn.Module, device: Optional[Any]) -> torch.device:
    if device is not None:
        return torch.device(device)
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _as_nchw(images: Any) -> torch.Tensor:
    """uint8 images as a torch NCHW tensor (accepts torch NCHW or numpy NHWC / NCHW)."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] != 3:
            images = images.transpose(0, 3, 1, 2)
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 NCHW (N, 3, H, W), got {getattr(images, 'shape', type(images))}"
        )
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 pixels 0..255 (the model sees x/255), got {images.dtype}")
    return images


@torch.no_grad()
def predictions(
    model: torch.nn.Module, images: Any, batch_size: int = 256, device: Optional[Any] = None
) -> torch.Tensor:
    """The model's argmax class per image (int64, CPU).

    The model runs in eval mode on float32 NCHW inputs x = pixels / 255 in [0, 1] (it owns its
    normalisation); its training/eval mode is restored afterwards.

    Args:
        model: classifier returning logits [B, classes].
        images: uint8 NCHW tensor (or NHWC numpy array).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
    """
    images = _as_nchw(images)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = _model_device(model, device)
    was_training = model.training
    model.eval()
    out = torch.empty(images.shape[0], dtype=torch.long)
    try:
        for lo in range(0, images.shape[0], batch_size):
            x = images[lo : lo + batch_size].to(device, non_blocking=True).float().div_(255.0)
            logits = model(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            out[lo : lo + batch_size] = logits.argmax(dim=1).cpu()
    finally:
        model.train(was_training)
    return out


def correct_predictions(
    model: torch.nn.Module, images: Any, labels: Any, batch_size: int = 256, device: Optional[Any] = None
) -> torch.Tensor:
    """Whether the model's argmax prediction is right, per image (bool, CPU); see `predictions`."""
    images = _as_nchw(images)
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    return predictions(model, images, batch_size, device) == labels


# A network that gives one class to this share of the clean test images or more has collapsed (constant
# output after divergence, or training that never left its start): its accuracies mean nothing.
COLLAPSE_SHARE = 0.9


def prediction_share(predicted: torch.Tensor) -> float:
    """The share of images given the most frequent predicted class (1/classes for a balanced model)."""
    if predicted.numel() == 0:
        raise ValueError("prediction_share needs at least one prediction")
    return float(predicted.bincount().max()) / predicted.numel()


# A clean accuracy no more than this many binomial standard errors above 1/classes cannot be told from a
# network that guesses: its test set is too small or its training never took hold.
CHANCE_Z = 2.0


def chance_ceiling(test_images: int, num_classes: int, z: float = CHANCE_Z) -> float:
    """The clean accuracy in % that a guessing network stays under: 100/classes + z standard errors."""
    if test_images < 1 or num_classes < 2:
        raise ValueError(f"need test_images >= 1 and num_classes >= 2, got {test_images} and {num_classes}")
    p = 1.0 / num_classes
    return 100.0 * (p + z * math.sqrt(p * (1 - p) / test_images))


def at_chance(clean_acc: float, test_images: int, num_classes: int) -> bool:
    """True when a clean accuracy (in %) on `test_images` images is within chance's noise band."""
    return clean_acc <= chance_ceiling(test_images, num_classes)


def clean_accuracy(
    model: torch.nn.Module,
    images_uint8: Any,
    labels: Any = None,
    batch_size: int = 256,
    device: Optional[Any] = None,
) -> float:
    """Clean accuracy A_clean in percent on uint8 images (NCHW tensor, NHWC array, or a dataset).

    Args:
        model: classifier (eval mode is used; inputs x in [0, 1]).
        images_uint8: uint8 images, or a dataset offering `.tensors()` (then `labels` may be None).
        labels: int labels.
        batch_size: images per forward pass.
        device: default the model's device.
    """
    if labels is None and hasattr(images_uint8, "tensors"):
        images_uint8, labels = images_uint8.tensors()
    if labels is None:
        raise ValueError("labels are required unless images_uint8 is a dataset with .tensors()")
    correct = correct_predictions(model, images_uint8, labels, batch_size, device)
    return 100.0 * float(correct.float().mean()) if len(correct) else float("nan")


# ------------------------------------------------------------------------------------------- blocks


def _sample_indices(n: int, k: int, seed: int, corruption: str, severity: int) -> np.ndarray:
    rng = np.random.default_rng([seed, CORRUPTIONS.index(corruption), severity, 0x5A3])
    return np.sort(rng.choice(n, size=k, replace=False))


def _disk_blocks(
    dataset: str,
    data_dir: Any,
    names: Sequence[str],
    severities: Sequence[int],
    n_examples: Optional[int],
    sample: Optional[int],
    seed: int,
) -> Iterator[Tuple[str, int, torch.Tensor, torch.Tensor, int]]:
    for name in names:
        for severity in severities:
            images, labels = load_corrupted(
                dataset, name, severity, data_dir, n_examples=n_examples
            ).tensors()
            population = len(labels)
            if sample is not None:
                if sample > len(labels):
                    raise ValueError(f"sample={sample} exceeds the {len(labels)} images per block")
                idx = torch.from_numpy(_sample_indices(len(labels), sample, seed, name, severity))
                images, labels = images[idx], labels[idx]
            yield name, severity, images, labels, population


def _generated_blocks(
    clean: Tuple[np.ndarray, np.ndarray],
    names: Sequence[str],
    severities: Sequence[int],
    sample: Optional[int],
    seed: int,
    jpeg_quality: Optional[int],
) -> Iterator[Tuple[str, int, torch.Tensor, torch.Tensor, int]]:
    images, labels = clean
    n = len(labels)
    for name in names:
        for severity in severities:
            if sample is not None:
                if sample > n:
                    raise ValueError(f"sample={sample} exceeds the {n} clean images")
                idx = _sample_indices(n, sample, seed, name, severity)
            else:
                idx = np.arange(n)
            out = _cached_corrupt(images[idx], name, severity, seed, idx, jpeg_quality)
            tensor = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
            yield name, severity, tensor, torch.from_numpy(labels[idx]).long(), n


def _cached_corrupt(
    images: np.ndarray, name: str, severity: int, seed: int, idx: np.ndarray, jpeg_quality: Optional[int]
) -> np.ndarray:
    """corrupt() (then the JPEG round trip of Tiny-ImageNet-C) of these images, from the process cache
    when the same block was generated before (the output depends only on the key's inputs)."""
    digest = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16).hexdigest()
    key = (
        digest,
        images.shape,
        name,
        severity,
        seed,
        hashlib.blake2b(idx.tobytes()).hexdigest(),
        jpeg_quality,
    )
    if key in _BLOCK_CACHE:
        _BLOCK_CACHE.move_to_end(key)
        return _BLOCK_CACHE[key]
    out = corrupt(images, name, severity, seed=seed, indices=idx)
    if jpeg_quality:
        out = jpeg_roundtrip(out, jpeg_quality, optimize=True)
    _BLOCK_CACHE[key] = out  # callers copy it (NHWC -> NCHW) before use
    total = sum(v.nbytes for v in _BLOCK_CACHE.values())
    while total > BLOCK_CACHE_BYTES and len(_BLOCK_CACHE) > 1:
        total -= _BLOCK_CACHE.popitem(last=False)[1].nbytes
    return out


def _clean_nhwc(
    clean: Any, dataset: str, data_dir: Any, n_examples: Optional[int]
) -> Tuple[np.ndarray, np.ndarray]:
    """Clean test images as uint8 NHWC numpy + int64 labels (first n_examples)."""
    if clean is None:
        images, labels, _ = clean_test_set(dataset, data_dir, limit=n_examples)
        return images, labels
    if hasattr(clean, "tensors"):
        clean = clean.tensors()
    images, labels = clean
    images = _as_nchw(images).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    labels = torch.as_tensor(labels).long().cpu().numpy()
    if n_examples is not None:
        images, labels = images[:n_examples], labels[:n_examples]
    return images, labels


def _display_name(dataset: str) -> str:
    """Display name of the corrupted set of `dataset` ("CIFAR-10-C"); `<dataset>-C` for a set never published."""
    return dataset_info(dataset).corrupted if dataset in LAYOUTS else f"{dataset}-C"


def _resolve_source(
    source: str, dataset: str, data_dir: Any, wanted: Sequence[str]
) -> Tuple[str, str, List[str]]:
    """('disk' | 'generate', label, notes)."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    display = _display_name(dataset)
    notes: List[str] = []
    if source == "disk" and dataset not in LAYOUTS:
        raise ValueError(f"no corrupted set on disk exists for {dataset!r}; use source='generate'")
    if source in ("auto", "disk") and dataset in LAYOUTS:
        present = set(available_corruptions(dataset, data_dir))
        missing = [c for c in wanted if c not in present]
        if not missing:
            return "disk", _disk_label(display, read_metadata(find_corrupted(dataset, data_dir))), notes
        if source == "disk":
            if not present:
                find_corrupted(dataset, data_dir)  # raises the informative FileNotFoundError
            raise FileNotFoundError(f"{display} on disk lacks {', '.join(missing)}")
        notes.append(
            f"{display} not on disk (missing {len(missing)} of {len(wanted)} corruptions): generated"
        )
    return "generate", "", notes


def _disk_label(display: str, meta: Optional[dict]) -> str:
    """'CIFAR-10-C (official)', or '(regenerated, seed k[, frost=synthetic])' for a set made by gearlib."""
    if meta is None:
        return f"{display} (official)"
    synthetic_frost = str(meta.get("backends", {}).get("frost", "")).startswith("synthetic")
    frost = ", frost=synthetic" if synthetic_frost else ""
    return f"{display} (regenerated, seed {meta.get('seed')}{frost})"


def _generated_label(dataset: str, seed: int) -> str:
    frost = backends()["frost"].split()[0]
    return (
        f"{_display_name(dataset)} (generated on the fly from the clean test set, seed {seed}, frost={frost})"
    )


def _checked_request(
    corruptions: Sequence[str], severities: Sequence[int], n_examples: Optional[int], sample: Optional[int]
) -> Tuple[List[str], List[int]]:
    """The corruption names and severities of a robust_accuracy call, after checking every argument."""
    names = list(corruptions)
    for name in names:
        check_corruption(name)
    chosen = [check_severity(s) for s in severities]
    if not names or not chosen:
        raise ValueError("give at least one corruption and one severity")
    if n_examples is not None and n_examples <= 0:
        raise ValueError(f"n_examples must be positive, got {n_examples}")
    if sample is not None and sample <= 0:
        raise ValueError(f"sample must be a positive number of images per block, got {sample}")
    return names, chosen


def _extra_names(
    extras: Optional[bool], kind: str, dataset: str, data_dir: Any, names: Sequence[str]
) -> List[str]:
    """The held-out corruptions to report apart: all (True), none (False), or those on disk (None)."""
    wanted = [c for c in EXTRA_CORRUPTIONS if c not in names]
    if extras is False:
        return []
    if extras:  # all of them (on disk they must be there)
        return wanted
    if kind == "disk":  # auto: those shipped with the set
        present = set(available_corruptions(dataset, data_dir))
        return [c for c in wanted if c in present]
    return []


@dataclass
class _Tally:
    """Block accuracies, and the pooled counts over the benchmark blocks (not the extras)."""

    accuracy: Dict[Tuple[str, int], float] = field(default_factory=dict)
    correct: int = 0
    total: int = 0
    n_block: int = 0  # images evaluated per benchmark block
    population: int = 0  # images per block before sampling


def _evaluate_blocks(
    model: torch.nn.Module,
    blocks: Iterable[Tuple[str, int, torch.Tensor, torch.Tensor, int]],
    benchmark: Sequence[str],
    batch_size: int,
    device: Optional[Any],
    bar: Any,
) -> _Tally:
    """Run the model on every block; pool the counts of the `benchmark` corruptions."""
    tally = _Tally()
    for name, severity, images, labels, block_size in blocks:
        correct = correct_predictions(model, images, labels, batch_size, device)
        tally.population = block_size
        tally.accuracy[(name, severity)] = 100.0 * float(correct.float().mean())
        if name in benchmark:
            tally.correct += int(correct.sum())
            tally.total += len(correct)
            tally.n_block = len(correct)
        bar.update(1)
    bar.close()
    return tally


def robust_accuracy(
    model: torch.nn.Module,
    dataset: str = "cifar10",
    data_dir: Any = None,
    corruptions: Sequence[str] = tuple(BENCHMARK_CORRUPTIONS),
    severities: Sequence[int] = SEVERITIES,
    n_examples: Optional[int] = None,
    sample: Optional[int] = None,
    seed: int = 0,
    batch_size: int = 256,
    device: Optional[Any] = None,
    source: str = "auto",
    extras: Optional[bool] = None,
    clean: Any = None,
    progress: bool = False,
) -> RobustResult:
    """Robust accuracy A_rob of a model on a common-corruption benchmark (RobustBench protocol).

    Every (corruption, severity) block is evaluated on its first `n_examples` images in stored order
    (all when None), inputs float32 NCHW in [0, 1], model in eval mode; A_rob is the unweighted mean of
    the block accuracies. The held-out corruptions (speckle, Gaussian blur, spatter, saturate) are
    reported apart in `extras_table`, never in the mean.

    Args:
        model: classifier returning logits.
        dataset: "cifar10", "cifar100" or "tinyimagenet" (or "synthetic" with source="generate").
        data_dir: data directory holding `<dataset>-c/` (and the clean set for generation).
        corruptions: benchmark corruptions (default the 15).
        severities: severities (default 1..5).
        n_examples: first n images per block (RobustBench default: all 10,000).
        sample: evaluate a seeded random subset of k of those images per block and report a 95% CI.
        seed: seed of on-the-fly generation and of the sample.
        batch_size: images per forward pass.
        device: default the model's device.
        source: "disk" (official or regenerated -C set), "generate" (corrupt the clean test set on the
            fly, labelled as such), or "auto" (disk when the whole set is there, else generate).
        extras: evaluate the 4 held-out corruptions: None = when present on disk, True, False.
        clean: clean (images, labels) or a dataset to corrupt in "generate" mode (default: load the
            clean test split of `dataset`).
        progress: show a tqdm bar over the blocks.

    Returns:
        RobustResult (percentages, table, mean corruption error, optional CI).
    """
    names, severities = _checked_request(corruptions, severities, n_examples, sample)
    kind, label, notes = _resolve_source(source, dataset, data_dir, names)
    evaluated = names + _extra_names(extras, kind, dataset, data_dir, names)
    if kind == "disk":
        blocks = _disk_blocks(dataset, data_dir, evaluated, severities, n_examples, sample, seed)
    else:
        clean_set = _clean_nhwc(clean, dataset, data_dir, n_examples)
        quality = STORED_JPEG_QUALITY.get(dataset)
        blocks = _generated_blocks(clean_set, evaluated, severities, sample, seed, quality)
        label = _generated_label(dataset, seed)
    bar = progress_bar(len(evaluated) * len(severities), progress, unit="block")
    tally = _evaluate_blocks(model, blocks, names, batch_size, device, bar)
    summary = _summary(tally, names, evaluated[len(names) :], severities, sample)
    return RobustResult(dataset=dataset, source=label, sample=sample, seed=seed, notes=notes, **summary)


def _summary(
    tally: _Tally,
    names: Sequence[str],
    extra_names: Sequence[str],
    severities: Sequence[int],
    sample: Optional[int],
) -> Dict[str, Any]:
    """The RobustResult fields computed from a tally: tables, their mean, block size, 95% CI."""
    table = _table(tally.accuracy, names, severities)
    return {
        "robust_accuracy": float(table.values.mean()),
        "table": table,
        "extras_table": _table(tally.accuracy, extra_names, severities) if extra_names else None,
        "n_per_block": tally.n_block,
        "ci95": _confidence_interval(tally.correct, tally.total, sample, tally.population)
        if sample
        else None,
    }


def _confidence_interval(correct: int, total: int, k: int, population: int) -> Tuple[float, float]:
    """95% normal-approximation interval (percent) of the pooled sampled accuracy.

    Binomial standard error over all `total` sampled images, times the finite-population correction
    (n - k) / (n - 1) of drawing k of the n images of each block without replacement.
    """
    if total == 0:
        return (float("nan"), float("nan"))
    p = correct / total
    fpc = max(0.0, (population - k) / (population - 1)) if population > 1 else 0.0
    half = Z95 * math.sqrt(p * (1 - p) / total * fpc)
    return (100.0 * max(0.0, p - half), 100.0 * min(1.0, p + half))


def _table(
    accuracy: Dict[Tuple[str, int], float], names: Sequence[str], severities: Sequence[int]
) -> pd.DataFrame:
    data = [[accuracy[(c, s)] for s in severities] for c in names]
    frame = pd.DataFrame(data, index=pd.Index(list(names), name="corruption"), columns=list(severities))
    frame.columns.name = "severity"
    return frame


def accuracy_table(model: torch.nn.Module, **kwargs: Any) -> pd.DataFrame:
    """The corruption x severity accuracy table (%) of `robust_accuracy(model, **kwargs)` (15 x 5 default)."""
    return robust_accuracy(model, **kwargs).table


def corruption_error(
    table: pd.DataFrame,
    baseline_table: pd.DataFrame,
    clean: Optional[float] = None,
    baseline_clean: Optional[float] = None,
) -> Dict[str, Any]:
    """Corruption errors of a model relative to a baseline model (Hendrycks & Dietterich 2019).

    CE(f, c) = sum_s E(f, c, s) / sum_s E(base, c, s) and mCE = mean over corruptions; with clean
    accuracies, also relative CE(f, c) = sum_s [E(f,c,s) - E_clean(f)] / sum_s [E(base,c,s) - E_clean(base)].

    Args:
        table: accuracy table of the model (corruptions x severities, %).
        baseline_table: the baseline's table (same rows and columns), %.
        clean: the model's clean accuracy, % (optional).
        baseline_clean: the baseline's clean accuracy, % (optional).

    Returns:
        {"ce": Series, "mce": float, "relative_ce": Series or None, "relative_mce": float or None}
        (ratios, not percentages).
    """
    if list(table.index) != list(baseline_table.index) or list(table.columns) != list(baseline_table.columns):
        raise ValueError("the model and baseline tables must have the same corruptions and severities")
    errors = 100.0 - table
    base = 100.0 - baseline_table
    ce = errors.sum(axis=1) / base.sum(axis=1)
    result: Dict[str, Any] = {"ce": ce, "mce": float(ce.mean()), "relative_ce": None, "relative_mce": None}
    if clean is not None and baseline_clean is not None:
        rel = (errors - (100.0 - clean)).sum(axis=1) / (base - (100.0 - baseline_clean)).sum(axis=1)
        result["relative_ce"] = rel
        result["relative_mce"] = float(rel.mean())
    return result
