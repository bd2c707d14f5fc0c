"""What is known of each dataset without loading it: classes, image side, name of its corrupted set.

`dataset_info(name)` is re-exported by gearlib.data; the corrupted-set loaders read the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class DatasetInfo:
    """What training and evaluation need to know of a dataset without loading it."""

    name: str
    num_classes: int
    image_size: int
    corrupted: str  # display name of its corrupted test set


DATASETS: Dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", 10, 32, "CIFAR-10-C"),
        DatasetInfo("cifar100", 100, 32, "CIFAR-100-C"),
        DatasetInfo("tinyimagenet", 200, 64, "Tiny-ImageNet-C"),
        DatasetInfo("synthetic", 10, 32, "synthetic-C (generated)"),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """Number of classes, image size and corrupted-set name of a dataset; unknown names raise ValueError."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]
