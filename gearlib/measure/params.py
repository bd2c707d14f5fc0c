"""Model size: parameter counts and the size fraction |theta| / |theta_ref| of the GEARnn tables.

Counts weights, biases and BatchNorm affine parameters; BatchNorm running statistics are buffers, not counted.
"""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters |theta| of a model (shared tensors counted once).

    Args:
        model: any nn.Module.
        trainable_only: count only parameters with requires_grad (default: all parameters, frozen ones too).

    Returns:
        Parameter count (weights, biases, BN gamma/beta; running mean/var and counters excluded).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
