"""PRIME (Modas et al.) on whole batches: random spectral filters, smooth colour maps and diffeomorphisms.

CIFAR settings of the PRIME code; each primitive draws its strength per sample, works on [0,1] floats, clamps.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from gearlib.augment import rng
from gearlib.augment.augmix import mix_views
from gearlib.augment.defaults import AUGMIX_DEFAULTS, MIX_ALPHA
from gearlib.augment.ops import PerSample, apply_to_rows, keep_dtype, per_sample

PRIMITIVES: Tuple[str, ...] = ("spectral", "colour", "spatial")
ALIASES = {"filter": "spectral", "color": "colour", "diffeo": "spatial", "diffeomorphism": "spatial"}


# ---------------------------------------------------------------------------------------------------
# the three primitives (kernels on [0,1] floats, per-sample strengths)


def _random_filter(
    x: torch.Tensor,
    sigma: PerSample,
    *,
    kernel_size: int = 3,
    center: str = "centre",
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Spectral primitive: convolve each image with its own k x k kernel delta + sigma * xi, xi ~ N(0, I).

    The kernel is shared by the colour channels, padding keeps the size, the result is clamped to [0,1].

    Args:
        x: float [N,C,H,W] in [0,1].
        sigma: kernel noise scale per sample (scalar or [N]); 0 is the identity with a centred tap.
        kernel_size: k (odd).
        center: "centre" puts the identity tap at the middle; "reference" at index ceil(k/2) like the PRIME
            code (a one-pixel diagonal shift for k = 3).
        generator: source of the kernel noise.
    Returns:
        float [N,C,H,W] in [0,1].
    """
    n, c, h, w = x.shape
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
    if center not in ("centre", "reference"):
        raise ValueError(f"filter center must be 'centre' or 'reference', got {center!r}")
    tap = kernel_size // 2 if center == "centre" else min(math.ceil(kernel_size / 2), kernel_size - 1)
    s = per_sample(sigma, n, x.device).view(n, 1, 1)
    kernels = s * rng.normal((n, kernel_size, kernel_size), generator, x.device)
    kernels[:, tap, tap] += 1.0
    weight = kernels.repeat_interleave(c, dim=0).unsqueeze(1)  # [N*C, 1, k, k]
    out = F.conv2d(x.reshape(1, n * c, h, w), weight, padding=kernel_size // 2, groups=n * c)
    return out.view(n, c, h, w).nan_to_num_(1.0).clamp_(0.0, 1.0)


def _strengths(temperature: PerSample, cut: PerSample, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample temperature and integer cutoff as CPU tensors (checked there, so no device sync)."""
    cpu = torch.device("cpu")
    return per_sample(temperature, n, cpu), per_sample(cut, n, cpu).round()


def _random_smooth_color(
    x: torch.Tensor,
    temperature: PerSample,
    cut: PerSample,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Colour primitive: c -> clamp(c + sum_{n<=N} beta_n sin(n pi c), 0, 1), beta_n ~ N(0, T) per channel.

    The sine series is summed with Clenshaw's recurrence (two fused ops per frequency, no sin table).

    Args:
        x: float [N,C,H,W] in [0,1].
        temperature: T, the variance of the coefficients, per sample (scalar or [N]); 0 is the identity.
        cut: N, number of frequencies per sample (scalar or [N], >= 1).
        generator: source of the coefficients.
    Returns:
        float [N,C,H,W] in [0,1].
    """
    n, c = x.shape[:2]
    t, cuts = _strengths(temperature, cut, n)
    if bool((cuts < 1).any()) or bool((t < 0).any()):
        raise ValueError("colour primitive needs cut N >= 1 and temperature T >= 0")
    n_max = int(cuts.max())
    t, cuts = t.to(x.device), cuts.to(x.device)
    freqs = torch.arange(1, n_max + 1, device=x.device, dtype=x.dtype)
    coeff = rng.normal((n, c, n_max), generator, x.device) * t.sqrt().view(n, 1, 1)
    coeff = coeff * (freqs.view(1, 1, -1) <= cuts.view(n, 1, 1))
    theta = x * math.pi
    two_cos = 2.0 * torch.cos(theta)
    b1 = torch.zeros_like(x)
    b2 = torch.zeros_like(x)
    for k in range(n_max - 1, -1, -1):  # b_k = beta_k + 2 cos(theta) b_{k+1} - b_{k+2}
        bk = torch.addcmul(coeff[:, :, k, None, None] - b2, two_cos, b1)
        b1, b2 = bk, b1
    return (x + b1 * torch.sin(theta)).clamp_(0.0, 1.0)


def _random_diffeo(
    x: torch.Tensor,
    temperature: PerSample,
    cut: PerSample,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Spatial primitive: resample each image at (x - tau_x, y - tau_y) for a random smooth field tau.

    tau = n sqrt(T) sum_{i^2+j^2 < (cut+1/2)^2} c_ij / sqrt(i^2+j^2) sin(i pi u) sin(j pi v), c_ij ~ N(0, 1),
    one field per sample and component; bilinear sampling, coordinates clamped to the border.

    Args:
        x: float [N,C,H,W] in [0,1] (H, W >= 2).
        temperature: T per sample (scalar or [N]); 0 is the identity.
        cut: high-frequency cutoff per sample (scalar or [N], >= 1).
        generator: source of the field coefficients.
    Returns:
        float [N,C,H,W] in [0,1].
    """
    n, _, h, w = x.shape
    t, cuts = _strengths(temperature, cut, n)
    if bool((cuts < 1).any()) or bool((t < 0).any()) or h < 2 or w < 2:
        raise ValueError("diffeomorphism needs cut >= 1, temperature T >= 0 and images of at least 2x2")
    m = int(cuts.max())
    t, cuts = t.to(x.device), cuts.to(x.device)
    k = torch.arange(1, m + 1, device=x.device, dtype=x.dtype)
    radius = (k.view(-1, 1) ** 2 + k.view(1, -1) ** 2).sqrt()  # [m, m] over (i, j)
    energy = (radius.unsqueeze(0) < cuts.view(n, 1, 1) + 0.5) / radius  # [n, m, m]
    coeff = rng.normal((2, n, m, m), generator, x.device) * energy
    sin_x = torch.sin(math.pi * torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(-1, 1) * k)
    sin_y = torch.sin(math.pi * torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(-1, 1) * k)
    fields = sin_y @ coeff.transpose(-1, -2) @ sin_x.t()  # [2, n, h, w]: sum_ij c_ij s_x[x, i] s_y[y, j]
    root_t = t.sqrt().view(n, 1, 1)
    src_x = (torch.arange(w, device=x.device, dtype=x.dtype) - root_t * fields[0] * w).clamp_(0, w - 1)
    src_y = (torch.arange(h, device=x.device, dtype=x.dtype).view(-1, 1) - root_t * fields[1] * h).clamp_(
        0, h - 1
    )
    grid = torch.stack((src_x * (2.0 / (w - 1)) - 1.0, src_y * (2.0 / (h - 1)) - 1.0), dim=-1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.clamp_(0.0, 1.0)


random_filter = keep_dtype(_random_filter)
random_smooth_color = keep_dtype(_random_smooth_color)
random_diffeo = keep_dtype(_random_diffeo)


def temperature_range(size: int, cut: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Allowed diffeomorphism temperatures [T1, T2] for an image of `size` pixels and cutoff `cut`.

    T1 = 1 / (pi n^2 ln cut) gives a typical half-pixel displacement; T2 = 4 / (pi^3 cut^2 ln cut) is the
    largest T without overhangs.
    """
    cut = cut.double() + 1e-6
    log = cut.log()
    return 1.0 / (math.pi * size**2 * log), 4.0 / (math.pi**3 * cut**2 * log)


# ---------------------------------------------------------------------------------------------------
# configuration and the op set used by the mixing engine


@dataclasses.dataclass
class PrimeConfig:
    """PRIME primitive settings (the CIFAR defaults of the PRIME code).

    Beta(s - s/(r+1), s/(r+1)) distributions pick the diffeomorphism cutoff (s_cut, r_cut) and temperature
    (s_t, r_t); with s = r = 1 both are Beta(1/2, 1/2).
    """

    kernel_size: int = 3
    sigma_max: float = 4.0
    filter_center: str = "centre"
    color_cut_max: int = 100
    color_t_max: float = 0.01
    diffeo_cut_min: int = 2
    diffeo_cut_max: int = 100
    diffeo_alpha: float = 1.0
    diffeo_s_t: float = 1.0
    diffeo_r_t: float = 1.0
    diffeo_s_cut: float = 1.0
    diffeo_r_cut: float = 1.0
    primitives: Tuple[str, ...] = PRIMITIVES

    def __post_init__(self) -> None:
        self.primitives = tuple(ALIASES.get(p, p) for p in self.primitives)
        bad = [p for p in self.primitives if p not in PRIMITIVES]
        if bad or not self.primitives:
            raise ValueError(
                f"unknown or empty PRIME primitive list {list(self.primitives)}; choose from {PRIMITIVES}"
            )
        if self.filter_center not in ("centre", "reference"):
            raise ValueError(f"filter_center must be 'centre' or 'reference', got {self.filter_center!r}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        for knob in ("sigma_max", "color_t_max", "diffeo_alpha"):
            if getattr(self, knob) < 0:
                raise ValueError(f"PRIME {knob} must be >= 0, got {getattr(self, knob)}")
        if self.color_cut_max < 1:
            raise ValueError(f"color_cut_max must be >= 1, got {self.color_cut_max}")
        if not 2 <= self.diffeo_cut_min < self.diffeo_cut_max:
            raise ValueError(
                f"need 2 <= diffeo_cut_min < diffeo_cut_max, got {self.diffeo_cut_min}, {self.diffeo_cut_max}"
            )
        if min(self.diffeo_s_t, self.diffeo_r_t, self.diffeo_s_cut, self.diffeo_r_cut) <= 0:
            raise ValueError("diffeo_s_t, diffeo_r_t, diffeo_s_cut and diffeo_r_cut must be > 0")

    @classmethod
    def from_knobs(cls, **knobs: Any) -> PrimeConfig:
        """Build from keyword knobs, raising ValueError that lists the valid names for an unknown one."""
        valid = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(knobs) - set(valid))
        if bad:
            raise ValueError(f"unknown PRIME knob(s) {bad}; valid: {valid}")
        return cls(**knobs)


def _beta_sr(s: float, r: float) -> Tuple[float, float]:
    """Beta parameters from peakedness s = a + b and bias r = a / b."""
    return s - s / (r + 1.0), s / (r + 1.0)


class PrimeOps:
    """The PRIME op set O = {spectral, colour, spatial}, each drawing CIFAR-range strengths per sample."""

    def __init__(self, config: Optional[PrimeConfig] = None) -> None:
        self.config = config if config is not None else PrimeConfig()
        self.names = self.config.primitives
        self.is_identity = False

    def sample_and_apply(
        self, name: str, x: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Draw strengths for the samples of `x` and apply primitive `name` ([0,1] floats)."""
        cfg, n = self.config, x.shape[0]
        if name == "spectral":
            sigma = rng.uniform((n,), generator, 0.0, cfg.sigma_max)
            return _random_filter(
                x, sigma, kernel_size=cfg.kernel_size, center=cfg.filter_center, generator=generator
            )
        if name == "colour":
            cut = rng.randint(1, cfg.color_cut_max + 1, (n,), generator)
            t = rng.uniform((n,), generator, 0.0, cfg.color_t_max)
            return _random_smooth_color(x, t, cut, generator=generator)
        cut_max = rng.randint(cfg.diffeo_cut_min + 1, cfg.diffeo_cut_max + 1, (n,), generator).cpu()
        b_cut = rng.beta2(*_beta_sr(cfg.diffeo_s_cut, cfg.diffeo_r_cut), (n,), generator)
        cut = torch.floor(b_cut * (cut_max + 1 - cfg.diffeo_cut_min) + cfg.diffeo_cut_min)
        t1, t2 = temperature_range(min(x.shape[-2:]), cut)
        t2 = torch.maximum(t1, cfg.diffeo_alpha * t2)
        b_t = rng.beta2(*_beta_sr(cfg.diffeo_s_t, cfg.diffeo_r_t), (n,), generator).double()
        t = (t1 + b_t * (t2 - t1)).float()
        return _random_diffeo(x, t, cut, generator=generator)

    def apply(
        self, x: torch.Tensor, op_index: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Apply primitive `names[op_index[i]]` to sample i of a [0,1] float batch, in place (-1 = skip)."""
        k = op_index.cpu().numpy()
        for op, name in enumerate(self.names):
            apply_to_rows(x, x, k == op, lambda sub, name=name: self.sample_and_apply(name, sub, generator))
        return x

    def __repr__(self) -> str:
        return f"PrimeOps({self.config})"


def prime(
    batch: torch.Tensor,
    *,
    width: int = AUGMIX_DEFAULTS.width,
    depth: int = AUGMIX_DEFAULTS.depth,
    views: int = AUGMIX_DEFAULTS.views,
    alpha: float = MIX_ALPHA,
    generator: Optional[torch.Generator] = None,
    **primitive_knobs: Any,
) -> List[torch.Tensor]:
    """PRIME views of a batch: chains of random primitives mixed like AugMix, batched on the batch's device.

    Args:
        batch: uint8 [B,C,H,W] or float in [0,1] (any device).
        width: chains per view (Dirichlet(alpha) weights), 3 in PRIME.
        depth: primitives per chain, -1 = uniform in {1, 2, 3} per chain.
        views: J; >= 2 gives [clean, aug_1, ..., aug_{J-1}], 0 or 1 gives [aug].
        alpha: Dirichlet and Beta(alpha, alpha) concentration.
        generator: source of randomness.
        **primitive_knobs: fields of PrimeConfig (sigma_max, color_t_max, diffeo_cut_max, filter_center ...).
    Returns:
        list of view tensors with the input's dtype, shape and device.
    """
    ops = PrimeOps(PrimeConfig.from_knobs(**primitive_knobs))
    return mix_views(batch, ops, width=width, depth=depth, views=views, alpha=alpha, generator=generator)


def primitive_names(names: Sequence[str]) -> Tuple[str, ...]:
    """Canonical primitive names (aliases filter/color/diffeo accepted)."""
    return tuple(ALIASES.get(n, n) for n in names)
