"""Datasets by name, real on-disk layouts, and device-resident batch sources for fast training.

`load_dataset("cifar10" | "cifar100" | "tinyimagenet" | "synthetic", split, data_dir, subset, ...)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

from gearlib.data import cifar, tinyimagenet
from gearlib.data.batches import TensorBatches, eval_batches, random_crop_flip, to_float
from gearlib.data.corrupted import load_corrupted
from gearlib.data.images import ImageDataset, stratified_indices, train_val_split
from gearlib.data.info import DATASETS, DatasetInfo, dataset_info
from gearlib.data.paths import (
    HOW_TO_GET,
    DatasetNotFoundError,
    PathLike,
    dataset_dir,
    resolve_data_dir,
)
from gearlib.data.synthetic import SYNTHETIC_CLASSES, load_synthetic, synthetic_tensors

SPLITS = ("train", "val", "test")

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageDataset",
    "SYNTHETIC_CLASSES",
    "TensorBatches",
    "dataset_info",
    "download",
    "eval_batches",
    "find_dataset",
    "load_corrupted",
    "load_dataset",
    "random_crop_flip",
    "resolve_data_dir",
    "stratified_indices",
    "synthetic_tensors",
    "to_float",
    "train_val_split",
]


def find_dataset(name: str, data_dir: Optional[PathLike] = None) -> Tuple[Path, str]:
    """Locate a dataset on disk: (folder, layout) or DatasetNotFoundError listing where we looked."""
    dataset_info(name)
    root = dataset_dir(name, data_dir)
    if name in ("cifar10", "cifar100"):
        if cifar.has_pickle_layout(root, name):
            return root, "official python pickles"
        if cifar.has_folder_layout(root):
            return root, "image folders (train/<class>, test/<class>)"
        looked = [root / cifar.LAYOUTS[name]["folder"], root / "train", root / "test"]
    elif name == "tinyimagenet":
        if tinyimagenet.has_layout(root):
            return tinyimagenet.find_root(root), "official tiny-imagenet-200 folders"
        looked = [root / tinyimagenet.FOLDER / "wnids.txt", root / "wnids.txt"]
    else:
        return Path("<memory>"), "generated in memory"
    raise DatasetNotFoundError(name, looked, HOW_TO_GET[name])


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: Optional[PathLike] = None,
    subset: Optional[int] = None,
    seed: int = 0,
    val_fraction: Optional[float] = None,
    verify: str = "strict",
    download: bool = False,
) -> ImageDataset:
    """Load a dataset by name as an in-memory ImageDataset (uint8 [N,3,H,W] + int64 labels).

    Args:
        name: "cifar10", "cifar100", "tinyimagenet" or "synthetic".
        split: "train", "test", or "val" (a seeded, stratified part of train of size `val_fraction`,
            default 0.1; when `val_fraction` is given, "train" leaves those images out). Tiny ImageNet's
            labelled "val" folder serves as its test split.
        data_dir: folder holding `<name>/`; default $GEARLIB_DATA, then ./data.
        subset: keep this many images (class-stratified, seeded) after splitting.
        seed: seed of the subset and validation choices.
        verify: md5 checking of official CIFAR pickles: "strict", "warn" or "off".
        download: fetch the official CIFAR archive through torchvision when missing (needs a network).
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    base_split = "test" if split == "test" else "train"
    if name == "synthetic":
        dataset = load_synthetic(base_split, num_classes=info.num_classes, seed=0)
    else:
        dataset = _load_from_disk(name, base_split, data_dir, verify, download)
    if split == "val" or val_fraction is not None:
        train_part, val_part = train_val_split(dataset, val_fraction or 0.1, seed)
        dataset = val_part if split == "val" else train_part
    if subset is not None:
        if subset <= 0:
            raise ValueError(f"subset must be a positive number of images, got {subset}")
        if subset < len(dataset):
            dataset = dataset.subset(
                stratified_indices(dataset.labels, subset, seed), f", subset of {subset} (seed {seed})"
            )
    return dataset


def _load_from_disk(name: str, split: str, data_dir: Optional[PathLike], verify: str, download: bool):
    try:
        root, _ = find_dataset(name, data_dir)
    except DatasetNotFoundError:
        if not (download and name in cifar.LAYOUTS):
            raise
        root = dataset_dir(name, data_dir)
        cifar.download_cifar(root, name)
    if name == "tinyimagenet":
        return tinyimagenet.load_tinyimagenet(root, split)
    return cifar.load_cifar(root, name, split, verify)


def download(name: str, data_dir: Optional[PathLike] = None) -> Path:
    """Download CIFAR-10/100 into `<data_dir>/<name>/` with torchvision (network needed)."""
    if name not in cifar.LAYOUTS:
        raise ValueError(
            f"automatic download covers {', '.join(cifar.LAYOUTS)}; for {name}: {HOW_TO_GET.get(name)}"
        )
    folder, _ = cifar.download_cifar(dataset_dir(name, data_dir), name)
    return folder


def available_datasets(data_dir: Optional[PathLike] = None) -> List[Tuple[str, str]]:
    """(name, where/why) for every known dataset: the layout found, or 'missing'."""
    found = []
    for name in DATASETS:
        try:
            folder, layout = find_dataset(name, data_dir)
            found.append((name, f"{layout} at {folder}"))
        except DatasetNotFoundError:
            found.append((name, f"missing (looked in {dataset_dir(name, data_dir)})"))
    return found
