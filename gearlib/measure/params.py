"""Model size: parameter counts and the size fraction |theta| / |theta_ref| of the GEARnn tables.

Counts weights, biases and BatchNorm affine parameters; BatchNorm running statistics are buffers, not counted.
"""

from __future__ import annotations

from typing import Union

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


def size_fraction(model: nn.Module, reference_params: Union[int, nn.Module]) -> float:
    """Size of a model relative to a reference, |theta| / |theta_ref| (e.g. a grown model vs the full one).

    Args:
        model: the model to measure.
        reference_params: reference parameter count, or the reference model itself.

    Returns:
        The fraction (1.0 = same size).
    """
    ref = count_params(reference_params) if isinstance(reference_params, nn.Module) else int(reference_params)
    if ref <= 0:
        raise ValueError(
            f"reference_params={reference_params!r} must be a positive count or a model with parameters"
        )
    return count_params(model) / ref
