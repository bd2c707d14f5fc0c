"""The reference-style input pipeline: per-sample torchvision transforms in DataLoader worker processes.

It is what most training scripts do (and what the paper's timings include); gearlib's runner offers it as
`--set loader=per-sample` so `gearlib bench train` can measure the batched on-device pipeline against it.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader, Dataset


class _ViewsDataset(Dataset):
    """Per-sample clean crop/flip, then `views - 1` torchvision AugMix draws (clean view first)."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, views: int, width: int, depth: int, single: bool
    ) -> None:
        from torchvision.transforms import v2  # lazy: torchvision is slow to import; only this path uses it

        self.images = images.cpu()
        self.labels = labels.cpu()
        self.views = views
        self.single_augmented = single
        size = images.shape[-1]
        self.clean = v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()])
        self.augmix = v2.AugMix(severity=3, mixture_width=width, chain_depth=depth, alpha=1.0, all_ops=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        image = self.clean(self.images[index])
        if self.views == 1 and self.single_augmented:
            return self.augmix(image)[None], int(self.labels[index])
        views: List[torch.Tensor] = [image]
        for _ in range(self.views - 1):
            views.append(self.augmix(image))
        return torch.stack(views), int(self.labels[index])


class PerSampleBatches:
    """A batch source with the same contract as TensorBatches, built from a DataLoader with workers.

    Args:
        images, labels: the uint8 dataset (kept on the CPU, as a reference pipeline would).
        batch_size: images per step.
        views: J, the number of views per sample (1 = clean only; 3 = clean + 2 AugMix; 4 = ERA-like).
        width, depth: torchvision AugMix mixture width and chain depth (-1 = random 1..3).
        single_augmented: with views == 1, return one augmented view instead of the clean one (J = 0).
        num_workers: DataLoader worker processes.
        device: where batches are moved for the model.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        views: int = 1,
        width: int = 3,
        depth: int = -1,
        single_augmented: bool = False,
        num_workers: int = 2,
        device: Optional[torch.device] = None,
        seed: int = 0,
    ) -> None:
        self.dataset = _ViewsDataset(images, labels, views, width, depth, single_augmented)
        self.batch_size = min(batch_size, images.shape[0])
        self.num_workers = num_workers
        self.device = device
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        self.epoch += 1
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            generator=g,
            persistent_workers=False,
        )
        for stacked, y in loader:  # stacked: [B, J, 3, H, W] uint8
            x = stacked.transpose(0, 1).reshape(-1, *stacked.shape[2:])
            if self.device is not None:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield x.float().div_(255.0), y

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
