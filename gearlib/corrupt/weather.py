"""Weather corruptions: snow, frost (procedural texture), fog (plasma fractal), brightness, and spatter.

Frost needs texture images; gearlib renders its own crystal textures (or reads $GEARLIB_FROST_DIR).
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from gearlib.corrupt import ops
from gearlib.corrupt.ops import Rngs, to_uint8, to_unit

FROST_DIR_ENV = "GEARLIB_FROST_DIR"
FROST_TEXTURES = 5  # the reference draws one of the first five of its six photographs
FROST_CANVAS = (800, 600)  # width, height of the rendered texture before the 0.2 / 0.3 resize


# --------------------------------------------------------------------------------------------- snow


def snow(images: np.ndarray, param: Tuple, rngs: List[np.random.Generator]) -> np.ndarray:
    """Snow: a thresholded, zoomed, motion-blurred noise layer added twice (and rotated) to a whitened image.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (mu, sigma, zoom, threshold, blur radius, blur sigma, blend).
        rngs: one generator per image (layer noise, then blur angle theta ~ U(-135, -45) degrees).
    """
    mu, sigma, zoom, thresh, radius, blur_sigma, blend = param
    size = images.shape[1]
    layers = np.stack([rng.normal(mu, sigma, size=(size, size)) for rng in rngs])
    angles = np.array([rng.uniform(-135.0, -45.0) for rng in rngs])
    layers = ops.clipped_zoom(layers, zoom)
    layers[layers < thresh] = 0
    layer_u8 = to_uint8(layers)[..., None]
    flakes = ops.motion_blur(layer_u8, radius, blur_sigma, angles)[..., 0].astype(np.float64) / 255.0
    x = to_unit(images)
    gray = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    x = blend * x + (1 - blend) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    both = flakes + flakes[:, ::-1, ::-1]
    return to_uint8(x + both[..., None])


# -------------------------------------------------------------------------------------------- frost


def _branch(
    draw, rng: np.random.Generator, x: float, y: float, angle: float, length: float, width: float, depth: int
):
    """Draw one crystal branch as a slightly wandering polyline, spawning side branches along it."""
    step = 6.0
    points = [(x, y)]
    travelled = 0.0
    while travelled < length:
        angle += rng.normal(0.0, 0.08)
        x += step * math.cos(angle)
        y += step * math.sin(angle)
        travelled += step
        points.append((x, y))
        if depth > 0 and rng.random() < 0.3:
            side = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.2)
            _branch(draw, rng, x, y, side, length * rng.uniform(0.25, 0.5), max(1.0, width * 0.6), depth - 1)
    shade = int(rng.uniform(170, 255))
    draw.line(points, fill=shade, width=max(1, int(round(width))))


@lru_cache(maxsize=FROST_TEXTURES)
def render_frost_texture(index: int, canvas: Tuple[int, int] = FROST_CANVAS) -> np.ndarray:
    """Render procedural frost texture `index` (uint8 RGB, H x W x 3) at full canvas size.

    Bright bluish-white branching crystal streaks (random-walk stems with recursive side branches and a
    soft glow) over a faint, blotchy haze; fixed seeds, so every call returns the same picture. This
    replaces the photographs of the reference generator (benchmark tag `frost=synthetic`).
    """
    width, height = canvas
    rng = np.random.default_rng([0xF205, index])
    ink = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(ink)
    for _ in range(int(rng.integers(12, 18))):
        x, y = rng.uniform(-50, width + 50), rng.uniform(-50, height + 50)
        arms = int(rng.integers(1, 4))
        start = rng.uniform(0, 2 * math.pi)
        for arm in range(arms):
            angle = start + arm * 2 * math.pi / arms + rng.normal(0, 0.3)
            _branch(draw, rng, x, y, angle, rng.uniform(90, 300), rng.uniform(3.0, 8.0), depth=2)
    lines = np.asarray(ink, dtype=np.float64) / 255.0
    glow = ndimage.gaussian_filter(lines, 3.0)
    haze = ndimage.zoom(rng.random((height // 50 + 2, width // 50 + 2)), 50, order=3)[:height, :width]
    haze = ndimage.gaussian_filter(np.clip(haze, 0, 1), 20.0)
    intensity = np.clip(0.85 * lines + 0.5 * glow + 0.05 * haze, 0, 1)
    tint = np.array([0.80, 0.90, 1.0])  # bluish white
    rgb = intensity[..., None] * tint + 0.03 * haze[..., None] * np.array([0.2, 0.4, 1.0])
    texture = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    texture.flags.writeable = False  # cached: shared by every caller
    return texture


def resize_bilinear(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize an HxWx3 uint8 picture by `factor` with plain bilinear sampling, no anti-aliasing.

    Output pixel (i, j) reads the input at ((i + 0.5) / factor - 0.5, (j + 0.5) / factor - 0.5), edges
    clamped (OpenCV's INTER_LINEAR rule); thin bright streaks keep their contrast, as in the reference.
    """
    height, width = image.shape[:2]
    out_h, out_w = int(round(height * factor)), int(round(width * factor))
    rows = np.clip((np.arange(out_h) + 0.5) / factor - 0.5, 0, height - 1)
    cols = np.clip((np.arange(out_w) + 0.5) / factor - 0.5, 0, width - 1)
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
    picture = image.astype(np.float64)[None]
    sampled = ops.bilinear_sample(picture, grid_r[None], grid_c[None], "nearest")[0]
    return np.clip(np.round(sampled), 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def frost_textures(factor: float) -> Tuple[Tuple[np.ndarray, ...], str]:
    """The frost textures resized by `factor` (0.2 for CIFAR, 0.3 for Tiny ImageNet), and their origin.

    Images in $GEARLIB_FROST_DIR (e.g. the reference's frost photographs; first five, sorted by name) are
    used when that variable is set; otherwise five procedural textures.
    """
    folder = os.environ.get(FROST_DIR_ENV)
    if folder:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise FileNotFoundError(f"{FROST_DIR_ENV}={folder} holds no .png/.jpg frost images")
        pictures = [Image.open(p).convert("RGB") for p in files[:FROST_TEXTURES]]
        origin = f"user:{folder}"
    else:
        pictures = [Image.fromarray(render_frost_texture(k)) for k in range(FROST_TEXTURES)]
        origin = "synthetic"
    resized = [resize_bilinear(np.asarray(pic, dtype=np.uint8), factor) for pic in pictures]
    return tuple(resized), origin


def frost(
    images: np.ndarray, param: Tuple[float, float], rngs: List[np.random.Generator], factor: float = 0.2
):
    """Frost: clip(a * image + b * frost crop) on the 0..255 scale, a random crop of a random texture.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (image weight a, frost weight b).
        rngs: one generator per image (texture index, crop row, crop column).
        factor: texture resize factor (0.2 at 32 px, 0.3 at 64 px).
    """
    a, b = param
    size = images.shape[1]
    textures, _ = frost_textures(factor)
    crops = np.empty(images.shape, dtype=np.float64)
    for k, rng in enumerate(rngs):
        tex = textures[int(rng.integers(len(textures)))]
        if tex.shape[0] < size or tex.shape[1] < size:
            raise ValueError(f"frost texture {tex.shape[:2]} is smaller than the {size}px images")
        # exclusive upper bound, as in the reference (its last offset is never drawn)
        top = int(rng.integers(0, max(1, tex.shape[0] - size)))
        left = int(rng.integers(0, max(1, tex.shape[1] - size)))
        crops[k] = tex[top : top + size, left : left + size]
    out = np.clip(a * images.astype(np.float64) + b * crops, 0, 255)
    return out.astype(np.uint8)


# ---------------------------------------------------------------------------------------------- fog


def plasma_fractal(rngs: List[np.random.Generator], size: int, decay: float) -> np.ndarray:
    """Tileable diamond-square plasma maps (N, size, size), each min-max normalised to [0, 1].

    Args:
        rngs: one generator per map.
        size: side, a power of two.
        decay: the "wibble" (noise amplitude, starting at 100) is divided by this after every level.
    """
    if size & (size - 1):
        raise ValueError(f"plasma side must be a power of two, got {size}")
    n = len(rngs)
    levels = []
    step = size
    while step >= 2:
        levels.append((size // step) ** 2)
        step //= 2
    draws = (
        np.stack([rng.uniform(-1.0, 1.0, size=3 * sum(levels)) for rng in rngs])
        if n
        else np.zeros((0, 3 * sum(levels)))
    )
    grid = np.zeros((n, size, size))
    step, wibble, used = size, 100.0, 0
    for count in levels:
        k, half = size // step, step // 2
        # Square step: centre of every square = mean of its 4 corners (wrapping) + wibble * U(-wibble, wibble).
        corners = grid[:, 0::step, 0::step]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        grid[:, half::step, half::step] = square / 4 + wibble**2 * draws[:, used : used + count].reshape(
            n, k, k
        )
        used += count
        # Diamond step: edge midpoints = mean of 2 corners and 2 centres (wrapping) + the same noise.
        centres = grid[:, half::step, half::step]
        top = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        grid[:, 0::step, half::step] = top / 4 + wibble**2 * draws[:, used : used + count].reshape(n, k, k)
        used += count
        left = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        grid[:, half::step, 0::step] = left / 4 + wibble**2 * draws[:, used : used + count].reshape(n, k, k)
        used += count
        step //= 2
        wibble /= decay
    grid -= grid.min(axis=(1, 2), keepdims=True)
    peak = grid.max(axis=(1, 2), keepdims=True)
    return grid / np.where(peak == 0, 1.0, peak)


def fog(images: np.ndarray, param: Tuple[float, float], rngs: List[np.random.Generator]) -> np.ndarray:
    """Fog: clip((x + k * P) * m / (m + k)), P a plasma map, m = max(x) of the clean image.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (strength k, wibble decay).
        rngs: one generator per image (plasma noise).
    """
    strength, decay = param
    size = images.shape[1]
    side = 1 << max(0, (size - 1).bit_length())
    plasma = plasma_fractal(rngs, side, decay)[:, :size, :size, None]
    x = to_unit(images)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return to_uint8((x + strength * plasma) * peak / (peak + strength))


# ------------------------------------------------------------------------------------ brightness


def brightness(images: np.ndarray, shift: float, rngs: Rngs = None) -> np.ndarray:
    """Brightness: V <- clip(V + c) in hexcone HSV."""
    hsv = ops.rgb_to_hsv(to_unit(images))
    hsv[..., 2] = np.clip(hsv[..., 2] + shift, 0, 1)
    return to_uint8(ops.hsv_to_rgb(hsv))


# ------------------------------------------------------------------------------------------ spatter

WATER = np.array([175.0, 238.0, 238.0]) / 255.0  # pale turquoise
MUD = np.array([63.0, 42.0, 20.0]) / 255.0


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean of each image of a batch (N, H, W), reflect-101 border."""
    return ndimage.uniform_filter(x.astype(np.float64), size=(1, 3, 3), mode="mirror")


def canny(layer: np.ndarray, low: float = 50, high: float = 150) -> np.ndarray:
    """Canny edges of a uint8 batch (N, H, W): Sobel, L1 magnitude, non-max suppression, hysteresis.

    Returns:
        bool edge maps (N, H, W).
    """
    x = layer.astype(np.float64)
    diff, smooth = [-1.0, 0.0, 1.0], [1.0, 2.0, 1.0]  # 3x3 Sobel, replicated border, no mixing of images
    gx = ndimage.correlate1d(
        ndimage.correlate1d(x, diff, axis=2, mode="nearest"), smooth, axis=1, mode="nearest"
    )
    gy = ndimage.correlate1d(
        ndimage.correlate1d(x, diff, axis=1, mode="nearest"), smooth, axis=2, mode="nearest"
    )
    mag = np.abs(gx) + np.abs(gy)
    m = np.pad(mag, ((0, 0), (1, 1), (1, 1)))

    def at(dr: int, dc: int) -> np.ndarray:
        return m[:, 1 + dr : m.shape[1] - 1 + dr, 1 + dc : m.shape[2] - 1 + dc]

    ax, ay = np.abs(gx), np.abs(gy)
    tan22 = math.tan(math.radians(22.5))
    tan67 = math.tan(math.radians(67.5))
    horizontal = ay < ax * tan22
    vertical = ay > ax * tan67
    same_sign = (gx * gy) >= 0
    keep_h = (mag > at(0, -1)) & (mag >= at(0, 1))
    keep_v = (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep_d = np.where(same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)), (mag > at(-1, 1)) & (mag > at(1, -1)))
    local_max = np.where(horizontal, keep_h, np.where(vertical, keep_v, keep_d))
    candidate = local_max & (mag > low)
    strong = candidate & (mag > high)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity inside each image, never across images
    labels, count = ndimage.label(candidate, structure=structure)
    if count == 0:
        return np.zeros_like(candidate)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(labels[strong])] = True
    keep[0] = False
    return keep[labels]


def equalize_hist(x: np.ndarray) -> np.ndarray:
    """Per-image histogram equalisation of a uint8 batch (N, H, W) (OpenCV's CDF rule, rounded)."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.int64)
    hist = np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256)
    first = np.argmax(hist > 0, axis=1)
    first_count = hist[np.arange(n), first]
    total = flat.shape[1]
    cum = np.cumsum(hist, axis=1) - first_count[:, None]
    scale = 255.0 / np.maximum(total - first_count, 1)
    lut = np.clip(np.rint(cum * scale[:, None]), 0, 255)
    flat_image = first_count == total  # a single grey level stays as it is
    lut[flat_image] = first[flat_image, None]
    return np.take_along_axis(lut, flat, axis=1).reshape(x.shape).astype(np.uint8)


def _water_mask(layer: np.ndarray) -> np.ndarray:
    """The reference's water-drop shading of a thresholded liquid layer (N, H, W) in [0, 1]."""
    layer_u8 = np.clip(layer * 255, 0, 255).astype(np.uint8)
    edges = canny(layer_u8)
    if edges.any():
        dist = ndimage.distance_transform_edt(~edges, sampling=(1000.0, 1.0, 1.0))
    else:
        dist = np.full(layer.shape, 20.0)
    dist = np.minimum(dist, 20.0)
    dist = _box3(dist).astype(np.uint8)
    dist = equalize_hist(dist)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    dist = ndimage.correlate(dist.astype(np.float64), emboss[None], mode="mirror")
    dist = np.clip(dist, 0, 255)
    dist = np.floor(_box3(dist) + 0.5)
    shade = layer_u8.astype(np.float64) * dist
    peak = shade.max(axis=(1, 2), keepdims=True)
    return shade / np.where(peak == 0, 1.0, peak)


def spatter(images: np.ndarray, param: Tuple, rngs: List[np.random.Generator]) -> np.ndarray:
    """Spatter: water drops (pale turquoise, embossed edges) or mud splashes from a thresholded noise layer.

    Args:
        images: uint8 batch (N, H, W, 3).
        param: (mu, sigma, blur sigma, threshold, intensity (water) or mud blur sigma, "water" | "mud").
        rngs: one generator per image (the liquid layer).
    """
    mu, sigma, blur, thresh, amount, mode = param
    size = images.shape[1]
    layer = np.stack([rng.normal(mu, sigma, size=(size, size)) for rng in rngs])
    layer = ops.gaussian_filter(layer, blur)
    layer[layer < thresh] = 0
    x = to_unit(images)
    if mode == "water":
        m = _water_mask(layer) * amount
        return to_uint8(x + m[..., None] * WATER)
    mask = ops.gaussian_filter((layer > thresh).astype(np.float64), amount)
    mask[mask < 0.8] = 0
    return to_uint8(x * (1 - mask[..., None]) + mask[..., None] * MUD)
