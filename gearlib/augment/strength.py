"""How strongly an augmentation changes an image: the mean absolute pixel change of its views against the
clean image and the share of pixel values pushed to black or white (chapter 9, PRIME's view strength).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch

from gearlib.augment.factory import make_augment


def saturated_share(x: torch.Tensor) -> float:
    """Percentage of the values of a [0, 1] float tensor that sit at 0 or 1."""
    return 100.0 * float(((x <= 0) | (x >= 1)).float().mean())


def view_strength(images: torch.Tensor, names: Sequence[str], seed: int = 0) -> Dict[str, Dict[str, float]]:
    """{"clean" and each augmentation name: {"mean |view - clean|", "saturated (%)"}} on float [0, 1] images.

    Each augmentation draws its views (the clean first view excluded) from its own generator seeded with
    `seed`, so that one name's numbers do not depend on which names come before it."""
    if images.dtype == torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"images must be a float NCHW batch in [0, 1], got {images.dtype} of shape {tuple(images.shape)}; "
            "convert uint8 images with gearlib.data.to_float"
        )
    table = {"clean": {"mean |view - clean|": 0.0, "saturated (%)": saturated_share(images)}}
    for name in names:
        augment = make_augment(name)
        if augment.num_views < 2:
            raise ValueError(f"augmentation {name!r} makes no augmented view; pick one with views >= 2")
        views = augment(images, generator=torch.Generator().manual_seed(seed))[1:]
        change = torch.stack([(v - images).abs().mean() for v in views]).mean()
        share = sum(saturated_share(v) for v in views) / len(views)
        table[name] = {"mean |view - clean|": float(change), "saturated (%)": share}
    return table
