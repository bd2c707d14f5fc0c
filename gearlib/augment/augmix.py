"""AugMix (Hendrycks et al.) on whole batches: stochastic op chains, Dirichlet/Beta mixing, J views per sample.

`mix_views` is the shared engine (AugMix, ERA and PRIME differ only in the op set and in w, d, J).
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch

from gearlib.augment import rng
from gearlib.augment.defaults import AUGMIX_DEFAULTS, AUGMIX_SEVERITY, MIX_ALPHA
from gearlib.augment.ops import (
    AUGMIX_OPS,
    OP_INDEX,
    apply_ops,
    augmix_magnitudes,
    check_batch,
    from_unit,
    to_unit,
)

MAX_STOCHASTIC_DEPTH = 3  # depth -1 draws d uniformly from {1, ..., 3} per chain


class OpSet(Protocol):
    """What `mix_views` needs from an op set O: op names, an identity flag and a per-sample apply."""

    names: Tuple[str, ...]

    @property
    def is_identity(self) -> bool: ...

    def apply(
        self, x: torch.Tensor, op_index: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor: ...


class AugMixOps:
    """The AugMix op set O (default: the 9 ops that avoid the -C corruptions) at severity S.

    Args:
        names: ops to draw from (uniformly), a subset of AUGMIX_OPS.
        severity: S, level upper bound (0..10); S = 0 makes every chain the identity.
    """

    def __init__(self, names: Sequence[str] = AUGMIX_OPS, severity: float = AUGMIX_SEVERITY) -> None:
        names = tuple(names)
        bad = [n for n in names if n not in AUGMIX_OPS]
        if bad or not names:
            raise ValueError(f"unknown or empty AugMix op list {list(names)}; choose from {list(AUGMIX_OPS)}")
        if not 0.0 <= float(severity) <= 10.0:
            raise ValueError(f"severity must lie in [0, 10], got {severity}")
        self.names = names
        self.severity = float(severity)
        self._global = torch.tensor([OP_INDEX[n] for n in names])

    @property
    def is_identity(self) -> bool:
        """Whether every op leaves the image unchanged (severity 0)."""
        return self.severity == 0.0

    def apply(
        self, x: torch.Tensor, op_index: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """Apply op `names[op_index[i]]` to sample i of a [0,1] float batch, in place (-1 = skip)."""
        k = torch.where(op_index >= 0, self._global[op_index.clamp_min(0)], op_index)
        mags = augmix_magnitudes(k, self.severity, x.shape[-2], x.shape[-1], generator)
        return apply_ops(x, k, mags, inplace=True)

    def __repr__(self) -> str:
        return f"AugMixOps(names={list(self.names)}, severity={self.severity})"


def _inverse(perm: torch.Tensor) -> torch.Tensor:
    """Inverse of a permutation of 0..n-1 (CPU int64)."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    return inv


def check_mixing(width: int, depth: int, views: int, alpha: float) -> None:
    """Raise ValueError for chain width w, depth d, view count J or mixing alpha outside their ranges."""
    if int(width) != width or width < 0:
        raise ValueError(f"chain width w must be an integer >= 0, got {width}")
    if int(depth) != depth or depth < -1:
        raise ValueError(
            f"chain depth d must be an integer >= 1, 0 (identity) or -1 (random 1..3), got {depth}"
        )
    if int(views) != views or views < 0:
        raise ValueError(f"views J must be an integer >= 0 (0 or 1: one augmented view), got {views}")
    if not float(alpha) > 0:
        raise ValueError(f"alpha (Dirichlet/Beta concentration) must be > 0, got {alpha}")


