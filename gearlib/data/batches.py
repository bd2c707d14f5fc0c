"""Batch sources that keep a whole dataset as uint8 on the training device and augment whole batches there.

`TensorBatches` is the standard training source (shuffle, random crop with padding 4, flip, optional
multi-view augmentation); `eval_batches` walks a tensor dataset in order for evaluation.
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F

Augment = Callable[..., List[torch.Tensor]]


def random_crop_flip(
    images: torch.Tensor, padding: int = 4, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Random crop (zero padding `padding`) and horizontal flip of a whole NCHW batch, per-sample.

    Random numbers come from `generator` (a CPU generator) so results do not depend on the device.
    """
    n, _, h, w = images.shape
    device = images.device
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).to(device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(device)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[:, 0, None] + torch.arange(h, device=device)  # [n, h]
    cols = offsets[:, 1, None] + torch.arange(w, device=device)  # [n, w]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch_idx = torch.arange(n, device=device)[:, None, None, None]
    chan_idx = torch.arange(images.shape[1], device=device)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows[:, None, :, None], cols[:, None, None, :]]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0,255] -> float32 [0,1]; float input is returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


class TensorBatches:
    """One epoch of shuffled training batches per iteration, built on the device that holds the data.

    Args:
        images: uint8 [N,3,H,W] (any device; batches are made on that device).
        labels: int64 [N].
        batch_size: images per step (B). If N < B, one batch of N.
        augment: optional `fn(x_float, generator=g) -> list of views` (clean view first); the views are
            concatenated, so a step sees J*B images for J views.
        crop_flip: apply the clean pipeline (random crop 32 with padding 4, then flip) before `augment`.
        generator: CPU generator for shuffling and augmentation; seeded -> reproducible epochs.
        drop_last: drop the last incomplete batch (keeps BatchNorm statistics well-behaved).
        shard: (rank, world size) of a distributed run: each step of the epoch is a global batch of
            world * B images and this rank yields its B (the DistributedSampler's split, one per step).
        order_generator: CPU generator of the shuffle alone, the same seed on every rank (so the ranks
            agree on the epoch's order); default `generator` (one stream, as in a single process).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        augment: Optional[Augment] = None,
        crop_flip: bool = True,
        generator: Optional[torch.Generator] = None,
        drop_last: bool = True,
        max_batches: Optional[int] = None,
        shard: Tuple[int, int] = (0, 1),
        order_generator: Optional[torch.Generator] = None,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
            raise ValueError(
                f"need as many labels as images (>0), got {images.shape[0]} and {labels.shape[0]}"
            )
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
        self.images = images
        self.labels = labels
        self.rank, self.world = int(shard[0]), int(shard[1])
        self.batch_size = min(batch_size, max(1, images.shape[0] // self.world))
        self.augment = augment
        self.crop_flip = crop_flip
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.drop_last = drop_last
        self.max_batches = max_batches
        self.order_generator = order_generator

    def __len__(self) -> int:
        n, step = self.images.shape[0], self.batch_size * self.world
        steps = n // step if self.drop_last or self.world > 1 else -(-n // step)
        return min(steps, self.max_batches) if self.max_batches else steps

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        shuffle = self.order_generator if self.order_generator is not None else self.generator
        order = torch.randperm(self.images.shape[0], generator=shuffle).to(self.images.device)
        for step in range(len(self)):
            start = (step * self.world + self.rank) * self.batch_size
            idx = order[start : start + self.batch_size]
            yield self.make_batch(self.images[idx], self.labels[idx])

    def make_batch(self, images: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Clean pipeline, float conversion and the multi-view augmentation for one batch."""
        if self.crop_flip:
            images = random_crop_flip(images, generator=self.generator)
        x = to_float(images)
        if self.augment is not None:
            views = self.augment(x, generator=self.generator)
            x = torch.cat(list(views), dim=0) if len(views) > 1 else views[0]
        return x, labels

    def state_dict(self) -> dict:
        """The random state, so an interrupted run can resume the exact same batches."""
        state = {"generator": self.generator.get_state()}
        if self.order_generator is not None:
            state["order_generator"] = self.order_generator.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        if self.order_generator is not None and state.get("order_generator") is not None:
            self.order_generator.set_state(state["order_generator"])


def eval_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512, device: Optional[torch.device] = None
) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Walk a tensor dataset in order: (float [0,1] batch, labels), moved to `device` batch by batch."""
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        if device is not None:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        yield to_float(x), y
