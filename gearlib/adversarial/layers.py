"""Conditional layers of the in-situ knob: noisy conv/linear (parametric noise injection), dual BN, FiLM.

Every conditional layer reads one shared `Condition` held by its model, so a knob setting is one assignment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

PATHS = ("clean", "adv")
ALPHA_INIT = 0.25  # initial noise scale alpha of every noisy layer (FLOAT Sec. 4, after PNI)


@dataclass
class Condition:
    """Where the model's knob stands, read by every conditional layer on each forward pass.

    Attributes:
        bn: which BN set normalises: "clean" (BN_C) or "adv" (BN_A).
        noise: s in theta + s * alpha * eta (0 = the plain weights; 1 = the full learned noise).
        path: which weight mask a masked layer uses: "clean" (Pi_C) or "adv" (Pi_A) (SMART).
        lam: OAT's FiLM input: one lambda per sample (shape [N]), one for the batch (shape [1]), or None.
        width: the slimming factor SF of a slimmable model (FLOATS slim): every layer uses its first
            ceil(SF * C) channels; 1.0 is the full network.
    """

    bn: str = "clean"
    noise: float = 0.0
    path: str = "clean"
    lam: Optional[torch.Tensor] = None
    width: float = 1.0

    def __post_init__(self) -> None:
        if self.bn not in PATHS or self.path not in PATHS:
            raise ValueError(f"bn and path must be one of {PATHS}, got bn={self.bn!r}, path={self.path!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise scale must be >= 0, got {self.noise}")
        if not 0 < self.width <= 1:
            raise ValueError(f"slimming factor width must lie in (0, 1], got {self.width}")


def slim(channels: int, width: float) -> int:
    """Channels a layer of `channels` keeps at slimming factor `width`: ceil(width * C), at least one."""
    return max(1, math.ceil(width * channels))


CLEAN = Condition("clean", 0.0, "clean")  # the clean path of training: plain weights, BN_C
ADVERSARIAL = Condition("adv", 1.0, "adv")  # the adversarial path of training: noisy weights, BN_A


class ConditionalMixin:
    """Gives a layer a `condition` attribute that its model replaces by the model-wide one."""

    condition: Condition

    def _init_condition(self) -> None:
        self.condition = Condition()  # a plain attribute (not a submodule, not in the state dict)


class NoisyMixin(ConditionalMixin):
    """theta_hat = (theta + s * alpha * eta) * mask, eta ~ N(0, std(theta)^2) drawn fresh on every call.

    The std is taken without gradient, alpha is a trainable scalar per layer (it learns through eta, the
    reparameterisation of PNI, He et al. 2019), and the masks (SMART's Pi_C / Pi_A, FLOATS's sparsity
    mask) are buffers: None means dense. At a slimming factor below 1 the layer uses the leading block of
    its weight (`slim_in` / `slim_out` say whether its input and output channels are slimmed: the stem's
    three colour channels and the logits never are), and the noise is drawn for that block.
    """

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    alpha: Optional[nn.Parameter]
    mask_clean: Optional[torch.Tensor]
    mask_adv: Optional[torch.Tensor]
    slim_in: bool
    slim_out: bool
    dense_mask_grad: bool

    def _init_noise(self, noisy: bool, alpha: float) -> None:
        self._init_condition()
        self.slim_in = self.slim_out = True
        self.dense_mask_grad = False  # FLOATS's regrowth needs gradients at pruned positions too
        self.alpha = nn.Parameter(torch.tensor(float(alpha))) if noisy else None  # type: ignore[misc]
        self.register_buffer("mask_clean", None)  # type: ignore[attr-defined]
        self.register_buffer("mask_adv", None)  # type: ignore[attr-defined]

    def mask(self, path: str) -> Optional[torch.Tensor]:
        return self.mask_adv if path == "adv" else self.mask_clean

    def block(self) -> Tuple[int, int]:
        """(output, input) channels in use at the condition's slimming factor."""
        c_out, c_in = self.weight.shape[:2]
        width = self.condition.width
        return (slim(c_out, width) if self.slim_out else c_out, slim(c_in, width) if self.slim_in else c_in)

    def effective_weight(self) -> torch.Tensor:
        """The weight this forward pass uses under the current condition."""
        weight, mask = self.weight, self.mask(self.condition.path)
        if self.condition.width < 1:
            out, inp = self.block()
            weight = weight[:out, :inp]
            mask = mask[:out, :inp] if mask is not None else None
        noise = None
        if self.alpha is not None and self.condition.noise > 0:
            with torch.no_grad():
                sigma = weight.std()
            noise = self.condition.noise * self.alpha * sigma * torch.randn_like(weight)
        if mask is not None and self.dense_mask_grad:
            # FLOATS: the forward value is theta * mask, but the gradient reaches every weight, so that the
            # momentum of pruned weights can pick which to regrow (sparse momentum, Dettmers & Zettlemoyer)
            weight = weight - (weight * (1 - mask)).detach()
            return weight + noise * mask if noise is not None else weight
        if noise is not None:
            weight = weight + noise
        return weight * mask if mask is not None else weight

    def effective_bias(self) -> Optional[torch.Tensor]:
        if self.bias is None or self.condition.width >= 1:
            return self.bias
        return self.bias[: self.block()[0]]


