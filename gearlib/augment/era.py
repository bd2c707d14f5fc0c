"""Efficient Robust Augmentation (ERA, GEARnn Sec. 4.2): J - 1 single-chain views mixed with the clean image.

Defaults in `gearlib.augment.defaults`: ERA_DEFAULTS (w, d, J) = (1, 3, 4), ERA_J3 = (1, 3, 3) for `era_j3`;
every knob stays open for the sweep of GEARnn Table 8.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from gearlib.augment.augmix import AugMixOps, mix_views
from gearlib.augment.defaults import AUGMIX_SEVERITY, ERA_DEFAULTS, ERA_J3, MIX_ALPHA
from gearlib.augment.ops import AUGMIX_OPS
from gearlib.augment.prime import PRIMITIVES, PrimeConfig, PrimeOps, primitive_names

# (w, d, J) of the named ERA variants, as keyword arguments (kept for callers that index it by name).
ERA_PRESETS: Dict[str, Dict[str, int]] = {"era": ERA_DEFAULTS.knobs(), "era_j3": ERA_J3.knobs()}

OpsSpec = Union[str, Sequence[str], AugMixOps, PrimeOps]


def resolve_ops(
    ops: OpsSpec, severity: float = AUGMIX_SEVERITY, prime_config: Optional[PrimeConfig] = None
) -> Any:
    """Turn an op-set spec into an op set for `mix_views`.

    Args:
        ops: "augmix" (AUGMIX_OPS, the 9 AugMix ops), "prime" (spectral, colour, spatial), a list of names
            from one of those two sets, or an op-set object (AugMixOps, PrimeOps) used as is.
        severity: AugMix level bound S (AugMix ops only).
        prime_config: PRIME primitive settings (PRIME ops only; defaults to the CIFAR config).
    Returns:
        AugMixOps or PrimeOps.
    """
    if isinstance(ops, (AugMixOps, PrimeOps)):
        return ops
    if isinstance(ops, str):
        if ops == "augmix":
            return AugMixOps(AUGMIX_OPS, severity)
        if ops == "prime":
            return PrimeOps(prime_config)
        names: Sequence[str] = [ops]
    else:
        names = list(ops)
    if names and all(n in AUGMIX_OPS for n in names):
        return AugMixOps(names, severity)
    canonical = primitive_names(names)
    if canonical and all(n in PRIMITIVES for n in canonical):
        cfg = prime_config if prime_config is not None else PrimeConfig()
        return PrimeOps(dataclasses.replace(cfg, primitives=canonical))
    raise ValueError(
        f"unknown op set {ops!r}; use 'augmix', 'prime', names from {list(AUGMIX_OPS)} or from {list(PRIMITIVES)}"
    )


def era(
    batch: torch.Tensor,
    *,
    width: int = ERA_DEFAULTS.width,
    depth: int = ERA_DEFAULTS.depth,
    views: int = ERA_DEFAULTS.views,
    severity: float = AUGMIX_SEVERITY,
    alpha: float = MIX_ALPHA,
    ops: OpsSpec = "augmix",
    generator: Optional[torch.Generator] = None,
) -> List[torch.Tensor]:
    """ERA views: x_aug = (1 - m) x + m (o_d o ... o o_1)(x), o_i ~ Unif(O), m ~ Beta(alpha, alpha) (Eq. 2).

    Args:
        batch: uint8 [B,C,H,W] or float in [0,1] (any device).
        width: w chains per view (1 in ERA; w > 1 mixes chains with Dirichlet(alpha) weights like AugMix).
        depth: d ops per chain (3 in ERA, fixed); -1 = uniform in {1, 2, 3}.
        views: J, distributions in the JSD; >= 2 gives [clean, aug_1, ..., aug_{J-1}]; 0 (no JSD, plain CE)
            or 1 gives one augmented view [aug].
        severity: AugMix level bound S (0..10, 0 = identity) for AugMix ops.
        alpha: Beta (and Dirichlet) concentration.
        ops: op set O, see `resolve_ops` ("augmix" by default, "prime" for GEARnn's Table 5).
        generator: source of randomness.
    Returns:
        list of view tensors with the input's dtype, shape and device.
    """
    op_set = resolve_ops(ops, severity)
    return mix_views(batch, op_set, width=width, depth=depth, views=views, alpha=alpha, generator=generator)
