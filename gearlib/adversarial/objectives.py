"""The training loss of each adversarial method for one batch: PGD-AT (fixed lambda, whole batch attacked),
FLOAT and SMART (half clean, half attacked, binary lambda) and OAT (lambda sampled per sample, FiLM).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.adversarial.knobs import OAT_TRAIN_LAMBDAS
from gearlib.adversarial.layers import ADVERSARIAL, CLEAN, Condition, conditioned
from gearlib.attacks import pgd

LOSSES = ("pgd-at", "split", "oat")


@dataclass(frozen=True)
class TrainAttack:
    """The attack crafted during training: L-inf PGD with `steps` steps of eps (OAT's step rule)."""

    eps: float
    steps: int

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, steps=self.steps)


@dataclass
class BatchLoss:
    """A batch's loss and how many of its clean images were classified right (for the epoch log)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int


def pgd_at_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: TrainAttack, lam: float
) -> BatchLoss:
    """(1 - lambda) CE(f(x), y) + lambda CE(f(x_adv), y), the whole batch attacked (Madry et al.); lambda = 0
    is plain training and crafts no attack, lambda = 1 makes no clean pass (its logged accuracy is then the
    accuracy on the adversarial batch)."""
    loss, logits = x.new_zeros(()), None
    if lam < 1:
        logits = model(x)
        loss = (1.0 - lam) * F.cross_entropy(logits, y)
    if lam > 0:
        x_adv = attack(model, x, y)  # in eval mode, parameters frozen (gearlib.attacks.attack_mode)
        adv_logits = model(x_adv)
        loss = loss + lam * F.cross_entropy(adv_logits, y)
        logits = adv_logits if logits is None else logits
    assert logits is not None
    return BatchLoss(loss, (logits.detach().argmax(1) == y).sum(), int(y.shape[0]))


def split_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: TrainAttack, widths: Sequence[float] = (1.0,)
) -> BatchLoss:
    """FLOAT's (and SMART's) step: the first half trains the clean path (lambda = 0: plain or Pi_C weights,
    BN_C), the second half is attacked through the adversarial path (lambda = 1: noisy or Pi_A weights,
    BN_A) and trains it; each BN set sees only its half, and the loss is 0.5 L_C + 0.5 L_A.

    A slimmable model (FLOATS slim) takes this step at every slimming factor, its attack crafted against
    that width, and sums the losses: one optimiser step on the gradients accumulated over the widths.
    """
    half = x.shape[0] // 2
    if half < 1:
        raise ValueError(f"FLOAT and SMART split each batch in two: need a batch of >= 2, got {x.shape[0]}")
    loss = x.new_zeros(())
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for width in widths:
        with conditioned(model, dataclasses.replace(CLEAN, width=width)):
            logits = model(x[:half])
            loss_clean = F.cross_entropy(logits, y[:half])
        with conditioned(model, dataclasses.replace(ADVERSARIAL, width=width)):
            x_adv = attack(model, x[half:], y[half:])
            loss_adv = F.cross_entropy(model(x_adv), y[half:])
        loss = loss + 0.5 * loss_clean + 0.5 * loss_adv
        if width == widths[0]:
            correct = (logits.detach().argmax(1) == y[:half]).sum()
    return BatchLoss(loss, correct, half)


def sample_lambdas(
    batch: int, choices: Sequence[float] = OAT_TRAIN_LAMBDAS, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """OAT's per-sample lambdas: the first ceil(B / |S|) samples get 0, the rest draw uniformly from S's
    non-zero values."""
    nonzero = torch.tensor([c for c in choices if c > 0])
    if len(nonzero) == 0 or 0 not in choices:
        raise ValueError(f"OAT's lambda set needs 0 and at least one value > 0, got {list(choices)}")
    lam = torch.zeros(batch)
    zeros = min(batch, math.ceil(batch / len(choices)))
    picks = torch.randint(len(nonzero), (batch - zeros,), generator=generator)
    lam[zeros:] = nonzero[picks]
    return lam


def oat_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: TrainAttack,
    choices: Sequence[float] = OAT_TRAIN_LAMBDAS,
    generator: Optional[torch.Generator] = None,
) -> BatchLoss:
    """OAT's step: mean over samples of (1 - lambda_i) CE_clean + lambda_i CE_adv, where lambda = 0 samples
    go through BN_C and the others through BN_A (their clean and adversarial passes), FiLM reading lambda_i;
    only lambda > 0 samples are attacked."""
    lam = sample_lambdas(x.shape[0], choices, generator).to(x.device)
    zero, rest = lam == 0, lam > 0
    loss = x.new_zeros(())
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for chosen, bn in ((zero, "clean"), (rest, "adv")):
        if not bool(chosen.any()):
            continue
        xs, ys, ls = x[chosen], y[chosen], lam[chosen]
        with conditioned(model, Condition(bn, 0.0, "clean"), lam=ls):
            logits = model(xs)
            ce = F.cross_entropy(logits, ys, reduction="none")
            loss = loss + ((1.0 - ls) * ce).sum()
            correct = correct + (logits.detach().argmax(1) == ys).sum()
            if bn == "adv":
                x_adv = attack(model, xs, ys)
                loss = loss + (ls * F.cross_entropy(model(x_adv), ys, reduction="none")).sum()
    return BatchLoss(loss / x.shape[0], correct, int(y.shape[0]))


def batch_loss(
    loss: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: TrainAttack,
    lam: float = 1.0,
    generator: Optional[torch.Generator] = None,
    widths: Sequence[float] = (1.0,),
) -> BatchLoss:
    """One batch's loss of the named kind: pgd-at (fixed lambda), split (FLOAT, FLOATS, SMART) or oat."""
    if loss == "pgd-at":
        return pgd_at_loss(model, x, y, attack, lam)
    if loss == "split":
        return split_loss(model, x, y, attack, widths)
    if loss == "oat":
        return oat_loss(model, x, y, attack, generator=generator)
    raise ValueError(f"unknown adversarial loss {loss!r}; choose one of {', '.join(LOSSES)}")
