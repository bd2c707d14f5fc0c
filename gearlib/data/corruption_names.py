"""The names and severities of the common corruptions, shared by the -C loaders and the generator.

Ids are indices in `CORRUPTIONS`; gearlib.corrupt builds on these lists, so the data side never imports it.
"""

from __future__ import annotations

from typing import List, Tuple

NOISE = ["gaussian_noise", "shot_noise", "impulse_noise"]
BLUR = ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"]
WEATHER = ["snow", "frost", "fog", "brightness"]
DIGITAL = ["contrast", "elastic_transform", "pixelate", "jpeg_compression"]

#: The 15 benchmark corruptions in the released order (noise, blur, weather, digital).
BENCHMARK_CORRUPTIONS: List[str] = NOISE + BLUR + WEATHER + DIGITAL
#: The 4 held-out corruptions shipped with CIFAR-10-C / CIFAR-100-C; never part of the benchmark mean.
EXTRA_CORRUPTIONS: List[str] = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
#: Canonical order of all 19 corruptions (benchmark first, extras last); ids are indices in this list.
CORRUPTIONS: List[str] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: Tuple[int, ...] = (1, 2, 3, 4, 5)


def check_corruption(name: str) -> int:
    """Return the id (index in CORRUPTIONS) of a corruption name; unknown names raise ValueError."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS.index(name)


def check_severity(severity: int) -> int:
    """Return the severity as int if it is one of 1..5, else raise ValueError."""
    if isinstance(severity, bool) or int(severity) != severity or int(severity) not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; choose one of 1, 2, 3, 4, 5")
    return int(severity)
