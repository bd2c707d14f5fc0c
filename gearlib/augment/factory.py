"""Pick an augmentation by name for the training runner: `make_augment("era", views=3)(x, generator=g)`.

Names: none/clean, augmix, era, era_j3, prime, era_prime (ERA over PRIME's primitives, GEARnn Table 5).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

import torch

from gearlib.augment.augmix import check_mixing, mix_views
from gearlib.augment.defaults import AUGMIX_DEFAULTS, AUGMIX_SEVERITY, ERA_DEFAULTS, ERA_J3, MIX_ALPHA
from gearlib.augment.era import resolve_ops
from gearlib.augment.prime import PrimeConfig, PrimeOps

_AUGMIX_KNOBS = {"alpha": MIX_ALPHA, "severity": AUGMIX_SEVERITY}
_MIXING_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "augmix": {**AUGMIX_DEFAULTS.knobs(), **_AUGMIX_KNOBS},
    "era": {**ERA_DEFAULTS.knobs(), **_AUGMIX_KNOBS, "ops": "augmix"},
    "era_j3": {**ERA_J3.knobs(), **_AUGMIX_KNOBS, "ops": "augmix"},
    "prime": {**AUGMIX_DEFAULTS.knobs(), "alpha": MIX_ALPHA},
    "era_prime": {**ERA_DEFAULTS.knobs(), "alpha": MIX_ALPHA},
}
_PRIME_KNOBS = [f.name for f in dataclasses.fields(PrimeConfig)]
AUGMENT_NAMES = ("none", "clean") + tuple(_MIXING_DEFAULTS)


def valid_knobs(name: str) -> List[str]:
    """The keyword knobs `make_augment(name, ...)` accepts."""
    if name in ("none", "clean"):
        return []
    if name not in _MIXING_DEFAULTS:
        raise ValueError(f"unknown augmentation {name!r}; choose from {list(AUGMENT_NAMES)}")
    knobs = list(_MIXING_DEFAULTS[name])
    return knobs + _PRIME_KNOBS if name in ("prime", "era_prime") else knobs


class Augment:
    """A named, configured augmentation: `augment(x, generator=None) -> list of J views (clean first)`.

    Attributes:
        name: the augmentation name.
        knobs: the resolved settings (defaults plus overrides).
        num_views: J, how many tensors a call returns (1 for none/clean and for views 0 or 1).
    """

    def __init__(self, name: str, **knobs: Any) -> None:
        allowed = valid_knobs(name)
        bad = sorted(set(knobs) - set(allowed))
        if bad:
            raise ValueError(f"unknown knob(s) {bad} for augmentation {name!r}; valid: {allowed}")
        self.name = name
        self.knobs: Dict[str, Any] = {**_MIXING_DEFAULTS.get(name, {}), **knobs}
        self.ops: Any = None
        if name in ("none", "clean"):
            self.num_views = 1
            return
        mixing = {k: self.knobs[k] for k in ("width", "depth", "views", "alpha")}
        check_mixing(**mixing)
        self.num_views = mixing["views"] if mixing["views"] >= 2 else 1
        if name in ("prime", "era_prime"):
            self.ops = PrimeOps(
                PrimeConfig.from_knobs(**{k: v for k, v in self.knobs.items() if k in _PRIME_KNOBS})
            )
        else:
            self.ops = resolve_ops(self.knobs.get("ops", "augmix"), self.knobs["severity"])

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
        """Views of batch `x` (float [0,1] or uint8 NCHW): [clean, aug_1, ...] or [aug] or [x]."""
        if self.ops is None:
            return [x]
        k = self.knobs
        return mix_views(
            x,
            self.ops,
            width=k["width"],
            depth=k["depth"],
            views=k["views"],
            alpha=k["alpha"],
            generator=generator,
        )

    def __repr__(self) -> str:
        return f"Augment({self.name!r}, {self.knobs})"


def make_augment(name: str, **knobs: Any) -> Augment:
    """Build the augmentation `name` with optional knob overrides; raises ValueError listing valid choices.

    Args:
        name: one of AUGMENT_NAMES.
        **knobs: width, depth, views, alpha, severity, ops (ERA) and PrimeConfig fields (PRIME variants).
    Returns:
        callable `fn(x_float, generator=None) -> list of views`, clean view first when views >= 2.
    """
    return Augment(name, **knobs)
