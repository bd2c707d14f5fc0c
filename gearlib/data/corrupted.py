"""Loaders of the corrupted test sets CIFAR-10-C, CIFAR-100-C and Tiny-ImageNet-C, official or regenerated.

CIFAR sets are `<corruption>.npy` (5n, 32, 32, 3) uint8 with severities stacked 1..5 plus `labels.npy`, read
through a memory map so one severity block costs one block of I/O; Tiny-ImageNet-C is JPEG folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from gearlib.data.cifar import CIFAR10_CLASSES
from gearlib.data.corruption_names import CORRUPTIONS, check_corruption, check_severity
from gearlib.data.folder import decode_images
from gearlib.data.images import ImageDataset
from gearlib.data.info import DATASETS
from gearlib.data.paths import DatasetNotFoundError, PathLike, dataset_dir, resolve_data_dir
from gearlib.data.tinyimagenet import find_root, read_wnids

METADATA = "metadata.json"
LABELS = "labels.npy"
DEFAULT_SEVERITIES = (1, 2, 3, 4, 5)

# The sets published on Zenodo: name -> (record, archive). Only these exist on disk.
ZENODO = {
    "cifar10": ("2535967", "CIFAR-10-C.tar"),
    "cifar100": ("3555552", "CIFAR-100-C.tar"),
    "tinyimagenet": ("2536630", "Tiny-ImageNet-C.tar"),
}
# name -> (folder under the data directory, folder inside the official archive (the set's display name),
# image side, classes)
LAYOUTS: Dict[str, Tuple[str, str, int, int]] = {
    name: (f"{name}-c", DATASETS[name].corrupted, DATASETS[name].image_size, DATASETS[name].num_classes)
    for name in ZENODO
}
TINY_SUFFIXES = (".jpeg", ".jpg", ".png")


class CorruptedDataset(ImageDataset):
    """One (corruption, severity) block of a corrupted test set, held in memory as uint8 NCHW.

    Attributes beyond ImageDataset: `corruption`, `severity`, `origin` ("official" or
    "regenerated (seed k, ...)"), `root` (the folder it came from).
    """

    def __init__(self, images, labels, classes, corruption: str, severity: int, origin: str, root: Path):
        super().__init__(images, labels, classes, f"{corruption} s{severity} ({origin}) from {root}")
        self.corruption = corruption
        self.severity = severity
        self.origin = origin
        self.root = root


def _how_to_get(name: str, target: Path) -> str:
    record, archive = ZENODO[name]
    return (
        f"download {archive} from Zenodo record {record} (https://zenodo.org/record/{record}) and unpack it "
        f"into {target}, or generate a local stand-in (labelled 'regenerated') with "
        f"`gearlib corrupt --dataset {name} --out {target}`"
    )


def _is_root(folder: Path, name: str) -> bool:
    if (folder / LABELS).is_file():
        return True
    if name == "tinyimagenet" and folder.is_dir():
        return any((folder / c).is_dir() for c in CORRUPTIONS)
    return False


def find_corrupted(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """The folder holding corrupted set `name`: `<data_dir>/<name>-c/` or the archive folder inside it.

    Raises:
        DatasetNotFoundError (a FileNotFoundError) listing the places looked at and how to get the set.
    """
    if name not in LAYOUTS:
        raise ValueError(f"unknown corrupted dataset {name!r}; choose one of {', '.join(LAYOUTS)}")
    folder, archive, _, _ = LAYOUTS[name]
    base = resolve_data_dir(data_dir)
    candidates = [base / folder, base / folder / archive, base / archive]
    for candidate in candidates:
        if _is_root(candidate, name):
            return candidate
    raise DatasetNotFoundError(f"{name}-c", candidates, _how_to_get(name, base / folder))


def read_metadata(root: Path) -> Optional[dict]:
    """The metadata.json of a generated set, or None for an official set."""
    path = root / METADATA
    if not path.is_file():
        return None
    with open(path) as handle:
        return json.load(handle)


def _origin(meta: Optional[dict]) -> str:
    if meta is None:
        return "official"
    frost = meta.get("backends", {}).get("frost", "")
    tag = ", frost=synthetic" if frost.startswith("synthetic") else ""
    return f"regenerated (seed {meta.get('seed')}, gearlib {meta.get('gearlib_version')}{tag})"


def _check_request(corruption: str, severity: int, n_examples: Optional[int]) -> None:
    check_corruption(corruption)
    check_severity(severity)
    if n_examples is not None and (isinstance(n_examples, bool) or int(n_examples) <= 0):
        raise ValueError(
            f"n_examples must be a positive number of images (or None for all), got {n_examples}"
        )


def _class_names(name: str, count: int) -> List[str]:
    if name == "cifar10":
        return list(CIFAR10_CLASSES)
    return [str(k) for k in range(count)]


def load_npy_block(
    root: Path, corruption: str, severity: int, n_examples: Optional[int] = None, image_size: int = 32
) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Read one severity block from the official `.npy` layout through a memory map.

    Args:
        root: folder with `<corruption>.npy` and `labels.npy`.
        corruption, severity: the block.
        n_examples: first n images of the block (None: all).
        image_size: expected side (32 for CIFAR).

    Returns:
        (uint8 images (k, H, W, 3), int64 labels (k,), info dict with n, severities, metadata).
    """
    meta = read_metadata(root)
    severities = list(meta.get("severities", DEFAULT_SEVERITIES)) if meta else list(DEFAULT_SEVERITIES)
    if severity not in severities:
        raise ValueError(f"{root} holds severities {severities} only, not {severity}")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        present = sorted(p.stem for p in root.glob("*.npy") if p.name != LABELS)
        raise FileNotFoundError(
            f"{path} is missing; {root} holds: {', '.join(present) or 'no corruption files'}"
        )
    labels = np.load(root / LABELS, mmap_mode="r")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{root / LABELS} must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) == 0 or len(labels) % len(severities):
        raise ValueError(
            f"{root / LABELS} has {len(labels)} entries: not {len(severities)} equal severity blocks"
        )
    data = np.load(path, mmap_mode="r")
    expected = (len(labels), image_size, image_size, 3)
    if data.dtype != np.uint8 or data.shape != expected:
        raise ValueError(
            f"{path} must be uint8 of shape {expected} (severity blocks stacked 1..5, HWC RGB), "
            f"got {data.dtype} {data.shape}"
        )
    n = len(labels) // len(severities)
    k = n if n_examples is None else int(n_examples)
    if k > n:
        raise ValueError(f"n_examples={k} exceeds the {n} images per severity block of {path}")
    blocks = np.asarray(labels).reshape(len(severities), n)
    if not (blocks == blocks[:1]).all():
        raise ValueError(f"{root / LABELS} is not one label vector tiled per severity block")
    start = severities.index(severity) * n
    images = np.array(data[start : start + k])  # copies just this block out of the memory map
    return images, blocks[0, :k].astype(np.int64), {"n": n, "severities": severities, "metadata": meta}


