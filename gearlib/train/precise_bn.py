"""Precise BatchNorm statistics: re-estimate every BN layer's running mean and variance at the final weights.

During training, BN keeps exponential moving averages of batch statistics computed at earlier weights; over a
schedule of a few dozen steps those lag far behind the final network (book notes, "BatchNorm statistics after
short schedules"). Re-estimating them as a plain average over clean training batches removes the lag.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from gearlib.data import ImageDataset, to_float


def bn_layers(model: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    images: ImageDataset,
    batches: int,
    batch_size: int,
    device: Optional[torch.device] = None,
    seed: int = 0,
) -> int:
    """Replace the running statistics of every BN layer by their average over `batches` batches of clean
    `images` drawn in a seeded random order, forwarded in training mode; weights are not changed. Not in
    dataset order: image-folder datasets are sorted by class, and one-class batches give BN a per-batch
    variance far below the mixed batches of training.

    Args:
        model: the trained network (left in the mode it was in).
        images: training images (uint8 NCHW through `.tensors()`).
        batches: how many batches to average over (0: leave the model as it is).
        batch_size: images per batch, as in training (BN's statistics depend on it).
        device: where to forward (default: the model's device).
        seed: seeds the draw (runs pass their own seed, so ranks and re-runs use the same images).

    Returns:
        The number of images used.
    """
    layers = bn_layers(model)
    if batches <= 0 or not layers:
        return 0
    x, _ = images.tensors()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x = x[order[: batches * batch_size]]
    device = device or next(model.parameters()).device
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative moving average: the exact mean over the batches seen
    was_training = model.training
    model.train()
    try:
        for start in range(0, len(x), batch_size):
            model(to_float(x[start : start + batch_size]).to(device))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(was_training)
    return len(x)
