"""Fourier analysis of images, perturbations and models (Yin et al. 2019, GEARnn Fig. 8).

Spectra S(u, v) = mean over images and channels of |fftshift(F x)|, DC at (H/2, W/2); Fourier heat maps.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

__all__ = [
    "spectrum",
    "perturbation_spectrum",
    "fourier_basis",
    "fourier_heatmap",
    "plot_spectra",
    "plot_fourier_heatmap",
]

_REDUCES = ("mean_abs", "mean_log_abs")


def _as_nchw(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch tensor, got {type(images).__name__}")
    if images.dim() == 2:
        images = images[None, None]
    elif images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"images must be NCHW (or CHW / HW), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        images = images.float() / 255.0  # uint8 storage -> [0, 1]
    return images


def spectrum(images: torch.Tensor, reduce: str = "mean_abs") -> torch.Tensor:
    """Centred magnitude spectrum S(u, v) of a batch of images.

    Args:
        images: float NCHW images in [0, 1] (uint8 is scaled by 1/255; CHW and HW are accepted).
        reduce: 'mean_abs' = mean over n, c of |F x| (default); 'mean_log_abs' = mean of log(|F x| + 1e-8).

    Returns:
        Float tensor [H, W] on the CPU, DC at (H // 2, W // 2).
    """
    if reduce not in _REDUCES:
        raise ValueError(f"reduce={reduce!r} is unknown; use one of {_REDUCES}")
    x = _as_nchw(images)
    mag = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)).abs()
    if reduce == "mean_log_abs":
        mag = torch.log(mag + 1e-8)
    return mag.mean(dim=(0, 1)).cpu()


def perturbation_spectrum(
    clean: torch.Tensor, transformed: torch.Tensor, reduce: str = "mean_abs"
) -> torch.Tensor:
    """Spectrum of the perturbation S_T = mean |F(T(x) - x)| (zero for the identity transform).

    Args:
        clean: images x, float NCHW in [0, 1].
        transformed: T(x), same shape.
        reduce: see `spectrum`.

    Returns:
        Float tensor [H, W], DC at the centre.
    """
    a, b = _as_nchw(clean), _as_nchw(transformed)
    if a.shape != b.shape:
        raise ValueError(f"clean {tuple(a.shape)} and transformed {tuple(b.shape)} must have the same shape")
    return spectrum(b - a, reduce=reduce)


def _mirror(k: int, size: int) -> int:
    """Index of frequency -u in a centred axis of length `size` (u = k - size // 2)."""
    c = size // 2
    return (2 * c - k) % size


def fourier_basis(i: int, j: int, size: int = 32, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Real basis image U_ij of the frequency pair +-(i, j), unit l2 norm.

    (i, j) index the centred (fftshift-ed) spectrum, so (size // 2, size // 2) is DC and the spectrum of
    U_ij peaks at (i, j) and its mirror.

    Args:
        i: row index in [0, size).
        j: column index in [0, size).
        size: image side H = W.
        dtype: floating dtype of the result.

    Returns:
        Tensor [size, size] with ||U_ij||_2 = 1.
    """
    if not (0 <= i < size and 0 <= j < size):
        raise ValueError(f"(i, j)=({i}, {j}) must lie in [0, {size}) for size={size}")
    freq = torch.zeros(size, size, dtype=torch.complex128)
    freq[i, j] = 1.0
    freq[_mirror(i, size), _mirror(j, size)] = 1.0
    basis = torch.fft.ifft2(torch.fft.ifftshift(freq)).real
    return (basis / basis.norm()).to(dtype)


def _half_plane(size_h: int, size_w: int, stride: int):
    """Grid cells (i, j) to evaluate: one of each +-pair, every `stride`-th row and column."""
    seen = set()
    for i in range(0, size_h, stride):
        for j in range(0, size_w, stride):
            key = min((i, j), (_mirror(i, size_h), _mirror(j, size_w)))
            if key not in seen:
                seen.add(key)
                yield i, j


@torch.no_grad()
def _error_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> float:
    wrong = 0
    for start in range(0, images.shape[0], batch_size):
        logits = model(images[start : start + batch_size])
        wrong += int((logits.argmax(dim=1) != labels[start : start + batch_size]).sum())
    return wrong / images.shape[0]


def fourier_heatmap(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = 4.0,
    size: Optional[int] = None,
    stride: int = 1,
    batch_size: int = 256,
    device: Any = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Model Fourier heat map: error rate under x + r * eps * U_ij (r = +-1 per image and channel), clipped.

    Args:
        model: classifier taking [0, 1] images (it normalises internally).
        images: float NCHW images in [0, 1] (uint8 is scaled).
        labels: int64 [N] labels.
        eps: l2 norm epsilon of the perturbation per channel.
        size: image side (default: the images' H; must equal W).
        stride: evaluate every `stride`-th frequency row/column (cells in between are NaN); 1 = full map.
        batch_size: evaluation batch size.
        device: where to evaluate (default: the model's device).
        generator: seeds the random signs r.

    Returns:
        Tensor [H, W] of error rates in [0, 1] (centred, DC at the middle; NaN where not evaluated).
    """
    x = _as_nchw(images)
    n, c, h, w = x.shape
    if size is not None and size != h:
        raise ValueError(f"size={size} does not match the images' height {h}")
    if h != w:
        raise ValueError(f"fourier_heatmap needs square images, got {h}x{w}")
    if labels.shape[0] != n:
        raise ValueError(f"labels ({labels.shape[0]}) and images ({n}) differ in length")
    if stride < 1:
        raise ValueError(f"stride={stride} must be >= 1")
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    x, labels = x.to(device), labels.to(device)
    heat = torch.full((h, w), float("nan"))
    was_training = model.training
    model.eval()
    try:
        for i, j in _half_plane(h, w, stride):
            basis = fourier_basis(i, j, h, dtype=x.dtype).to(device)
            signs = torch.randint(0, 2, (n, c, 1, 1), generator=generator).to(device, x.dtype) * 2 - 1
            perturbed = (x + signs * eps * basis).clamp_(0.0, 1.0)
            err = _error_rate(model, perturbed, labels, batch_size)
            heat[i, j] = err
            heat[_mirror(i, h), _mirror(j, w)] = err
    finally:
        model.train(was_training)
    return heat


def _display(s: torch.Tensor, log: bool) -> torch.Tensor:
    """Panel values: log(S / max S + 1e-8) (max at 0), or min-max scaled when S is already logarithmic."""
    s = s.detach().double().cpu()
    if log:
        return torch.log(s / s.max().clamp_min(1e-30) + 1e-8)
    span = (s.max() - s.min()).clamp_min(1e-30)
    return (s - s.min()) / span


def plot_spectra(
    spectra: Dict[str, torch.Tensor],
    log: bool = True,
    ncols: Optional[int] = None,
    cmap: str = "viridis",
    panel_size: Tuple[float, float] = (2.6, 2.6),
) -> Any:
    """One panel per spectrum, each normalised by its own maximum and shown as log(S + 1e-8).

    Args:
        spectra: name -> [H, W] spectrum (from `spectrum` / `perturbation_spectrum`).
        log: apply the log (set False for 'mean_log_abs' spectra; they are then min-max scaled).
        ncols: panels per row (default: all in one row up to 5).
        cmap: matplotlib colour map.
        panel_size: inches per panel.

    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not spectra:
        raise ValueError("plot_spectra needs at least one spectrum")
    ncols = ncols or min(len(spectra), 5)
    nrows = (len(spectra) + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False
    )
    for ax, (name, s) in zip(axes.flat, spectra.items()):
        image = ax.imshow(_display(s, log).numpy(), cmap=cmap)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[len(spectra) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_fourier_heatmap(heatmap: torch.Tensor, title: str = "error rate", cmap: str = "magma") -> Any:
    """Show a Fourier heat map (error rate per frequency, DC at the centre).

    Args:
        heatmap: [H, W] from `fourier_heatmap`.
        title: panel title.
        cmap: matplotlib colour map.

    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    image = ax.imshow(heatmap.detach().cpu().numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
