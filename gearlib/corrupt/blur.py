"""Blur corruptions: defocus, glass, motion, zoom and Gaussian blur, batched over images.

Deterministic blurs ignore the generators; glass and motion blur draw from one generator per image.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from scipy import ndimage

from gearlib.corrupt import ops
from gearlib.corrupt.ops import Rngs, to_uint8, to_unit


def gaussian_blur(images: np.ndarray, sigma: float, rngs: Rngs = None) -> np.ndarray:
    """Gaussian blur (sigma in px, `nearest` border, 4-sigma truncation, channels not mixed)."""
    return to_uint8(ops.gaussian_filter(to_unit(images), sigma))


def defocus_kernel(radius: float, alias_sigma: float) -> np.ndarray:
    """Defocus kernel: normalised disk X^2 + Y^2 <= r^2 on a 17x17 grid, smoothed by a small Gaussian.

    Args:
        radius: disk radius r in pixels.
        alias_sigma: sigma of the 3x3 (5x5 when r > 8) anti-aliasing Gaussian.

    Returns:
        float64 kernel summing to 1.
    """
    half = 8 if radius <= 8 else int(np.ceil(radius))
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(ksize) - ksize // 2
    g = np.exp(-(taps**2) / (2.0 * alias_sigma**2))
    g /= g.sum()
    smooth = ndimage.correlate1d(disk, g, axis=0, mode="mirror")
    return ndimage.correlate1d(smooth, g, axis=1, mode="mirror")


def defocus_blur(images: np.ndarray, param: Tuple[float, float], rngs: Rngs = None) -> np.ndarray:
    """Defocus blur: correlation with `defocus_kernel(r, sigma)`, reflect-101 borders."""
    kernel = defocus_kernel(*param)
    return to_uint8(ops.correlate2d(to_unit(images), kernel, mode="mirror"))


def glass_shuffle(images: np.ndarray, max_shift: int, offsets: np.ndarray) -> np.ndarray:
    """The reference's local pixel shuffle, run for all images of the batch at once.

    Positions (h, w) are visited with h, then w, running from size - d down to d + 1; each takes the
    current value at (h + dy, w + dx), offsets in {-d, ..., d - 1}. The visit order is kept, so for d = 2
    sources that were already overwritten are read as such, exactly like the sequential reference.

    Args:
        images: uint8 batch (N, H, W, C), modified in a copy.
        max_shift: d.
        offsets: (N, L, L, 2) integer (dy, dx) per visited position, L = size - 2d, in visit order.

    Returns:
        The shuffled uint8 batch.
    """
    x = images.copy()
    n, size = x.shape[0], x.shape[1]
    positions = list(range(size - max_shift, max_shift, -1))
    batch = np.arange(n)
    for i, h in enumerate(positions):
        for j, w in enumerate(positions):
            x[:, h, w] = x[batch, h + offsets[:, i, j, 0], w + offsets[:, i, j, 1]]
    return x


def glass_blur(
    images: np.ndarray, param: Tuple[float, int, int], rngs: List[np.random.Generator]
) -> np.ndarray:
    """Glass blur: Gaussian blur -> uint8 (floor) -> `iterations` local shuffles -> Gaussian blur.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (sigma, max shift d, iterations).
        rngs: one generator per image (offsets drawn uniformly from {-d, ..., d-1}).
    """
    sigma, shift, iterations = param
    size = images.shape[1]
    steps = size - 2 * shift
    draws = np.stack([rng.integers(-shift, shift, size=(iterations, steps, steps, 2)) for rng in rngs])
    x = to_uint8(ops.gaussian_filter(to_unit(images), sigma))
    for it in range(iterations):
        x = glass_shuffle(x, shift, draws[:, it])
    return to_uint8(ops.gaussian_filter(to_unit(x), sigma))


def motion_blur(images: np.ndarray, param: Tuple[int, float], rngs: List[np.random.Generator]) -> np.ndarray:
    """Motion blur along a random direction theta ~ U(-45, 45) degrees per image; 8-bit result."""
    radius, sigma = param
    angles = np.array([rng.uniform(-45.0, 45.0) for rng in rngs])
    return ops.motion_blur(images, radius, sigma, angles)


def zoom_blur(images: np.ndarray, factors: Sequence[float], rngs: Rngs = None) -> np.ndarray:
    """Zoom blur: mean of the image and its clipped zooms by every factor z (bilinear)."""
    x = to_unit(images)
    total = x.copy()
    for z in factors:
        total += ops.clipped_zoom(x, z)
    return to_uint8(total / (len(factors) + 1))
