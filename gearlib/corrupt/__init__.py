"""Common corruptions (CIFAR-10-C / Tiny-ImageNet-C style) at five severities, batched and seeded.

`corrupt(images_uint8_nhwc, name, severity, seed)`; every image draws from its own (seed, corruption, severity,
index) generator, so results do not depend on how a dataset is split into batches.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np
import PIL
import scipy

from gearlib.corrupt import blur, digital, noise, weather
from gearlib.corrupt.ops import image_rngs
from gearlib.corrupt.params import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTIONS,
    DETERMINISTIC,
    EXTRA_CORRUPTIONS,
    SCALES,
    SEVERITIES,
    check_corruption,
    check_severity,
    get_params,
    scale_for_size,
)

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "CORRUPTIONS",
    "DETERMINISTIC",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "backends",
    "corrupt",
    "gallery",
    "get_params",
]

#: name -> function(images uint8 (N,H,W,3), parameter, generators or None) -> uint8 batch.
CORRUPTION_FUNCTIONS: Dict[str, Callable[..., np.ndarray]] = {
    "gaussian_noise": noise.gaussian_noise,
    "shot_noise": noise.shot_noise,
    "impulse_noise": noise.impulse_noise,
    "defocus_blur": blur.defocus_blur,
    "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur,
    "zoom_blur": blur.zoom_blur,
    "snow": weather.snow,
    "frost": weather.frost,
    "fog": weather.fog,
    "brightness": weather.brightness,
    "contrast": digital.contrast,
    "elastic_transform": digital.elastic_transform,
    "pixelate": digital.pixelate,
    "jpeg_compression": digital.jpeg_compression,
    "speckle_noise": noise.speckle_noise,
    "gaussian_blur": blur.gaussian_blur,
    "spatter": weather.spatter,
    "saturate": digital.saturate,
}

CHUNK = 1000  # images per internal step: bounds float64 working memory (~25 MB at 32 px)


def _as_batch(images: Any) -> np.ndarray:
    """Validate a uint8 image or batch (HWC / NHWC, RGB, square) and return it as a 4-D array."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 HWC (H, W, 3) or NHWC (N, H, W, 3) RGB, got shape {array.shape}; "
            f"convert NCHW torch tensors with images.permute(0, 2, 3, 1).numpy()"
        )
    if array.dtype != np.uint8:
        raise ValueError(f"images must be uint8 pixels 0..255, got dtype {array.dtype}")
    if array.shape[1] != array.shape[2]:
        raise ValueError(f"images must be square, got {array.shape[1]}x{array.shape[2]}")
    return array


def corrupt(
    images_uint8_nhwc: Any,
    name: str,
    severity: int,
    seed: int = 0,
    start_index: int = 0,
    indices: Optional[Sequence[int]] = None,
    scale: str = "auto",
) -> np.ndarray:
    """Apply corruption `name` at `severity` to one image or a batch.

    Args:
        images_uint8_nhwc: uint8 RGB array (N, H, W, 3) or a single (H, W, 3) image.
        name: one of `CORRUPTIONS`.
        severity: 1..5.
        seed: non-negative integer; stochastic corruptions give identical output for the same seed.
        start_index: dataset index of the first image (image k uses index start_index + k), so that
            corrupting a dataset in pieces gives the same result as in one call.
        indices: explicit dataset index per image (overrides `start_index`).
        scale: parameter table: "cifar" (CIFAR-10-C, 32 px), "tinyimagenet" (Tiny-ImageNet-C, 64 px), or
            "auto" (chosen from the image size).

    Returns:
        uint8 array of the input's shape.
    """
    corruption_id = check_corruption(name)
    severity = check_severity(severity)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    single = np.asarray(images_uint8_nhwc).ndim == 3
    batch = _as_batch(images_uint8_nhwc)
    n = batch.shape[0]
    if indices is None:
        indices = np.arange(start_index, start_index + n)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.shape != (n,):
        raise ValueError(f"indices must give one dataset index per image ({n}), got shape {indices.shape}")
    if n and indices.min() < 0:
        raise ValueError("image indices must be non-negative")
    scale = scale_for_size(batch.shape[1], scale)
    table, _, frost_factor = SCALES[scale]
    param = table[name][severity - 1]
    function = CORRUPTION_FUNCTIONS[name]
    if name == "frost":
        function = partial(function, factor=frost_factor)
    out = np.empty_like(batch)
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        rngs = (
            None if name in DETERMINISTIC else image_rngs(int(seed), corruption_id, severity, indices[lo:hi])
        )
        out[lo:hi] = function(batch[lo:hi], param, rngs)
    return out[0] if single else out


def backends() -> Dict[str, str]:
    """How each part of the generator is implemented (recorded in the metadata of generated sets)."""
    _, frost_origin = weather.frost_textures(SCALES["cifar"][2])
    return {
        "frost": f"{frost_origin} textures",
        "motion_blur": "numpy (ImageMagick-style kernel)",
        "snow": "numpy (ImageMagick-style motion blur)",
        "jpeg_compression": f"Pillow {PIL.__version__}",
        "pixelate": f"Pillow {PIL.__version__} BOX",
        "spatter": f"numpy/scipy {scipy.__version__} (Canny, exact EDT, CDF equalisation)",
        "elastic_transform": "numpy bilinear sampling",
        "default": f"numpy {np.__version__}, scipy {scipy.__version__}",
    }


def gallery(
    image_hwc_uint8: Any,
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    scale: str = "auto",
):
    """One image under every corruption (rows) and severity (columns), the clean image first.

    Args:
        image_hwc_uint8: uint8 RGB image (H, W, 3).
        corruptions: names to show, in order.
        severities: severities to show (columns).
        seed: generator seed.
        scale: parameter table ("auto" picks from the image size).

    Returns:
        A matplotlib Figure.
    """
    import matplotlib.pyplot as plt  # lazy: pyplot is slow to import and only the gallery draws

    image = np.asarray(image_hwc_uint8)
    if image.ndim != 3:
        raise ValueError(f"gallery takes one HWC image, got shape {image.shape}")
    for name in corruptions:
        check_corruption(name)
    severities = [check_severity(s) for s in severities]
    rows, cols = len(corruptions), len(severities) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows), squeeze=False)
    for r, name in enumerate(corruptions):
        axes[r, 0].imshow(image)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        for c, severity in enumerate(severities, start=1):
            axes[r, c].imshow(corrupt(image, name, severity, seed=seed, scale=scale))
            if r == 0:
                axes[r, c].set_title(f"s={severity}", fontsize=8)
        if r == 0:
            axes[r, 0].set_title("clean", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
