"""CIFAR-10 and CIFAR-100 from their official python-pickle layout or from image-folder copies.

The pickle reader follows the format torchvision reads (uint8 rows of 3x1024 planes); downloads go through
torchvision when a network is reachable.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch

from gearlib.data.folder import load_image_folder, repair_hint
from gearlib.data.images import ImageDataset

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

# Official layouts: folder name, files per split, label key, metadata file, md5 of each file.
LAYOUTS: Dict[str, dict] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "label_key": "labels",
        "meta": ("batches.meta", "label_names"),
        "md5": {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "label_key": "fine_labels",
        "meta": ("meta", "fine_label_names"),
        "md5": {
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
            "meta": "7973b15100ade9c7d40fb424638fde48",
        },
    },
}

VERIFY_MODES = ("strict", "warn", "off")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpickle(path: Path) -> Dict[str, object]:
    """Read one CIFAR pickle; accept both str and bytes keys (Python-2 protocol-2 pickles)."""
    try:
        with open(path, "rb") as handle:
            raw = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path} is not a readable CIFAR pickle ({type(err).__name__}: {err}); "
            f"the file is corrupted or truncated: delete it and download the dataset again"
        ) from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} does not hold a CIFAR batch dictionary (got {type(raw).__name__})")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _check(path: Path, expected: str, verify: str) -> None:
    if verify == "off":
        return
    actual = _md5(path)
    if actual != expected:
        message = f"{path}: md5 {actual} does not match the official {expected}"
        if verify == "strict":
            raise ValueError(message + " (pass verify='off' for a modified or test copy)")
        warnings.warn(message, stacklevel=3)


def load_cifar_pickle(root: Path, name: str, split: str, verify: str = "strict") -> ImageDataset:
    """Load CIFAR-10/100 from `root/<official folder>/` (python-pickle layout).

    Args:
        root: the dataset folder, e.g. `<data_dir>/cifar10`.
        name: "cifar10" or "cifar100".
        split: "train" or "test".
        verify: md5 checking of each file: "strict" (refuse), "warn" or "off".

    Returns:
        An ImageDataset with uint8 [N,3,32,32] images in the files' order.
    """
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    layout = LAYOUTS[name]
    folder = root / layout["folder"]
    rows: List[np.ndarray] = []
    labels: List[int] = []
    for file_name in layout[split]:
        path = folder / file_name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the CIFAR pickle layout in {folder}")
        _check(path, layout["md5"][file_name], verify)
        batch = _unpickle(path)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            batch_labels = list(batch[layout["label_key"]])
        except KeyError as err:
            raise ValueError(f"{path} lacks the key {err} of the CIFAR format") from err
        if data.ndim != 2 or data.shape[1] != 3072 or len(batch_labels) != data.shape[0]:
            raise ValueError(f"{path}: expected data of shape (n, 3072) and n labels, got {data.shape}")
        rows.append(data)
        labels.extend(int(v) for v in batch_labels)
    meta_file, meta_key = layout["meta"]
    meta_path = folder / meta_file
    if meta_path.is_file():
        _check(meta_path, layout["md5"][meta_file], verify)
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(meta_path)[meta_key]]
    elif name == "cifar10":
        classes = list(CIFAR10_CLASSES)
    else:
        classes = [str(i) for i in range(100)]
    images = torch.from_numpy(np.concatenate(rows).reshape(-1, 3, 32, 32).copy())
    source = f"{name} {split} (official pickles in {folder})"
    return ImageDataset(images, torch.tensor(labels, dtype=torch.long), classes, source)


def has_pickle_layout(root: Path, name: str) -> bool:
    return (root / LAYOUTS[name]["folder"]).is_dir()


def has_folder_layout(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def load_cifar(root: Path, name: str, split: str, verify: str = "strict") -> ImageDataset:
    """Load CIFAR from whichever layout `root` holds: official pickles first, then class folders."""
    if has_pickle_layout(root, name):
        return load_cifar_pickle(root, name, split, verify)
    dataset = load_image_folder(root / split, size=32, name=f"{name} {split}", repair=repair_hint(name, root))
    if name == "cifar10" and dataset.classes != CIFAR10_CLASSES:
        raise ValueError(
            f"{root / split} has class folders {dataset.classes}, expected the CIFAR-10 classes "
            f"{CIFAR10_CLASSES}"
        )
    return dataset


def download_cifar(root: Path, name: str) -> Tuple[Path, str]:
    """Download the official archive with torchvision (network needed) into `root`; returns (folder, md5)."""
    from torchvision import datasets  # lazy: only a download needs torchvision, a slow import

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    root.mkdir(parents=True, exist_ok=True)
    cls(str(root), train=True, download=True)
    cls(str(root), train=False, download=True)
    return root / LAYOUTS[name]["folder"], "verified by torchvision"
