"""Random draws for batched augmentation: one optional `torch.Generator` drives every draw.

Small per-sample parameters are drawn on the generator's device (CPU when None) and moved to the batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

Shape = Sequence[int]


def draw_device(generator: Optional[torch.Generator]) -> torch.device:
    """Device the draws happen on: the generator's device, or the CPU for the global generator."""
    return generator.device if generator is not None else torch.device("cpu")


def uniform(
    shape: Shape, generator: Optional[torch.Generator] = None, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """U(low, high) float32 samples of `shape` on `draw_device(generator)`."""
    u = torch.rand(tuple(shape), generator=generator, device=draw_device(generator))
    return low + (high - low) * u


def randint(low: int, high: int, shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Integers uniform in {low, ..., high - 1} (int64) on `draw_device(generator)`."""
    return torch.randint(low, high, tuple(shape), generator=generator, device=draw_device(generator))


def sign(shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random signs in {-1, +1} (float32), each with probability 1/2."""
    return 1.0 - 2.0 * (uniform(shape, generator) < 0.5).float()


def seed_from(generator: Optional[torch.Generator] = None) -> int:
    """A 62-bit integer drawn from `generator` (or the global torch generator) to seed another RNG."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=draw_device(generator)).item())


def normal(shape: Shape, generator: Optional[torch.Generator], device: torch.device) -> torch.Tensor:
    """N(0, 1) float32 samples made directly on `device` (bulk draws, e.g. PRIME's random fields).

    With a generator on another device, a generator on `device` is seeded from it, so results stay
    reproducible without moving a large tensor between devices.
    """
    device = torch.device(device)
    if generator is None:
        return torch.randn(tuple(shape), device=device)
    if generator.device.type == device.type:
        return torch.randn(tuple(shape), generator=generator, device=device)
    local = torch.Generator(device=device)
    local.manual_seed(seed_from(generator))
    return torch.randn(tuple(shape), generator=local, device=device)


def gamma(concentration: float, shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Gamma(concentration, 1) float32 samples on the CPU, seeded from `generator`.

    torch's own Gamma sampler takes no generator, so NumPy draws them from a seed taken from it.
    """
    if not concentration > 0:
        raise ValueError(f"a Gamma/Dirichlet/Beta concentration must be > 0, got {concentration}")
    rng = np.random.default_rng(seed_from(generator))
    return torch.from_numpy(rng.standard_gamma(concentration, size=tuple(shape)).astype(np.float32))


def dirichlet(alpha: float, shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Symmetric Dirichlet(alpha, ..., alpha) weights over the last dimension of `shape` (CPU)."""
    g = gamma(alpha, shape, generator)
    return g / g.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def beta(alpha: float, shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Beta(alpha, alpha) samples of `shape` (CPU), as G1 / (G1 + G2) with Gamma(alpha) draws."""
    g = gamma(alpha, (2,) + tuple(shape), generator)
    return g[0] / (g[0] + g[1]).clamp_min(1e-12)


def beta2(a: float, b: float, shape: Shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Beta(a, b) samples of `shape` (CPU), as Ga / (Ga + Gb)."""
    ga = gamma(a, tuple(shape), generator)
    gb = gamma(b, tuple(shape), generator)
    return ga / (ga + gb).clamp_min(1e-12)