class NoisyConv2d(NoisyMixin, nn.Conv2d):
    """A conv layer with learned weight noise and optional per-path masks (FLOAT, SMART)."""

    def __init__(self, *args, noisy: bool = True, alpha: float = ALPHA_INIT, **kwargs) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_noise(noisy, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight(), self.effective_bias())


class NoisyLinear(NoisyMixin, nn.Linear):
    """The classifier with learned weight noise (PNI covers the final linear layer too)."""

    def __init__(self, *args, noisy: bool = True, alpha: float = ALPHA_INIT, **kwargs) -> None:
        nn.Linear.__init__(self, *args, **kwargs)
        self._init_noise(noisy, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.effective_bias())


class DualBatchNorm2d(ConditionalMixin, nn.Module):
    """Two BN sets, BN_C for clean images and BN_A for adversarial ones (OAT, FLOAT): each keeps its own
    affine parameters and running statistics, and only the condition's set sees a batch."""

    def __init__(self, channels: int) -> None:
        nn.Module.__init__(self)
        self._init_condition()
        self.clean = nn.BatchNorm2d(channels)
        self.adv = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adv(x) if self.condition.bn == "adv" else self.clean(x)


def width_key(width: float) -> str:
    """ModuleDict key of a slimming factor: 1.0 -> "w1", 0.5 -> "w0_5"."""
    return "w" + f"{width:g}".replace(".", "_")


class SlimDualBatchNorm2d(ConditionalMixin, nn.Module):
    """Switchable dual BN (slimmable networks, Yu et al. 2018, made dual as FLOAT's): one BN_C / BN_A pair
    per slimming factor, each over that width's channels."""

    def __init__(self, channels: int, widths: Sequence[float]) -> None:
        nn.Module.__init__(self)
        self._init_condition()
        self.widths = tuple(float(w) for w in widths)
        self.sets = nn.ModuleDict(
            {
                width_key(w): nn.ModuleDict(
                    {"clean": nn.BatchNorm2d(slim(channels, w)), "adv": nn.BatchNorm2d(slim(channels, w))}
                )
                for w in self.widths
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = width_key(self.condition.width)
        if key not in self.sets:
            raise ValueError(
                f"slimming factor {self.condition.width} was not trained; use one of {self.widths}"
            )
        return self.sets[key][self.condition.bn](x)


class LambdaEncoding(nn.Module):
    """OAT's optional lambda encoding: a fixed random orthogonal matrix, one row per lambda of the training
    set (a buffer, not trained). Only those lambdas can be encoded."""

    def __init__(self, values: Sequence[float], dim: int = 128, seed: int = 0) -> None:
        super().__init__()
        if dim < len(values):
            raise ValueError(
                f"an orthogonal encoding of {len(values)} lambdas needs dim >= {len(values)}, got {dim}"
            )
        gaussian = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), device="cpu")
        basis, _ = torch.linalg.qr(gaussian)
        self.register_buffer("values", torch.tensor([float(v) for v in values]))
        self.register_buffer("codes", basis[: len(values)].contiguous())

    def forward(self, lam: torch.Tensor) -> torch.Tensor:
        lam = lam.to(self.values.device).flatten()
        gap, index = (lam[:, None] - self.values[None, :]).abs().min(dim=1)
        if bool((gap > 1e-6).any()):
            bad = sorted({round(float(v), 6) for v in lam[gap > 1e-6]})
            raise ValueError(f"lambda {bad} has no code: the encoding knows {self.values.tolist()} only")
        return self.codes[index]


