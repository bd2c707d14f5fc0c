"""Batched AugMix image operations: a whole NCHW batch at once, per-sample parameters, on its own device.

Kernels work on float pixels in [0,1] (8-bit levels v/255); public ops keep the input dtype (uint8 or float).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from gearlib.augment import rng

# The AugMix operations that do not overlap the -C test corruptions (AugMix paper, Sec. 3), in a fixed
# order: an op's index into AUGMIX_OPS is how `apply_ops` and `augmix_magnitudes` are told which op to run.
POINT_OPS: Tuple[str, ...] = ("autocontrast", "equalize", "posterize", "solarize")
GEOMETRIC_OPS: Tuple[str, ...] = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
AUGMIX_OPS: Tuple[str, ...] = POINT_OPS + GEOMETRIC_OPS
OP_INDEX: Dict[str, int] = {name: index for index, name in enumerate(AUGMIX_OPS)}
SHEAR_OPS: Tuple[str, ...] = ("shear_x", "shear_y")
TRANSLATE_OPS: Tuple[str, ...] = ("translate_x", "translate_y")
MAX_LEVEL = 10.0  # AugMix levels are scaled against this maximum

PerSample = Union[float, int, torch.Tensor]
OpIndex = Union[np.ndarray, torch.Tensor]


def op_mask(op_index: OpIndex, *names: str) -> OpIndex:
    """Boolean mask of the entries of `op_index` (NumPy or torch indices into AUGMIX_OPS) that name an op in
    `names`."""
    bad = [name for name in names if name not in OP_INDEX]
    if bad or not names:
        raise ValueError(f"unknown or empty AugMix op list {list(names)}; choose from {list(AUGMIX_OPS)}")
    mask = op_index == OP_INDEX[names[0]]
    for name in names[1:]:
        mask = mask | (op_index == OP_INDEX[name])
    return mask


# ---------------------------------------------------------------------------------------------------
# dtype handling


def check_batch(x: torch.Tensor) -> None:
    """Raise ValueError unless `x` is an NCHW uint8 or floating-point image batch."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected an NCHW image batch (4-D tensor), got {shape}; add a batch dimension")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"expected uint8 [0,255] or float [0,1] images, got dtype {x.dtype}")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0,255] -> float32 [0,1]; floating input -> float32 (values unchanged)."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


