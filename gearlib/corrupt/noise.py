"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each takes a uint8 batch (N, H, W, 3), the severity's parameter and one generator per image.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

from gearlib.corrupt.ops import to_uint8, to_unit


def _per_image(rngs: List[np.random.Generator], draw: Callable, shape: Tuple[int, ...]) -> np.ndarray:
    """Stack one draw per image, each from that image's own generator."""
    return np.stack([draw(rng, shape) for rng in rngs]) if rngs else np.zeros((0,) + tuple(shape))


def gaussian_noise(images: np.ndarray, sigma: float, rngs: List[np.random.Generator]) -> np.ndarray:
    """Additive Gaussian noise: clip(x + sigma * z), z ~ N(0, 1) per pixel and channel, x in [0, 1]."""
    z = _per_image(rngs, lambda g, s: g.standard_normal(s), images.shape[1:])
    return to_uint8(to_unit(images) + sigma * z)


def shot_noise(images: np.ndarray, photons: float, rngs: List[np.random.Generator]) -> np.ndarray:
    """Photon (shot) noise: clip(Poisson(c * x) / c) with photon scale c."""
    x = to_unit(images)
    counts = np.stack([rng.poisson(xi * photons) for rng, xi in zip(rngs, x)]) if rngs else x
    return to_uint8(counts / photons)


def impulse_noise(images: np.ndarray, amount: float, rngs: List[np.random.Generator]) -> np.ndarray:
    """Salt-and-pepper noise: each value is hit with probability p and becomes 1 or 0 with equal odds."""
    u = _per_image(rngs, lambda g, s: g.random(s), images.shape[1:])
    x = to_unit(images)
    x = np.where(u < amount / 2, 1.0, np.where(u < amount, 0.0, x))
    return to_uint8(x)


def speckle_noise(images: np.ndarray, sigma: float, rngs: List[np.random.Generator]) -> np.ndarray:
    """Multiplicative noise: clip(x + x * sigma * z), z ~ N(0, 1)."""
    z = _per_image(rngs, lambda g, s: g.standard_normal(s), images.shape[1:])
    x = to_unit(images)
    return to_uint8(x + x * sigma * z)
