"""Digital corruptions: contrast, elastic transform, pixelate, JPEG compression, and saturate.

Pixelate and JPEG use Pillow (BOX resampling, libjpeg defaults with 4:2:0 chroma) like the reference.
"""

from __future__ import annotations

import io
from typing import List, Tuple

import numpy as np
from PIL import Image

from gearlib.corrupt import ops
from gearlib.corrupt.ops import Rngs, to_uint8, to_unit


def contrast(images: np.ndarray, factor: float, rngs: Rngs = None) -> np.ndarray:
    """Contrast: clip((x - mu_c) * c + mu_c), mu_c the per-image mean of each channel."""
    x = to_unit(images)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return to_uint8((x - mean) * factor + mean)


def saturate(images: np.ndarray, param: Tuple[float, float], rngs: Rngs = None) -> np.ndarray:
    """Saturate: S <- clip(S * k + b) in hexcone HSV."""
    k, b = param
    hsv = ops.rgb_to_hsv(to_unit(images))
    hsv[..., 1] = np.clip(hsv[..., 1] * k + b, 0, 1)
    return to_uint8(ops.hsv_to_rgb(hsv))


def affine_anchors(size: int) -> np.ndarray:
    """The three (x, y) anchor points of the elastic transform's random affine: (26,26), (26,6), (6,6) at 32 px."""
    centre = size // 2
    side = size // 3
    return np.array(
        [[centre + side, centre + side], [centre + side, centre - side], [centre - side, centre - side]],
        dtype=np.float64,
    )


def affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M with M @ [x, y, 1] = dst for the three src points (x, y)."""
    design = np.concatenate([src, np.ones((3, 1))], axis=1)
    return np.linalg.solve(design, dst).T


def elastic_transform(images: np.ndarray, param: Tuple[float, float, float], rngs: List[np.random.Generator]):
    """Elastic transform: a random affine warp, then a smooth random displacement field.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (alpha, sigma, jitter) in pixels: displacement scale, its smoothing sigma, and the
            uniform jitter U(-j, j) of each affine anchor coordinate.
        rngs: one generator per image (jitter (3, 2), then U(-1, 1) noise for dx, then for dy).

    Returns:
        uint8 batch.
    """
    alpha, sigma, jitter = param
    n, size = images.shape[0], images.shape[1]
    x = to_unit(images)
    anchors = affine_anchors(size)
    shifts, noise_x, noise_y = [], [], []
    for rng in rngs:
        shifts.append(rng.uniform(-jitter, jitter, size=(3, 2)))
        noise_x.append(rng.uniform(-1, 1, size=(size, size)))
        noise_y.append(rng.uniform(-1, 1, size=(size, size)))
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    # (1) affine: output pixel (x, y) reads the input at inverse(M) (x, y), M mapping anchors -> jittered.
    src_rows = np.empty((n, size, size))
    src_cols = np.empty((n, size, size))
    for k in range(n):
        inverse = affine_from_points(anchors + shifts[k], anchors)
        src_cols[k] = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
        src_rows[k] = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
    x = ops.bilinear_sample(x, src_rows, src_cols, "reflect101")
    # (2) displacement: dx, dy = alpha * Gaussian(sigma, reflect, 3-sigma truncation) of U(-1, 1) noise.
    if n:
        dx = alpha * ops.gaussian_filter(np.stack(noise_x), sigma, mode="reflect", truncate=3.0)
        dy = alpha * ops.gaussian_filter(np.stack(noise_y), sigma, mode="reflect", truncate=3.0)
        x = ops.bilinear_sample(x, rows + dy, cols + dx, "reflect")
    return to_uint8(x)


def pixelate(images: np.ndarray, factor: float, rngs: Rngs = None) -> np.ndarray:
    """Pixelate: Pillow BOX resize to floor(size * c) and BOX back to the original size."""
    size = images.shape[1]
    small = int(size * factor)
    out = np.empty_like(images)
    for k, image in enumerate(images):
        pic = Image.fromarray(image).resize((small, small), Image.BOX).resize((size, size), Image.BOX)
        out[k] = np.asarray(pic)
    return out


def pixelate_side(size: int, factor: float) -> int:
    """Intermediate side of `pixelate`: floor(size * c) (30, 28, 27, 24, 20 at 32 px)."""
    return int(size * factor)


def jpeg_roundtrip(images: np.ndarray, quality: int, optimize: bool = False) -> np.ndarray:
    """Encode every image as a Pillow JPEG of `quality` (4:2:0 chroma) and decode it again."""
    out = np.empty_like(images)
    for k, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=int(quality), optimize=optimize)
        buffer.seek(0)
        with Image.open(buffer) as pic:
            out[k] = np.asarray(pic.convert("RGB"))
    return out


def jpeg_compression(images: np.ndarray, quality: int, rngs: Rngs = None) -> np.ndarray:
    """JPEG compression at the severity's quality (Pillow encode + decode)."""
    return jpeg_roundtrip(images, quality)
