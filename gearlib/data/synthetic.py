"""A deterministic, learnable 32x32 RGB 10-class dataset made in memory, for offline runs and fast tests.

Each class is a shape (disc, square, ring, cross, stripes...) with its own texture and colour family, drawn
at a random position, scale and colour jitter on a noisy textured background: easy, but not trivial.
"""

from __future__ import annotations

import functools
import math
from typing import Tuple

import torch

from gearlib.data.images import ImageDataset

SYNTHETIC_CLASSES = [
    "disc",
    "square",
    "ring",
    "cross",
    "h_stripes",
    "v_stripes",
    "diagonal",
    "triangle",
    "checker",
    "dots",
]


def _masks(kind: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Shape masks [N,H,W] for class ids `kind` with centred coordinates yy, xx and radius r."""
    rr = r[:, None, None]
    dist = torch.sqrt(yy**2 + xx**2)
    shapes = torch.stack(
        [
            dist < rr,  # disc
            (yy.abs() < rr * 0.8) & (xx.abs() < rr * 0.8),  # square
            (dist < rr) & (dist > rr * 0.55),  # ring
            ((yy.abs() < rr * 0.25) | (xx.abs() < rr * 0.25)) & (dist < rr * 1.1),  # cross
            (torch.sin(yy * 1.6) > 0) & (dist < rr * 1.2),  # horizontal stripes
            (torch.sin(xx * 1.6) > 0) & (dist < rr * 1.2),  # vertical stripes
            (torch.sin((xx + yy) * 1.2) > 0) & (dist < rr * 1.2),  # diagonal stripes
            (yy < rr * 0.7) & (yy > -rr) & (xx.abs() < (yy + rr) * 0.6),  # triangle
            ((torch.sin(xx * 1.3) * torch.sin(yy * 1.3)) > 0) & (dist < rr * 1.2),  # checker
            ((torch.sin(xx * 2.0) * torch.sin(yy * 2.0)) > 0.5) & (dist < rr * 1.2),  # dots
        ],
        dim=1,
    )
    return shapes[torch.arange(kind.shape[0]), kind]


def synthetic_tensors(
    n: int, num_classes: int = 10, size: int = 32, seed: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Make `n` images (uint8 [n,3,size,size]) and labels (int64 [n]) deterministically from `seed`.

    Args:
        n: number of images.
        num_classes: 2..10 classes (one shape each).
        size: image side in pixels.
        seed: the same seed always gives the same images.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 2 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must be in 2..{len(SYNTHETIC_CLASSES)}, got {num_classes}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.arange(size, dtype=torch.float32)
    centre = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * size * 0.3
    yy = coords[None, :, None] - centre[:, 0, None, None]
    xx = coords[None, None, :] - centre[:, 1, None, None]
    radius = size * (0.22 + 0.12 * torch.rand(n, generator=g))
    mask = _masks(labels, yy.expand(n, size, size), xx.expand(n, size, size), radius).float()
    # Class colour families on a hue circle, jittered per image; background colour independent of class.
    hue = labels.float() / num_classes * 2 * math.pi + 0.35 * torch.randn(n, generator=g)
    phase = torch.tensor([0.0, 2.1, 4.2])
    fg = 0.55 + 0.4 * torch.cos(hue[:, None] + phase[None, :])
    bg = 0.2 + 0.6 * torch.rand(n, 3, generator=g)
    texture = 0.08 * torch.randn(n, 1, size, size, generator=g)
    image = bg[:, :, None, None] * (1 - mask[:, None]) + fg[:, :, None, None] * mask[:, None] + texture
    image = image + 0.04 * torch.randn(n, 3, size, size, generator=g)
    images = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.long()


def load_synthetic(
    split: str, n: int = 0, num_classes: int = 10, size: int = 32, seed: int = 0
) -> ImageDataset:
    """The synthetic set as an ImageDataset; train and test use disjoint seeds (5,000 / 1,000 by default)."""
    n = n or (5000 if split == "train" else 1000)
    split_seed = seed * 2 + (0 if split == "train" else 1) + 12345
    images, labels = synthetic_tensors(n, num_classes, size, split_seed)
    return ImageDataset(
        images, labels, SYNTHETIC_CLASSES[:num_classes], f"synthetic {split} (in-memory, seed {seed})"
    )


@functools.lru_cache(maxsize=8)
def _cached_tensors(n: int, num_classes: int, size: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Generation takes seconds; keep recent sets (callers never modify the tensors in place)."""
    return synthetic_tensors(n, num_classes, size, seed)
