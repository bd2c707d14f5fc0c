"""Filter-normalised 1-D loss curves f(alpha) = L(theta* + alpha d) (Li et al. 2018, GEARnn Sec. 8).

The direction d is Gaussian, rescaled per filter to the norm of the model's filter; biases and BN get d = 0.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["filter_normalized_direction", "loss_landscape_1d", "plot_landscapes"]


def filter_normalized_direction(
    model: nn.Module, generator: Optional[torch.Generator] = None
) -> Dict[str, torch.Tensor]:
    """Random direction d with ||d_j|| = ||theta_j|| for every filter j (output channel / output neuron).

    Args:
        model: the trained network theta*.
        generator: seeds the Gaussian draw (CPU generator; same seed -> same d on any device).

    Returns:
        Parameter name -> direction tensor (same shape and device); 1-D tensors (biases, BN gamma/beta)
        are zero. Buffers (BN running statistics) get no direction.
    """
    direction = {}
    for name, p in model.named_parameters():
        theta = p.detach()
        if theta.dim() < 2:
            direction[name] = torch.zeros_like(theta)
            continue
        d = torch.randn(theta.shape, generator=generator, dtype=torch.float32).to(theta)
        theta_norm = theta.flatten(1).norm(dim=1)
        d_norm = d.flatten(1).norm(dim=1)
        scale = theta_norm / (d_norm + 1e-10)
        direction[name] = d * scale.view(-1, *([1] * (theta.dim() - 1)))
    return direction


@torch.no_grad()
def _mean_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for start in range(0, images.shape[0], batch_size):
        logits = model(images[start : start + batch_size])
        total += float(F.cross_entropy(logits, labels[start : start + batch_size], reduction="sum"))
    return total / images.shape[0]


def loss_landscape_1d(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    alphas: Optional[torch.Tensor] = None,
    direction: Optional[Dict[str, torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 500,
    device: Any = None,
    n_directions: int = 1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy along theta* + alpha d, in eval mode, without gradients or augmentation.

    The weights and BN buffers are restored bit-exactly afterwards (and the train/eval mode).

    Args:
        model: trained network theta* taking [0, 1] images.
        images: fixed subset, float NCHW in [0, 1] (uint8 is scaled by 1/255).
        labels: int64 [N].
        alphas: step sizes alpha (default torch.linspace(-1, 1, 51)).
        direction: a direction from `filter_normalized_direction` (default: drawn with `generator`).
        generator: seeds the direction(s); use the same seed for every compared model.
        batch_size: evaluation batch size.
        device: where to evaluate (default: the model's device; the model is moved there and back).
        n_directions: average the curve over this many random directions (ignored when `direction` given).

    Returns:
        (alphas, losses): float tensors [A] on the CPU; losses[k] = f(alphas[k]) averaged over directions.
    """
    alphas = torch.linspace(-1.0, 1.0, 51) if alphas is None else torch.as_tensor(alphas, dtype=torch.float64)
    _check_curve_inputs(images, labels, n_directions)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    device = home if device is None else torch.device(device)
    x = images.float() / 255.0 if not images.is_floating_point() else images
    x, y = x.to(device), labels.to(device)

    losses = torch.zeros(len(alphas), dtype=torch.float64)
    with _evaluated_and_restored(model, device, home) as saved, torch.no_grad():
        directions = (
            [direction]
            if direction is not None
            else [filter_normalized_direction(model, generator) for _ in range(n_directions)]
        )
        params = dict(model.named_parameters())
        for d in directions:
            missing = set(params) - set(d)
            if missing:
                raise ValueError(
                    f"direction lacks parameters {sorted(missing)[:3]}...; build it from this model"
                )
            for k, alpha in enumerate(alphas.tolist()):
                for name, p in params.items():
                    p.copy_(saved[name] + alpha * d[name].to(p))
                losses[k] += _mean_loss(model, x, y, batch_size)
    return alphas.float().cpu(), (losses / len(directions)).float()


def _check_curve_inputs(images: torch.Tensor, labels: torch.Tensor, n_directions: int) -> None:
    """Raise ValueError for an empty or mismatched image/label pair or fewer than one direction."""
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            f"images ({images.shape[0]}) and labels ({labels.shape[0]}) must be equal and non-empty"
        )
    if n_directions < 1:
        raise ValueError(f"n_directions={n_directions} must be >= 1")


@contextlib.contextmanager
def _evaluated_and_restored(
    model: nn.Module, device: torch.device, home: torch.device
) -> Iterator[Dict[str, torch.Tensor]]:
    """Put `model` on `device` in eval mode and yield copies of its weights; on exit the weights and buffers
    (BN running statistics) are copied back bit-exactly, and the model returns to `home` and its mode."""
    was_training = model.training
    model.to(device).eval()
    saved = {name: p.detach().clone() for name, p in model.named_parameters()}
    saved_buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        yield saved
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(saved[name])
            for name, b in model.named_buffers():
                b.copy_(saved_buffers[name])
        model.to(home).train(was_training)


def plot_landscapes(
    curves: Dict[str, Tuple[torch.Tensor, torch.Tensor]], log: bool = False, ax: Any = None
) -> Any:
    """Overlay 1-D loss curves f(alpha), one line per model.

    Args:
        curves: name -> (alphas, losses) from `loss_landscape_1d`.
        log: logarithmic loss axis.
        ax: existing matplotlib Axes to draw into (default: a new figure).

    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("plot_landscapes needs at least one (alphas, losses) curve")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
    else:
        fig = ax.figure
    for name, (alphas, losses) in curves.items():
        ax.plot(torch.as_tensor(alphas).numpy(), torch.as_tensor(losses).numpy(), label=name)
    ax.set_xlabel(r"$\alpha$")
    ax.set_ylabel("cross-entropy loss")
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
