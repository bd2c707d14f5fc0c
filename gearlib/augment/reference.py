"""Per-sample reference path for the AugMix ops: torchvision.transforms.functional on one uint8 image at a time.

Slow by design; it exists to check the batched ops in `gearlib.augment.ops` and as a readable baseline.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from gearlib.augment import rng
from gearlib.augment.augmix import MAX_STOCHASTIC_DEPTH
from gearlib.augment.defaults import AUGMIX_DEFAULTS, AUGMIX_SEVERITY, MIX_ALPHA
from gearlib.augment.ops import AUGMIX_OPS, augmix_magnitudes

BILINEAR = InterpolationMode.BILINEAR


def reference_op(img: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """Apply one AugMix op to a single uint8 [C,H,W] image with torchvision's functional ops.

    Args:
        img: uint8 [C,H,W].
        name: one of AUGMIX_OPS.
        magnitude: bits (posterize), threshold level (solarize), degrees (rotate), shear factor
            (shear_x/y, about the top-left corner, as torchvision's AugMix does) or pixels (translate_x/y).
    Returns:
        uint8 [C,H,W].
    """
    m = float(magnitude)
    if name == "autocontrast":
        return TF.autocontrast(img)
    if name == "equalize":
        return TF.equalize(img)
    if name == "posterize":
        return TF.posterize(img, int(round(m)))
    if name == "solarize":
        return img.clone() if m > 255 else TF.solarize(img, m)
    if name == "rotate":
        return TF.rotate(img, m, interpolation=BILINEAR)
    if name in ("shear_x", "shear_y"):
        angle = math.degrees(math.atan(m))
        shear = [angle, 0.0] if name == "shear_x" else [0.0, angle]
        return TF.affine(img, 0.0, [0, 0], 1.0, shear, interpolation=BILINEAR, center=[0, 0])
    if name in ("translate_x", "translate_y"):
        shift = [int(round(m)), 0] if name == "translate_x" else [0, int(round(m))]
        return TF.affine(img, 0.0, shift, 1.0, [0.0, 0.0], interpolation=BILINEAR)
    raise ValueError(f"unknown AugMix op {name!r}; choose from {AUGMIX_OPS}")


def reference_apply_ops(x: torch.Tensor, op_index: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Per-sample loop equivalent of `ops.apply_ops` on a uint8 [N,C,H,W] batch (-1 = unchanged)."""
    out = x.clone()
    for i in range(x.shape[0]):
        k = int(op_index[i])
        if k >= 0:
            out[i] = reference_op(x[i], AUGMIX_OPS[k], float(magnitude[i]))
    return out


def reference_augmix(
    img: torch.Tensor,
    *,
    severity: float = AUGMIX_SEVERITY,
    width: int = AUGMIX_DEFAULTS.width,
    depth: int = AUGMIX_DEFAULTS.depth,
    alpha: float = MIX_ALPHA,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """One AugMix view of one uint8 [C,H,W] image, op by op on uint8 like the original AugMix code.

    x_aug = (1 - m) x + m sum_i w_i chain_i(x), w ~ Dirichlet(alpha), m ~ Beta(alpha, alpha).

    Returns:
        uint8 [C,H,W].
    """
    h, w = img.shape[-2:]
    weights = rng.dirichlet(alpha, (width,), generator)
    m = float(rng.beta(alpha, (1,), generator))
    mix = torch.zeros(img.shape, dtype=torch.float32)
    for i in range(width):
        chain = img
        d = depth if depth > 0 else int(rng.randint(1, MAX_STOCHASTIC_DEPTH + 1, (1,), generator))
        for _ in range(d):
            k = rng.randint(0, len(AUGMIX_OPS), (1,), generator)
            mag = augmix_magnitudes(k, severity, h, w, generator)
            chain = reference_op(chain, AUGMIX_OPS[int(k)], float(mag))
        mix += float(weights[i]) * chain.float()
    out = (1.0 - m) * img.float() + m * mix
    return out.round().clamp(0, 255).to(torch.uint8)