def from_unit(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float [0,1] -> `dtype` (uint8: rounded to the nearest level and clamped to [0,255])."""
    if dtype == torch.uint8:
        return y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return y.to(dtype)


def keep_dtype(kernel: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Wrap a [0,1]-float kernel so it accepts uint8 or float batches and returns the input dtype."""

    def op(x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        check_batch(x)
        return from_unit(kernel(to_unit(x), *args, **kwargs), x.dtype)

    op.__name__ = kernel.__name__.lstrip("_")
    op.__doc__ = kernel.__doc__
    return op


def per_sample(value: PerSample, n: int, device: torch.device) -> torch.Tensor:
    """A scalar or [n] tensor as a float32 [n] tensor on `device`."""
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"per-sample parameter must be a scalar or have shape [{n}], got {tuple(t.shape)}")
    return t.to(device)


# ---------------------------------------------------------------------------------------------------
# point operations (kernels on [0,1] floats)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """8-bit level of each pixel (0..255, float)."""
    return x.mul(255.0).round_().clamp_(0, 255)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each image channel so its darkest pixel becomes 0 and its brightest 1 (flat channels kept).

    Args:
        x: float [N,C,H,W] in [0,1].
    Returns:
        float [N,C,H,W] in [0,1].
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 1.0 / (hi - lo).clamp_min(1e-12))
    lo = torch.where(flat, torch.zeros_like(lo), lo)
    return ((x - lo) * scale).clamp_(0.0, 1.0)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram-equalise each image channel over 256 levels (PIL/torchvision rule, one bincount per batch).

    Args:
        x: float [N,C,H,W] in [0,1] (quantised to 8-bit levels for the histogram).
    Returns:
        float [N,C,H,W] in [0,1]; channels with a single level (step 0) are returned unchanged.
    """
    n, c, h, w = x.shape
    levels = _levels(x)
    offsets = torch.arange(0, n * c * 256, 256, device=x.device, dtype=x.dtype).view(n, c, 1, 1)
    flat = (levels + offsets).int().view(-1)  # level + 256 * channel index (int32 is much faster than int64)
    hist = torch.bincount(flat, minlength=n * c * 256).view(n * c, 256)
    brightest = levels.view(n * c, h * w).amax(dim=1, keepdim=True).long()
    step = torch.div(h * w - hist.gather(1, brightest), 255, rounding_mode="floor")  # [nc, 1]
    safe = step.clamp_min(1)
    lut = torch.div(hist.cumsum(1) + torch.div(safe, 2, rounding_mode="floor"), safe, rounding_mode="floor")
    lut = F.pad(lut, (1, 0))[:, :-1].clamp_(0, 255).to(x.dtype).div_(255.0)
    out = lut.view(-1).index_select(0, flat).view(n, c, h, w)
    flat_channels = (step == 0).view(n, c, 1, 1)
    if x.is_cuda or bool(flat_channels.any()):  # (skip the check, not the op, on the GPU: no sync)
        out = torch.where(flat_channels, x, out)
    return out


def _posterize(x: torch.Tensor, bits: PerSample) -> torch.Tensor:
    """Keep the `bits` most significant bits of each 8-bit level (per sample).

    Args:
        x: float [N,C,H,W] in [0,1].
        bits: bits kept per sample, 0..8 (scalar or [N]).
    Returns:
        float [N,C,H,W] in [0,1].
    """
    b = per_sample(bits, x.shape[0], torch.device("cpu"))  # checked on the CPU: no device sync
    if bool(((b < 0) | (b > 8)).any()):
        raise ValueError(f"posterize bits must lie in 0..8, got {b.tolist()}")
    step = torch.pow(2.0, 8.0 - b.round()).to(x.device).view(-1, 1, 1, 1)
    return torch.floor(_levels(x) / step).mul_(step).div_(255.0)


def _solarize(x: torch.Tensor, threshold: PerSample) -> torch.Tensor:
    """Invert pixels whose 8-bit level is >= `threshold` (per sample; 256 leaves the image unchanged).

    Args:
        x: float [N,C,H,W] in [0,1].
        threshold: 8-bit level 0..256 (scalar or [N]).
    Returns:
        float [N,C,H,W] in [0,1].
    """
    t = (per_sample(threshold, x.shape[0], x.device) - 1e-3).div_(255.0).view(-1, 1, 1, 1)
    inverted = torch.ge(x, t, out=torch.empty_like(x))  # 1.0 where inverted (faster than torch.where)
    return inverted.sub_(x).abs_()  # |1 - x| = 1 - x where inverted, |0 - x| = x elsewhere


# ---------------------------------------------------------------------------------------------------
# geometric operations: one batched affine_grid + grid_sample with per-sample matrices


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp each image by its own inverse affine map, bilinear, zero fill (torchvision's F.affine sampling).

    Args:
        x: float [N,C,H,W].
        theta: [N,2,3] map from output to input pixel coordinates, both measured from the image centre
            in pixels (x right, y down), as torchvision's `_get_inverse_affine_matrix` returns it.
    Returns:
        float [N,C,H,W].
    """
    n, _, h, w = x.shape
    if theta.shape != (n, 2, 3):
        raise ValueError(f"theta must have shape [{n}, 2, 3], got {tuple(theta.shape)}")
    # Rescale to grid_sample's normalised [-1, 1] coordinates (align_corners=False), then build the grid as
    # a sum of an [n,1,W] and an [n,H,1] term (cheaper than affine_grid's batched matmul).
    scale = torch.tensor([[1.0, h / w, 2.0 / w], [w / h, 1.0, 2.0 / h]], dtype=theta.dtype)
    t = (theta.cpu() * scale).to(device=x.device, dtype=x.dtype).view(n, 2, 3, 1, 1)
    xs = torch.linspace(-1.0 + 1.0 / w, 1.0 - 1.0 / w, w, device=x.device, dtype=x.dtype).view(1, 1, w)
    ys = torch.linspace(-1.0 + 1.0 / h, 1.0 - 1.0 / h, h, device=x.device, dtype=x.dtype).view(1, h, 1)
    grid = torch.empty(n, h, w, 2, device=x.device, dtype=x.dtype)
    for i in range(2):
        torch.add(t[:, i, 0] * xs, t[:, i, 1] * ys + t[:, i, 2], out=grid[..., i])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def geometric_theta(name: str, magnitude: torch.Tensor | np.ndarray, height: int, width: int) -> torch.Tensor:
    """Inverse affine maps for one geometric op with per-sample magnitudes (CPU float64 [n,2,3]).

    Args:
        name: one of GEOMETRIC_OPS.
        magnitude: [n] degrees (rotate, counter-clockwise like F.rotate), shear factor (shear_x/y, about
            the top-left corner like PIL and torchvision's AugMix) or pixels (translate_x/y).
        height, width: image size H, W in pixels.
    Returns:
        [n,2,3] maps for `_affine`.
    """
    if name not in GEOMETRIC_OPS:
        raise ValueError(f"unknown geometric op {name!r}; choose from {GEOMETRIC_OPS}")
    m = np.asarray(magnitude.detach().cpu() if isinstance(magnitude, torch.Tensor) else magnitude, np.float64)
    return torch.from_numpy(_theta_np(np.full(m.shape, OP_INDEX[name]), m, height, width))