def mix_views(
    batch: torch.Tensor,
    ops: OpSet,
    *,
    width: int,
    depth: int,
    views: int,
    alpha: float = MIX_ALPHA,
    generator: Optional[torch.Generator] = None,
) -> List[torch.Tensor]:
    """Make the J views of a batch: the clean batch plus J - 1 AugMix-style augmented views.

    Each augmented view is x_aug = (1 - m) x + m sum_{i<w} omega_i chain_i(x) with omega ~ Dirichlet(alpha),
    m ~ Beta(alpha, alpha) and chain_i a composition of d ops drawn uniformly from `ops`, all per sample.
    All chains of all views run together, one op step at a time over the whole (J-1)*w*B stack.

    Args:
        batch: uint8 or float [B,C,H,W] (any device).
        ops: op set with `apply(x, op_index, generator)`, `names` and `is_identity`.
        width: w chains per view (0: views equal the input).
        depth: d ops per chain, -1 = uniform in {1, 2, 3} per chain, 0 = identity.
        views: J; >= 2 returns [clean, aug_1, ..., aug_{J-1}], 0 or 1 returns [aug].
        alpha: Dirichlet and Beta concentration.
        generator: source of randomness (same seed -> same views on CPU).
    Returns:
        list of J (or 1) tensors like `batch` (same dtype, shape and device).
    """
    check_batch(batch)
    check_mixing(width, depth, views, alpha)
    n_aug = views - 1 if views >= 2 else 1
    head = [batch] if views >= 2 else []
    if width == 0 or depth == 0 or ops.is_identity or batch.shape[0] == 0:
        return head + [batch.clone() for _ in range(n_aug)]
    x = to_unit(batch)
    b = x.shape[0]
    n = n_aug * width * b  # chain slots, index ((view * w) + chain) * B + sample
    if depth > 0:
        chain_depth = torch.full((n,), int(depth), dtype=torch.long)
    else:
        chain_depth = rng.randint(1, MAX_STOCHASTIC_DEPTH + 1, (n,), generator).cpu()
    # Each step the rows are regrouped so the chains that drew the same op are contiguous (one gather,
    # then every op works on a slice); `slots[r]` is the chain slot held by row r.
    chains, slots = x, torch.arange(b)
    for step in range(int(chain_depth.max())):
        op_index = rng.randint(0, len(ops.names), (n,), generator).cpu()
        op_index[chain_depth <= step] = -1
        new_slots = torch.from_numpy(np.argsort(op_index.numpy(), kind="stable"))
        rows = new_slots % b if step == 0 else _inverse(slots)[new_slots]
        chains, slots = chains.index_select(0, rows.to(x.device)), new_slots
        chains = ops.apply(chains, op_index[slots], generator)
    chains = chains.index_select(0, _inverse(slots).to(x.device)).view(n_aug, width, b, *x.shape[1:])
    if width == 1:
        mix = chains[:, 0]
    else:
        omega = rng.dirichlet(alpha, (n_aug, b, width), generator).to(x.device)
        mix = torch.einsum("vbk,vkbchw->vbchw", omega, chains)
    m = rng.beta(alpha, (n_aug, b), generator).to(x.device).view(n_aug, b, 1, 1, 1)
    augmented = mix.lerp_(x.unsqueeze(0).expand_as(mix), 1.0 - m)  # (1 - m) x + m mix, in place
    return head + [from_unit(v, batch.dtype) for v in augmented.unbind(0)]


def augmix(
    batch: torch.Tensor,
    *,
    severity: float = AUGMIX_SEVERITY,
    width: int = AUGMIX_DEFAULTS.width,
    depth: int = AUGMIX_DEFAULTS.depth,
    alpha: float = MIX_ALPHA,
    views: int = AUGMIX_DEFAULTS.views,
    generator: Optional[torch.Generator] = None,
) -> List[torch.Tensor]:
    """AugMix views of a batch with the 9 ops that avoid the -C corruptions, batched on its device.

    Args:
        batch: uint8 [B,C,H,W] in [0,255] or float in [0,1] (any device).
        severity: S, op level upper bound (0..10, 0 = identity).
        width: w, chains mixed per view (Dirichlet(alpha) weights).
        depth: d ops per chain, -1 = uniform in {1, 2, 3}.
        alpha: Dirichlet and Beta(alpha, alpha) concentration.
        views: J; >= 2 gives [clean, aug_1, ..., aug_{J-1}] for the JSD loss, 0 or 1 gives [aug].
        generator: source of randomness.
    Returns:
        list of view tensors with the input's dtype, shape and device.
    """
    return mix_views(
        batch,
        AugMixOps(severity=severity),
        width=width,
        depth=depth,
        views=views,
        alpha=alpha,
        generator=generator,
    )
