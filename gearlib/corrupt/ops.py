"""Batched numerical building blocks of the corruptions: per-image generators, filters, resampling, HSV.

Everything works on NumPy batches (N, H, W, C) so one call processes a whole chunk of images at once.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

#: One generator per image, or None for corruptions that draw no random numbers.
Rngs = Optional[List[np.random.Generator]]


def image_rngs(
    seed: int, corruption_id: int, severity: int, indices: Sequence[int]
) -> List[np.random.Generator]:
    """One NumPy generator per image, keyed by (seed, corruption id, severity, image index).

    Args:
        seed: the user's seed (a non-negative integer).
        corruption_id: index of the corruption in `CORRUPTIONS`.
        severity: 1..5.
        indices: the images' positions in the whole dataset (not in the batch).

    Returns:
        Generators whose streams do not depend on batch composition or processing order.
    """
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return [
        np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, corruption_id, severity, int(i)])))
        for i in indices
    ]


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float64 x in [0, 1]."""
    return images.astype(np.float64) / 255.0


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float x in [0, 1] -> uint8 by clip, scale by 255 and truncation (the reference's cast)."""
    return (np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def round_uint8(values: np.ndarray) -> np.ndarray:
    """float values on the 0..255 scale -> uint8 by rounding half up (what 8-bit codecs store)."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def gaussian_filter(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur of the spatial axes 1, 2 of a batch (N, H, W[, C]); sigma in pixels, 0 = identity."""
    if sigma <= 0:
        return x.astype(np.float64, copy=True)
    sigmas = [0.0, sigma, sigma] + [0.0] * (x.ndim - 3)
    return ndimage.gaussian_filter(x.astype(np.float64), sigmas, mode=mode, truncate=truncate)


def correlate2d(x: np.ndarray, kernel: np.ndarray, mode: str = "mirror") -> np.ndarray:
    """Correlate each image and channel of a batch (N, H, W, C) with a 2-D kernel (scipy border `mode`)."""
    rows, cols = np.nonzero(kernel)
    kernel = kernel[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]  # drop exact-zero margins
    return ndimage.correlate(x.astype(np.float64), kernel[None, :, :, None], mode=mode)


def zoom_taps(size: int, zoom: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation taps of the reference's "clipped zoom" along one axis.

    The central ceil(size / zoom) pixels are upsampled by `zoom` with linear interpolation (scipy's
    `ndimage.zoom`, order 1: output o reads input o * (in - 1) / (out - 1)), and the central `size`
    outputs are kept. Output i = (1 - frac[i]) * input[lo[i]] + frac[i] * input[hi[i]].

    Returns:
        (lo, hi, frac): int64, int64, float64 arrays of length `size`.
    """
    crop = int(math.ceil(size / zoom))
    top = (size - crop) // 2
    out = int(round(crop * zoom))
    trim = (out - size) // 2
    ratio = (crop - 1) / (out - 1) if out > 1 else 0.0
    lo = np.zeros(size, dtype=np.int64)
    frac = np.zeros(size)
    for row in range(size):
        coord = (row + trim) * ratio
        base = int(math.floor(coord))
        if base >= crop - 1:  # the last output lands on the last input (up to rounding)
            base, coord = crop - 1, float(crop - 1)
        lo[row], frac[row] = top + base, coord - base
    hi = np.minimum(lo + 1, size - 1)
    return lo, hi, frac


def zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """The clipped zoom along one axis as a (size x size) matrix A: a 2-D clipped zoom of X is A X A^T."""
    lo, hi, frac = zoom_taps(size, zoom)
    matrix = np.zeros((size, size))
    rows = np.arange(size)
    np.add.at(matrix, (rows, lo), 1.0 - frac)
    np.add.at(matrix, (rows, hi), frac)
    return matrix


def clipped_zoom(x: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom a batch (N, H, W[, C]) of square images by `zoom` about the centre, keeping the size.

    Computed with element-wise gathers (no matrix products), so every image's result is bit-identical
    whatever batch it is processed in.
    """
    x = x.astype(np.float64, copy=False)
    if zoom == 1:
        return x.copy()
    lo, hi, frac = zoom_taps(x.shape[1], zoom)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    rows = x[:, lo] * (1.0 - frac).reshape(shape) + x[:, hi] * frac.reshape(shape)
    shape = (1, 1, -1) + (1,) * (x.ndim - 3)
    return rows[:, :, lo] * (1.0 - frac).reshape(shape) + rows[:, :, hi] * frac.reshape(shape)


def _reflect101(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices without repeating the edge (cv2 BORDER_REFLECT_101, scipy "mirror")."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index > n - 1, period - index, index)


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices repeating the edge (scipy "reflect", half-sample symmetric)."""
    index = np.mod(index, 2 * n)
    return np.where(index >= n, 2 * n - 1 - index, index)


def _nearest(index: np.ndarray, n: int) -> np.ndarray:
    return np.clip(index, 0, n - 1)


BORDERS: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "reflect101": _reflect101,
    "reflect": _reflect,
    "nearest": _nearest,
}


def bilinear_sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, border: str) -> np.ndarray:
    """Sample a batch (N, H, W, C) at real coordinates (N, h, w) with bilinear interpolation.

    Args:
        images: float batch (N, H, W, C).
        rows, cols: sampling positions in pixels (row down, column right), one map per image.
        border: how neighbours outside the image are read: "reflect101", "reflect" or "nearest".

    Returns:
        float64 batch (N, h, w, C).
    """
    n, height, width, channels = images.shape
    fold = BORDERS[border]
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    fr = (rows - r0)[..., None]
    fc = (cols - c0)[..., None]
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    ra, rb = fold(r0, height), fold(r0 + 1, height)
    ca, cb = fold(c0, width), fold(c0 + 1, width)
    flat = images.reshape(n, height * width, channels)
    out_shape = rows.shape + (channels,)

    def gather(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        lin = (r * width + c).reshape(n, -1, 1)
        return np.take_along_axis(flat, lin, axis=1).reshape(out_shape)

    top = gather(ra, ca) * (1 - fc) + gather(ra, cb) * fc
    bottom = gather(rb, ca) * (1 - fc) + gather(rb, cb) * fc
    return top * (1 - fr) + bottom * fr


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    """One-sided Gaussian weights of ImageMagick's motion blur: 2*radius+1 taps, exp(-i^2/2sigma^2), sum 1."""
    taps = np.arange(2 * int(radius) + 1, dtype=np.float64)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def motion_offsets(radius: int, angles_deg: np.ndarray) -> np.ndarray:
    """Integer tap offsets (N, K, 2) as (dx, dy), y downwards: (ceil(i cos t - 1/2), ceil(i sin t - 1/2))."""
    taps = np.arange(2 * int(radius) + 1, dtype=np.float64)
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))[:, None]
    dx = np.ceil(taps[None] * np.cos(theta) - 0.5)
    dy = np.ceil(taps[None] * np.sin(theta) - 0.5)
    return np.stack([dx, dy], axis=-1).astype(np.int64)


def motion_blur(images: np.ndarray, radius: int, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """ImageMagick-style linear motion blur of a batch (N, H, W, C) on the 0..255 scale, one angle per image.

    output(p) = sum_i w_i * input(p + offset_i) with edge replication; the result is rounded to 8 bits.

    Args:
        images: batch (N, H, W, C), values 0..255.
        radius: kernel radius; 2*radius+1 taps.
        sigma: Gaussian fall-off of the tap weights, in taps.
        angles_deg: blur direction per image, degrees (N,).

    Returns:
        uint8 batch (N, H, W, C).
    """
    n, height, width, channels = images.shape
    weights = motion_kernel(radius, sigma)
    offsets = motion_offsets(radius, angles_deg)
    pad = len(weights)
    padded = np.pad(images.astype(np.float32), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    wide = width + 2 * pad
    flat = padded.reshape(n, -1, channels)
    rows, cols = np.mgrid[0:height, 0:width]
    base = ((rows + pad) * wide + (cols + pad)).reshape(1, -1)
    total = np.zeros((n, height * width, channels), dtype=np.float64)
    for tap, weight in enumerate(weights):
        shift = offsets[:, tap, 1] * wide + offsets[:, tap, 0]
        index = (base + shift[:, None])[..., None]
        total += weight * np.take_along_axis(flat, index, axis=1)
    return round_uint8(total.reshape(n, height, width, channels))


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """Hexcone HSV of RGB values in [0, 1] (last axis), H in [0, 1); grey pixels get H = S = 0."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    safe = np.where(delta == 0, 1.0, delta)
    s = np.where(v == 0, 0.0, delta / np.where(v == 0, 1.0, v))
    # When several channels tie for the maximum, the later one (blue, then green) wins, as in scikit-image.
    h = np.where(b == v, 4.0 + (r - g) / safe, np.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = np.where(delta == 0, 0.0, (h / 6.0) % 1.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_hsv` (H in [0, 1), S and V in [0, 1])."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    h6 = h * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    choices_r = [v, q, p, p, t, v]
    choices_g = [t, v, v, q, p, p]
    choices_b = [p, p, t, v, v, q]
    conds = [sector == k for k in range(6)]
    return np.stack(
        [np.select(conds, choices_r), np.select(conds, choices_g), np.select(conds, choices_b)], -1
    )