def _theta_np(op: np.ndarray, m: np.ndarray, height: int, width: int) -> np.ndarray:
    """[n,2,3] float64 inverse maps for geometric ops (AUGMIX_OPS indices `op`) and magnitudes `m`."""
    theta = np.zeros((op.shape[0], 2, 3))
    rad = np.where(op_mask(op, "rotate"), np.deg2rad(m), 0.0)
    theta[:, 0, 0] = theta[:, 1, 1] = np.cos(rad)
    theta[:, 0, 1], theta[:, 1, 0] = -np.sin(rad), np.sin(rad)
    shear_x = np.where(op_mask(op, "shear_x"), m, 0.0)
    shear_y = np.where(op_mask(op, "shear_y"), m, 0.0)
    theta[:, 0, 1] += shear_x
    theta[:, 1, 0] += shear_y
    theta[:, 0, 2] = shear_x * (height / 2.0) - np.where(op_mask(op, "translate_x"), m, 0.0)
    theta[:, 1, 2] = shear_y * (width / 2.0) - np.where(op_mask(op, "translate_y"), m, 0.0)
    return theta


def _geometric(name: str) -> Callable[[torch.Tensor, PerSample], torch.Tensor]:
    def kernel(x: torch.Tensor, magnitude: PerSample) -> torch.Tensor:
        m = per_sample(magnitude, x.shape[0], torch.device("cpu"))
        return _affine(x, geometric_theta(name, m, x.shape[-2], x.shape[-1]))

    kernel.__name__ = name
    return kernel