def _tiny_wnids(root: Path, folder: Path, data_dir: Optional[PathLike]) -> List[str]:
    """Sorted wnid list: from wnids.txt (next to the -C set or in the Tiny ImageNet folder) or the folders."""
    places = [root, dataset_dir("tinyimagenet", data_dir)]
    for place in places:
        base = find_root(place)
        if (base / "wnids.txt").is_file():
            return read_wnids(base)
    return sorted(d.name for d in folder.iterdir() if d.is_dir())


def load_tiny_block(
    root: Path, corruption: str, severity: int, n_examples: Optional[int], data_dir: Optional[PathLike] = None
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Read `<root>/<corruption>/<severity>/<wnid>/*.JPEG`; label = rank of the wnid in the sorted wnid list.

    Images are ordered round-robin over classes (k-th image of every class, then the (k+1)-th), so the
    first `n_examples` are class-balanced. File names are never parsed.
    """
    folder = root / corruption / str(severity)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing (expected <corruption>/<severity>/<wnid>/*.JPEG)")
    wnids = _tiny_wnids(root, folder, data_dir)
    index = {w: i for i, w in enumerate(wnids)}
    per_class: List[List[Path]] = []
    class_ids: List[int] = []
    for sub in sorted(d for d in folder.iterdir() if d.is_dir()):
        if sub.name not in index:
            raise ValueError(f"{sub} is not a known wnid (wnids.txt lists {len(wnids)} others)")
        per_class.append(sorted(p for p in sub.iterdir() if p.suffix.lower() in TINY_SUFFIXES))
        class_ids.append(index[sub.name])
    order = [(rank, c) for c, files in enumerate(per_class) for rank in range(len(files))]
    order.sort()
    if not order:
        raise FileNotFoundError(f"{folder} holds no images")
    if n_examples is not None:
        if n_examples > len(order):
            raise ValueError(f"n_examples={n_examples} exceeds the {len(order)} images in {folder}")
        order = order[: int(n_examples)]
    paths = [per_class[c][rank] for rank, c in order]
    labels = np.array([class_ids[c] for _, c in order], dtype=np.int64)
    return decode_images(paths, size=64), labels, wnids


def load_corrupted(
    name: str,
    corruption: str,
    severity: int,
    data_dir: Optional[PathLike] = None,
    n_examples: Optional[int] = None,
) -> CorruptedDataset:
    """Load one (corruption, severity) block of CIFAR-10-C, CIFAR-100-C or Tiny-ImageNet-C.

    Args:
        name: "cifar10", "cifar100" or "tinyimagenet".
        corruption: one of gearlib.data.corruption_names.CORRUPTIONS (file stem, e.g. "gaussian_noise").
        severity: 1..5.
        data_dir: folder holding `<name>-c/`; default $GEARLIB_DATA, then ./data.
        n_examples: keep the first n images of the block (RobustBench's protocol); None = all.

    Returns:
        A CorruptedDataset (uint8 [N,3,H,W] + int64 labels; `.tensors()` gives both).
    """
    _check_request(corruption, severity, n_examples)
    root = find_corrupted(name, data_dir)
    _, _, size, num_classes = LAYOUTS[name]
    meta = read_metadata(root)
    if (root / f"{corruption}.npy").is_file() or name != "tinyimagenet":
        images, labels, _ = load_npy_block(root, corruption, severity, n_examples, size)
        classes: Sequence[str] = _class_names(name, num_classes)
    else:
        images, labels, classes = load_tiny_block(root, corruption, severity, n_examples, data_dir)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"labels of {root} fall outside 0..{len(classes) - 1} for {name}")
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return CorruptedDataset(
        tensor, torch.from_numpy(labels), classes, corruption, int(severity), _origin(meta), root
    )


def available_corruptions(name: str, data_dir: Optional[PathLike] = None) -> List[str]:
    """Corruptions present on disk for `name`, in canonical order (empty when the set is missing)."""
    try:
        root = find_corrupted(name, data_dir)
    except FileNotFoundError:
        return []
    return [c for c in CORRUPTIONS if (root / f"{c}.npy").is_file() or (root / c).is_dir()]
