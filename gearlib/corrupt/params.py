"""Corruption names and the per-severity parameter tables of CIFAR-10-C (32 px) and Tiny-ImageNet-C (64 px).

Values follow Hendrycks & Dietterich (2019); names and severities come from gearlib.data.corruption_names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Sequence, Tuple

from gearlib.data.corruption_names import (
    BENCHMARK_CORRUPTIONS,
    BLUR,
    CORRUPTIONS,
    DIGITAL,
    EXTRA_CORRUPTIONS,
    NOISE,
    SEVERITIES,
    WEATHER,
    check_corruption,
    check_severity,
)

__all__ = [
    "BENCHMARK_CORRUPTIONS",
    "BLUR",
    "CIFAR_PARAMS",
    "CORRUPTIONS",
    "DETERMINISTIC",
    "DIGITAL",
    "EXTRA_CORRUPTIONS",
    "NOISE",
    "PARAMS",
    "SCALES",
    "SEVERITIES",
    "SIZE_TO_SCALE",
    "STORED_JPEG_QUALITY",
    "TINY_JPEG_QUALITY",
    "TINY_PARAMS",
    "WEATHER",
    "check_corruption",
    "check_severity",
    "get_params",
    "params_hash",
    "scale_for_size",
    "table_json",
    "zoom_factors",
]

#: Corruptions whose output does not depend on the seed.
DETERMINISTIC = {
    "gaussian_blur",
    "defocus_blur",
    "zoom_blur",
    "contrast",
    "brightness",
    "saturate",
    "jpeg_compression",
    "pixelate",
}

# Zoom-blur factor counts: 1.00, 1.01, ... (the reference's floating-point range also yields the end
# point at severities 1 and 2, hence 7 and 12 factors).
ZOOM_COUNTS = (7, 12, 16, 21, 26)


def zoom_factors(severity: int) -> List[float]:
    """Zoom-blur factors z of one severity: 1.00, 1.01, ... (7, 12, 16, 21, 26 of them)."""
    return [1.0 + 0.01 * k for k in range(ZOOM_COUNTS[severity - 1])]


ZOOM = [zoom_factors(s) for s in SEVERITIES]  # the same factors at both scales

#: corruption -> (CIFAR-10-C parameters, Tiny-ImageNet-C parameters), each one entry per severity 1..5.
#: The two scales stand side by side so that a difference between them is visible at a glance.
PARAMS: Dict[str, Tuple[List[Any], List[Any]]] = {
    "gaussian_noise": ([0.04, 0.06, 0.08, 0.09, 0.10], [0.04, 0.08, 0.12, 0.15, 0.18]),
    "shot_noise": ([500, 250, 100, 75, 50], [250, 100, 50, 30, 15]),
    "impulse_noise": ([0.01, 0.02, 0.03, 0.05, 0.07], [0.01, 0.02, 0.05, 0.08, 0.14]),
    "defocus_blur": (
        [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    ),
    "glass_blur": (
        [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    ),
    "motion_blur": (
        [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    ),
    "zoom_blur": (ZOOM, ZOOM),
    "snow": (
        [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
        [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ],
    ),
    "frost": (
        [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    ),
    "fog": (
        [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
    ),
    "brightness": ([0.05, 0.1, 0.15, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5]),
    "contrast": ([0.75, 0.5, 0.4, 0.3, 0.15], [0.4, 0.3, 0.2, 0.1, 0.05]),
    "elastic_transform": (
        [(0, 0, 2.56), (1.6, 6.4, 2.24), (2.56, 1.92, 1.92), (3.2, 1.28, 1.6), (3.2, 0.96, 0.96)],
        [(0, 0, 5.12), (3.2, 19.2, 3.84), (6.4, 5.12, 3.84), (6.4, 1.92, 1.92), (10.24, 1.92, 1.28)],
    ),
    "pixelate": ([0.95, 0.9, 0.85, 0.75, 0.65], [0.9, 0.8, 0.7, 0.6, 0.5]),
    "jpeg_compression": ([80, 65, 58, 50, 40], [65, 58, 50, 40, 25]),
    "speckle_noise": ([0.06, 0.1, 0.12, 0.16, 0.2], [0.15, 0.2, 0.25, 0.3, 0.35]),
    "gaussian_blur": ([0.4, 0.6, 0.7, 0.8, 1.0], [0.5, 0.75, 1, 1.25, 1.5]),
    "spatter": (
        [
            (0.62, 0.1, 0.7, 0.7, 0.5, "water"),
            (0.65, 0.1, 0.8, 0.7, 0.5, "water"),
            (0.65, 0.3, 1, 0.69, 0.5, "water"),
            (0.65, 0.1, 0.7, 0.69, 0.6, "mud"),
            (0.65, 0.1, 0.5, 0.68, 0.6, "mud"),
        ],
        [
            (0.62, 0.1, 0.7, 0.7, 0.6, "water"),
            (0.65, 0.1, 0.8, 0.7, 0.6, "water"),
            (0.65, 0.3, 1, 0.69, 0.6, "water"),
            (0.65, 0.1, 0.7, 0.68, 0.6, "mud"),
            (0.65, 0.1, 0.5, 0.67, 0.6, "mud"),
        ],
    ),
    "saturate": (
        [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],
    ),
}
CIFAR_PARAMS: Dict[str, List[Any]] = {name: pair[0] for name, pair in PARAMS.items()}  # 32 px
TINY_PARAMS: Dict[str, List[Any]] = {name: pair[1] for name, pair in PARAMS.items()}  # 64 px

#: Parameter scales: name -> (table, image side, frost texture resize factor).
SCALES: Dict[str, Tuple[Dict[str, List[Any]], int, float]] = {
    "cifar": (CIFAR_PARAMS, 32, 0.2),
    "tinyimagenet": (TINY_PARAMS, 64, 0.3),
}
SIZE_TO_SCALE = {32: "cifar", 64: "tinyimagenet"}
#: Tiny-ImageNet-C stores every corrupted image as a JPEG of this quality.
TINY_JPEG_QUALITY = 85
#: dataset -> JPEG quality of the images of its published corrupted set (absent: stored losslessly).
STORED_JPEG_QUALITY: Dict[str, int] = {"tinyimagenet": TINY_JPEG_QUALITY}


def scale_for_size(size: int, scale: str = "auto") -> str:
    """Pick the parameter scale: "cifar" for 32 px, "tinyimagenet" for 64 px, or the one given."""
    if scale != "auto":
        if scale not in SCALES:
            raise ValueError(f"unknown parameter scale {scale!r}; choose auto, {', '.join(SCALES)}")
        return scale
    if size not in SIZE_TO_SCALE:
        raise ValueError(
            f"no corruption parameters for {size}x{size} images (CIFAR: 32, Tiny ImageNet: 64); "
            f"pass scale='cifar' or scale='tinyimagenet' to choose a table explicitly"
        )
    return SIZE_TO_SCALE[size]


def get_params(name: str, severity: int, scale: str = "cifar") -> Any:
    """Parameters of corruption `name` at `severity` (1..5) in the table of `scale` (cifar/tinyimagenet)."""
    check_corruption(name)
    check_severity(severity)
    return SCALES[scale_for_size(0, scale)][0][name][int(severity) - 1]


def table_json(scale: str, corruptions: Sequence[str] = CORRUPTIONS) -> Dict[str, List[Any]]:
    """The parameter table of `scale` as JSON-ready lists (what the generated set's metadata records)."""
    table = SCALES[scale_for_size(0, scale)][0]
    return {name: json.loads(json.dumps(table[name])) for name in corruptions}


def params_hash(scale: str, corruptions: Sequence[str] = CORRUPTIONS) -> str:
    """SHA-256 of the canonical JSON of the parameter table (a fingerprint stored with generated sets)."""
    text = json.dumps(table_json(scale, corruptions), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
