"""An in-memory image dataset: one uint8 tensor [N,3,H,W] plus int64 labels, the fast path for small sets.

Every loader in gearlib.data returns an `ImageDataset`, so training can move the whole set to the device once.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """A whole small dataset held as one uint8 NCHW tensor.

    Args:
        images: uint8 tensor [N, 3, H, W].
        labels: int64 tensor [N].
        classes: class names, index = label.
        source: a short description of where the data came from (shown in the book).
        transform: optional callable applied to the uint8 CHW image in `__getitem__` (per-sample path).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        source: str = "",
        transform=None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be a uint8 tensor [N,3,H,W], got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.classes: List[str] = list(classes)
        self.source = source
        self.transform = transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def tensors(self, device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images [N,3,H,W], int64 labels [N]), moved to `device` once (the fast path)."""
        if device is None:
            return self.images, self.labels
        return self.images.to(device), self.labels.to(device)

    def subset(self, indices: torch.Tensor, source_note: str = "") -> ImageDataset:
        """A new dataset with the rows `indices` (a view-free copy)."""
        note = f"{self.source}{source_note}"
        return ImageDataset(self.images[indices], self.labels[indices], self.classes, note, self.transform)

    def __repr__(self) -> str:
        return (
            f"ImageDataset(n={len(self)}, size={self.image_size}, classes={self.num_classes}, "
            f"source={self.source!r})"
        )


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Pick `n` indices with (nearly) equal counts per class, seeded, in sorted order."""
    total = labels.shape[0]
    if not 0 < n <= total:
        raise ValueError(f"subset must be between 1 and {total} (the dataset size), got {n}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(total, generator=g)
    classes = labels.unique()
    per_class = n // len(classes)
    chosen = []
    for c in classes:
        members = perm[labels[perm] == c]
        chosen.append(members[:per_class])
    picked = torch.cat(chosen)
    if picked.numel() < n:  # top up with the remaining shuffled indices
        mask = torch.ones(total, dtype=torch.bool)
        mask[picked] = False
        rest = perm[mask[perm]]
        picked = torch.cat([picked, rest[: n - picked.numel()]])
    return picked.sort().values


def train_val_split(
    dataset: ImageDataset, val_fraction: float, seed: int = 0
) -> Tuple[ImageDataset, ImageDataset]:
    """Split a dataset into seeded, class-stratified train and validation parts."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(len(dataset) * val_fraction)))
    val_idx = stratified_indices(dataset.labels, n_val, seed)
    mask = torch.ones(len(dataset), dtype=torch.bool)
    mask[val_idx] = False
    train_idx = mask.nonzero().flatten()
    return (
        dataset.subset(train_idx, f" (train part, seed {seed})"),
        dataset.subset(val_idx, f" (validation part {val_fraction:g}, seed {seed})"),
    )