class FiLM(ConditionalMixin, nn.Module):
    """OAT's feature-wise modulation h <- gamma * h + beta, with (gamma, beta) from a two-layer MLP of the
    sample's lambda: lambda itself (d_e = 1, as FLOAT's cost comparison assumes) or its row of a fixed
    orthogonal encoding (`encoder`, OAT's public code)."""

    def __init__(self, channels: int, encoder: Optional[LambdaEncoding] = None) -> None:
        nn.Module.__init__(self)
        self._init_condition()
        self.channels = channels
        self.encoder = encoder
        encoding = encoder.codes.shape[1] if encoder is not None else 1
        self.mlp = nn.Sequential(
            nn.Linear(encoding, 2 * channels), nn.LeakyReLU(0.2), nn.Linear(2 * channels, 2 * channels)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        lam = self.condition.lam
        if lam is None:
            raise RuntimeError("FiLM needs condition.lam (one lambda per sample); set it with conditioned()")
        codes = self.encoder(lam) if self.encoder is not None else lam.reshape(-1, 1)
        codes = codes.to(device=h.device, dtype=h.dtype)
        if codes.shape[0] == 1:
            codes = codes.expand(h.shape[0], -1)  # one lambda for the whole batch
        gamma, beta = F.leaky_relu(self.mlp(codes), 0.2).chunk(2, dim=1)
        return gamma[:, :, None, None] * h + beta[:, :, None, None]


def share_condition(model: nn.Module) -> Condition:
    """Point every conditional layer of `model` at one Condition (stored as `model.condition`)."""
    condition = getattr(model, "condition", None)
    if not isinstance(condition, Condition):
        condition = Condition()
        model.condition = condition
    for module in model.modules():
        if isinstance(module, ConditionalMixin) and module is not model:
            module.condition = condition
    return condition


@contextlib.contextmanager
def conditioned(model: nn.Module, condition: Condition, lam: Optional[torch.Tensor] = None) -> Iterator[None]:
    """Run the block with the model's knob at `condition` (and FiLM's lambdas `lam`), then put it back."""
    shared = getattr(model, "condition", None)
    if not isinstance(shared, Condition):
        raise ValueError("the model has no shared condition: build it with gearlib.adversarial.models")
    before = dataclasses.replace(shared)
    for f in dataclasses.fields(Condition):
        setattr(shared, f.name, getattr(condition, f.name))
    if lam is not None:
        shared.lam = lam
    try:
        yield
    finally:
        for f in dataclasses.fields(Condition):
            setattr(shared, f.name, getattr(before, f.name))


def noise_scales(model: nn.Module) -> dict:
    """alpha of every noisy layer by module name (FLOAT's learned per-layer noise)."""
    return {
        name: float(m.alpha.detach())
        for name, m in model.named_modules()
        if isinstance(m, NoisyMixin) and m.alpha is not None
    }
