"""SMART's two frozen binary masks per conv (clean path Pi_C, adversarial path Pi_A), built with exact
densities: for d = 0.5 and shared d_s = 0.25, a quarter of positions each shared, clean-only, adv-only, neither.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from gearlib.adversarial.layers import NoisyMixin
from gearlib.adversarial.models import ConditionalResNet, stage_modules

SMART_STAGES = (3, 4)  # "[D D S S]": the last two ResNet stages are sparse (SMART Table 1's best row)
SMART_DENSITY = 0.5  # d(Pi_C) = d(Pi_A)
SMART_SHARED = 0.25  # d_s = d(Pi_C * Pi_A), a fraction of all positions


def path_masks(
    numel: int, density: float, shared: float, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Two flat boolean masks with exactly floor(d * n) ones each, floor(d_s * n) of them in common.

    Positions are dealt from one random permutation: shared first, then clean-only, then adversarial-only.
    d_s = 0 gives disjoint masks; 2 d - d_s must not exceed 1.
    """
    if not 0 < density <= 1 or not 0 <= shared <= density:
        raise ValueError(f"need 0 < density <= 1 and 0 <= shared <= density, got {density}, {shared}")
    if 2 * density - shared > 1 + 1e-9:
        raise ValueError(
            f"two masks of density {density} sharing {shared} need 2d - d_s = {2 * density - shared:.3f} of "
            "the positions, more than all of them: lower the density or raise the shared fraction"
        )
    on, common = math.floor(density * numel), math.floor(shared * numel)
    own = on - common
    order = torch.randperm(numel, generator=generator)
    clean = torch.zeros(numel, dtype=torch.bool)
    adv = torch.zeros(numel, dtype=torch.bool)
    clean[order[: common + own]] = True
    adv[order[:common]] = True
    adv[order[common + own : common + 2 * own]] = True
    return clean, adv


def apply_smart_masks(
    model: ConditionalResNet,
    stages: Sequence[int] = SMART_STAGES,
    density: float = SMART_DENSITY,
    shared: float = SMART_SHARED,
    generator: Optional[torch.Generator] = None,
) -> int:
    """Give every conv of `stages` (shortcuts included; the classifier stays dense) its Pi_C and Pi_A;
    returns how many layers were masked. The masks are frozen buffers saved with the model."""
    layers = [m for m in stage_modules(model, stages) if isinstance(m, NoisyMixin)]
    for layer in layers:
        clean, adv = path_masks(layer.weight.numel(), density, shared, generator)
        shape = layer.weight.shape
        layer.mask_clean = clean.view(shape).to(layer.weight.dtype)
        layer.mask_adv = adv.view(shape).to(layer.weight.dtype)
    return len(layers)


def mask_counts(model: nn.Module) -> Dict[str, int]:
    """Weights of conv/linear layers: all of them, non-zeros on each path, and the stored union."""
    total = clean = adv = union = 0
    for module in model.modules():
        if not isinstance(module, NoisyMixin):
            continue
        n = module.weight.numel()
        c = (
            module.mask_clean.bool()
            if module.mask_clean is not None
            else torch.ones(module.weight.shape, dtype=torch.bool)
        )
        a = (
            module.mask_adv.bool()
            if module.mask_adv is not None
            else torch.ones(module.weight.shape, dtype=torch.bool)
        )
        total += n
        clean += int(c.sum())
        adv += int(a.sum())
        union += int((c | a).sum())
    return {"weights": total, "clean_nonzero": clean, "adv_nonzero": adv, "union": union}
