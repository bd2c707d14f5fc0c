"""Tests for the JSD consistency loss (gearlib.augment.jsd): L = CE(clean) + lambda * JSD over J views.

Checks the zero/positive cases, J = 1, the list and stacked forms and the formula of book/notes/era.md#notes-era-jsd.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gearlib.augment import jsd_divergence, jsd_loss, task_loss
from gearlib.augment.jsd import JSD_LAMBDA


def _logits(j: int = 3, b: int = 8, k: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(j * b, k, generator=torch.Generator().manual_seed(seed))


def test_jsd_zero_for_identical_views_positive_otherwise() -> None:
    one = _logits(1)
    assert float(jsd_divergence([one, one, one])) == pytest.approx(0.0, abs=1e-6)
    views = list(_logits(3).split(8))
    assert float(jsd_divergence(views)) > 1e-3


def test_jsd_matches_spec_formula() -> None:
    views = list(_logits(4).split(8))
    p = [F.softmax(v, 1) for v in views]
    m = torch.stack(p).mean(0).clamp(1e-7, 1)
    manual = sum((q * (q.log() - m.log())).sum(1).mean() for q in p) / 4
    assert float(jsd_divergence(views)) == pytest.approx(float(manual), rel=1e-5)


def test_loss_is_ce_for_one_view_and_task_loss_dispatch() -> None:
    y = torch.arange(8) % 10
    logits = _logits(1)
    ce = F.cross_entropy(logits, y)
    assert torch.allclose(jsd_loss([logits], y), ce)
    assert torch.allclose(task_loss(logits, y), ce)
    stacked = _logits(3)
    expected = F.cross_entropy(stacked[:8], y) + JSD_LAMBDA * jsd_divergence(list(stacked.split(8)))
    assert torch.allclose(task_loss(stacked, y), expected)
    assert torch.allclose(jsd_loss(list(stacked.split(8)), y), expected)
    assert torch.allclose(jsd_loss(stacked, y, weight=0.0), F.cross_entropy(stacked[:8], y))


def test_loss_has_gradients_for_all_views() -> None:
    logits = _logits(3).requires_grad_(True)
    task_loss(logits, torch.arange(8) % 10).backward()
    assert logits.grad is not None and float(logits.grad[16:].abs().sum()) > 0


def test_bad_row_counts_raise() -> None:
    with pytest.raises(ValueError, match="multiple"):
        task_loss(torch.zeros(10, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="rows"):
        jsd_loss([torch.zeros(4, 3), torch.zeros(5, 3)], torch.zeros(4, dtype=torch.long))


def test_jsd_gradient_stays_finite_when_a_softmax_underflows():
    """Logits 200 apart make softmax exactly 0 for some classes; the JSD and its gradient stay finite and
    equal the float64 computation (a probability-target KL gave NaN gradients here)."""
    logits = torch.tensor([[100.0, -100.0, 0.0], [3.0, 1.0, -2.0]])
    views = [(logits * s).requires_grad_() for s in (1.0, 0.5, -1.0)]
    jsd_divergence(views).backward()
    assert all(torch.isfinite(v.grad).all() for v in views)
    ref = [v.detach().double().requires_grad_() for v in views]
    probs = [torch.softmax(r, 1) for r in ref]
    mixture = torch.stack(probs).mean(0).clamp(1e-7, 1)
    value = torch.stack(
        [(p * (torch.log_softmax(r, 1) - mixture.log())).sum(1).mean() for p, r in zip(probs, ref)]
    )
    value.mean().backward()
    for v, r in zip(views, ref):
        assert torch.allclose(v.grad.double(), r.grad, atol=1e-5)