def _shift(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Move each image right by dx[i] and down by dy[i] whole pixels, zero fill (an exact bilinear translate).

    Args:
        x: float [N,C,H,W].
        dx, dy: int64 [N] (CPU) shifts in pixels.
    Returns:
        float [N,C,H,W].
    """
    n, c, h, w = x.shape
    px, py = int(dx.abs().max()), int(dy.abs().max())
    padded = F.pad(x, (px, px, py, py))  # zero border wide enough for every shift
    rows = torch.arange(h).view(1, h, 1) + py - dy.view(-1, 1, 1)
    cols = torch.arange(w).view(1, 1, w) + px - dx.view(-1, 1, 1)
    flat = (rows * (w + 2 * px) + cols).to(x.device).view(n, 1, h * w).expand(n, c, h * w)
    return padded.view(n, c, -1).gather(2, flat).view(n, c, h, w)


# ---------------------------------------------------------------------------------------------------
# public dtype-preserving ops

autocontrast = keep_dtype(_autocontrast)
equalize = keep_dtype(_equalize)
posterize = keep_dtype(_posterize)
solarize = keep_dtype(_solarize)
affine = keep_dtype(_affine)
rotate = keep_dtype(_geometric("rotate"))
shear_x = keep_dtype(_geometric("shear_x"))
shear_y = keep_dtype(_geometric("shear_y"))
translate_x = keep_dtype(_geometric("translate_x"))
translate_y = keep_dtype(_geometric("translate_y"))
for _fn, _doc in (
    (rotate, "Rotate each image by `magnitude` degrees (per sample) about its centre; bilinear, zero fill."),
    (
        shear_x,
        "Shear x by factor `magnitude` (x_in = x + m*y, about the top-left corner); bilinear, zero fill.",
    ),
    (
        shear_y,
        "Shear y by factor `magnitude` (y_in = y + m*x, about the top-left corner); bilinear, zero fill.",
    ),
    (translate_x, "Shift each image right by `magnitude` pixels (per sample); bilinear, zero fill."),
    (translate_y, "Shift each image down by `magnitude` pixels (per sample); bilinear, zero fill."),
):
    _fn.__doc__ = _doc

_POINT_KERNELS = {
    "autocontrast": lambda x, m: _autocontrast(x),
    "equalize": lambda x, m: _equalize(x),
    "posterize": _posterize,
    "solarize": _solarize,
}


# ---------------------------------------------------------------------------------------------------
# per-sample dispatch


def apply_to_rows(
    x: torch.Tensor, out: torch.Tensor, select: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    """out[select] = fn(x[select]) for a boolean row mask; a contiguous run of rows uses slices, not gathers."""
    idx = np.flatnonzero(select)
    if idx.size == 0:
        return
    start, stop = int(idx[0]), int(idx[-1]) + 1
    if stop - start == idx.size:
        out[start:stop] = fn(x[start:stop])
    else:
        rows = torch.from_numpy(idx).to(x.device)
        out.index_copy_(0, rows, fn(x.index_select(0, rows)))


def apply_ops(
    x: torch.Tensor, op_index: torch.Tensor, magnitude: torch.Tensor, inplace: bool = False
) -> torch.Tensor:
    """Apply a per-sample choice of AugMix op to a [0,1] float batch, each op on the sub-batch that drew it.

    All geometric samples share one batched affine warp; point ops run once per op on their sub-batch.

    Args:
        x: float [N,C,H,W] in [0,1] (any device).
        op_index: int64 [N] (CPU) index into AUGMIX_OPS per sample, -1 = leave the sample unchanged.
        magnitude: float [N] (CPU) op parameter per sample (bits, threshold level, degrees, factor, pixels).
        inplace: write the results into `x` instead of a copy.
    Returns:
        float [N,C,H,W] in [0,1].
    """
    n = x.shape[0]
    k = op_index.detach().cpu().numpy()
    m = magnitude.detach().cpu().float().numpy()
    if k.shape != (n,) or m.shape != (n,):
        raise ValueError(f"op_index and magnitude must have shape [{n}]")
    out = x if inplace else x.clone()

    def run(select: np.ndarray, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        apply_to_rows(x, out, select, fn)

    for name in POINT_OPS:
        sel = op_mask(k, name)
        if sel.any():
            mags = torch.from_numpy(m[sel])
            run(sel, lambda sub, name=name, mags=mags: _POINT_KERNELS[name](sub, mags))
    # Whole-pixel translations are exact shifts: one gather per axis for all of them.
    whole = op_mask(k, *TRANSLATE_OPS) & (m == np.round(m))
    if whole.any():
        shift = torch.from_numpy(np.round(m[whole]).astype(np.int64))
        is_x = torch.from_numpy(op_mask(k[whole], "translate_x"))
        dx, dy = torch.where(is_x, shift, 0 * shift), torch.where(is_x, 0 * shift, shift)
        run(whole, lambda sub: _shift(sub, dx, dy))
    geo = op_mask(k, *GEOMETRIC_OPS) & ~whole
    if geo.any():
        theta = torch.from_numpy(_theta_np(k[geo], m[geo].astype(np.float64), x.shape[-2], x.shape[-1]))
        run(geo, lambda sub: _affine(sub, theta))
    return out


def augmix_magnitudes(
    op_index: torch.Tensor,
    severity: float,
    height: int,
    width: int,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw AugMix op parameters (book/notes/era.md#notes-era-ops): level l ~ U(0.1, S) per sample, signs for geometric ops.

    posterize keeps 4 - floor(0.4 l) bits, solarize inverts levels >= 256 - floor(25.6 l), rotate by
    floor(3 l) degrees, shear by 0.03 l, translate by floor(l * size/3 / 10) pixels (at S <= 10).

    Args:
        op_index: int64 [N] index into AUGMIX_OPS (any value for -1 entries).
        severity: S, the upper bound of the level (0..10).
        height, width: image size in pixels (translation scales with it).
        generator: source of randomness.
    Returns:
        float32 [N] (CPU) magnitudes for `apply_ops`.
    """
    n = op_index.shape[0]
    level = rng.uniform((n,), generator, 0.1, float(severity)).cpu()
    signs = rng.sign((n,), generator).cpu()
    k = op_index.cpu()
    frac = level / MAX_LEVEL
    mag = torch.zeros(n)
    mag = torch.where(op_mask(k, "posterize"), 4.0 - torch.floor(frac * 4.0), mag)
    mag = torch.where(op_mask(k, "solarize"), 256.0 - torch.floor(frac * 256.0), mag)
    mag = torch.where(op_mask(k, "rotate"), torch.floor(frac * 30.0) * signs, mag)
    mag = torch.where(op_mask(k, *SHEAR_OPS), frac * 0.3 * signs, mag)
    mag = torch.where(op_mask(k, "translate_x"), torch.floor(frac * (width / 3.0)) * signs, mag)
    mag = torch.where(op_mask(k, "translate_y"), torch.floor(frac * (height / 3.0)) * signs, mag)
    return mag
